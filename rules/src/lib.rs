//! What is *suspicious*: auditlake's rule engine and built-in detection pack.
//!
//! Rules are YAML ([`format`]): an SQL boolean `condition` over `events` columns, with reusable
//! `macros` and `lists`, `exceptions` that silence known-good tuples, an `output` template, an
//! optional `threshold`, and `examples` that must fire or stay silent. The built-in pack
//! (`rules/builtin/*.yaml`, compiled in) loads first; each `--rules DIR` then adds rules or tunes
//! the pack with `append` and `override`, so users never fork it. Every rule is validated and
//! compiled once to a DataFusion physical expression ([`compile`]); [`RuleEngine`] evaluates them
//! all on each batch into an `alerts` batch, one alert per (rule, cluster, audit ID), with
//! threshold windows kept in memory. It knows nothing of HTTP, Kafka or storage.
//!
//! # Layout
//! - [`format`]: the file format.
//! - [`pack`]: loading and merging files ([`RuleSet`]).
//! - `expand`: macros, lists and exceptions into SQL.
//! - [`compile`]: validation and compilation ([`CompiledPack`]).
//! - [`eval`]: the [`RuleEngine`].
//! - `rewrite`, `regex_match`, `per_value`, `all_of`: conditions rewritten to run faster, each
//!   rewrite keeping the rows a condition is true on.
//! - `template`: `output` rendering.
//! - [`examples`]: running every rule's examples.
//!
//! # Example
//! ```
//! use auditlake_rules::{CompiledPack, RuleEngine, RuleSet};
//! use auditlake_schema::Decoder;
//!
//! let pack = CompiledPack::compile(&RuleSet::builtin()?)?;
//! let mut decoder = Decoder::new(None);
//! decoder.decode(br#"{"auditID":"1","stage":"ResponseComplete","verb":"create",
//!   "requestURI":"/api/v1/namespaces/prod/pods/web/exec?command=sh","responseStatus":{"code":101},
//!   "objectRef":{"resource":"pods","subresource":"exec","namespace":"prod","name":"web"},
//!   "user":{"username":"mallory@example.com"},"timestamp":"2025-11-03T10:00:00Z"}"#, &mut vec![]);
//! let alerts = RuleEngine::new(&pack).evaluate(&decoder.finish())?;
//! assert!(alerts.num_rows() >= 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

mod all_of;
pub mod compile;
mod dictionary;
mod error;
pub mod eval;
pub mod examples;
mod expand;
pub mod format;
mod history;
pub mod ip;
pub mod pack;
mod per_value;
mod regex_match;
mod rewrite;
mod template;

pub use compile::{CompiledPack, CompiledRule, parse_duration};
pub use error::{Error, Result};
pub use eval::RuleEngine;
pub use examples::{ExampleReport, run_examples};
pub use ip::{IpLists, IpSet};
pub use pack::{
    CLOUD_RANGES_LIST, CLOUD_RANGES_SNAPSHOT, CLOUD_RANGES_SNAPSHOT_DATE, RuleSet,
    THREAT_INTEL_LIST,
};
