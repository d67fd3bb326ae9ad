//! Decodes amplified sample logs in a loop, for a profiler (`valgrind --tool=callgrind`).
//! Run: `cargo run --release -p auditlake-benches --example decode_profile -- 20000`.

use auditlake_benches::{amplify, sample_events};
use auditlake_schema::Decoder;

fn main() {
    let events: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let input = amplify(&sample_events().expect("sample-logs/ is readable"), events);
    let mut decoder = Decoder::new(None);
    let mut rejected = Vec::new();
    let mut rows = 0;
    for line in input.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        decoder.decode(line, &mut rejected);
        if decoder.len() >= 16 * 1024 {
            rows += decoder.finish().num_rows();
        }
    }
    rows += decoder.finish().num_rows();
    println!("{rows} rows, {} rejected", rejected.len());
}
