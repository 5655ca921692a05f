//! Read-only queries for the agent's metrics, alerts and status page (`metergate serve`):
//! counts by state, the oldest unfinished row, the last usage per contract, and the status
//! page's filtered, paginated rows. Each is one cheap SQL statement, the same on SQLite and
//! PostgreSQL; none writes.

use chrono::{DateTime, Utc};
use metergate_core::time::parse_rfc3339;
use metergate_core::Marketplace;
use serde::Serialize;

use super::db::{DbError, Exec, Row, ToValue, Value};
use super::{Ledger, LedgerError, LedgerRow, COLUMNS};

/// The statuses a row can hold that are still to be sent.
const UNFINISHED: &str = "('pending', 'sending')";

/// Statuses whose usage counts as usage for a contract (the marketplace has it or will):
/// the row is not refused and was not left unsent.
const COUNTED: &str = "('pending', 'sending', 'accepted', 'duplicate')";

/// Per marketplace: the unfinished rows and when the oldest of them was written.
pub type Unfinished = (String, u64, Option<DateTime<Utc>>);

/// How the status page groups ledger states, as the seller portals do ("Metering" tab):
/// waiting to go, gone, refused, given up after retries, or closed unsent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum View {
    /// `pending` or `sending`.
    Pending,
    /// `accepted`: the marketplace took it.
    Sent,
    /// `rejected` or `duplicate`: the marketplace (or metergate) refused it.
    Rejected,
    /// `failed`: no definite answer after every retry.
    Failed,
    /// `expired`: its window closed before it could be sent.
    Expired,
}

impl View {
    /// Every view, in page order.
    pub const ALL: [View; 5] = [
        View::Pending,
        View::Sent,
        View::Rejected,
        View::Failed,
        View::Expired,
    ];

    /// The lowercase name used in URLs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            View::Pending => "pending",
            View::Sent => "sent",
            View::Rejected => "rejected",
            View::Failed => "failed",
            View::Expired => "expired",
        }
    }

    /// Parses a view name (`pending`, `sent`, `rejected`, `failed`, `expired`).
    pub fn parse(s: &str) -> Option<View> {
        View::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The ledger statuses (as stored) shown under this view.
    pub fn statuses(self) -> &'static [&'static str] {
        match self {
            View::Pending => &["pending", "sending"],
            View::Sent => &["accepted"],
            View::Rejected => &["rejected", "duplicate"],
            View::Failed => &["failed"],
            View::Expired => &["expired"],
        }
    }

    /// The view of a stored status word (`None` for a word this build does not know).
    pub fn of_status(status: &str) -> Option<View> {
        View::ALL
            .into_iter()
            .find(|v| v.statuses().contains(&status))
    }
}

/// Filters of the status page. Every field is optional; text filters are exact, `q`
/// matches a substring (case-insensitive for ASCII) of the customer, product, dimension,
/// record id, answer or reason.
#[derive(Clone, Debug, Default)]
pub struct RowQuery {
    /// Only this marketplace.
    pub marketplace: Option<Marketplace>,
    /// Only this product.
    pub product: Option<String>,
    /// Only this customer key.
    pub customer: Option<String>,
    /// Only rows in this view.
    pub view: Option<View>,
    /// Usage starting at or after.
    pub since: Option<DateTime<Utc>>,
    /// Usage starting before.
    pub until: Option<DateTime<Utc>>,
    /// Free-text search.
    pub q: Option<String>,
}

/// One group of the status page's summary: a contract (marketplace, product, customer) and
/// how many of its rows are in each view.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GroupCounts {
    /// Marketplace.
    pub marketplace: String,
    /// Product.
    pub product: String,
    /// Customer key.
    pub customer: String,
    /// Rows pending or sending.
    pub pending: u64,
    /// Rows accepted.
    pub sent: u64,
    /// Rows rejected or duplicate.
    pub rejected: u64,
    /// Rows failed.
    pub failed: u64,
    /// Rows expired.
    pub expired: u64,
    /// The latest usage start among its rows (whole seconds).
    #[serde(serialize_with = "ser_secs_opt")]
    pub last_usage: Option<DateTime<Utc>>,
}

impl GroupCounts {
    fn add(&mut self, view: Option<View>, n: u64) {
        match view {
            Some(View::Pending) => self.pending += n,
            Some(View::Sent) => self.sent += n,
            Some(View::Rejected) => self.rejected += n,
            Some(View::Failed) => self.failed += n,
            Some(View::Expired) => self.expired += n,
            None => {}
        }
    }
}

fn ser_secs_opt<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&metergate_core::time::format_secs(*t)),
        None => s.serialize_none(),
    }
}

/// Escapes `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern.
fn like_pattern(q: &str) -> String {
    let mut s = String::with_capacity(q.len() + 2);
    s.push('%');
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('%');
    s
}

impl RowQuery {
    /// The `WHERE` clause (starting with ` WHERE 1 = 1`) and its arguments.
    fn clause(&self) -> (String, Vec<Value>) {
        let mut sql = String::from(" WHERE 1 = 1");
        let mut args: Vec<Value> = Vec::new();
        let push = |sql: &mut String, args: &mut Vec<Value>, frag: &str, v: Value| {
            args.push(v);
            sql.push_str(&frag.replace('?', &format!("?{}", args.len())));
        };
        if let Some(m) = self.marketplace {
            push(
                &mut sql,
                &mut args,
                " AND marketplace = ?",
                m.as_str().into(),
            );
        }
        if let Some(p) = &self.product {
            push(&mut sql, &mut args, " AND product = ?", p.clone().into());
        }
        if let Some(c) = &self.customer {
            push(&mut sql, &mut args, " AND customer = ?", c.clone().into());
        }
        if let Some(v) = self.view {
            let words: Vec<String> = v.statuses().iter().map(|s| format!("'{s}'")).collect();
            sql.push_str(&format!(" AND status IN ({})", words.join(", ")));
        }
        if let Some(t) = self.since {
            push(
                &mut sql,
                &mut args,
                " AND start_secs >= ?",
                t.timestamp().into(),
            );
        }
        if let Some(t) = self.until {
            let secs = t.timestamp() + i64::from(t.timestamp_subsec_nanos() > 0);
            push(&mut sql, &mut args, " AND start_secs < ?", secs.into());
        }
        if let Some(q) = self.q.as_deref().filter(|q| !q.is_empty()) {
            args.push(like_pattern(q).into());
            let n = args.len();
            // SQLite's LIKE ignores ASCII case, PostgreSQL's does not: lower both sides.
            let like = |col: &str| format!("LOWER({col}) LIKE LOWER(?{n}) ESCAPE '\\'");
            sql.push_str(&format!(
                " AND ({} OR {} OR {} OR {} OR {} OR {})",
                like("customer"),
                like("product"),
                like("dimension"),
                like("record_id"),
                like("answer"),
                like("reason")
            ));
        }
        (sql, args)
    }
}

fn count(n: i64) -> u64 {
    n.max(0) as u64
}

fn refs(args: &[Value]) -> Vec<&dyn ToValue> {
    args.iter().map(|v| v as &dyn ToValue).collect()
}

impl Ledger {
    fn rows_of(&self, sql: &str, args: &[&dyn ToValue]) -> Result<Vec<Row>, LedgerError> {
        self.db.query(sql, args).map_err(self.err())
    }

    /// Row counts per marketplace and stored status word (only pairs that have rows).
    pub fn counts_by_marketplace(&self) -> Result<Vec<(String, String, u64)>, LedgerError> {
        self.rows_of(
            "SELECT marketplace, status, COUNT(*) FROM records GROUP BY marketplace, status",
            &[],
        )?
        .iter()
        .map(|r| Ok((r.get(0)?, r.get(1)?, count(r.get(2)?))))
        .collect::<Result<Vec<_>, DbError>>()
        .map_err(self.err())
    }

    /// Finished rows that did not go through (every status but `accepted`, `pending` and
    /// `sending`), counted per marketplace, status and answer code (the marketplace's code,
    /// or `metergate` when metergate decided).
    pub fn counts_by_answer(&self) -> Result<Vec<(String, String, String, u64)>, LedgerError> {
        self.rows_of(
            "SELECT marketplace, status, COALESCE(answer, ''), COUNT(*) FROM records \
             WHERE status NOT IN ('pending', 'sending', 'accepted') \
             GROUP BY marketplace, status, answer",
            &[],
        )?
        .iter()
        .map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, count(r.get(3)?))))
        .collect::<Result<Vec<_>, DbError>>()
        .map_err(self.err())
    }

    /// Per marketplace: how many rows are unfinished (`pending` or `sending`) and when the
    /// oldest of them was written.
    pub fn unfinished_by_marketplace(&self) -> Result<Vec<Unfinished>, LedgerError> {
        let rows = self.rows_of(
            &format!(
                "SELECT marketplace, COUNT(*), \
                 (SELECT created_at FROM records r2 WHERE r2.marketplace = records.marketplace \
                  AND r2.status IN {UNFINISHED} ORDER BY r2.id LIMIT 1) \
                 FROM records WHERE status IN {UNFINISHED} GROUP BY marketplace"
            ),
            &[],
        )?;
        let mut out = Vec::new();
        for r in rows {
            let read = || -> Result<(String, u64, Option<String>), DbError> {
                Ok((r.get(0)?, count(r.get(1)?), r.get(2)?))
            };
            let (m, n, at) = read().map_err(self.err())?;
            out.push((m, n, at.and_then(|t| parse_rfc3339(&t).ok())));
        }
        Ok(out)
    }

    /// For each contract (marketplace, product, customer) with unfinished rows, its
    /// unfinished row with the earliest usage start: the one whose deadline comes first
    /// (a deadline never comes earlier for a later start of the same contract). Ties go to
    /// the older row; contracts come in (marketplace, product, customer) order.
    pub fn earliest_unfinished_per_contract(&self) -> Result<Vec<LedgerRow>, LedgerError> {
        // A window over the unfinished rows only: portable to both engines, and it reads no
        // finished row.
        self.query(
            &format!(
                "SELECT {COLUMNS} FROM (SELECT {COLUMNS}, ROW_NUMBER() OVER \
                 (PARTITION BY marketplace, product, customer ORDER BY start_secs, id) AS rn \
                 FROM records WHERE status IN {UNFINISHED}) AS firsts WHERE rn = 1 \
                 ORDER BY marketplace, product, customer"
            ),
            &[],
        )
    }

    /// The latest start of usage with a quantity above zero that counts (pending, sending,
    /// accepted or duplicate), per contract: `(marketplace, product, customer, start)`.
    /// Zero-quantity rows (heartbeats) are not usage.
    pub fn last_usage_per_contract(
        &self,
    ) -> Result<Vec<(String, String, String, i64)>, LedgerError> {
        self.rows_of(
            &format!(
                "SELECT marketplace, product, customer, MAX(start_secs) FROM records \
                 WHERE status IN {COUNTED} AND quantity NOT IN ('0', '-0') \
                 GROUP BY marketplace, product, customer"
            ),
            &[],
        )?
        .iter()
        .map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .collect::<Result<Vec<_>, DbError>>()
        .map_err(self.err())
    }

    /// Every (marketplace, product) pair in the ledger, sorted: the status page's filter
    /// choices.
    pub fn products(&self) -> Result<Vec<(String, String)>, LedgerError> {
        self.rows_of(
            "SELECT DISTINCT marketplace, product FROM records ORDER BY marketplace, product",
            &[],
        )?
        .iter()
        .map(|r| Ok((r.get(0)?, r.get(1)?)))
        .collect::<Result<Vec<_>, DbError>>()
        .map_err(self.err())
    }

    /// The status page's rows: newest first, `limit` from `offset`, and how many match.
    pub fn status_rows(
        &self,
        q: &RowQuery,
        limit: u32,
        offset: u64,
    ) -> Result<(u64, Vec<LedgerRow>), LedgerError> {
        let (clause, args) = q.clause();
        let total: i64 = self
            .rows_of(
                &format!("SELECT COUNT(*) FROM records{clause}"),
                &refs(&args),
            )?
            .first()
            .map(|r| r.get(0))
            .transpose()
            .map_err(self.err())?
            .unwrap_or(0);
        let mut args = args;
        args.push(i64::from(limit).into());
        args.push(i64::try_from(offset).unwrap_or(i64::MAX).into());
        let n = args.len();
        let sql = format!(
            "SELECT {COLUMNS} FROM records{clause} ORDER BY id DESC LIMIT ?{} OFFSET ?{n}",
            n - 1
        );
        Ok((count(total), self.query(&sql, &refs(&args))?))
    }

    /// The status page's summary: per contract (marketplace, product, customer) the rows in
    /// each view, ordered by marketplace, product and customer, at most `limit` contracts;
    /// then the totals over every matching row (a [`GroupCounts`] with empty names), and
    /// whether more contracts matched than were returned.
    pub fn status_groups(
        &self,
        q: &RowQuery,
        limit: usize,
    ) -> Result<(Vec<GroupCounts>, GroupCounts, bool), LedgerError> {
        let (clause, args) = q.clause();
        let rows = self.rows_of(
            &format!(
                "SELECT marketplace, product, customer, status, COUNT(*), MAX(start_secs) \
                 FROM records{clause} GROUP BY marketplace, product, customer, status \
                 ORDER BY marketplace, product, customer"
            ),
            &refs(&args),
        )?;
        let mut out: Vec<GroupCounts> = Vec::new();
        let mut totals = GroupCounts::default();
        let mut more = false;
        for r in rows {
            type Group = (String, String, String, String, u64, Option<i64>);
            let read = || -> Result<Group, DbError> {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    count(r.get(4)?),
                    r.get(5)?,
                ))
            };
            let (m, p, c, status, n, last) = read().map_err(self.err())?;
            totals.add(View::of_status(&status), n);
            if more {
                continue;
            }
            let same = out
                .last()
                .is_some_and(|g| g.marketplace == m && g.product == p && g.customer == c);
            if !same {
                if out.len() == limit {
                    more = true;
                    continue;
                }
                out.push(GroupCounts {
                    marketplace: m,
                    product: p,
                    customer: c,
                    ..GroupCounts::default()
                });
            }
            if let Some(g) = out.last_mut() {
                g.add(View::of_status(&status), n);
                if let Some(t) = last.and_then(|s| DateTime::<Utc>::from_timestamp(s, 0)) {
                    if g.last_usage.is_none_or(|a| t > a) {
                        g.last_usage = Some(t);
                    }
                }
            }
        }
        Ok((out, totals, more))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("a%b_c\\d"), "%a\\%b\\_c\\\\d%");
    }

    #[test]
    fn views_cover_every_status_once() {
        for s in crate::ledger::Status::ALL {
            assert!(View::of_status(s.as_str()).is_some(), "{s}");
        }
        assert_eq!(View::of_status("expired"), Some(View::Expired));
        assert_eq!(View::parse("sent"), Some(View::Sent));
        assert_eq!(View::parse("accepted"), None);
    }
}
