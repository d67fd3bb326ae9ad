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

/// Kafka partitions are consumed at different paces: a burst can arrive after events hours
/// newer, and its threshold window must still count it.
#[test]
fn a_threshold_burst_arriving_after_newer_events_still_fires() {
    use arrow::array::AsArray;
    use auditlake_rules::RuleEngine;
    use auditlake_schema::Decoder;
    use auditlake_schema::columns::{alert, column};

    let pack = CompiledPack::compile(&RuleSet::builtin().expect("the pack parses"))
        .expect("the pack compiles");
    let decode = |text: &str| {
        let mut decoder = Decoder::new(None);
        let mut rejected = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            decoder.decode(line.as_bytes(), &mut rejected);
        }
        assert!(rejected.is_empty());
        decoder.finish()
    };
    let recon = std::fs::read_to_string(repo().join("sample-logs/recon-enumeration.log"))
        .expect("sample log");
    let later = std::fs::read_to_string(repo().join("sample-logs/other-anti-forensics.log"))
        .expect("sample log");
    let fired = |batches: &[&str]| {
        let mut engine = RuleEngine::new(&pack);
        let mut rules = Vec::new();
        for text in batches {
            let alerts = engine.evaluate(&decode(text)).expect("evaluate");
            let ids = column(&alerts, alert::RULE_ID).as_string::<i32>();
            rules.extend(ids.iter().flatten().map(str::to_string));
        }
        rules.sort();
        rules
    };
    let in_order = fired(&[&recon, &later]);
    assert!(
        in_order.iter().any(|r| r == "unauthenticated-scanning"),
        "{in_order:?}"
    );
    // The burst's events one by one, after events 80 minutes newer.
    let mut late: Vec<&str> = vec![&later];
    late.extend(recon.lines());
    assert_eq!(fired(&late), in_order);
}

/// After a failed lake write the server gives the rules the same events again (the lake's
/// history, then the write-ahead log): forgotten first, they alert as on the first pass, neither
/// twice nor never.
#[test]
fn a_forgetting_engine_alerts_on_events_given_again_as_on_the_first_pass() {
    use arrow::array::AsArray;
    use auditlake_rules::RuleEngine;
    use auditlake_schema::Decoder;
    use auditlake_schema::columns::{alert, column};

    let pack = CompiledPack::compile(&RuleSet::builtin().expect("the pack parses"))
        .expect("the pack compiles");
    let mut decoder = Decoder::new(None);
    let mut rejected = Vec::new();
    let mut logs: Vec<_> = std::fs::read_dir(repo().join("sample-logs"))
        .expect("sample-logs")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    for log in &logs {
        let text = std::fs::read_to_string(log).expect("sample log");
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            decoder.decode(line.as_bytes(), &mut rejected);
        }
    }
    let batch = decoder.finish();
    let raised = |engine: &mut RuleEngine| {
        let alerts = engine.evaluate(&batch).expect("evaluate");
        let mut ids: Vec<String> = column(&alerts, alert::ALERT_ID)
            .as_string::<i32>()
            .iter()
            .flatten()
            .map(str::to_string)
            .collect();
        ids.sort();
        ids
    };
    let mut engine = RuleEngine::new(&pack);
    let first = raised(&mut engine);
    assert!(first.len() > 10, "{} alerts", first.len());
    assert_ne!(
        raised(&mut engine),
        first,
        "unforgotten, the second pass differs"
    );
    engine.forget();
    assert_eq!(raised(&mut engine), first);
}
