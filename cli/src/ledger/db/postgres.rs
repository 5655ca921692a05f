//! The PostgreSQL side of the ledger's connection layer: `postgres` binding of [`Value`]s by
//! the type the server asks for, columns read back as [`Value`]s, the connection ([`Pg`]:
//! statement cache, reconnects), the `?N` to `$N` placeholder rewrite, and the helper that
//! runs the synchronous client outside any async runtime.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use bytes::BytesMut;
use postgres::types::{to_sql_checked, IsNull, ToSql, Type};

use super::{DbError, Row, Value};

pub mod tls;

/// Rewrites SQLite's placeholders (`?N`, and bare `?` numbered in order) to PostgreSQL's
/// `$N`, leaving quoted strings, quoted identifiers and comments alone.
pub fn rewrite_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut next_bare = 1usize;
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                out.push(c);
                // A doubled quote inside is an escaped quote: leaving and re-entering the
                // quoted state on it gives the same result.
                for d in chars.by_ref() {
                    out.push(d);
                    if d == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                out.push(c);
                for d in chars.by_ref() {
                    out.push(d);
                    if d == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                out.push(c);
                let mut prev = '\0';
                for d in chars.by_ref() {
                    out.push(d);
                    if prev == '*' && d == '/' {
                        break;
                    }
                    prev = d;
                }
            }
            '?' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    digits.push(d);
                    chars.next();
                }
                out.push('$');
                if digits.is_empty() {
                    out.push_str(&next_bare.to_string());
                    next_bare += 1;
                } else {
                    if let Ok(n) = digits.parse::<usize>() {
                        next_bare = next_bare.max(n + 1);
                    }
                    out.push_str(&digits);
                }
            }
            _ => out.push(c),
        }
    }
    out
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let bad = |what: &str| -> Box<dyn std::error::Error + Sync + Send> {
            Box::new(DbError::Param(format!(
                "cannot bind {what} to a {ty} parameter"
            )))
        };
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)
                    .map_err(|_| bad("a large integer"))?
                    .to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)
                    .map_err(|_| bad("a large integer"))?
                    .to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                    i.to_string().to_sql(ty, out)
                }
                _ => Err(bad("an integer")),
            },
            Value::Bool(b) => match *ty {
                Type::BOOL => b.to_sql(ty, out),
                Type::INT8 => i64::from(*b).to_sql(ty, out),
                Type::INT4 => i32::from(*b).to_sql(ty, out),
                Type::INT2 => i16::from(*b).to_sql(ty, out),
                _ => Err(bad("a boolean")),
            },
            Value::Text(s) => match *ty {
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                    s.as_str().to_sql(ty, out)
                }
                _ => Err(bad("text")),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn pg_value(row: &postgres::Row, i: usize) -> Result<Value, DbError> {
    let ty = row.columns()[i].type_().clone();
    let v = match ty {
        Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(Value::Int),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)?
            .map(|x| Value::Int(i64::from(x))),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(i)?
            .map(|x| Value::Int(i64::from(x))),
        Type::BOOL => row.try_get::<_, Option<bool>>(i)?.map(Value::Bool),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            row.try_get::<_, Option<String>>(i)?.map(Value::Text)
        }
        other => {
            return Err(DbError::Column {
                index: i,
                message: format!(
                    "type {other} is not read by the ledger (CAST it to BIGINT or TEXT)"
                ),
            })
        }
    };
    Ok(v.unwrap_or(Value::Null))
}

/// How long a PostgreSQL connection attempt may take when the URL sets no `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Prepared statements kept per PostgreSQL connection before the cache starts over.
const PG_CACHE_LIMIT: usize = 512;

pub(super) struct Pg {
    pub(super) client: postgres::Client,
    pub(super) url: String,
    pub(super) statements: HashMap<String, postgres::Statement>,
    pub(super) in_tx: bool,
}

pub(super) fn pg_connect(url: &str) -> Result<postgres::Client, DbError> {
    let target = tls::split_url(url)?;
    let mut config: postgres::Config = target.url.parse()?;
    config.ssl_mode(tls::client_mode(target.mode));
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("metergate");
    }
    Ok(match tls::connector(&target)? {
        Some(tls) => config.connect(tls)?,
        None => config.connect(postgres::NoTls)?,
    })
}

impl Pg {
    /// Reconnects a closed client (not inside a transaction: that one is lost with it).
    fn ensure_open(&mut self) -> Result<(), DbError> {
        if self.client.is_closed() && !self.in_tx {
            tracing::warn!("the PostgreSQL connection was closed; connecting again");
            self.client = pg_connect(&self.url)?;
            self.statements.clear();
        }
        Ok(())
    }

    fn prepare(&mut self, sql: &str) -> Result<postgres::Statement, DbError> {
        self.ensure_open()?;
        if let Some(st) = self.statements.get(sql) {
            return Ok(st.clone());
        }
        let st = self.client.prepare(&rewrite_placeholders(sql))?;
        if self.statements.len() >= PG_CACHE_LIMIT {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), st.clone());
        Ok(st)
    }

    pub(super) fn execute(&mut self, sql: &str, vals: &[Value]) -> Result<u64, DbError> {
        let st = self.prepare(sql)?;
        let refs: Vec<&(dyn ToSql + Sync)> = vals.iter().map(|v| v as _).collect();
        Ok(self.client.execute(&st, &refs)?)
    }

    /// Runs a query; a read outside a transaction that fails because the connection was
    /// lost runs once more on a new connection (a write is never repeated: the caller
    /// decides, and the next call reconnects).
    pub(super) fn query(&mut self, sql: &str, vals: &[Value]) -> Result<Vec<Row>, DbError> {
        match self.query_once(sql, vals) {
            Err(e) if !self.in_tx && e.is_connection_lost() && is_read(sql) => {
                tracing::warn!("the PostgreSQL connection was lost; connecting again");
                self.reconnect()?;
                self.query_once(sql, vals)
            }
            r => r,
        }
    }

    fn reconnect(&mut self) -> Result<(), DbError> {
        self.client = pg_connect(&self.url)?;
        self.statements.clear();
        Ok(())
    }

    fn query_once(&mut self, sql: &str, vals: &[Value]) -> Result<Vec<Row>, DbError> {
        let st = self.prepare(sql)?;
        let refs: Vec<&(dyn ToSql + Sync)> = vals.iter().map(|v| v as _).collect();
        let rows = self.client.query(&st, &refs)?;
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| pg_value(r, i))
                    .collect::<Result<Vec<_>, _>>()
                    .map(|values| Row { values })
            })
            .collect()
    }

    pub(super) fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        self.ensure_open()?;
        Ok(self.client.batch_execute(sql)?)
    }

    /// Starts a transaction; a connection found lost here is replaced once (nothing was
    /// done on it yet).
    pub(super) fn begin(&mut self) -> Result<(), DbError> {
        let r = match self.batch("BEGIN") {
            Err(e) if e.is_connection_lost() => {
                tracing::warn!("the PostgreSQL connection was lost; connecting again");
                self.reconnect()?;
                self.batch("BEGIN")
            }
            r => r,
        };
        self.in_tx = r.is_ok();
        r
    }
}

/// True for a statement that only reads (`SELECT ...`; `WITH ... SELECT` is not counted).
pub(super) fn is_read(sql: &str) -> bool {
    sql.trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .is_some_and(|w| w.eq_ignore_ascii_case("select"))
}

/// Runs `f` where the synchronous PostgreSQL client may block: the client drives its own
/// runtime, which cannot start inside another one. Outside any runtime (the ledger's own
/// threads, `spawn_blocking`) it runs as is; on a multi-thread runtime's worker it runs in
/// `block_in_place`; on a current-thread runtime, on a scoped thread.
pub(super) fn outside_runtime<T: Send, F: FnOnce() -> T + Send>(f: F) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Err(_) => f(),
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        Ok(_) => std::thread::scope(|s| match s.spawn(f).join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }),
    }
}

/// Runs one step on the PostgreSQL connection (see [`outside_runtime`]).
pub(super) fn pg_call<T: Send>(
    pg: &RefCell<Pg>,
    f: impl FnOnce(&mut Pg) -> Result<T, DbError> + Send,
) -> Result<T, DbError> {
    let mut guard = pg.borrow_mut();
    let pg: &mut Pg = &mut guard;
    outside_runtime(move || f(pg))
}
