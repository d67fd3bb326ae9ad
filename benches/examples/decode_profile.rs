//! Decodes amplified sample logs in a loop, for a profiler (`valgrind --tool=callgrind`).
//! Run: `cargo run --release -p auditlake-benches --example decode_profile -- 20000`.

use auditlake_benches::{amplify, decode_batches, sample_events};

fn main() {
    let events: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let input = amplify(&sample_events().expect("sample-logs/ is readable"), events);
    let (batches, rejected) = decode_batches(&input);
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    println!("{rows} rows, {rejected} rejected");
}
