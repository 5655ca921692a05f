//! The SQLite side of the ledger's connection layer: `rusqlite` binding of [`Value`]s, rows
//! read into [`Row`]s, and [`Exec`] for raw `rusqlite` connections and transactions.

use super::{Bind, DbError, Engine, Exec, Row, ToValue, Value};

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Value::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Value::Bool(b) => ToSqlOutput::Borrowed(ValueRef::Integer(i64::from(*b))),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

impl rusqlite::ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        match self {
            Bind::Null => Ok(ToSqlOutput::Borrowed(ValueRef::Null)),
            Bind::Text(s) => Ok(ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes()))),
            Bind::Owned(v) => v.to_sql(),
        }
    }
}

/// The parameters, text borrowed.
fn binds<'p>(params: &'p [&'p dyn ToValue]) -> impl Iterator<Item = Bind<'p>> + 'p {
    params.iter().map(|p| p.bind())
}

pub(super) fn sqlite_execute(
    conn: &rusqlite::Connection,
    sql: &str,
    params: &[&dyn ToValue],
) -> Result<u64, DbError> {
    let mut st = conn.prepare_cached(sql)?;
    let n = st.execute(rusqlite::params_from_iter(binds(params)))?;
    Ok(n as u64)
}

pub(super) fn sqlite_query(
    conn: &rusqlite::Connection,
    sql: &str,
    params: &[&dyn ToValue],
) -> Result<Vec<Row>, DbError> {
    use rusqlite::types::ValueRef;
    let mut st = conn.prepare_cached(sql)?;
    let n = st.column_count();
    let mut rows = st.query(rusqlite::params_from_iter(binds(params)))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut vals = Vec::with_capacity(n);
        for i in 0..n {
            vals.push(match r.get_ref(i)? {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(x) => Value::Int(x),
                // No ledger column is REAL; an expression that yields one reads as its text.
                ValueRef::Real(x) => Value::Text(x.to_string()),
                ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(_) => {
                    return Err(DbError::Column {
                        index: i,
                        message: "a blob (no ledger column holds one)".into(),
                    })
                }
            });
        }
        out.push(Row { values: vals });
    }
    Ok(out)
}

impl Exec for rusqlite::Connection {
    fn engine(&self) -> Engine {
        Engine::Sqlite
    }
    fn execute(&self, sql: &str, params: &[&dyn ToValue]) -> Result<u64, DbError> {
        sqlite_execute(self, sql, params)
    }
    fn query(&self, sql: &str, params: &[&dyn ToValue]) -> Result<Vec<Row>, DbError> {
        sqlite_query(self, sql, params)
    }
    fn batch(&self, sql: &str) -> Result<(), DbError> {
        Ok(self.execute_batch(sql)?)
    }
}

impl Exec for rusqlite::Transaction<'_> {
    fn engine(&self) -> Engine {
        Engine::Sqlite
    }
    fn execute(&self, sql: &str, params: &[&dyn ToValue]) -> Result<u64, DbError> {
        sqlite_execute(self, sql, params)
    }
    fn query(&self, sql: &str, params: &[&dyn ToValue]) -> Result<Vec<Row>, DbError> {
        sqlite_query(self, sql, params)
    }
    fn batch(&self, sql: &str) -> Result<(), DbError> {
        Ok(self.execute_batch(sql)?)
    }
}
