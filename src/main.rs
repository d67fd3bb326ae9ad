//! `auditlake`: Kubernetes audit logs into a Parquet lake, checked by rules, queried with SQL.
//!
//! The binary only parses flags, loads configuration, installs logging and wires the library
//! crates together; every command lives in its own module.

mod cli;
mod config;
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
    };
    match outcome {
        Ok(code) => code,
        Err(e) => report(&e),
    }
}

/// Prints the error chain and maps it to exit code 1.
fn report(e: &anyhow::Error) -> ExitCode {
    eprintln!("auditlake: {e:#}");
    ExitCode::from(1)
}
