//! Generates the habits data set (`auditlake_benches::habits`) and judges the built-in pack on it.
//!
//! `habits [--days N] [--per-day N] [--seed N] [--out DIR] [--rules DIR]`: replays each day with
//! its own pipeline into a lake under a scratch directory, then prints recall per labelled kind and
//! medium-and-higher alerts per day on routine traffic, by severity and by rule. With `--out`, also
//! writes `day-NN.ndjson`, `labels.tsv` and `threat-intel.txt` there for `auditlake replay`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use auditlake_benches::habits::{self, LEARN_DAYS, THREAT_LIST};
use auditlake_benches::judge::replay_days;
use auditlake_rules::{CompiledPack, RuleSet, THREAT_INTEL_LIST};

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let (mut days, mut per_day, mut seed) = (14u32, 54_000usize, 1u64);
    let mut out: Option<PathBuf> = None;
    let mut rules: Vec<PathBuf> = Vec::new();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--days" => days = value()?.parse().map_err(|e| format!("--days: {e}"))?,
            "--per-day" => per_day = value()?.parse().map_err(|e| format!("--per-day: {e}"))?,
            "--seed" => seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--out" => out = Some(PathBuf::from(value()?)),
            "--rules" => rules.push(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let data = habits::generate(seed, days, per_day);
    let scratch = std::env::temp_dir().join(format!("auditlake-habits-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let threat = scratch.join("threat-intel.txt");
    std::fs::write(&threat, THREAT_LIST).map_err(|e| e.to_string())?;
    if let Some(dir) = &out {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        for (d, bytes) in data.days.iter().enumerate() {
            std::fs::write(dir.join(format!("day-{:02}.ndjson", d + 1)), bytes)
                .map_err(|e| e.to_string())?;
        }
        let mut labels = String::from("audit_id\tkind\tday\n");
        for l in &data.labels {
            labels.push_str(&format!("{}\t{}\t{}\n", l.audit_id, l.kind, l.day + 1));
        }
        std::fs::write(dir.join("labels.tsv"), labels).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("threat-intel.txt"), THREAT_LIST).map_err(|e| e.to_string())?;
    }
    let mut set = RuleSet::load(&rules).map_err(|e| e.to_string())?;
    set.add_list_file(THREAT_INTEL_LIST, &threat)
        .map_err(|e| e.to_string())?;
    let pack = CompiledPack::compile(&set).map_err(|e| e.to_string())?;
    let events: usize = data
        .days
        .iter()
        .map(|d| d.iter().filter(|b| **b == b'\n').count())
        .sum();
    let verdict = replay_days(&data, &scratch.join("data"), &pack)?;
    let _ = std::fs::remove_dir_all(&scratch);

    let mut o = std::io::stdout().lock();
    let _ = writeln!(
        o,
        "{days} days, {events} events ({} a day), seed {seed}",
        events / days.max(1) as usize
    );
    let _ = writeln!(o, "\n| kind | caught | labelled |\n| --- | --- | --- |");
    for (kind, (caught, total)) in &verdict.recall {
        let _ = writeln!(o, "| {kind} | {caught} | {total} |");
    }
    let _ = writeln!(o, "\nmedium-and-higher alerts on routine traffic per day:");
    for d in 0..days as usize {
        let by_severity: BTreeMap<&str, u64> =
            verdict.noise[d]
                .iter()
                .fold(BTreeMap::new(), |mut m, ((s, _), n)| {
                    *m.entry(s.as_str()).or_default() += n;
                    m
                });
        let learning = if (d as u32) < LEARN_DAYS {
            " (learning)"
        } else {
            ""
        };
        let _ = writeln!(
            o,
            "day {:2}{learning}: {} {by_severity:?}",
            d + 1,
            verdict.noise_on(d)
        );
    }
    let mut per_rule: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for (d, day) in verdict.noise.iter().enumerate() {
        for ((severity, rule), n) in day {
            let e = per_rule
                .entry((rule.clone(), severity.clone()))
                .or_default();
            if d as u32 >= LEARN_DAYS {
                e.1 += n;
            } else {
                e.0 += n;
            }
        }
    }
    let _ = writeln!(
        o,
        "\n| rule | severity | learning days | after learning |\n| --- | --- | --- | --- |"
    );
    for ((rule, severity), (before, after)) in &per_rule {
        let _ = writeln!(o, "| {rule} | {severity} | {before} | {after} |");
    }
    let _ = writeln!(
        o,
        "\nfirst-seen and sequence state, largest after a day: {} KiB",
        verdict.history_bytes / 1024
    );
    if verdict.missed().is_empty() {
        Ok(())
    } else {
        Err(format!("missed: {:?}", verdict.missed()))
    }
}
