//! What is *suspicious*: the rule engine of auditlake.
//!
//! This crate will own the rule file format (YAML: `id`, `title`, `severity`, `category`,
//! `mitre`, `condition` as an SQL boolean expression over `events` columns, `macros`, `lists`,
//! `exceptions`, `output`, `threshold`, `examples`), its loader and validator, the built-in pack
//! under `rules/builtin/`, compilation of each rule to a DataFusion physical expression, per-batch
//! evaluation into `alerts` batches, and threshold / first-seen state. It knows nothing of HTTP,
//! Kafka or storage.
//!
//! Nothing is implemented yet: the `alerts` schema it will fill is already defined in
//! [`auditlake_schema::alerts_schema`], and the engine already registers the `alerts` table.
#![warn(missing_docs)]
