//! Every built-in rule's examples.

use auditlake_rules::{CompiledPack, RuleSet, run_examples};

use crate::repo;

#[test]
fn every_builtin_rule_passes_its_examples() {
    let pack = CompiledPack::compile(&RuleSet::builtin().expect("the pack parses"))
        .expect("the pack compiles");
    assert!(!pack.rules.is_empty());
    let report = run_examples(&pack, &repo());
    let failures: Vec<String> = report.failures.iter().map(ToString::to_string).collect();
    assert!(
        failures.is_empty(),
        "{} of {} examples failed:\n{}",
        failures.len(),
        report.run,
        failures.join("\n")
    );
    for rule in &pack.rules {
        assert!(
            !rule.def.examples.fires.is_empty() && !rule.def.examples.silent.is_empty(),
            "{}",
            rule.def.id
        );
    }
}

#[test]
fn a_rule_without_examples_fails_the_run() {
    let mut set = RuleSet::default();
    set.merge_text(
        "bare.yaml",
        "rules:\n  - {id: bare, title: Bare, severity: low, category: other, condition: verb = 'get', output: x}\n",
    )
    .expect("parses");
    let pack = CompiledPack::compile(&set).expect("compiles");
    let report = run_examples(&pack, &repo());
    let reasons: Vec<String> = report.failures.iter().map(ToString::to_string).collect();
    assert_eq!(
        reasons,
        [
            "rule bare: examples: no fires example",
            "rule bare: examples: no silent example"
        ]
    );
}
