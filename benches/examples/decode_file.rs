//! Decode + normalize of one NDJSON file on one thread, all columns, raw bodies kept, redaction
//! and derived columns included; prints events/s of this thread's CPU time as JSON.
//!
//! `decode_file FILE`: the file is read into memory first, so only decoding is timed; it is decoded
//! three times and the fastest run counts (the first pays for faulting in fresh memory). Each batch
//! is dropped once decoded, as a pipeline hands it on, so memory is reused as it is in a replay.
//!
//! Beside it, the floor any decoder of this input stands on: serde_json checking the syntax of
//! every line and keeping nothing (`json_check_events_per_s`, also the best of three).

use std::time::Instant;

use auditlake_benches::{decode_each, lines};
use serde::de::IgnoredAny;

/// The allocator of the `auditlake` binary, so that this measures what a replay runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The fastest of three runs of `pass`, in seconds, and what its last run returned.
fn best_of_three<T>(mut pass: impl FnMut() -> T) -> (f64, T) {
    let mut seconds = f64::INFINITY;
    let mut last = None;
    for _ in 0..3 {
        let started = Instant::now();
        last = Some(pass());
        seconds = seconds.min(started.elapsed().as_secs_f64());
    }
    (seconds, last.expect("three runs"))
}

fn main() -> std::io::Result<()> {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        eprintln!("usage: decode_file FILE");
        std::process::exit(2)
    });
    let input = std::fs::read(&path)?;
    let (seconds, (rows, rejected)) = best_of_three(|| {
        let mut decoded = 0;
        let rejected = decode_each(&input, |batch| decoded += batch.num_rows());
        (decoded, rejected)
    });
    let (check_seconds, checked) = best_of_three(|| {
        lines(&input)
            .filter(|line| serde_json::from_slice::<IgnoredAny>(line).is_ok())
            .count()
    });
    println!(
        "{{\"events\":{rows},\"rejected\":{rejected},\"seconds\":{seconds:.4},\"events_per_s\":{:.0},\"bytes\":{},\"json_checked\":{checked},\"json_check_events_per_s\":{:.0}}}",
        rows as f64 / seconds,
        input.len(),
        checked as f64 / check_seconds,
    );
    Ok(())
}
