//! AWS: the Agreement and Entitlement APIs. Not yet built.
//!
//! Found while planning it: `aws-sdk-marketplaceagreement` 1.124 and
//! `aws-sdk-marketplaceentitlement` 1.126 resolve against this workspace's AWS crates, but the
//! entitlement SDK now speaks Smithy RPC v2 CBOR (it pulls in `aws-smithy-cbor`), so a faithful
//! fake of GetEntitlements must answer CBOR, not JSON.

use metergate_core::Marketplace;

use super::SyncError;

/// Not yet: `contracts sync --marketplace aws` exits 2 with this.
pub fn not_yet() -> SyncError {
    SyncError::NotYet {
        marketplace: Marketplace::Aws,
        message: "syncing AWS agreements and entitlements (aws-sdk-marketplaceagreement, aws-sdk-marketplaceentitlement) is not yet implemented; import them with `metergate contracts import FILE` and keep them current with `metergate contracts event`".into(),
    }
}
