//! AWS: the Agreement and Entitlement APIs. Not yet built.

use metergate_core::Marketplace;

use super::SyncError;

/// Not yet: `contracts sync --marketplace aws` exits 2 with this.
pub fn not_yet() -> SyncError {
    SyncError::NotYet {
        marketplace: Marketplace::Aws,
        message: "syncing AWS agreements and entitlements (aws-sdk-marketplaceagreement, aws-sdk-marketplaceentitlement) is not yet implemented; import them with `metergate contracts import FILE` and keep them current with `metergate contracts event`".into(),
    }
}
