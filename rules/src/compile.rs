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
use crate::expand::{exceptions_sql, expand, expand_to_columns, macro_column};
use crate::format::RuleDef;
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
}

/// The macros of a pack and the schema of a batch with their columns appended.
#[derive(Debug)]
pub(crate) struct Macros {
    pub exprs: Vec<Arc<dyn PhysicalExpr>>,
    /// `events` followed by one boolean column per macro.
    pub schema: SchemaRef,
}

pub use auditlake_schema::time::parse_duration;

/// A session that knows the functions conditions may use (DataFusion's and the JSON helpers).
pub(crate) fn session() -> SessionContext {
    let mut ctx = SessionContext::new();
    // Registration only fails on a name clash inside DataFusion itself.
    let _ = datafusion_functions_json::register_all(&mut ctx);
    ctx
}

impl CompiledPack {
    /// Validates and compiles every rule of `set`.
    pub fn compile(set: &RuleSet) -> Result<Self> {
        let schema = events_schema();
        let df_schema = DFSchema::try_from(schema.as_ref().clone())
            .map_err(|e| Error::invalid("-", "-", e.to_string()))?;
        let ctx = session();
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
        Ok(Self { rules, macros })
    }

    /// The enabled rules.
    pub fn enabled(&self) -> impl Iterator<Item = &CompiledRule> {
        self.rules.iter().filter(|r| r.def.enabled)
    }
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
    let condition = expand_to_columns(&def.condition, &set.macros, &set.lists).map_err(bad)?;
    let is_list = |name: &str| {
        column_index(name).is_some_and(|i| matches!(schema.field(i).data_type(), DataType::List(_)))
    };
    let sql = match exceptions_sql(&def.exceptions, is_list).map_err(bad)? {
        Some(except) => format!("({condition}) AND {except}"),
        None => condition,
    };
    // An unknown identifier is an unknown column, or a macro or list that is not defined.
    let condition_error = |e: datafusion::error::DataFusionError| {
        let message = e.strip_backtrace();
        if message.contains("No field named") {
            bad(format!(
                "condition: {message} (not an events column, macro or list)"
            ))
        } else {
            bad(format!("condition: {message}"))
        }
    };
    let logical = ctx
        .parse_sql_expr(&sql, df_schema)
        .map_err(condition_error)?;
    let expr = ctx
        .create_physical_expr(logical, df_schema)
        .map_err(condition_error)?;
    let returns = expr
        .data_type(df_schema.as_arrow())
        .map_err(|e| bad(format!("condition: {}", e.strip_backtrace())))?;
    if returns != DataType::Boolean {
        return Err(bad(format!("condition is {returns}, not a boolean")));
    }
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
    Ok(CompiledRule {
        def: def.clone(),
        file: rule.file.clone(),
        sql,
        expr,
        output,
        threshold,
    })
}
