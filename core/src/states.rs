//! Contract states in each marketplace's own words: the one table that maps them to the five
//! states metergate judges with ([`ContractStatus`]).
//!
//! A contract's `status` may be one of the five words (`pending`, `active`, `suspended`,
//! `cancelled`, `ended`) on every marketplace, or a name its own marketplace uses, in any
//! letter case. A name that belongs to another marketplace only (`Subscribed` on an AWS
//! contract) is an error: it means the contract was copied from the wrong place.
//!
//! Sources:
//! - Microsoft: SaaS fulfillment API v2, `saasSubscriptionStatus` (`saasapi.v2.json`, M8).
//! - Google: Cloud Commerce Partner Procurement API, entitlement `state` (G10).
//! - AWS: AWS Marketplace Agreement API, `DescribeAgreement` / `AgreementViewSummary`
//!   `status` (the Agreement API reference and the SDKs' `AgreementStatus` enum).
//!
//! Decisions for the AWS names the issue left open, from the Agreement API's own definitions:
//! - `RENEWED` ("renewed into a new agreement"), `REPLACED` ("replaced using an agreement
//!   replacement offer") and `ARCHIVED` ("ended without a specified reason") end this
//!   agreement: **ended**. Usage dated before its end may still be sent in the post-end
//!   window; usage after it belongs to the new agreement, which the contracts file should
//!   list instead.
//! - `SUPERSEDED` and `ROLLED_BACK` apply only to inactive agreement *revisions* ("another
//!   agreement revision is now active", "an earlier revision is now active"): the revision
//!   the file describes no longer takes usage, so it is **ended** too. `SUPERCEDED`, the
//!   spelling of the Agreement API's prose, is read as `SUPERSEDED`.
//!
//! Every state that maps to `cancelled` needs `cancelled_at`, and `ended` needs `ends_at` (or
//! `cancelled_at`), as the five words always have.

use std::fmt;

use crate::contract::ContractStatus;
use crate::model::Marketplace;

/// One marketplace's name for a contract state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateName {
    /// The name as the marketplace spells it.
    pub word: &'static str,
    /// The state metergate judges with.
    pub status: ContractStatus,
}

const fn s(word: &'static str, status: ContractStatus) -> StateName {
    StateName { word, status }
}

use ContractStatus::{Active, Cancelled, Ended, Pending, Suspended};

/// metergate's own five words, accepted on every marketplace.
pub const COMMON: [StateName; 5] = [
    s("pending", Pending),
    s("active", Active),
    s("suspended", Suspended),
    s("cancelled", Cancelled),
    s("ended", Ended),
];

/// AWS Marketplace Agreement API agreement `status` (see the module documentation for the
/// names that end an agreement).
pub const AWS: [StateName; 10] = [
    s("ACTIVE", Active),
    s("CANCELLED", Cancelled),
    s("TERMINATED", Cancelled),
    s("EXPIRED", Ended),
    s("RENEWED", Ended),
    s("REPLACED", Ended),
    s("ARCHIVED", Ended),
    s("SUPERSEDED", Ended),
    s("SUPERCEDED", Ended),
    s("ROLLED_BACK", Ended),
];

/// Microsoft SaaS fulfillment API v2 `saasSubscriptionStatus`.
pub const AZURE: [StateName; 5] = [
    s("NotStarted", Pending),
    s("PendingFulfillmentStart", Pending),
    s("Subscribed", Active),
    s("Suspended", Suspended),
    s("Unsubscribed", Cancelled),
];

/// Google Cloud Commerce Procurement API entitlement `state`. The three `PENDING_*` states
/// are still billable: the entitlement stays active until the change takes effect.
pub const GCP: [StateName; 7] = [
    s("ACTIVATION_REQUESTED", Pending),
    s("ACTIVE", Active),
    s("PENDING_CANCELLATION", Active),
    s("PENDING_PLAN_CHANGE", Active),
    s("PENDING_PLAN_CHANGE_APPROVAL", Active),
    s("SUSPENDED", Suspended),
    s("CANCELLED", Cancelled),
];

/// The marketplace's own state names.
pub fn names_of(mp: Marketplace) -> &'static [StateName] {
    match mp {
        Marketplace::Aws => &AWS,
        Marketplace::Azure => &AZURE,
        Marketplace::Gcp => &GCP,
    }
}

/// Every word a contract of this marketplace may give as its `status`: the five common words,
/// then the marketplace's own names.
pub fn allowed_words(mp: Marketplace) -> Vec<&'static str> {
    COMMON.iter().chain(names_of(mp)).map(|n| n.word).collect()
}

/// A `status` word that a contract of this marketplace cannot have.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct StateError {
    /// The word as written.
    pub word: String,
    /// The contract's marketplace.
    pub marketplace: Marketplace,
    /// The marketplaces that do use this word, if any.
    pub used_by: Vec<Marketplace>,
    /// The words allowed on `marketplace`.
    pub allowed: Vec<&'static str>,
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.used_by.is_empty() {
            write!(f, "status {:?} is not a contract state", self.word)?;
        } else {
            let who: Vec<&str> = self.used_by.iter().map(|m| display_name(*m)).collect();
            write!(
                f,
                "status {:?} is {}'s name, not {}'s",
                self.word,
                who.join(" and "),
                display_name(self.marketplace)
            )?;
        }
        write!(
            f,
            "; a contract on {} may say: {}",
            self.marketplace,
            self.allowed.join(", ")
        )
    }
}

fn display_name(mp: Marketplace) -> &'static str {
    match mp {
        Marketplace::Aws => "AWS",
        Marketplace::Azure => "Microsoft",
        Marketplace::Gcp => "Google",
    }
}

/// Maps a contract's `status` word (any letter case) on a marketplace to the state metergate
/// judges with. The error names the marketplaces that use the word and lists the words
/// allowed on `mp`. Event handlers that learn a new state from a marketplace call this too.
pub fn status_of(mp: Marketplace, word: &str) -> Result<ContractStatus, StateError> {
    let found = COMMON
        .iter()
        .chain(names_of(mp))
        .find(|n| n.word.eq_ignore_ascii_case(word));
    if let Some(n) = found {
        return Ok(n.status);
    }
    let used_by = Marketplace::ALL
        .into_iter()
        .filter(|m| *m != mp)
        .filter(|m| {
            names_of(*m)
                .iter()
                .any(|n| n.word.eq_ignore_ascii_case(word))
        })
        .collect();
    Err(StateError {
        word: word.to_owned(),
        marketplace: mp,
        used_by,
        allowed: allowed_words(mp),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_marketplace_reads_its_own_words_in_any_case() {
        assert_eq!(status_of(Marketplace::Azure, "Subscribed"), Ok(Active));
        assert_eq!(status_of(Marketplace::Azure, "subscribed"), Ok(Active));
        assert_eq!(
            status_of(Marketplace::Gcp, "PENDING_CANCELLATION"),
            Ok(Active)
        );
        assert_eq!(status_of(Marketplace::Aws, "expired"), Ok(Ended));
        assert_eq!(status_of(Marketplace::Aws, "Active"), Ok(Active));
        assert_eq!(status_of(Marketplace::Gcp, "ended"), Ok(Ended));
    }

    #[test]
    fn foreign_words_are_refused_with_the_allowed_list() {
        let e = status_of(Marketplace::Aws, "Subscribed").unwrap_err();
        assert_eq!(e.used_by, vec![Marketplace::Azure]);
        assert!(e.allowed.contains(&"TERMINATED"));
        assert!(!e.allowed.contains(&"Subscribed"));
        let e = status_of(Marketplace::Azure, "PENDING_CANCELLATION").unwrap_err();
        assert_eq!(e.used_by, vec![Marketplace::Gcp]);
        let e = status_of(Marketplace::Gcp, "bogus").unwrap_err();
        assert!(e.used_by.is_empty());
    }

    #[test]
    fn no_word_means_two_states_on_one_marketplace() {
        for mp in Marketplace::ALL {
            let words = allowed_words(mp);
            for (i, a) in words.iter().enumerate() {
                for b in &words[i + 1..] {
                    if a.eq_ignore_ascii_case(b) {
                        assert_eq!(status_of(mp, a), status_of(mp, b), "{mp}: {a} / {b}");
                    }
                }
            }
        }
    }
}
