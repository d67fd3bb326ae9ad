//! Which statements the SQL protocols let through: queries, and the statements clients send
//! around them that change no data. Checked on the parsed statement before anything is planned,
//! so a refusal names the statement (`DROP is refused: ...`) whatever the engine would say.

use datafusion::sql::sqlparser::ast::Statement;

/// Why `statement` is refused, or `None` when it may run: queries (`SELECT`, `WITH`, `VALUES`),
/// `EXPLAIN`, `SHOW` and the transaction statements (`BEGIN`, `COMMIT`, `ROLLBACK`).
pub(crate) fn refusal(statement: &Statement) -> Option<String> {
    match statement {
        Statement::Query(_)
        | Statement::Explain { .. }
        | Statement::ExplainTable { .. }
        | Statement::ShowVariable { .. }
        | Statement::ShowVariables { .. }
        | Statement::ShowTables { .. }
        | Statement::ShowColumns { .. }
        | Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. } => None,
        other => Some(refused(&other.to_string())),
    }
}

/// The refusal of the statement `text`, named by its first word.
pub(crate) fn refused(text: &str) -> String {
    let verb = text.split_whitespace().next().unwrap_or("this statement");
    format!(
        "{} is refused: auditlake is read-only (SELECT, WITH, VALUES, EXPLAIN and SHOW run)",
        verb.to_uppercase()
    )
}
