//! Decode + normalize of one NDJSON file on one thread, all columns, raw bodies kept, redaction
//! and derived columns included; prints events/s of this thread's CPU time as JSON.
//!
//! `decode_file FILE`: the file is read into memory first, so only decoding is timed; it is decoded
//! three times and the fastest run counts (the first pays for faulting in fresh memory). Each batch
//! is dropped once decoded, as a pipeline hands it on, so memory is reused as it is in a replay.

use std::time::Instant;

use auditlake_benches::decode_each;

/// The allocator of the `auditlake` binary, so that this measures what a replay runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::io::Result<()> {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        eprintln!("usage: decode_file FILE");
        std::process::exit(2)
    });
    let input = std::fs::read(&path)?;
    let mut seconds = f64::INFINITY;
    let (mut rows, mut rejected) = (0, 0);
    for _ in 0..3 {
        let started = Instant::now();
        let mut decoded = 0;
        rejected = decode_each(&input, |batch| decoded += batch.num_rows());
        seconds = seconds.min(started.elapsed().as_secs_f64());
        rows = decoded;
    }
    println!(
        "{{\"events\":{rows},\"rejected\":{rejected},\"seconds\":{seconds:.4},\"events_per_s\":{:.0},\"bytes\":{}}}",
        rows as f64 / seconds,
        input.len()
    );
    Ok(())
}
