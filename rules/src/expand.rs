//! Macro and list expansion, and exceptions, turning a rule's condition into plain SQL. Macros
//! expand null-safe (`(..) IS TRUE`), exceptions too.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use crate::format::{ExceptionDef, ListDef, MacroDef};

/// Macros by name, with the file that defined them.
pub(crate) type Macros = HashMap<String, (MacroDef, String)>;
/// Lists by name, with the file that defined them.
pub(crate) type Lists = HashMap<String, (ListDef, String)>;

/// Nesting depth at which a macro is taken to refer to itself.
const MAX_DEPTH: usize = 16;

/// Expands macro and list names (bare identifiers outside quotes) in `sql`, macros inline.
pub(crate) fn expand(sql: &str, macros: &Macros, lists: &Lists) -> Result<String, String> {
    expand_at(sql, macros, lists, 0, false)
}

/// Like [`expand`], but a macro named in `sql` itself becomes a reference to its precomputed
/// column ([`macro_column`]); lists still expand inline.
pub(crate) fn expand_to_columns(
    sql: &str,
    macros: &Macros,
    lists: &Lists,
) -> Result<String, String> {
    expand_at(sql, macros, lists, 0, true)
}

/// The column holding a macro's value for every row of a batch.
pub(crate) fn macro_column(name: &str) -> String {
    format!("macro__{name}")
}

fn expand_at(
    sql: &str,
    macros: &Macros,
    lists: &Lists,
    depth: usize,
    as_columns: bool,
) -> Result<String, String> {
    if depth > MAX_DEPTH {
        return Err("macros nest too deep (does one use itself?)".into());
    }
    let quoted = quote_ip_lists(sql, lists);
    let sql = quoted.as_str();
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        match c {
            '\'' | '"' => {
                out.push(c);
                // Copy the quoted text verbatim; a doubled quote stays inside.
                while let Some((_, d)) = chars.next() {
                    out.push(d);
                    if d == c {
                        if chars.peek().is_some_and(|(_, n)| *n == c) {
                            let (_, n) = chars.next().expect("peeked");
                            out.push(n);
                        } else {
                            break;
                        }
                    }
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut end = start + c.len_utf8();
                while let Some((i, d)) = chars.peek() {
                    if d.is_ascii_alphanumeric() || *d == '_' {
                        end = *i + d.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                let word = &sql[start..end];
                if macros.contains_key(word) && as_columns {
                    out.push_str(&macro_column(word));
                } else if let Some((m, _)) = macros.get(word) {
                    let inner = expand_at(&m.condition, macros, lists, depth + 1, false)
                        .map_err(|e| format!("macro {word}: {e}"))?;
                    // A macro is always TRUE or FALSE, never NULL, so `NOT macro` means what it
                    // says on events where a column it reads is missing.
                    out.push_str("((");
                    out.push_str(&inner);
                    out.push_str(") IS TRUE)");
                } else if let Some((list, _)) = lists.get(word) {
                    if list.items.is_empty() {
                        // `x IN ()` is not SQL; NULL matches nothing.
                        out.push_str("NULL");
                    } else {
                        let items: Vec<String> = list.items.iter().map(literal).collect();
                        out.push_str(&items.join(", "));
                    }
                } else {
                    out.push_str(word);
                }
            }
            _ => out.push(c),
        }
    }
    Ok(out)
}

/// `ip_in(ip, NAME)` with `NAME` a list becomes `ip_in(ip, 'NAME')`: the function looks the list
/// up by name at run time (so a changed list file takes effect without recompiling) instead of
/// receiving thousands of literals.
fn quote_ip_lists(sql: &str, lists: &Lists) -> String {
    // Compiled once: a pack expands hundreds of conditions, and building the automaton cost
    // more than all of them.
    static CALL: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\bip_in\s*\(([^,()]*(?:\([^()]*\)[^,()]*)*),\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)")
            .expect("a valid pattern")
    });
    if !sql.contains("ip_in") {
        return sql.to_string();
    }
    CALL.replace_all(sql, |c: &regex::Captures| {
        if lists.contains_key(&c[2]) {
            format!("ip_in({}, '{}')", &c[1], &c[2])
        } else {
            c[0].to_string()
        }
    })
    .into_owned()
}

/// The list names `ip_in` calls of fully expanded SQL read.
pub(crate) fn ip_list_names(sql: &str) -> Vec<String> {
    static CALL: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\bip_in\s*\((?:[^()']|\([^()]*\))*,\s*'([A-Za-z_][A-Za-z0-9_]*)'\s*\)")
            .expect("a valid pattern")
    });
    if !sql.contains("ip_in") {
        return Vec::new();
    }
    CALL.captures_iter(sql).map(|c| c[1].to_string()).collect()
}

/// A YAML value as an SQL literal.
pub(crate) fn literal(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{}'", s.replace('\'', "''")),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => if *b { "TRUE" } else { "FALSE" }.into(),
        Value::Null => "NULL".into(),
        other => format!("'{}'", other.to_string().replace('\'', "''")),
    }
}

/// `NOT (any exception tuple matches)`, null-safe: a null column never matches an exception, so
/// an exception can only ever silence, never break, its rule. `None` when there are no tuples.
pub(crate) fn exceptions_sql(
    exceptions: &[ExceptionDef],
    is_list_column: impl Fn(&str) -> bool,
) -> Result<Option<String>, String> {
    let mut tuples = Vec::new();
    for exception in exceptions {
        for (n, tuple) in exception.values.iter().enumerate() {
            if tuple.len() != exception.fields.len() {
                return Err(format!(
                    "exception {} value {n} has {} elements for {} fields",
                    exception.name,
                    tuple.len(),
                    exception.fields.len()
                ));
            }
            let parts: Vec<String> = exception
                .fields
                .iter()
                .zip(tuple)
                .map(|(field, value)| {
                    let values: Vec<&Value> = match value {
                        Value::Array(items) => items.iter().collect(),
                        one => vec![one],
                    };
                    let alternatives: Vec<String> = values
                        .iter()
                        .map(|v| {
                            if is_list_column(field) {
                                format!("array_has({field}, {})", literal(v))
                            } else {
                                format!("{field} = {}", literal(v))
                            }
                        })
                        .collect();
                    format!("(({}) IS TRUE)", alternatives.join(" OR "))
                })
                .collect();
            tuples.push(format!("({})", parts.join(" AND ")));
        }
    }
    Ok((!tuples.is_empty()).then(|| format!("NOT ({})", tuples.join(" OR "))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defs() -> (Macros, Lists) {
        let mut macros = HashMap::new();
        macros.insert(
            "is_write".to_string(),
            (
                MacroDef {
                    name: "is_write".into(),
                    condition: "verb IN (write_verbs)".into(),
                },
                "f".to_string(),
            ),
        );
        let mut lists = HashMap::new();
        lists.insert(
            "write_verbs".to_string(),
            (
                ListDef {
                    name: "write_verbs".into(),
                    items: vec!["create".into(), "o'brien".into()],
                    file: None,
                },
                "f".to_string(),
            ),
        );
        (macros, lists)
    }

    #[test]
    fn macros_and_lists_expand_outside_quotes_only() {
        let (m, l) = defs();
        assert_eq!(
            expand(
                "is_write AND name <> 'is_write' AND \"is_write\" = 1",
                &m,
                &l
            )
            .expect("ok"),
            "((verb IN ('create', 'o''brien')) IS TRUE) AND name <> 'is_write' AND \"is_write\" = 1"
        );
    }

    #[test]
    fn ip_in_takes_a_list_by_name() {
        let (m, l) = defs();
        let sql = expand(
            "ip_in(source_ip, write_verbs) OR ip_in(coalesce(a, b), write_verbs) OR ip_in(x, other)",
            &m,
            &l,
        )
        .expect("ok");
        assert_eq!(
            sql,
            "ip_in(source_ip, 'write_verbs') OR ip_in(coalesce(a, b), 'write_verbs') OR ip_in(x, other)"
        );
        assert_eq!(ip_list_names(&sql), ["write_verbs", "write_verbs"]);
    }

    #[test]
    fn self_reference_is_an_error() {
        let (mut m, l) = defs();
        m.insert(
            "loop".into(),
            (
                MacroDef {
                    name: "loop".into(),
                    condition: "loop".into(),
                },
                "f".into(),
            ),
        );
        assert!(expand("loop", &m, &l).is_err());
    }

    #[test]
    fn exceptions_are_null_safe_and_handle_lists() {
        let e = ExceptionDef {
            name: "x".into(),
            fields: vec!["user_name".into(), "user_groups".into()],
            values: vec![vec![
                "a".into(),
                Value::Array(vec!["g1".into(), "g2".into()]),
            ]],
        };
        let sql = exceptions_sql(&[e], |f| f == "user_groups")
            .expect("ok")
            .expect("some");
        assert_eq!(
            sql,
            "NOT ((((user_name = 'a') IS TRUE) AND ((array_has(user_groups, 'g1') OR array_has(user_groups, 'g2')) IS TRUE)))"
        );
    }
}
