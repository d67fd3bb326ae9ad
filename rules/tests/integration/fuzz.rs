//! The fuzz target of the rule-file loader: the built-in pack's files and `sample-logs/`'s rules,
//! mutated by `auditlake-fuzz` (which also checks panics and the heap), each loaded alone and
//! compiled; a pack that compiles then evaluates a batch of sample events. Loading or compiling
//! may fail, with an error naming the file; nothing may panic.
//!
//! `AUDITLAKE_FUZZ_SECONDS=600 cargo test --release -p auditlake-rules --test integration fuzz
//! -- --nocapture` fuzzes for ten minutes.

use auditlake_fuzz::{Target, seed_files};
use auditlake_rules::{CompiledPack, RuleEngine, RuleSet};
use auditlake_schema::Decoder;

/// Rule file keys and SQL.
const TOKENS: &[&[u8]] = &[
    b"rules:\n",
    b"macros:\n",
    b"lists:\n",
    b"- id: ",
    b"condition: ",
    b"exceptions:\n",
    b"threshold:\n",
    b"count: ",
    b"window: ",
    b"group_by: ",
    b"output: ",
    b"{{",
    b"}}",
    b"append: true",
    b"override:",
    b"severity: critical",
    b" AND ",
    b" OR ",
    b"NOT ",
    b" IN (",
    b"regexp_like(",
    b"(?i)",
    b".*",
    b"{1000000}",
    b"cidr_match(",
    b"&x [1,2]\n",
    b"*x",
    b"!!binary ",
    b"<<: ",
    b"examples:\n",
    b"fires:\n",
    b"silent:\n",
];

#[test]
fn fuzz_the_rule_loader() {
    let repo = crate::repo();
    let mut seeds = seed_files(&[repo.join("rules/builtin")], &["yaml"]);
    assert!(seeds.len() > 5, "the built-in pack is missing");
    seeds.extend(seed_files(&[repo.join("docs")], &["yaml", "yml"]));
    let mut decoder = Decoder::new(Some("fuzz".into()));
    for file in seed_files(&[repo.join("sample-logs")], &["log"])
        .iter()
        .take(4)
    {
        for line in file.split(|b| *b == b'\n').take(50) {
            decoder.decode(line, &mut Vec::new());
        }
    }
    let events = decoder.finish();
    assert!(events.num_rows() > 20);
    let (mut loaded, mut compiled) = (0u64, 0u64);
    let report = Target::new("rules", seeds)
        .with_tokens(TOKENS)
        .run(|input| {
            let text = String::from_utf8_lossy(input);
            let mut set = RuleSet::default();
            let Ok(()) = set.merge_text("fuzz.yaml", &text) else {
                return;
            };
            loaded += 1;
            let Ok(pack) = CompiledPack::compile(&set) else {
                return;
            };
            compiled += 1;
            // A compiled rule runs, or fails with an error.
            let _ = RuleEngine::new(&pack).evaluate(&events);
        });
    println!("fuzz rules: {loaded} inputs loaded, {compiled} compiled");
    assert!(report.executions > 0);
}
