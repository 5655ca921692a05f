//! The ledger's engine-neutral connection layer: one API over SQLite (`rusqlite`) and
//! PostgreSQL (the synchronous `postgres` client).
//!
//! SQL is written once, with SQLite's numbered placeholders (`?1`, `?2`, ...). On PostgreSQL
//! the statement text is rewritten to `$1`, `$2`, ... (outside quoted strings, quoted
//! identifiers and comments) once per statement text, prepared once and cached per
//! connection; SQLite caches with `prepare_cached`. Parameters are [`Value`]s (anything that
//! is [`ToValue`]: integers, strings, booleans, `Option`s of them); on PostgreSQL they bind by
//! the type the server asks for (an integer fills an `INT8`, `INT4` or `INT2` parameter, a
//! boolean a `BOOL`, `Value::Null` anything), so `None` binds anywhere. Rows come back as
//! [`Row`]s with typed getters; a boolean reads the same from SQLite's `0`/`1` and
//! PostgreSQL's `bool`.
//!
//! Where the engines truly differ (DDL, `PRAGMA`s, `RETURNING`, `FOR UPDATE SKIP LOCKED`)
//! the caller branches on [`Exec::engine`]. Integer columns are `BIGINT` on PostgreSQL (an
//! aggregate such as `SUM` of integers is `NUMERIC` there: wrap it in `CAST(.. AS BIGINT)`).
//!
//! A transaction ([`Db::transaction`], [`Tx`]) is `BEGIN IMMEDIATE` on SQLite (it takes the
//! write lock at once) and `BEGIN` (read committed) on PostgreSQL; dropping it without
//! [`Tx::commit`] rolls it back. A PostgreSQL connection found closed at the start of the next
//! call outside a transaction is opened again with the same location; a `SELECT` or a `BEGIN`
//! outside a transaction that fails because the connection was lost runs once more on a new
//! one. A write that fails so returns the error, as does anything inside a transaction
//! (callers retry or answer 503; every accepted row was committed before its answer).
//!
//! Locations: a string starting with `postgres://` or `postgresql://` selects PostgreSQL,
//! anything else is a SQLite file path. [`mask_location`] hides the password for messages.

//! The engine-specific halves live in [`sqlite`] (the `rusqlite` side) and [`postgres`] (the
//! PostgreSQL side: value conversion, the connection, the placeholder rewrite).

pub mod postgres;
mod sqlite;

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

pub use self::postgres::rewrite_placeholders;
use self::postgres::{outside_runtime, pg_call, pg_connect, Pg};
use self::sqlite::{sqlite_execute, sqlite_query};

/// Which database engine a connection talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Engine {
    /// A SQLite file (one machine).
    Sqlite,
    /// A PostgreSQL server (shared by several agents).
    Postgres,
}

impl Engine {
    /// The engine a ledger location selects: PostgreSQL for `postgres://` and
    /// `postgresql://` URLs, SQLite for anything else.
    pub fn of_location(location: &str) -> Engine {
        if is_postgres_url(location) {
            Engine::Postgres
        } else {
            Engine::Sqlite
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Engine::Sqlite => "SQLite",
            Engine::Postgres => "PostgreSQL",
        })
    }
}

/// True when `location` is a PostgreSQL URL (`postgres://` or `postgresql://`, any case).
pub fn is_postgres_url(location: &str) -> bool {
    let l = location.trim_start();
    ["postgres://", "postgresql://"].iter().any(|p| {
        l.get(..p.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(p))
    })
}

/// A location for messages: a PostgreSQL URL with its password (in the user part or a
/// `password=` query parameter) replaced by `***`; a path unchanged.
pub fn mask_location(location: &str) -> String {
    if !is_postgres_url(location) {
        return location.to_owned();
    }
    let Some(scheme_end) = location.find("://").map(|i| i + 3) else {
        return location.to_owned();
    };
    let (scheme, rest) = location.split_at(scheme_end);
    let (before_query, query) = match rest.find('?') {
        Some(q) => (&rest[..q], Some(&rest[q + 1..])),
        None => (rest, None),
    };
    let mut out = String::from(scheme);
    match before_query.rfind('@') {
        Some(at) => {
            let userinfo = &before_query[..at];
            match userinfo.find(':') {
                Some(colon) => {
                    out.push_str(&userinfo[..colon]);
                    out.push_str(":***");
                }
                None => out.push_str(userinfo),
            }
            out.push_str(&before_query[at..]);
        }
        None => out.push_str(before_query),
    }
    if let Some(query) = query {
        out.push('?');
        let parts: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_owned(),
            })
            .collect();
        out.push_str(&parts.join("&"));
    }
    out
}

/// Why a database call failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite failed.
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed (or could not be reached).
    #[error("{0}")]
    Postgres(#[from] ::postgres::Error),
    /// A column held a value of another type than asked for.
    #[error("column {index}: {message}")]
    Column {
        /// Zero-based column index.
        index: usize,
        /// What was found.
        message: String,
    },
    /// A parameter cannot be bound to the type the statement asks for.
    #[error("parameter: {0}")]
    Param(String),
    /// The TLS options of a PostgreSQL URL cannot be honoured (an unknown `sslmode`, an
    /// unreadable `sslrootcert`, no system roots).
    #[error("TLS: {0}")]
    Tls(String),
}

impl DbError {
    /// True when the statement broke a unique or primary-key constraint.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            }
            DbError::Postgres(e) => {
                e.code() == Some(&::postgres::error::SqlState::UNIQUE_VIOLATION)
            }
            _ => false,
        }
    }

    /// True when the PostgreSQL connection is gone (the next call outside a transaction
    /// reconnects).
    pub fn is_connection_lost(&self) -> bool {
        match self {
            DbError::Postgres(e) => {
                if e.is_closed() {
                    return true;
                }
                match e.code() {
                    // Class 08: connection exception; 57P01..03: the server is going away.
                    Some(c) => {
                        c.code().starts_with("08")
                            || matches!(c.code(), "57P01" | "57P02" | "57P03")
                    }
                    None => std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()),
                }
            }
            _ => false,
        }
    }
}

/// One value: a parameter or a column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// SQL `NULL`.
    Null,
    /// An integer (SQLite `INTEGER`, PostgreSQL `BIGINT`/`INTEGER`/`SMALLINT`).
    Int(i64),
    /// Text.
    Text(String),
    /// A boolean (PostgreSQL `BOOLEAN`; SQLite stores `0`/`1`).
    Bool(bool),
}

/// A parameter as SQLite binds it: text borrowed from the caller instead of copied.
#[derive(Debug)]
pub enum Bind<'a> {
    /// SQL `NULL`.
    Null,
    /// Borrowed text.
    Text(&'a str),
    /// Any other value.
    Owned(Value),
}

/// Anything that can be a statement parameter.
pub trait ToValue {
    /// The value to bind.
    fn to_value(&self) -> Value;

    /// The value to bind, borrowing text where it can (SQLite binds it without a copy).
    fn bind(&self) -> Bind<'_> {
        Bind::Owned(self.to_value())
    }
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
    fn bind(&self) -> Bind<'_> {
        match self {
            Value::Null => Bind::Null,
            Value::Text(s) => Bind::Text(s),
            other => Bind::Owned(other.clone()),
        }
    }
}
impl ToValue for i64 {
    fn to_value(&self) -> Value {
        Value::Int(*self)
    }
}
impl ToValue for i32 {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for u32 {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for u16 {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}
impl ToValue for u64 {
    fn to_value(&self) -> Value {
        Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}
impl ToValue for usize {
    fn to_value(&self) -> Value {
        Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}
impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Bool(*self)
    }
}
impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
    fn bind(&self) -> Bind<'_> {
        Bind::Text(self)
    }
}
impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
    fn bind(&self) -> Bind<'_> {
        Bind::Text(self)
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
    fn bind(&self) -> Bind<'_> {
        self.as_ref().map_or(Bind::Null, ToValue::bind)
    }
}
impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
    fn bind(&self) -> Bind<'_> {
        (**self).bind()
    }
}

macro_rules! value_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Value {
                v.to_value()
            }
        }
    )*};
}
value_from!(i64, i32, u32, u16, u64, usize, bool, &str, String);

impl<T: ToValue> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.to_value()
    }
}

/// A type a column can be read as.
pub trait FromValue: Sized {
    /// Converts column `index`'s value.
    fn from_value(index: usize, v: &Value) -> Result<Self, DbError>;
}

fn wrong(index: usize, want: &str, v: &Value) -> DbError {
    DbError::Column {
        index,
        message: format!("expected {want}, found {v:?}"),
    }
}

impl FromValue for Value {
    fn from_value(_: usize, v: &Value) -> Result<Self, DbError> {
        Ok(v.clone())
    }
}
impl FromValue for i64 {
    fn from_value(index: usize, v: &Value) -> Result<Self, DbError> {
        match v {
            Value::Int(i) => Ok(*i),
            Value::Bool(b) => Ok(i64::from(*b)),
            _ => Err(wrong(index, "an integer", v)),
        }
    }
}
impl FromValue for u64 {
    fn from_value(index: usize, v: &Value) -> Result<Self, DbError> {
        let i = i64::from_value(index, v)?;
        u64::try_from(i).map_err(|_| wrong(index, "a non-negative integer", v))
    }
}
impl FromValue for bool {
    fn from_value(index: usize, v: &Value) -> Result<Self, DbError> {
        match v {
            Value::Bool(b) => Ok(*b),
            Value::Int(i) => Ok(*i != 0),
            _ => Err(wrong(index, "a boolean", v)),
        }
    }
}
impl FromValue for String {
    fn from_value(index: usize, v: &Value) -> Result<Self, DbError> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            _ => Err(wrong(index, "text", v)),
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(index: usize, v: &Value) -> Result<Self, DbError> {
        match v {
            Value::Null => Ok(None),
            v => T::from_value(index, v).map(Some),
        }
    }
}

/// One result row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    values: Vec<Value>,
}

impl Row {
    /// Column `index` (zero-based) as `T`.
    pub fn get<T: FromValue>(&self, index: usize) -> Result<T, DbError> {
        let v = self.values.get(index).ok_or_else(|| DbError::Column {
            index,
            message: format!("the row has {} columns", self.values.len()),
        })?;
        T::from_value(index, v)
    }

    /// Every column, in order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The number of columns.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when the row has no columns.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Runs statements: a [`Db`], a [`Tx`], or (SQLite only) a raw `rusqlite` connection or
/// transaction, so code written against this trait runs inside whichever the caller holds.
pub trait Exec {
    /// The engine behind it.
    fn engine(&self) -> Engine;
    /// Runs one statement; the number of rows it changed.
    fn execute(&self, sql: &str, params: &[&dyn ToValue]) -> Result<u64, DbError>;
    /// Runs one query; every row.
    fn query(&self, sql: &str, params: &[&dyn ToValue]) -> Result<Vec<Row>, DbError>;
    /// Runs one query; its first row, if any.
    fn query_opt(&self, sql: &str, params: &[&dyn ToValue]) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }
    /// Runs several statements without parameters (DDL).
    fn batch(&self, sql: &str) -> Result<(), DbError>;
}

fn values(params: &[&dyn ToValue]) -> Vec<Value> {
    params.iter().map(|p| p.to_value()).collect()
}
enum Inner {
    Sqlite(rusqlite::Connection),
    Postgres(Box<RefCell<Pg>>),
}

/// One connection to a ledger database.
pub struct Db {
    inner: Inner,
}

impl Db {
    /// Opens (creating when missing) the SQLite file at `path`.
    pub fn open_sqlite(path: &Path) -> Result<Db, DbError> {
        let conn = rusqlite::Connection::open(path)?;
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Db {
            inner: Inner::Sqlite(conn),
        })
    }

    /// Connects to the PostgreSQL server at `url` (`postgres://user:password@host:port/db`;
    /// libpq's URL options such as `connect_timeout` apply; TLS by `sslmode` and `sslrootcert`,
    /// see [`postgres::tls`]).
    pub fn connect_postgres(url: &str) -> Result<Db, DbError> {
        let client = outside_runtime(|| pg_connect(url))?;
        Ok(Db {
            inner: Inner::Postgres(Box::new(RefCell::new(Pg {
                client,
                url: url.to_owned(),
                statements: HashMap::new(),
                in_tx: false,
            }))),
        })
    }

    /// Opens the location: a PostgreSQL URL or a SQLite path.
    pub fn open(location: &str) -> Result<Db, DbError> {
        match Engine::of_location(location) {
            Engine::Postgres => Db::connect_postgres(location.trim()),
            Engine::Sqlite => Db::open_sqlite(Path::new(location)),
        }
    }

    /// The SQLite connection, or `None` on PostgreSQL (for SQLite-only code: `PRAGMA`s, the
    /// table-rebuild migrations, and code not yet converted).
    pub fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match &self.inner {
            Inner::Sqlite(c) => Some(c),
            Inner::Postgres(_) => None,
        }
    }

    /// The SQLite connection, mutably (for `rusqlite` transactions), or `None`.
    pub fn sqlite_mut(&mut self) -> Option<&mut rusqlite::Connection> {
        match &mut self.inner {
            Inner::Sqlite(c) => Some(c),
            Inner::Postgres(_) => None,
        }
    }

    /// Starts a transaction: `BEGIN IMMEDIATE` on SQLite, `BEGIN` on PostgreSQL. It rolls
    /// back when dropped without [`Tx::commit`].
    pub fn transaction(&mut self) -> Result<Tx<'_>, DbError> {
        match &self.inner {
            Inner::Sqlite(c) => c.execute_batch("BEGIN IMMEDIATE")?,
            Inner::Postgres(pg) => pg_call(pg, Pg::begin)?,
        }
        Ok(Tx {
            db: self,
            done: false,
        })
    }

    fn end(&self, sql: &str) -> Result<(), DbError> {
        match &self.inner {
            Inner::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Inner::Postgres(pg) => pg_call(pg, |pg| {
                let r = pg.client.batch_execute(sql);
                if r.is_ok() || pg.client.is_closed() || sql == "ROLLBACK" {
                    pg.in_tx = false;
                }
                Ok(r?)
            }),
        }
    }
}

impl Exec for Db {
    fn engine(&self) -> Engine {
        match self.inner {
            Inner::Sqlite(_) => Engine::Sqlite,
            Inner::Postgres(_) => Engine::Postgres,
        }
    }

    fn execute(&self, sql: &str, params: &[&dyn ToValue]) -> Result<u64, DbError> {
        match &self.inner {
            Inner::Sqlite(c) => sqlite_execute(c, sql, params),
            Inner::Postgres(pg) => {
                let vals = values(params);
                pg_call(pg, |pg| pg.execute(sql, &vals))
            }
        }
    }

    fn query(&self, sql: &str, params: &[&dyn ToValue]) -> Result<Vec<Row>, DbError> {
        match &self.inner {
            Inner::Sqlite(c) => sqlite_query(c, sql, params),
            Inner::Postgres(pg) => {
                let vals = values(params);
                pg_call(pg, |pg| pg.query(sql, &vals))
            }
        }
    }

    fn batch(&self, sql: &str) -> Result<(), DbError> {
        match &self.inner {
            Inner::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Inner::Postgres(pg) => pg_call(pg, |pg| pg.batch(sql)),
        }
    }
}

/// An open transaction on a [`Db`] (see [`Db::transaction`]).
pub struct Tx<'a> {
    db: &'a Db,
    done: bool,
}

impl Tx<'_> {
    /// Commits. On failure the transaction is rolled back when dropped.
    pub fn commit(mut self) -> Result<(), DbError> {
        self.db.end("COMMIT")?;
        self.done = true;
        Ok(())
    }

    /// Rolls back now.
    pub fn rollback(mut self) -> Result<(), DbError> {
        self.done = true;
        self.db.end("ROLLBACK")
    }

    /// The SQLite connection the transaction runs on, or `None` on PostgreSQL.
    pub fn sqlite(&self) -> Option<&rusqlite::Connection> {
        self.db.sqlite()
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.done {
            // Nothing to report to: a failed rollback leaves nothing committed either (on
            // PostgreSQL the server rolls back when the connection ends).
            let _ = self.db.end("ROLLBACK");
        }
    }
}

impl Exec for Tx<'_> {
    fn engine(&self) -> Engine {
        self.db.engine()
    }
    fn execute(&self, sql: &str, params: &[&dyn ToValue]) -> Result<u64, DbError> {
        self.db.execute(sql, params)
    }
    fn query(&self, sql: &str, params: &[&dyn ToValue]) -> Result<Vec<Row>, DbError> {
        self.db.query(sql, params)
    }
    fn batch(&self, sql: &str) -> Result<(), DbError> {
        self.db.batch(sql)
    }
}

#[cfg(test)]
mod tests {
    use super::postgres::is_read;
    use super::*;

    #[test]
    fn placeholders_become_dollar_numbers_outside_quotes_and_comments() {
        assert_eq!(
            rewrite_placeholders("SELECT a FROM t WHERE x = ?1 AND y = ?12 OR z = ?1"),
            "SELECT a FROM t WHERE x = $1 AND y = $12 OR z = $1"
        );
        assert_eq!(
            rewrite_placeholders("SELECT '?1', \"a?2\", 'it''s ?3' FROM t WHERE b = ?2"),
            "SELECT '?1', \"a?2\", 'it''s ?3' FROM t WHERE b = $2"
        );
        assert_eq!(
            rewrite_placeholders("SELECT 1 -- what ?1\nWHERE a = ?1 /* ?2 */ AND b = ?2"),
            "SELECT 1 -- what ?1\nWHERE a = $1 /* ?2 */ AND b = $2"
        );
        assert_eq!(
            rewrite_placeholders("VALUES (?, ?, ?)"),
            "VALUES ($1, $2, $3)"
        );
        assert_eq!(
            rewrite_placeholders("a = ?3 AND b = ?"),
            "a = $3 AND b = $4"
        );
        assert_eq!(rewrite_placeholders("no params"), "no params");
    }

    #[test]
    fn locations_select_the_engine() {
        assert_eq!(Engine::of_location("postgres://h/db"), Engine::Postgres);
        assert_eq!(Engine::of_location("PostgreSQL://h/db"), Engine::Postgres);
        assert_eq!(Engine::of_location("ledger.sqlite"), Engine::Sqlite);
        assert_eq!(Engine::of_location("./postgres/x.sqlite"), Engine::Sqlite);
        assert_eq!(Engine::of_location(":memory:"), Engine::Sqlite);
    }

    #[test]
    fn passwords_are_masked() {
        assert_eq!(
            mask_location("postgres://u:s3cret@db.example:5432/ledger"),
            "postgres://u:***@db.example:5432/ledger"
        );
        assert_eq!(
            mask_location("postgresql://u:p@ss@h/db?sslmode=disable&password=x&a=b"),
            "postgresql://u:***@h/db?sslmode=disable&password=***&a=b"
        );
        assert_eq!(mask_location("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(mask_location("postgres://h/db"), "postgres://h/db");
        assert_eq!(mask_location("/tmp/a:b@c.sqlite"), "/tmp/a:b@c.sqlite");
        assert!(!mask_location("postgres://me:hunter2@h/db?password=hunter2").contains("hunter2"));
    }

    #[test]
    fn values_convert_both_ways() {
        assert_eq!(Value::from(5i64), Value::Int(5));
        assert_eq!(Value::from("a"), Value::Text("a".into()));
        assert_eq!(Value::from(None::<String>), Value::Null);
        assert_eq!(Value::from(Some(true)), Value::Bool(true));
        let row = Row {
            values: vec![
                Value::Int(1),
                Value::Null,
                Value::Text("x".into()),
                Value::Bool(true),
            ],
        };
        assert_eq!(row.get::<i64>(0).unwrap(), 1);
        assert!(row.get::<bool>(0).unwrap());
        assert_eq!(row.get::<Option<String>>(1).unwrap(), None);
        assert_eq!(row.get::<String>(2).unwrap(), "x");
        assert!(row.get::<bool>(3).unwrap());
        assert!(row.get::<i64>(2).is_err());
        assert!(row.get::<String>(9).is_err());
    }

    fn exercise(db: &mut Db) {
        let ddl = match db.engine() {
            Engine::Sqlite => {
                "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, s TEXT, b INTEGER)"
            }
            Engine::Postgres => {
                "DROP TABLE IF EXISTS db_rs_test; \
                 CREATE TABLE db_rs_test (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, \
                 n BIGINT, s TEXT, b BOOLEAN)"
            }
        };
        db.batch(ddl).unwrap();
        let t = match db.engine() {
            Engine::Sqlite => "t",
            Engine::Postgres => "db_rs_test",
        };
        let ins = format!("INSERT INTO {t} (n, s, b) VALUES (?1, ?2, ?3) RETURNING id");
        let id: i64 = db
            .query_opt(&ins, &[&7i64, &"seven", &true])
            .unwrap()
            .unwrap()
            .get(0)
            .unwrap();
        db.query(&ins, &[&None::<i64>, &None::<String>, &false])
            .unwrap();
        {
            let tx = db.transaction().unwrap();
            tx.execute(&format!("UPDATE {t} SET n = n + 1 WHERE id = ?1"), &[&id])
                .unwrap();
            // Dropped: rolled back.
        }
        let tx = db.transaction().unwrap();
        let n = tx
            .execute(
                &format!("UPDATE {t} SET s = ?2 WHERE id = ?1"),
                &[&id, &"eight"],
            )
            .unwrap();
        assert_eq!(n, 1);
        tx.commit().unwrap();
        let rows = db
            .query(
                &format!(
                    "SELECT n, s, b, EXISTS (SELECT 1 FROM {t} WHERE n IS NULL) FROM {t} ORDER BY id"
                ),
                &[],
            )
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].get::<i64>(0).unwrap(), 7);
        assert_eq!(rows[0].get::<String>(1).unwrap(), "eight");
        assert!(rows[0].get::<bool>(2).unwrap());
        assert!(rows[0].get::<bool>(3).unwrap());
        assert_eq!(rows[1].get::<Option<i64>>(0).unwrap(), None);
        assert!(!rows[1].get::<bool>(2).unwrap());
        let count: i64 = db
            .query_opt(
                &format!("SELECT COUNT(*) FROM {t} WHERE s = ?1"),
                &[&"eight"],
            )
            .unwrap()
            .unwrap()
            .get(0)
            .unwrap();
        assert_eq!(count, 1);
    }

    #[test]
    fn sqlite_runs_statements_and_transactions() {
        let mut db = Db::open_sqlite(Path::new(":memory:")).unwrap();
        assert_eq!(db.engine(), Engine::Sqlite);
        exercise(&mut db);
    }

    /// Runs against the server `METERGATE_TEST_PG_URL` names, else the tests' throwaway cluster
    /// (`cli/tests/pg_support`: skipped with a note only when PostgreSQL is missing outside CI).
    #[test]
    fn postgres_runs_statements_and_transactions() {
        let url = match std::env::var("METERGATE_TEST_PG_URL") {
            Ok(url) => url,
            Err(_) => match crate::ledger::pg_support::fresh_database() {
                Some(url) => url,
                None => return,
            },
        };
        let mut db = Db::open(&url).unwrap();
        assert_eq!(db.engine(), Engine::Postgres);
        exercise(&mut db);
        db.batch("DROP TABLE db_rs_test").unwrap();

        // A connection the server ends is replaced: the next read runs on a new one.
        let pid: i64 = db
            .query_opt("SELECT pg_backend_pid()", &[])
            .unwrap()
            .unwrap()
            .get(0)
            .unwrap();
        let other = Db::open(&url).unwrap();
        let ended: bool = other
            .query_opt("SELECT pg_terminate_backend(?1)", &[&pid])
            .unwrap()
            .unwrap()
            .get(0)
            .unwrap();
        assert!(ended);
        std::thread::sleep(std::time::Duration::from_millis(200));
        let again: i64 = db
            .query_opt("SELECT pg_backend_pid()", &[])
            .unwrap()
            .unwrap()
            .get(0)
            .unwrap();
        assert_ne!(again, pid);
        // And a transaction starts on it.
        let tx = db.transaction().unwrap();
        tx.query("SELECT 1", &[]).unwrap();
        tx.commit().unwrap();
    }

    #[test]
    fn tls_options_are_taken_out_of_the_url() {
        use super::postgres::tls::{split_url, SslMode};
        let t = split_url("postgres://u:pw@h/db?sslmode=verify-full&sslrootcert=%2Ftmp%2Fa%20b.crt&connect_timeout=3").unwrap();
        assert_eq!(t.url, "postgres://u:pw@h/db?connect_timeout=3");
        assert_eq!(t.mode, SslMode::VerifyFull);
        assert_eq!(t.root_cert.as_deref(), Some(Path::new("/tmp/a b.crt")));
        let t = split_url("postgres://h/db").unwrap();
        assert_eq!(
            (t.url.as_str(), t.mode, t.root_cert),
            ("postgres://h/db", SslMode::Prefer, None)
        );
        assert_eq!(
            split_url("postgres://h/db?sslmode=require").unwrap().url,
            "postgres://h/db"
        );
        assert!(matches!(
            split_url("postgres://h/db?sslmode=allow"),
            Err(DbError::Tls(_))
        ));
        assert!(matches!(
            split_url("postgres://h/db?sslcert=a.crt"),
            Err(DbError::Tls(_))
        ));
    }

    /// The rustls error under a failed connection, if any.
    fn tls_cause(e: &DbError) -> Option<rustls::Error> {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = cur {
            if let Some(t) = err.downcast_ref::<rustls::Error>() {
                return Some(t.clone());
            }
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                if let Some(t) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                    return Some(t.clone());
                }
            }
            cur = err.source();
        }
        None
    }

    /// A cluster with `ssl = on` that takes TCP connections over TLS only (`hostssl`), its
    /// server certificate (for 127.0.0.1 and localhost) signed by a CA made here with `openssl`.
    #[test]
    fn postgres_over_tls_follows_sslmode() {
        if crate::ledger::pg_support::cluster().is_none() {
            return;
        }
        let certs = tempfile::tempdir().unwrap();
        let cdir = certs.path().to_owned();
        let script = r#"set -e
cd "$1"
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $ec -keyout ca.key -out ca.crt -days 2 -subj /CN=metergate-test-ca
openssl req -x509 $ec -keyout other.key -out other-ca.crt -days 2 -subj /CN=metergate-other-ca
openssl req $ec -keyout server.key -out server.csr -subj /CN=127.0.0.1
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > ext.cnf
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile ext.cnf
"#;
        let out = std::process::Command::new("sh")
            .args(["-c", script, "certs"])
            .arg(&cdir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = crate::ledger::pg_support::start_with(&|data: &Path| {
            for f in ["server.crt", "server.key"] {
                std::fs::copy(cdir.join(f), data.join(f)).map_err(|e| e.to_string())?;
            }
            std::fs::set_permissions(
                data.join("server.key"),
                std::os::unix::fs::PermissionsExt::from_mode(0o600),
            )
            .map_err(|e| e.to_string())?;
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
            )
            .map_err(|e| e.to_string())?;
            Ok("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'".into())
        })
        .unwrap();
        let base = cluster.url("postgres");
        let ca = cdir.join("ca.crt");
        let other = cdir.join("other-ca.crt");
        let in_tls = |url: &str| -> Result<bool, DbError> {
            let db = Db::open(url)?;
            db.query_opt(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )?
            .ok_or_else(|| DbError::Tls("no pg_stat_ssl row".into()))?
            .get(0)
        };

        // libpq's default (prefer) and require: TLS, no certificate check.
        assert!(in_tls(&base).unwrap());
        assert!(in_tls(&format!("{base}?sslmode=require")).unwrap());
        // verify-ca / verify-full against the right CA.
        let full = format!("{base}?sslmode=verify-full&sslrootcert={}", ca.display());
        assert!(in_tls(&full).unwrap());
        assert!(in_tls(&format!(
            "{base}?sslmode=verify-ca&sslrootcert={}",
            ca.display()
        ))
        .unwrap());
        // A CA that did not sign the server's certificate: refused, by rustls, before login.
        for mode in ["verify-full", "verify-ca", "require"] {
            let url = format!("{base}?sslmode={mode}&sslrootcert={}", other.display());
            let e = Db::open(&url).err().unwrap();
            eprintln!(
                "sslmode={mode} with the wrong CA: {}",
                crate::ledger::with_causes(&e)
            );
            assert!(
                matches!(
                    tls_cause(&e),
                    Some(rustls::Error::InvalidCertificate(
                        rustls::CertificateError::UnknownIssuer
                    ))
                ),
                "{e:?}"
            );
        }
        // Without TLS the server (hostssl only) has no entry for us.
        let e = Db::open(&format!("{base}?sslmode=disable")).err().unwrap();
        eprintln!(
            "sslmode=disable against hostssl only: {}",
            crate::ledger::with_causes(&e)
        );
        match &e {
            DbError::Postgres(pe) => assert_eq!(
                pe.code(),
                Some(&::postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION),
                "{e:?}"
            ),
            other => panic!("{other:?}"),
        }
        // An unreadable sslrootcert is a clear TLS error.
        let e = Db::open(&format!(
            "{base}?sslmode=verify-full&sslrootcert=/nonexistent/ca.crt"
        ))
        .err()
        .unwrap();
        assert!(matches!(e, DbError::Tls(_)), "{e:?}");
    }

    #[test]
    fn reads_are_told_from_writes() {
        assert!(is_read("SELECT 1"));
        assert!(is_read("  select\n a FROM t"));
        assert!(!is_read("INSERT INTO t VALUES (1) RETURNING id"));
        assert!(!is_read("selected"));
    }
}
