//! The rule file format (YAML), as written by people. [`crate::pack`] merges files into one
//! validated set.
//!
//! ```yaml
//! lists:
//!   - name: system_namespaces
//!     items: [kube-system, kube-public, kube-node-lease]
//! macros:
//!   - name: in_system_namespace
//!     condition: namespace IN (system_namespaces)
//! rules:
//!   - id: pod-exec
//!     title: Exec into a pod
//!     severity: medium            # critical | high | medium | low | info
//!     category: exec              # forbidden | credential-misuse | exec | rbac-escalation |
//!                                 # workload | recon | persistence | other
//!     mitre: [T1609]
//!     condition: resource = 'pods' AND subresource = 'exec' AND NOT in_system_namespace
//!     exceptions:
//!       - name: known_debuggers
//!         fields: [user_name, namespace]
//!         values: [[alice@example.com, dev]]
//!     output: "{user_name} exec into {namespace}/{name} from {source_ip}: {exec_command}"
//!     threshold: {count: 10, window: 10m, group_by: [user_name], distinct: resource}
//!     examples:
//!       fires: [{verb: create, ...}, "sample-logs/exec-into-pod.log#2"]
//!       silent: [...]
//! append:
//!   lists: [{name: system_namespaces, items: [platform]}]
//!   exceptions: [{rule: pod-exec, name: known_debuggers, values: [[bob@example.com, ops]]}]
//! override:
//!   - {rule: pod-exec, enabled: false}
//! ```
//!
//! Macro and list names are used as bare identifiers in conditions: a macro expands to its
//! parenthesised condition, a list to its quoted, comma-separated items.

use serde::Deserialize;
use serde_json::Value;

/// One rules file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// New named lists.
    #[serde(default)]
    pub lists: Vec<ListDef>,
    /// New named macros.
    #[serde(default)]
    pub macros: Vec<MacroDef>,
    /// New rules.
    #[serde(default)]
    pub rules: Vec<RuleDef>,
    /// Additions to lists and exceptions defined earlier.
    #[serde(default)]
    pub append: Append,
    /// Changes to rules defined earlier.
    #[serde(default, rename = "override")]
    pub overrides: Vec<Override>,
}

/// `name: [items]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListDef {
    /// Identifier used in conditions.
    pub name: String,
    /// The values (strings; numbers are written as they are).
    #[serde(default)]
    pub items: Vec<Value>,
    /// A file of IP addresses and CIDR blocks, one per line (`#` or `;` starts a comment), whose
    /// entries join `items`: a threat-intel feed or a Tor exit list the user downloads. A relative
    /// path is relative to the rules file. Re-read when it changes ([`crate::IpLists`]).
    pub file: Option<String>,
}

/// A reusable condition fragment.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MacroDef {
    /// Identifier used in conditions.
    pub name: String,
    /// SQL boolean expression.
    pub condition: String,
}

/// One rule as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct RuleDef {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub severity: String,
    pub category: String,
    #[serde(default)]
    pub mitre: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Required, except for a sequence rule, where it guards every step.
    #[serde(default)]
    pub condition: String,
    #[serde(default)]
    pub exceptions: Vec<ExceptionDef>,
    pub output: String,
    pub threshold: Option<ThresholdDef>,
    pub first_seen: Option<FirstSeenDef>,
    pub sequence: Option<SequenceDef>,
    #[serde(default)]
    pub examples: Examples,
}

/// Raise one alert when a matching event carries a combination of `fields` that no matching
/// event of the last `history` carried (Elastic's `new_terms`), once per new combination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirstSeenDef {
    /// SQL expressions over `events` columns whose values together form the term, e.g.
    /// `[user_name, ip_prefix(source_ip, 24)]`.
    pub fields: Vec<String>,
    /// How far back a term counts as known: `14d`.
    pub history: String,
    /// No alert until the history of the entity (`learn_by`) or else of the cluster covers this
    /// span: `7d`. Absent: alerts from the first event on.
    pub learn: Option<String>,
    /// Columns naming the entity whose own history must cover `learn` (e.g. `[user_name]`): its
    /// every request counts, not only the matching ones. Absent: the whole cluster's.
    #[serde(default)]
    pub learn_by: Vec<String>,
}

/// Raise one alert when events of one key match `steps` in order within `within`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequenceDef {
    /// SQL expressions joining the steps (e.g. `[user_name]`); a step may read its own.
    #[serde(default)]
    pub by: Vec<String>,
    /// The longest span from the first step's first event to the last step: `5m`.
    pub within: String,
    /// At least two, in order.
    pub steps: Vec<StepDef>,
}

/// One step of a sequence.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDef {
    /// Named in the alert's message.
    pub name: String,
    /// SQL boolean expression, like a rule's.
    pub condition: String,
    /// This step's key, when it reads the joining value from other columns than `by` (e.g. the
    /// service account a binding names, `subjects`); a list-valued key joins on any element.
    pub by: Option<Vec<String>>,
    /// Matching events needed to complete the step (a burst of 403s); 1 by default.
    #[serde(default = "one")]
    pub count: u64,
}

fn one() -> u64 {
    1
}

fn yes() -> bool {
    true
}

/// Named tuples of column values that silence a rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExceptionDef {
    /// Name, so later files can append to it.
    pub name: String,
    /// Columns compared.
    pub fields: Vec<String>,
    /// Tuples; one element per field. An element that is a list matches any of its values.
    #[serde(default)]
    pub values: Vec<Vec<Value>>,
}

/// Raise one alert when `count` matching events (or `count` distinct values of `distinct`) fall in
/// one `window` for one `group_by` key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdDef {
    /// Events (or distinct values) needed.
    pub count: u64,
    /// Window length: `30s`, `10m`, `1h`.
    pub window: String,
    /// Columns that form the group key.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// Count distinct values of this column instead of events.
    pub distinct: Option<String>,
}

/// Test cases carried by the rule.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Examples {
    /// Events (or `FILE`, `FILE#LINE` references) the rule must fire on.
    #[serde(default)]
    pub fires: Vec<Value>,
    /// Events it must stay silent on.
    #[serde(default)]
    pub silent: Vec<Value>,
}

/// `append:` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Append {
    /// Items added to existing lists.
    #[serde(default)]
    pub lists: Vec<ListDef>,
    /// Values (or whole new exceptions, with `fields`) added to existing rules.
    #[serde(default)]
    pub exceptions: Vec<ExceptionAppend>,
}

/// An exception added to a rule defined earlier.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExceptionAppend {
    /// The rule.
    pub rule: String,
    /// The exception's name; new if the rule has none of that name (then `fields` is required).
    pub name: String,
    /// For a new exception: its columns.
    pub fields: Option<Vec<String>>,
    /// Tuples to add.
    #[serde(default)]
    pub values: Vec<Vec<Value>>,
}

/// `override:` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    /// The rule.
    pub rule: String,
    /// New `enabled`.
    pub enabled: Option<bool>,
    /// New condition.
    pub condition: Option<String>,
}
