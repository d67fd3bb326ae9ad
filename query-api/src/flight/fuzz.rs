//! The fuzz target of the SQL guard: queries and refused statements (`fuzz/seeds/sql.sql`),
//! mutated by `auditlake-fuzz` (which also checks panics and the heap), through the statement
//! check and, when it passes, the engine's planning, as Flight SQL and the PostgreSQL protocol
//! do before anything runs. What the check lets through and the engine plans is a query.
//!
//! `AUDITLAKE_FUZZ_SECONDS=600 cargo test --release -p auditlake-query-api --lib fuzz --
//! --nocapture` fuzzes for ten minutes.

use super::*;
use auditlake_fuzz::{Target, seed_files};

const TOKENS: &[&[u8]] = &[
    b"SELECT ",
    b" FROM ",
    b"events",
    b"alerts",
    b"information_schema.tables",
    b" WHERE ",
    b" UNION ",
    b"WITH ",
    b" JOIN ",
    b"(SELECT ",
    b"DROP ",
    b"COPY ",
    b"SET ",
    b"CREATE ",
    b"INSERT ",
    b"EXPLAIN ",
    b"ANALYZE ",
    b"$1",
    b"$0",
    b"$99999999999",
    b"?",
    b"'",
    b"E'\\x",
    b"::bigint",
    b"[1]",
    b"unnest(",
    b"generate_series(",
    b"/*",
    b"--",
];

#[test]
fn fuzz_the_sql_guard() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // One statement a seed.
    let seeds: Vec<Vec<u8>> = seed_files(&[root.join("fuzz/seeds")], &["sql"])
        .iter()
        .flat_map(|file| file.split(|b| *b == b'\n').map(<[u8]>::to_vec))
        .filter(|line| !line.is_empty())
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let service = tests::service(dir.path());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (mut passed, mut planned) = (0u64, 0u64);
    let report = Target::new("sql", seeds).with_tokens(TOKENS).run(|input| {
        let sql = String::from_utf8_lossy(input);
        if FlightSql::check(&sql).is_err() {
            return;
        }
        passed += 1;
        if runtime
            .block_on(service.plan(&super::tests::alice(), &sql, &[]))
            .is_ok()
        {
            planned += 1;
        }
    });
    println!("fuzz sql: {passed} inputs passed the check, {planned} planned");
    assert!(report.executions > 0);
}
