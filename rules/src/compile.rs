//! Validation and compilation: every rule's condition (macros and lists expanded, exceptions
//! added) becomes one DataFusion physical expression over the `events` schema, built once.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use auditlake_schema::events_schema;
use datafusion::common::DFSchema;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;

use crate::error::{Error, Result};
use crate::expand::{exceptions_sql, expand, expand_to_columns, ip_list_names, macro_column};
use crate::format::RuleDef;
use crate::ip::{IpLists, IpSet, parse_entry, read_list_file};
use crate::pack::{RuleSet, SourcedRule};
use crate::template::Template;

/// Severities, most severe first.
pub const SEVERITIES: &[&str] = &["critical", "high", "medium", "low", "info"];
/// Categories of the `alerts` table.
pub const CATEGORIES: &[&str] = &[
    "forbidden",
    "credential-misuse",
    "exec",
    "rbac-escalation",
    "workload",
    "recon",
    "persistence",
    "other",
];

/// A rule ready to evaluate.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    /// The rule as merged from its files.
    pub def: RuleDef,
    /// The file that defined it (or last overrode its condition).
    pub file: String,
    /// The full SQL evaluated: condition, macros and lists expanded, exceptions added.
    pub sql: String,
    pub(crate) expr: Arc<dyn PhysicalExpr>,
    pub(crate) output: Template,
    pub(crate) threshold: Option<Threshold>,
    pub(crate) first_seen: Option<FirstSeen>,
    pub(crate) sequence: Option<Sequence>,
}

impl CompiledRule {
    /// Whether the rule keeps history beyond one event's request (first-seen or sequence), which
    /// is rebuilt from the lake before new events are checked.
    pub fn needs_history(&self) -> bool {
        self.first_seen.is_some() || self.sequence.is_some()
    }

    /// How far back its history reaches, in µs (first-seen `history` and `learn`, sequence
    /// `within`); 0 for other rules.
    pub fn history_micros(&self) -> i64 {
        let first_seen = self
            .first_seen
            .as_ref()
            .map_or(0, |f| f.history_micros.max(f.learn_micros.unwrap_or(0)));
        let sequence = self.sequence.as_ref().map_or(0, |s| s.within_micros);
        first_seen.max(sequence)
    }
}

/// A first-seen rule's term and learning, resolved against the schema.
#[derive(Debug, Clone)]
pub(crate) struct FirstSeen {
    /// The term's parts, over the batch the conditions read.
    pub fields: Vec<Arc<dyn PhysicalExpr>>,
    pub history_micros: i64,
    pub learn_micros: Option<i64>,
    /// `events` columns naming the entity that must have `learn` of history; empty: the cluster.
    pub learn_by: Vec<usize>,
}

/// A sequence rule's steps, resolved against the schema.
#[derive(Debug, Clone)]
pub(crate) struct Sequence {
    pub within_micros: i64,
    pub steps: Vec<Step>,
}

/// One step: its condition (guard and exceptions included) and key.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub name: String,
    pub expr: Arc<dyn PhysicalExpr>,
    pub by: Vec<Arc<dyn PhysicalExpr>>,
    pub count: u64,
}

/// A threshold, resolved against the schema.
#[derive(Debug, Clone)]
pub(crate) struct Threshold {
    pub count: u64,
    pub window_micros: i64,
    pub group_by: Vec<usize>,
    pub distinct: Option<usize>,
}

/// Every rule of a set, compiled (disabled ones too, so `rules list` can show them).
#[derive(Debug, Clone)]
pub struct CompiledPack {
    /// In definition order.
    pub rules: Vec<CompiledRule>,
    /// Every macro, compiled once: evaluated once per batch and appended to it as a boolean
    /// column, so the dozens of rules that share `system_principal` do not each recompute it.
    pub(crate) macros: Arc<Macros>,
    /// The IP sets `ip_in` reads, by list name; [`CompiledPack::reload_lists`] replaces them.
    pub ip_lists: IpLists,
    /// Each IP list's inline items and files, to rebuild it when a file changes.
    ip_sources: Vec<IpSource>,
}

/// Where an IP list's entries come from.
#[derive(Debug, Clone)]
struct IpSource {
    name: String,
    items: Vec<(u128, u128)>,
    files: Vec<std::path::PathBuf>,
}

impl IpSource {
    fn read(&self) -> std::result::Result<IpSet, String> {
        let mut ranges = self.items.clone();
        for file in &self.files {
            let set = read_list_file(file)?;
            ranges.extend(set.ranges());
        }
        Ok(IpSet::from_ranges(ranges))
    }
}

/// The macros of a pack and the schema of a batch with their columns appended.
#[derive(Debug)]
pub(crate) struct Macros {
    pub exprs: Vec<Arc<dyn PhysicalExpr>>,
    /// `events` followed by one boolean column per macro.
    pub schema: SchemaRef,
}

pub use auditlake_schema::time::parse_duration;

/// A session that knows the functions conditions may use (DataFusion's, the JSON helpers,
/// `ip_in` over `lists` and `ip_prefix`).
pub(crate) fn session(lists: &IpLists) -> SessionContext {
    let mut ctx = SessionContext::new();
    // Registration only fails on a name clash inside DataFusion itself.
    let _ = datafusion_functions_json::register_all(&mut ctx);
    for f in crate::ip::functions(lists) {
        ctx.register_udf(f);
    }
    ctx
}

impl CompiledPack {
    /// Validates and compiles every rule of `set`.
    pub fn compile(set: &RuleSet) -> Result<Self> {
        let schema = events_schema();
        let df_schema = DFSchema::try_from(schema.as_ref().clone())
            .map_err(|e| Error::invalid("-", "-", e.to_string()))?;
        let ip_lists = IpLists::default();
        let ctx = session(&ip_lists);
        let columns: HashSet<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let names = set
            .macros
            .iter()
            .map(|(n, (_, f))| (format!("macro {n}"), n, f))
            .chain(
                set.lists
                    .iter()
                    .map(|(n, (_, f))| (format!("list {n}"), n, f)),
            );
        for (what, name, file) in names {
            if columns.contains(name.as_str()) {
                return Err(Error::invalid(
                    file,
                    &what,
                    "has the name of an events column",
                ));
            }
            if set.macros.contains_key(name) && set.lists.contains_key(name) {
                return Err(Error::invalid(file, &what, "is both a macro and a list"));
            }
        }
        let macros = Arc::new(compile_macros(set, &ctx, &df_schema, &schema)?);
        let extended = DFSchema::try_from(macros.schema.as_ref().clone())
            .map_err(|e| Error::invalid("-", "-", e.to_string()))?;
        let mut ids = HashSet::new();
        let mut rules = Vec::with_capacity(set.rules.len());
        for rule in &set.rules {
            if !ids.insert(rule.def.id.as_str()) {
                return Err(Error::invalid(&rule.file, &rule.def.id, "duplicate id"));
            }
            rules.push(compile_rule(rule, set, &ctx, &extended, &schema)?);
        }
        let ip_sources = ip_sources(set, &rules)?;
        for source in &ip_sources {
            let set = source.read().map_err(|reason| Error::ListFile { reason })?;
            ip_lists.set(&source.name, set);
        }
        Ok(Self {
            rules,
            macros,
            ip_lists,
            ip_sources,
        })
    }

    /// Re-reads every IP list file and replaces the lists whose entries changed; the rules read
    /// them from their next batch on. A file that cannot be read or parsed leaves its list as it
    /// was and is reported (`FILE:LINE: reason`). Returns the lists replaced.
    pub fn reload_lists(&self) -> std::result::Result<Vec<String>, Vec<String>> {
        let mut changed = Vec::new();
        let mut errors = Vec::new();
        for source in self.ip_sources.iter().filter(|s| !s.files.is_empty()) {
            match source.read() {
                Ok(set) => {
                    if *self.ip_lists.get(&source.name) != set {
                        self.ip_lists.set(&source.name, set);
                        changed.push(source.name.clone());
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(changed)
        } else {
            Err(errors)
        }
    }

    /// Every file an IP list reads, to watch for changes.
    pub fn list_files(&self) -> impl Iterator<Item = &std::path::Path> {
        self.ip_sources
            .iter()
            .flat_map(|s| s.files.iter().map(|f| f.as_path()))
    }

    /// The enabled rules.
    pub fn enabled(&self) -> impl Iterator<Item = &CompiledRule> {
        self.rules.iter().filter(|r| r.def.enabled)
    }
}

/// The IP lists: every list an `ip_in` call of a rule or macro reads, or that has a file. Their
/// items must all be addresses or CIDR blocks.
fn ip_sources(set: &RuleSet, rules: &[CompiledRule]) -> Result<Vec<IpSource>> {
    let mut names: Vec<String> = set.list_files.keys().cloned().collect();
    for (name, (m, file)) in &set.macros {
        let sql = expand(&m.condition, &set.macros, &set.lists)
            .map_err(|e| Error::invalid(file, &format!("macro {name}"), e))?;
        names.extend(ip_list_names(&sql));
    }
    for rule in rules {
        names.extend(ip_list_names(&rule.sql));
    }
    names.sort();
    names.dedup();
    let mut sources = Vec::new();
    for name in names {
        let Some((list, file)) = set.lists.get(&name) else {
            continue;
        };
        let mut items = Vec::with_capacity(list.items.len());
        for item in &list.items {
            let text = item.as_str().unwrap_or_default();
            items.push(parse_entry(text).map_err(|e| {
                Error::invalid(
                    file,
                    &format!("list {name}"),
                    format!("ip_in reads it: {e}"),
                )
            })?);
        }
        if let Some(text) = set.list_defaults.get(&name) {
            let default = IpSet::parse(text).map_err(|(line, e)| {
                Error::invalid(
                    file,
                    &format!("list {name}"),
                    format!("default, line {line}: {e}"),
                )
            })?;
            items.extend(default.ranges());
        }
        sources.push(IpSource {
            files: set.list_files.get(&name).cloned().unwrap_or_default(),
            name,
            items,
        });
    }
    Ok(sources)
}

/// Each macro, fully expanded and made null-safe, against the `events` schema, in name order.
fn compile_macros(
    set: &RuleSet,
    ctx: &SessionContext,
    df_schema: &DFSchema,
    schema: &SchemaRef,
) -> Result<Macros> {
    let mut names: Vec<&String> = set.macros.keys().collect();
    names.sort();
    let mut exprs = Vec::with_capacity(names.len());
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    for name in names {
        let (def, file) = &set.macros[name];
        let what = format!("macro {name}");
        let bad = |reason: String| Error::invalid(file, &what, reason);
        let sql = expand(&def.condition, &set.macros, &set.lists).map_err(bad)?;
        let logical = ctx
            .parse_sql_expr(&format!("(({sql}) IS TRUE)"), df_schema)
            .map_err(|e| bad(format!("condition: {}", e.strip_backtrace())))?;
        let expr = ctx
            .create_physical_expr(logical, df_schema)
            .map_err(|e| bad(format!("condition: {}", e.strip_backtrace())))?;
        exprs.push(expr);
        fields.push(Field::new(macro_column(name), DataType::Boolean, false));
    }
    Ok(Macros {
        exprs,
        schema: Arc::new(Schema::new(fields)),
    })
}

fn compile_rule(
    rule: &SourcedRule,
    set: &RuleSet,
    ctx: &SessionContext,
    df_schema: &DFSchema,
    schema: &SchemaRef,
) -> Result<CompiledRule> {
    let def = &rule.def;
    let bad = |reason: String| Error::invalid(&rule.file, &def.id, reason);
    if def.id.is_empty()
        || !def
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(bad("id must be letters, digits, '-' or '_'".into()));
    }
    if !SEVERITIES.contains(&def.severity.as_str()) {
        return Err(bad(format!(
            "severity {:?} is not one of {}",
            def.severity,
            SEVERITIES.join(", ")
        )));
    }
    if !CATEGORIES.contains(&def.category.as_str()) {
        return Err(bad(format!(
            "category {:?} is not one of {}",
            def.category,
            CATEGORIES.join(", ")
        )));
    }
    let column_index = |name: &str| schema.index_of(name).ok();
    for exception in &def.exceptions {
        for field in &exception.fields {
            if column_index(field).is_none() {
                return Err(bad(format!(
                    "exception {}: unknown column {field}",
                    exception.name
                )));
            }
        }
    }
    let kinds = [
        def.threshold.is_some(),
        def.first_seen.is_some(),
        def.sequence.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() > 1 {
        return Err(bad(
            "a rule has at most one of threshold, first_seen and sequence".into(),
        ));
    }
    let is_list = |name: &str| {
        column_index(name).is_some_and(|i| matches!(schema.field(i).data_type(), DataType::List(_)))
    };
    let except = exceptions_sql(&def.exceptions, is_list).map_err(bad)?;
    let guard = if def.condition.trim().is_empty() {
        if def.sequence.is_none() {
            return Err(bad("condition is required".into()));
        }
        "TRUE".to_string()
    } else {
        expand_to_columns(&def.condition, &set.macros, &set.lists).map_err(bad)?
    };
    let with_exceptions = |condition: String| match &except {
        Some(except) => format!("({condition}) AND {except}"),
        None => condition,
    };
    // An unknown identifier is an unknown column, or a macro or list that is not defined.
    let condition_error = |what: &str, e: datafusion::error::DataFusionError| {
        let message = e.strip_backtrace();
        if message.contains("No field named") {
            bad(format!(
                "{what}: {message} (not an events column, macro or list)"
            ))
        } else {
            bad(format!("{what}: {message}"))
        }
    };
    let compile_expr = |what: &str, sql: &str| -> Result<(Arc<dyn PhysicalExpr>, DataType)> {
        let logical = ctx
            .parse_sql_expr(sql, df_schema)
            .map_err(|e| condition_error(what, e))?;
        let expr = ctx
            .create_physical_expr(logical, df_schema)
            .map_err(|e| condition_error(what, e))?;
        let returns = expr
            .data_type(df_schema.as_arrow())
            .map_err(|e| bad(format!("{what}: {}", e.strip_backtrace())))?;
        Ok((expr, returns))
    };
    let compile_condition = |what: &str, sql: &str| -> Result<Arc<dyn PhysicalExpr>> {
        let (expr, returns) = compile_expr(what, sql)?;
        if returns != DataType::Boolean {
            return Err(bad(format!("{what} is {returns}, not a boolean")));
        }
        Ok(expr)
    };
    let compile_values = |what: &str, fields: &[String]| -> Result<Vec<Arc<dyn PhysicalExpr>>> {
        if fields.is_empty() {
            return Err(bad(format!("{what} needs at least one expression")));
        }
        fields
            .iter()
            .map(|f| {
                let sql = expand_to_columns(f, &set.macros, &set.lists).map_err(bad)?;
                Ok(compile_expr(what, &sql)?.0)
            })
            .collect()
    };
    let duration = |what: &str, text: &str| -> Result<i64> {
        parse_duration(text)
            .map(|d| d.as_micros() as i64)
            .filter(|d| *d > 0)
            .ok_or_else(|| bad(format!("{what} {text:?} is not like 30s, 10m, 1h, 14d")))
    };
    let mut sql = with_exceptions(guard.clone());
    let expr = compile_condition("condition", &sql)?;
    let output = Template::parse(&def.output, column_index).map_err(bad)?;
    let threshold = match &def.threshold {
        None => None,
        Some(t) => {
            let window = parse_duration(&t.window).ok_or_else(|| {
                bad(format!(
                    "threshold window {:?} is not like 30s, 10m, 1h",
                    t.window
                ))
            })?;
            if t.count == 0 {
                return Err(bad("threshold count must be at least 1".into()));
            }
            let mut group_by = Vec::new();
            for g in &t.group_by {
                group_by.push(
                    column_index(g)
                        .ok_or_else(|| bad(format!("threshold group_by: unknown column {g}")))?,
                );
            }
            let distinct = match &t.distinct {
                Some(d) => Some(
                    column_index(d)
                        .ok_or_else(|| bad(format!("threshold distinct: unknown column {d}")))?,
                ),
                None => None,
            };
            Some(Threshold {
                count: t.count,
                window_micros: window.as_micros() as i64,
                group_by,
                distinct,
            })
        }
    };
    let first_seen = match &def.first_seen {
        None => None,
        Some(f) => {
            let history_micros = duration("first_seen history", &f.history)?;
            let learn_micros = match &f.learn {
                Some(l) => Some(duration("first_seen learn", l)?),
                None => None,
            };
            if learn_micros.is_some_and(|l| l > history_micros) {
                return Err(bad(
                    "first_seen learn must not be longer than history".into()
                ));
            }
            let mut learn_by = Vec::new();
            for c in &f.learn_by {
                learn_by.push(
                    column_index(c)
                        .ok_or_else(|| bad(format!("first_seen learn_by: unknown column {c}")))?,
                );
            }
            Some(FirstSeen {
                fields: compile_values("first_seen fields", &f.fields)?,
                history_micros,
                learn_micros,
                learn_by,
            })
        }
    };
    let sequence = match &def.sequence {
        None => None,
        Some(q) => {
            if q.steps.len() < 2 {
                return Err(bad("a sequence has at least two steps".into()));
            }
            let within_micros = duration("sequence within", &q.within)?;
            let mut steps = Vec::with_capacity(q.steps.len());
            let mut texts = Vec::with_capacity(q.steps.len());
            for step in &q.steps {
                let what = format!("step {}", step.name);
                let condition =
                    expand_to_columns(&step.condition, &set.macros, &set.lists).map_err(bad)?;
                let step_sql = with_exceptions(format!("({guard}) AND ({condition})"));
                let by = step.by.as_deref().unwrap_or(&q.by);
                let by_exprs = compile_values(&format!("{what} by"), by)?;
                if let Some(first) = steps.first().map(|s: &Step| s.by.len())
                    && by_exprs.len() != first
                {
                    return Err(bad(format!(
                        "{what}: by has {} expressions, the first step's {first}",
                        by_exprs.len()
                    )));
                }
                if step.count == 0 {
                    return Err(bad(format!("{what}: count must be at least 1")));
                }
                steps.push(Step {
                    name: step.name.clone(),
                    expr: compile_condition(&what, &step_sql)?,
                    by: by_exprs,
                    count: step.count,
                });
                texts.push(format!("{}: {step_sql}", step.name));
            }
            sql = texts.join(" THEN ");
            Some(Sequence {
                within_micros,
                steps,
            })
        }
    };
    Ok(CompiledRule {
        def: def.clone(),
        file: rule.file.clone(),
        sql,
        expr,
        output,
        threshold,
        first_seen,
        sequence,
    })
}
