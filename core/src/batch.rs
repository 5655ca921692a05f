//! Planning marketplace calls: which records go together, within each marketplace's limits.

use serde::{Deserialize, Serialize};

use crate::model::{Marketplace, UsageRecord};
use crate::rules::{aws, azure, gcp};

/// One call to a marketplace: indices into the planned slice, in input order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// Which marketplace.
    pub marketplace: Marketplace,
    /// The product (AWS and Google calls are per product; empty for Azure).
    pub product: String,
    /// Indices of the records in this call.
    pub records: Vec<usize>,
}

/// A generous estimate of a record's bytes on the wire (JSON), to stay under size limits.
pub fn wire_size(r: &UsageRecord) -> usize {
    let allocs: usize = r
        .allocations
        .as_ref()
        .map(|a| {
            a.iter()
                .map(|a| {
                    64 + a
                        .tags
                        .iter()
                        .map(|t| 32 + t.key.len() + t.value.len())
                        .sum::<usize>()
                })
                .sum()
        })
        .unwrap_or(0);
    // Field names, quotes, timestamps and identity fields: 512 bytes covers every marketplace's
    // envelope per record (license ARNs reach ~100 bytes; Google's operation ~300).
    512 + r.product.len()
        + r.customer.len()
        + r.dimension.len()
        + r.plan.as_ref().map_or(0, String::len)
        + allocs
}

/// Splits records into calls. AWS: one product per call, at most 25 records, under 1 MB.
/// Azure: at most 25 events. Google: one service per report, under 1 MB and at most
/// [`gcp::MAX_OPERATIONS_PER_REPORT`] operations. Order is kept within each call; nothing is
/// lost or repeated.
pub fn plan_batches(records: &[UsageRecord]) -> Vec<Batch> {
    let mut open: Vec<(Batch, usize)> = Vec::new();
    let mut done: Vec<Batch> = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let (max_n, max_bytes, product) = match r.marketplace {
            Marketplace::Aws => (
                aws::MAX_BATCH_RECORDS,
                aws::MAX_BATCH_BYTES,
                r.product.as_str(),
            ),
            Marketplace::Azure => (azure::MAX_BATCH_EVENTS, usize::MAX, ""),
            Marketplace::Gcp => (
                gcp::MAX_OPERATIONS_PER_REPORT,
                gcp::MAX_REQUEST_BYTES,
                r.product.as_str(),
            ),
        };
        let size = wire_size(r);
        let slot = open
            .iter()
            .position(|(b, _)| b.marketplace == r.marketplace && b.product == product);
        match slot {
            Some(s) => {
                let fits = open.get(s).is_some_and(|(b, bytes)| {
                    b.records.len() < max_n && bytes.saturating_add(size) < max_bytes
                });
                if !fits {
                    let (full, _) = open.remove(s);
                    done.push(full);
                    open.push((
                        Batch {
                            marketplace: r.marketplace,
                            product: product.to_owned(),
                            records: vec![i],
                        },
                        256 + size,
                    ));
                } else if let Some((b, bytes)) = open.get_mut(s) {
                    b.records.push(i);
                    *bytes += size;
                }
            }
            None => open.push((
                Batch {
                    marketplace: r.marketplace,
                    product: product.to_owned(),
                    records: vec![i],
                },
                256 + size,
            )),
        }
    }
    done.extend(open.into_iter().map(|(b, _)| b));
    done.sort_by_key(|b| b.records.first().copied().unwrap_or(0));
    done
}
