//! Writes seeded, realistic audit traffic (see `auditlake_benches::generate`).
//!
//! `generate EVENTS [--seed N] [--ids stable|per-event] [--per-day N] [--event-list ITEMS]
//! [--out FILE]`: NDJSON
//! (one Event per line) by default, or `EventList` documents of ITEMS events per line; stdout
//! unless `--out`. `--ids per-event` gives every benign event its own user ID, access-key ID and
//! token ID (see `auditlake_benches::Ids`); `--per-day N` spreads about N events over each day
//! of event time (default 1,000,000).

use std::io::{BufWriter, Write};

use auditlake_benches::{Generator, Ids};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut events: Option<usize> = None;
    let mut seed = 1u64;
    let mut per_list: Option<usize> = None;
    let mut out: Option<String> = None;
    let mut ids = Ids::Stable;
    let mut per_day: Option<usize> = None;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        match arg.as_str() {
            "--seed" => seed = number(&value("--seed")) as u64,
            "--event-list" => per_list = Some(number(&value("--event-list"))),
            "--out" => out = Some(value("--out")),
            "--per-day" => per_day = Some(number(&value("--per-day"))),
            "--ids" => {
                ids = match value("--ids").as_str() {
                    "stable" => Ids::Stable,
                    "per-event" => Ids::PerEvent,
                    other => usage(&format!("--ids {other:?}: stable or per-event")),
                }
            }
            n if events.is_none() && !n.starts_with('-') => events = Some(number(n)),
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    let events = events.unwrap_or_else(|| usage("how many events?"));
    let mut generator = Generator::with_ids(seed, ids)?;
    if let Some(n) = per_day {
        generator = generator.per_day(n as u64);
    }
    let mut sink: Box<dyn Write> = match &out {
        Some(path) => Box::new(std::fs::File::create(path)?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut writer = BufWriter::with_capacity(1 << 20, &mut sink);
    match per_list {
        Some(n) => generator.event_lists(events, n, &mut writer)?,
        None => generator.ndjson(events, &mut writer)?,
    }
    writer.flush()
}

fn number(text: &str) -> usize {
    text.replace('_', "")
        .parse()
        .unwrap_or_else(|_| usage(&format!("{text:?} is not a number")))
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "generate: {problem}\nusage: generate EVENTS [--seed N] [--ids stable|per-event] [--per-day N] [--event-list ITEMS] [--out FILE]"
    );
    std::process::exit(2)
}
