//! The investigator queries of `benches/compare.sh` through the query engine, over a lake of
//! 500,000 generated events, for regression tracking (the comparison with DuckDB runs over 10M).
//!
//! Run: `cargo bench -p auditlake-benches --bench query`.

use auditlake_benches::{Generator, INVESTIGATOR_QUERIES, store};
use auditlake_engine::{QueryEngine, QueryLimits};
use criterion::{Criterion, criterion_group, criterion_main};

const EVENTS: usize = 500_000;

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut input = Vec::new();
    Generator::new(1)
        .expect("sample-logs/ is readable")
        .ndjson(EVENTS, &mut input)
        .expect("generate");
    assert_eq!(store(&input, dir.path()), Ok(EVENTS as u64));
    drop(input);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let engine = QueryEngine::open(dir.path(), QueryLimits::default()).expect("open lake");
    let mut group = c.benchmark_group("query");
    group.sample_size(20);
    for (name, sql) in INVESTIGATOR_QUERIES {
        let rows = runtime.block_on(engine.query(sql)).expect("query");
        assert!(!rows.batches.is_empty(), "{name}");
        group.bench_function(name, |b| {
            b.iter(|| runtime.block_on(engine.query(sql)).expect("query"))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
