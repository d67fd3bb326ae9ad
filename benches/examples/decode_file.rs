//! Decode + normalize of one NDJSON file on one thread, all columns, raw bodies kept, redaction
//! and derived columns included; prints events/s of this thread's CPU time as JSON.
//!
//! `decode_file FILE`: the file is read into memory first, so only decoding is timed.

use std::time::Instant;

use auditlake_schema::Decoder;

const BATCH_ROWS: usize = 16 * 1024;

fn main() -> std::io::Result<()> {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        eprintln!("usage: decode_file FILE");
        std::process::exit(2)
    });
    let input = std::fs::read(&path)?;
    let mut decoder = Decoder::new(None);
    let mut rejected = Vec::new();
    let mut rows = 0usize;
    let started = Instant::now();
    let mut start = 0;
    while start < input.len() {
        let end = memchr::memchr(b'\n', &input[start..]).map_or(input.len(), |i| start + i);
        let line = &input[start..end];
        start = end + 1;
        if line.is_empty() {
            continue;
        }
        decoder.decode(line, &mut rejected);
        if decoder.len() >= BATCH_ROWS {
            rows += decoder.finish().num_rows();
        }
    }
    rows += decoder.finish().num_rows();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{{\"events\":{rows},\"rejected\":{},\"seconds\":{seconds:.4},\"events_per_s\":{:.0},\"bytes\":{}}}",
        rejected.len(),
        rows as f64 / seconds,
        input.len()
    );
    Ok(())
}
