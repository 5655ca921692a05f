//! Writing ledger rows for people and machines: `ledger list`, `ledger export`,
//! `ledger summary` and `deadlines` share these writers.

use std::collections::BTreeMap;
use std::io::{self, Write};

use metergate_core::{ContractSet, Marketplace};
use rust_decimal::Decimal;
use serde::Serialize;

use super::{LedgerRow, Status};
use crate::text::clean;

/// How to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// An aligned table.
    Text,
    /// JSON (Lines for lists, one document for exports and summaries).
    Json,
    /// CSV with a header.
    Csv,
}

fn csv_err(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

/// A plain table: a header and rows of cells, written in any [`Format`]. JSON writes one
/// object per row (JSON Lines), keyed by the header.
pub struct Table {
    /// Column names.
    pub header: Vec<&'static str>,
    /// Cells; `None` is empty (JSON `null`).
    pub rows: Vec<Vec<Option<String>>>,
}

impl Table {
    /// Writes the table.
    pub fn write(&self, format: Format, out: &mut dyn Write) -> io::Result<()> {
        match format {
            Format::Json => {
                for row in &self.rows {
                    let obj: serde_json::Map<String, serde_json::Value> = self
                        .header
                        .iter()
                        .zip(row)
                        .map(|(k, v)| {
                            (
                                (*k).to_owned(),
                                v.clone()
                                    .map_or(serde_json::Value::Null, serde_json::Value::String),
                            )
                        })
                        .collect();
                    serde_json::to_writer(&mut *out, &obj)?;
                    out.write_all(b"\n")?;
                }
            }
            Format::Csv => {
                let mut w = csv::Writer::from_writer(&mut *out);
                w.write_record(&self.header).map_err(csv_err)?;
                for row in &self.rows {
                    w.write_record(row.iter().map(|c| c.as_deref().unwrap_or("")))
                        .map_err(csv_err)?;
                }
                w.flush()?;
            }
            Format::Text => {
                // Cells hold ledger values that came from input: shown escaped.
                let rows: Vec<Vec<String>> = self
                    .rows
                    .iter()
                    .map(|row| {
                        row.iter()
                            .map(|c| c.as_deref().map_or("-".into(), |s| clean(s).into_owned()))
                            .collect()
                    })
                    .collect();
                let mut widths: Vec<usize> = self.header.iter().map(|h| h.len()).collect();
                for row in &rows {
                    for (w, c) in widths.iter_mut().zip(row) {
                        *w = (*w).max(c.chars().count());
                    }
                }
                let line = |cells: Vec<&str>, out: &mut dyn Write| -> io::Result<()> {
                    let mut s = String::new();
                    for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
                        if i + 1 == cells.len() {
                            s.push_str(c);
                        } else {
                            s.push_str(&format!("{c:<w$}  "));
                        }
                    }
                    writeln!(out, "{}", s.trim_end())
                };
                line(self.header.clone(), out)?;
                for row in &rows {
                    line(row.iter().map(String::as_str).collect(), out)?;
                }
            }
        }
        out.flush()
    }
}

fn s(v: impl ToString) -> Option<String> {
    Some(v.to_string())
}

/// The properties of a row's contract (joined by marketplace, product and customer), empty
/// when the contract has none or is not known. They are the seller's own labels, for
/// reconciliation; they never went on the wire.
pub fn row_properties<'c>(
    contracts: &'c ContractSet,
    r: &LedgerRow,
) -> Option<&'c BTreeMap<String, String>> {
    contracts
        .find(r.marketplace, &r.product, &r.customer)
        .map(|(_, c)| &c.properties)
        .filter(|p| !p.is_empty())
}

/// Properties in one cell: `key=value` pairs joined by `;`, in key order.
pub fn properties_cell(p: Option<&BTreeMap<String, String>>) -> Option<String> {
    p.map(|p| {
        p.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";")
    })
}

#[derive(Serialize)]
struct ListRow<'a> {
    #[serde(flatten)]
    row: &'a LedgerRow,
    #[serde(skip_serializing_if = "Option::is_none")]
    properties: Option<&'a BTreeMap<String, String>>,
}

/// `metergate ledger list`: JSON writes whole rows (wire values included); text and CSV a
/// column each for what a person reads.
pub fn write_list(rows: &[LedgerRow], format: Format, out: &mut dyn Write) -> io::Result<()> {
    write_list_with(rows, &ContractSet::default(), format, out)
}

/// [`write_list`] with each row's contract properties (a `properties` column; in JSON a
/// `properties` object on rows whose contract has some).
pub fn write_list_with(
    rows: &[LedgerRow],
    contracts: &ContractSet,
    format: Format,
    out: &mut dyn Write,
) -> io::Result<()> {
    if format == Format::Json {
        for r in rows {
            let row = ListRow {
                row: r,
                properties: row_properties(contracts, r),
            };
            serde_json::to_writer(&mut *out, &row)?;
            out.write_all(b"\n")?;
        }
        return out.flush();
    }
    let header = vec![
        "id",
        "status",
        "marketplace",
        "product",
        "customer",
        "dimension",
        "start_time",
        "quantity",
        "attempts",
        "answer",
        "reason",
        "marketplace_record_id",
        "record_id",
        "source",
        "sent_at",
        "finished_at",
        "properties",
    ];
    let rows = rows
        .iter()
        .map(|r| {
            vec![
                s(r.id),
                s(r.status),
                s(r.marketplace),
                s(&r.product),
                s(&r.customer),
                s(&r.dimension),
                s(metergate_core::time::format_rfc3339(r.start_time)),
                s(r.quantity),
                s(r.attempts),
                r.answer.clone(),
                r.reason.clone(),
                r.marketplace_record_id.clone(),
                r.record_id.clone(),
                r.source.clone(),
                r.sent_at.clone(),
                r.finished_at.clone(),
                properties_cell(row_properties(contracts, r)),
            ]
        })
        .collect();
    Table { header, rows }.write(format, out)
}

/// One row of `ledger export`: the columns a seller portal shows.
#[derive(Clone, Debug, Serialize)]
pub struct ExportRow<'a> {
    /// When it was last sent (RFC 3339), empty when never sent.
    pub submitted_at: &'a str,
    /// Marketplace.
    pub marketplace: Marketplace,
    /// Product.
    pub product: &'a str,
    /// Customer key.
    pub customer: &'a str,
    /// Dimension.
    pub dimension: &'a str,
    /// The usage time sent (RFC 3339).
    pub usage_time: String,
    /// Quantity.
    pub quantity: Decimal,
    /// Ledger state.
    pub status: Status,
    /// The marketplace's answer and reason.
    pub reason: String,
    /// The marketplace's record id (AWS MeteringRecordId).
    pub marketplace_record_id: &'a str,
    /// The contract's properties (the seller's own labels), for reconciliation.
    pub properties: BTreeMap<String, String>,
}

fn export_row<'a>(r: &'a LedgerRow, contracts: &ContractSet) -> ExportRow<'a> {
    let reason = match (&r.answer, &r.reason) {
        (Some(a), Some(why)) if a != "Success" => format!("{a}: {why}"),
        (Some(a), None) if a != "Success" => a.clone(),
        (_, Some(why)) => why.clone(),
        _ => String::new(),
    };
    ExportRow {
        submitted_at: r.sent_at.as_deref().unwrap_or(""),
        marketplace: r.marketplace,
        product: &r.product,
        customer: &r.customer,
        dimension: &r.dimension,
        usage_time: metergate_core::time::format_rfc3339(r.start_time),
        quantity: r.quantity,
        status: r.status,
        reason,
        marketplace_record_id: r.marketplace_record_id.as_deref().unwrap_or(""),
        properties: row_properties(contracts, r).cloned().unwrap_or_default(),
    }
}

/// The CSV header of `ledger export`.
pub const EXPORT_COLUMNS: [&str; 11] = [
    "submitted_at",
    "marketplace",
    "product",
    "customer",
    "dimension",
    "usage_time",
    "quantity",
    "status",
    "reason",
    "marketplace_record_id",
    "properties",
];

/// `metergate ledger export`: CSV with [`EXPORT_COLUMNS`], or one JSON array.
pub fn write_export(rows: &[LedgerRow], format: Format, out: &mut dyn Write) -> io::Result<()> {
    write_export_with(rows, &ContractSet::default(), format, out)
}

/// [`write_export`] with each row's contract properties (joined by its contract key).
pub fn write_export_with(
    rows: &[LedgerRow],
    contracts: &ContractSet,
    format: Format,
    out: &mut dyn Write,
) -> io::Result<()> {
    match format {
        Format::Json => {
            let v: Vec<ExportRow<'_>> = rows.iter().map(|r| export_row(r, contracts)).collect();
            serde_json::to_writer_pretty(&mut *out, &v)?;
            out.write_all(b"\n")?;
            out.flush()
        }
        Format::Csv | Format::Text => {
            let rows = rows
                .iter()
                .map(|r| {
                    let e = export_row(r, contracts);
                    vec![
                        s(e.submitted_at),
                        s(e.marketplace),
                        s(e.product),
                        s(e.customer),
                        s(e.dimension),
                        s(e.usage_time),
                        s(e.quantity),
                        s(e.status),
                        s(e.reason),
                        s(e.marketplace_record_id),
                        properties_cell(Some(&e.properties).filter(|p| !p.is_empty())),
                    ]
                })
                .collect();
            Table {
                header: EXPORT_COLUMNS.to_vec(),
                rows,
            }
            .write(format, out)
        }
    }
}

/// Counts and quantities per marketplace and state.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LedgerSummary {
    /// Rows in the ledger.
    pub rows: u64,
    /// Per marketplace, per state: rows and total quantity.
    pub by_marketplace: BTreeMap<Marketplace, BTreeMap<Status, Tally>>,
    /// Per state, over all marketplaces.
    pub by_status: BTreeMap<Status, Tally>,
}

/// Rows and their summed quantity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Tally {
    /// Rows.
    pub rows: u64,
    /// Sum of quantities.
    pub quantity: Decimal,
}

impl LedgerSummary {
    /// Sums rows.
    pub fn of(rows: &[LedgerRow]) -> LedgerSummary {
        let mut out = LedgerSummary::default();
        for r in rows {
            out.rows += 1;
            let t = out
                .by_marketplace
                .entry(r.marketplace)
                .or_default()
                .entry(r.status)
                .or_default();
            t.rows += 1;
            t.quantity += r.quantity;
            let t = out.by_status.entry(r.status).or_default();
            t.rows += 1;
            t.quantity += r.quantity;
        }
        out
    }

    /// Writes the summary: JSON one object; text and CSV one line per marketplace and state.
    pub fn write(&self, format: Format, out: &mut dyn Write) -> io::Result<()> {
        if format == Format::Json {
            serde_json::to_writer(&mut *out, self)?;
            out.write_all(b"\n")?;
            return out.flush();
        }
        let mut rows = Vec::new();
        for (m, by) in &self.by_marketplace {
            for (st, t) in by {
                rows.push(vec![s(m), s(st), s(t.rows), s(t.quantity)]);
            }
        }
        for (st, t) in &self.by_status {
            rows.push(vec![s("all"), s(st), s(t.rows), s(t.quantity)]);
        }
        Table {
            header: vec!["marketplace", "status", "rows", "quantity"],
            rows,
        }
        .write(format, out)
    }
}
