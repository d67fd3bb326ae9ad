//! `roundtrip FILE DATA_DIR [EVERY]`: checks that the NDJSON FILE replayed into DATA_DIR came back
//! whole (see `auditlake_benches::roundtrip`), comparing every EVERY-th line (default 1000).
//! Prints the report as JSON; exits 1 when something is missing or differs.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: roundtrip FILE DATA_DIR [EVERY]");
        return ExitCode::from(2);
    }
    let every = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(1000);
    match auditlake_benches::roundtrip::check(
        &PathBuf::from(&args[0]),
        &PathBuf::from(&args[1]),
        every,
    ) {
        Ok(report) => {
            println!("{}", serde_json::to_string(&report).unwrap_or_default());
            if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("roundtrip: {e}");
            ExitCode::FAILURE
        }
    }
}
