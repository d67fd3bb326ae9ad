//! The engine's conditions, as rewritten and narrowed, against the plain ones.

use super::*;
use crate::RuleSet;
use crate::rewrite::tests::true_bits;
use auditlake_schema::Decoder;

/// Every sample log, decoded into one batch.
fn samples() -> RecordBatch {
    let dir = auditlake_schema::package_dir(env!("CARGO_MANIFEST_DIR")).join("../sample-logs");
    let mut decoder = Decoder::new(None);
    let mut rejected = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("sample-logs") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "log") {
            for line in std::fs::read_to_string(&path).expect("read").lines() {
                decoder.decode(line.as_bytes(), &mut rejected);
            }
        }
    }
    decoder.finish()
}

#[test]
fn narrowed_conditions_over_dictionaries_match_the_plain_ones_for_every_rule() {
    let pack = CompiledPack::compile(&RuleSet::builtin().expect("parses")).expect("compiles");
    let engine = RuleEngine::new(&pack);
    let encoded: Vec<&str> = engine
        .dictionaries
        .iter()
        .map(|&c| pack.macros.schema.field(c).name().as_str())
        .collect();
    for column in [event::VERB, event::RESOURCE, event::USER_NAME] {
        assert!(encoded.contains(&column), "{column} in {encoded:?}");
    }
    let batch = samples();
    assert!(batch.num_rows() > 100);
    let extended = engine.extend(&batch).expect("extends");
    // Every macro computed the plain way, also those the engine moves into the conditions
    // that read them or never computes.
    let mut columns = extended.columns().to_vec();
    for (m, expr) in pack.macros.exprs.iter().enumerate() {
        let value = expr.evaluate(&extended).expect("plain macro");
        columns[batch.num_columns() + m] = value.into_array(batch.num_rows()).expect("array");
    }
    let plain_batch = RecordBatch::try_new(extended.schema(), columns).expect("batch");
    let mut matched = 0;
    for (r, rule) in engine.rules.iter().enumerate() {
        let plain = rule.expr.evaluate(&plain_batch).expect("plain");
        let plain = plain.into_array(batch.num_rows()).expect("array");
        let narrowed = engine.narrow[r].evaluate(&extended).expect("narrowed");
        assert_eq!(narrowed.null_count(), 0, "{}", rule.def.id);
        assert_eq!(&true_bits(&plain), narrowed.as_boolean(), "{}", rule.def.id);
        matched += narrowed.as_boolean().true_count();
    }
    assert!(matched > 0, "the samples match some rules");
    // The macros computed once per batch agree with the plain ones; the costly ones are not.
    let computed: Vec<usize> = engine.narrow_macros.iter().map(|(m, _)| *m).collect();
    for &m in &computed {
        let at = batch.num_columns() + m;
        assert_eq!(plain_batch.column(at), extended.column(at), "macro {m}");
        assert_eq!(extended.column(at).null_count(), 0, "macro {m}");
    }
    let macro_index = |name: &str| {
        let column = crate::expand::macro_column(name);
        pack.macros.schema.index_of(&column).expect("macro") - batch.num_columns()
    };
    assert!(
        computed.contains(&macro_index("final_stage")),
        "{computed:?}"
    );
    assert!(!computed.contains(&macro_index("privileged_workload_spec")));
    // Nine rules only exclude with it: it runs on the few rows they selected.
    assert!(!computed.contains(&macro_index("trusted_node_agent_images")));
    // Many rules select with it: computed once.
    assert!(computed.contains(&macro_index("anonymous")));
}
