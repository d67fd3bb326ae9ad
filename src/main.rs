//! `auditlake`: Kubernetes audit logs into a Parquet lake, checked by rules, queried with SQL.
//!
//! The binary only parses flags, loads configuration, installs logging and wires the library
//! crates together; every command lives in its own module.

mod alerts;
mod cli;
mod config;
mod lake;
mod output;
mod produce;
mod query;
mod replay;
mod rules;
mod serve;
mod server;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    cli::init_logging(cli.global.log_format, level);
    let settings = match config::Settings::resolve(&cli.global) {
        Ok(s) => s,
        Err(e) => return report(&e),
    };
    let outcome = match cli.command {
        Command::Serve(args) => serve::run(&settings, *args),
        Command::Replay(args) => replay::run(&settings, args),
        Command::Query(args) => query::run(&settings, args),
        Command::Rules(command) => rules::run(&settings, command),
        Command::Produce(args) => produce::run(args),
        Command::Alerts(command) => alerts::run(&settings, command),
        Command::Lake(command) => lake::run(&settings, command),
    };
    match outcome {
        Ok(code) => code,
        Err(e) => report(&e),
    }
}

/// Prints the error chain and maps it to exit code 1.
fn report(e: &anyhow::Error) -> ExitCode {
    eprintln!("auditlake: {}", chain_text(e));
    ExitCode::from(1)
}

/// The messages of an error and its causes, `: `-separated, each once: a cause whose message its
/// error already repeats (DataFusion's errors print their source, and the engine's query error
/// prints DataFusion's) would otherwise say the same thing up to four times over.
fn chain_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let message = cause.to_string();
        if text.contains(&message) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&message);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unknown column named once, not once per layer of the error that carries it.
    #[test]
    fn errors_say_each_cause_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = auditlake_engine::QueryEngine::open_once(
            &auditlake_engine::Lake::local(dir.path()),
            auditlake_engine::QueryLimits::default(),
        )
        .expect("open");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let err = rt
            .block_on(engine.query("SELECT date FROM events"))
            .expect_err("no such column");
        let text = chain_text(&anyhow::Error::new(err));
        assert_eq!(text.matches("No field named date").count(), 1, "{text}");
        // A cause that adds something is kept.
        let layered = anyhow::anyhow!("disk full").context("writing events.parquet");
        assert_eq!(chain_text(&layered), "writing events.parquet: disk full");
    }
}
