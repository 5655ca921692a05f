//! Google: the Partner Procurement API (`providers/{provider}/entitlements`). Not yet built.

use metergate_core::Marketplace;

use super::SyncError;

/// Not yet: `contracts sync --marketplace gcp` exits 2 with this.
pub fn not_yet() -> SyncError {
    SyncError::NotYet {
        marketplace: Marketplace::Gcp,
        message: "syncing Google entitlements (Partner Procurement API) is not yet implemented; import them with `metergate contracts import FILE` and keep them current with `metergate contracts event`".into(),
    }
}
