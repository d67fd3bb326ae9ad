//! Rule evaluation with the whole built-in pack, against the rest of ingest.
//!
//! Run: `cargo bench -p auditlake-benches --bench rules`. Three figures over the same 100,000
//! events amplified from `sample-logs/`, on one core:
//! - `ingest/decode`: decode + normalize only;
//! - `ingest/rules`: every enabled built-in rule over the decoded batches;
//! - `ingest/pipeline`: decode, dedup, Parquet write of events and alerts, and the rules — what
//!   `auditlake replay` does per event.
//!
//! The rules' share of ingest CPU is `ingest/rules` time over `ingest/pipeline` time.

use arrow::record_batch::RecordBatch;
use auditlake_benches::{amplify, decode_batches, realistic_events};
use auditlake_engine::Pipeline;
use auditlake_rules::{CompiledPack, RuleEngine, RuleSet};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const EVENTS: usize = 100_000;

fn decode(input: &[u8]) -> Vec<RecordBatch> {
    decode_batches(input).0
}

fn bench(c: &mut Criterion) {
    let input = amplify(
        &realistic_events().expect("sample-logs/ is readable"),
        EVENTS,
    );
    let pack = CompiledPack::compile(&RuleSet::builtin().expect("pack")).expect("pack compiles");
    let batches = decode(&input);
    let mut engine = RuleEngine::new(&pack);
    let alerts: usize = batches
        .iter()
        .map(|b| engine.evaluate(b).expect("rules run").num_rows())
        .sum();
    println!(
        "{} rules, {EVENTS} events, {alerts} alerts per run",
        pack.enabled().count()
    );
    let mut group = c.benchmark_group("ingest");
    group.sample_size(10);
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("decode", |b| b.iter(|| decode(&input)));
    group.bench_function("rules", |b| {
        b.iter(|| {
            let mut engine = RuleEngine::new(&pack);
            batches
                .iter()
                .map(|batch| engine.evaluate(batch).expect("rules run").num_rows())
                .sum::<usize>()
        })
    });
    group.bench_function("pipeline", |b| {
        b.iter(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut pipeline =
                Pipeline::open(dir.path(), Some(RuleEngine::new(&pack))).expect("lake opens");
            for batch in decode(&input) {
                pipeline.ingest(&batch).expect("ingest");
            }
            pipeline.flush().expect("flush");
            pipeline.totals().stored
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
