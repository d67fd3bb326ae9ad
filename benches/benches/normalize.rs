//! Decode + normalize: NDJSON audit events into `events` Arrow batches, all columns, raw bodies
//! kept, redaction and derived columns included, on one core.
//!
//! Run: `cargo bench -p auditlake-benches --bench normalize`. Criterion prints events/s
//! (`decode_normalize/events`) and bytes/s (`decode_normalize/bytes`).

use auditlake_benches::{amplify, decode_batches, sample_events};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const EVENTS: usize = 100_000;

fn decode_all(input: &[u8]) -> usize {
    let (batches, rejected) = decode_batches(input);
    assert_eq!(rejected, 0, "amplified sample logs decode cleanly");
    batches.iter().map(|b| b.num_rows()).sum()
}

fn bench(c: &mut Criterion) {
    let events = sample_events().expect("sample-logs/ is readable");
    let input = amplify(&events, EVENTS);
    assert_eq!(decode_all(&input), EVENTS);
    let mut group = c.benchmark_group("decode_normalize");
    group.sample_size(10);
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("events", |b| b.iter(|| decode_all(&input)));
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("bytes", |b| b.iter(|| decode_all(&input)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
