//! Users tune the pack from their own files, and bad files are refused with file, rule and reason.

use auditlake_rules::{CompiledPack, RuleSet};

fn pack_with(user: &str) -> Result<CompiledPack, String> {
    let mut set = RuleSet::builtin().map_err(|e| e.to_string())?;
    set.merge_text("user.yaml", user)
        .map_err(|e| e.to_string())?;
    CompiledPack::compile(&set).map_err(|e| e.to_string())
}

#[test]
fn bad_files_name_file_rule_and_reason() {
    let cases = [
        (
            "rules:\n  - {id: r1, title: t, severity: low, category: other, condition: \"no_such_column = 1\", output: x}\n",
            "user.yaml: rule r1: condition:",
        ),
        (
            "rules:\n  - {id: r2, title: t, severity: low, category: other, condition: \"verb = = 1\", output: x}\n",
            "user.yaml: rule r2: condition:",
        ),
        (
            "rules:\n  - {id: r3, title: t, severity: loud, category: other, condition: \"verb = 'get'\", output: x}\n",
            "user.yaml: rule r3: severity \"loud\"",
        ),
        (
            "rules:\n  - {id: r4, title: t, severity: low, category: other, condition: \"verb\", output: x}\n",
            "user.yaml: rule r4: condition is Utf8, not a boolean",
        ),
        (
            "rules:\n  - {id: r5, title: t, severity: low, category: other, condition: \"verb = 'get'\", output: \"{nope}\"}\n",
            "user.yaml: rule r5: output: unknown column {nope}",
        ),
        (
            "override:\n  - {rule: no-such-rule, enabled: false}\n",
            "user.yaml: rule no-such-rule: no such rule",
        ),
        ("rules: [\n", "user.yaml: "),
        (
            "rules:\n  - {id: pod-exec-attach, title: t, severity: low, category: other, condition: \"verb = 'get'\", output: x}\n",
            "user.yaml: rule pod-exec-attach: already defined in builtin/exec.yaml",
        ),
    ];
    for (text, expected) in cases {
        let err = pack_with(text).expect_err(text);
        assert!(err.starts_with(expected), "{text}\n=> {err}");
    }
}
