//! What each finding code means, which rules produce it, their sources, and how to fix it.

use serde::Serialize;

use crate::finding::{Code, Severity};

/// One built-in rule (all of them are listed in `docs/RULES.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RuleDoc {
    /// Rule id, e.g. `aws.lookback`.
    pub id: &'static str,
    /// The codes it produces.
    pub codes: &'static [Code],
    /// What the rule says.
    pub value: &'static str,
    /// Where the fact comes from.
    pub source: &'static str,
}

/// Everything `metergate explain CODE` prints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// The code.
    pub code: &'static str,
    /// Its severity.
    pub severity: Severity,
    /// What it means.
    pub meaning: &'static str,
    /// How to fix it.
    pub fix: &'static str,
    /// The rules that produce it.
    pub rules: Vec<RuleDoc>,
}

use Code::*;

/// Every built-in rule.
pub const RULES: &[RuleDoc] = &[
    RuleDoc { id: "all.form", codes: &[InvalidRecord, InvalidQuantity], value: "required fields present; RFC 3339 times with an offset; plain decimal quantities", source: "metergate's input format (README); A1, M4, G4 field types" },
    RuleDoc { id: "all.quantity", codes: &[InvalidQuantity], value: "no negative quantity", source: "A1, M4, G4" },
    RuleDoc { id: "all.unit", codes: &[InvalidQuantity], value: "a whole multiple of the dimension's unit", source: "seeds (Clazar: marketplaces bill in multiples of the per-unit cost)" },
    RuleDoc { id: "aws.lookback", codes: &[TimestampOutOfBounds], value: "Timestamp at most 6 hours before now (24 h with setting aws.lookback = \"24h\")", source: "seeds (Tackle); A1-A4" },
    RuleDoc { id: "aws.future", codes: &[TimestampOutOfBounds], value: "no Timestamp after now", source: "no documented tolerance" },
    RuleDoc { id: "aws.quantity", codes: &[InvalidQuantity], value: "integer 0..=2147483647", source: "A1" },
    RuleDoc { id: "aws.dimension", codes: &[InvalidUsageDimension], value: "1..255 characters; one of the product's dimensions", source: "A1" },
    RuleDoc { id: "aws.product", codes: &[InvalidProductCode], value: "ProductCode ≤ 255 characters of [-a-zA-Z0-9/=:_.@]", source: "A1" },
    RuleDoc { id: "aws.identity", codes: &[InvalidCustomerIdentifier, InvalidLicense], value: "CustomerIdentifier XOR CustomerAWSAccountId (digits) + LicenseArn", source: "A1, A6" },
    RuleDoc { id: "aws.entitlement", codes: &[CustomerNotEntitled, TimestampOutOfBounds], value: "an active contract; usage not before its start", source: "A1; seeds (Tackle)" },
    RuleDoc { id: "aws.post_cancel", codes: &[TimestampOutOfBounds, CustomerNotEntitled], value: "after cancellation, usage dated before it may be sent for 1 hour", source: "seeds (Tackle); A4" },
    RuleDoc { id: "aws.dedup", codes: &[DuplicateIgnored, DuplicateRequest], value: "one record per product + customer + dimension + hour; the first quantity is billed", source: "A1, A4; seeds (Tackle)" },
    RuleDoc { id: "aws.allocations", codes: &[InvalidUsageAllocations, InvalidTag], value: "1..2500 allocations summing to the quantity, unique tag sets, ≤ 5 tags", source: "A1, A6" },
    RuleDoc { id: "aws.month_end", codes: &[MonthEndCutoff, TimestampOutOfBounds], value: "previous month's usage until 06:00 UTC on day 1 (24 h profile); Clazar advises 00:00 UTC", source: "A1; seeds (Clazar)" },
    RuleDoc { id: "aws.batch", codes: &[], value: "at most 25 records per BatchMeterUsage call, under 1 MB, one product per call; one record's modelled exception refuses the whole call (the submitter splits such a call to find the record)", source: "A1, A7" },
    RuleDoc { id: "aws.rate", codes: &[], value: "10 BatchMeterUsage calls per second per account and region; only UnprocessedRecords, throttling and internal errors are retried", source: "A5, A1" },
    RuleDoc { id: "aws.heartbeat", codes: &[], value: "quantity 0 for each hour without usage (metergate heartbeat)", source: "A4; seeds (Tackle)" },
    RuleDoc { id: "azure.lookback", codes: &[TimestampOutOfBounds], value: "effectiveStartTime (the record's hour) at most 24 hours before now", source: "M1, M3" },
    RuleDoc { id: "azure.future", codes: &[TimestampOutOfBounds], value: "no effectiveStartTime after now", source: "M5" },
    RuleDoc { id: "azure.quantity", codes: &[InvalidQuantity], value: "a decimal above zero", source: "M1, M4" },
    RuleDoc { id: "azure.dedup", codes: &[DuplicateRequest], value: "one event per resource + dimension + hour; the first wins", source: "M2, M3" },
    RuleDoc { id: "azure.entitlement", codes: &[CustomerNotEntitled], value: "the subscription is Subscribed", source: "M1, M3" },
    RuleDoc { id: "azure.post_cancel", codes: &[TimestampOutOfBounds], value: "after cancellation, usage dated before it, inside the 24-hour look-back", source: "M3; seeds (Tackle)" },
    RuleDoc { id: "azure.dimension", codes: &[InvalidUsageDimension, InvalidRecord], value: "a dimension of the purchased plan; planId is the plan bought", source: "M1" },
    RuleDoc { id: "azure.identity", codes: &[InvalidCustomerIdentifier], value: "resourceId (uuid) XOR resourceUri", source: "M4" },
    RuleDoc { id: "azure.batch", codes: &[], value: "1..25 events per batchUsageEvent call", source: "M1, M4, M6" },
    RuleDoc { id: "azure.errors", codes: &[], value: "Accepted; Duplicate (the original stands); Expired, ResourceNotFound, ResourceNotAuthorized, ResourceNotActive, InvalidDimension, InvalidQuantity, BadArgument are final; 5xx retried; 403: the token's app did not publish the offer", source: "M1, M3, M4, M9" },
    RuleDoc { id: "azure.auth", codes: &[], value: "an Entra ID client-credentials token for the metering API's resource", source: "M4, M7" },
    RuleDoc { id: "gcp.interval", codes: &[TimestampOutOfBounds], value: "start_time strictly before end_time", source: "seeds (Tackle)" },
    RuleDoc { id: "gcp.future", codes: &[TimestampOutOfBounds], value: "end_time at most 5 minutes after now", source: "seeds (Tackle)" },
    RuleDoc { id: "gcp.lateness", codes: &[LateReport], value: "report within 1 hour of the usage's end", source: "G2" },
    RuleDoc { id: "gcp.post_cancel", codes: &[TimestampOutOfBounds, CustomerNotEntitled], value: "usage dated before cancellation, sent within 1 hour of it", source: "seeds (Tackle); G2" },
    RuleDoc { id: "gcp.consumer", codes: &[InvalidCustomerIdentifier], value: "consumerId is the entitlement's usageReportingId", source: "G1, G9" },
    RuleDoc { id: "gcp.metric", codes: &[InvalidUsageDimension, InvalidQuantity], value: "metric <service>/<metric>; int64 vs double as declared", source: "G1, G4" },
    RuleDoc { id: "gcp.dedup", codes: &[DuplicateIgnored, DuplicateRequest], value: "operations deduplicated by operationId (derived from the interval)", source: "G4, G6" },
    RuleDoc { id: "gcp.overlap", codes: &[OverlappingInterval], value: "intervals for one consumer and metric should chain", source: "G1" },
    RuleDoc { id: "gcp.check", codes: &[CustomerNotEntitled], value: "an active entitlement (services.check passes)", source: "G1, G6" },
    RuleDoc { id: "gcp.month_end", codes: &[MonthEndCutoff], value: "report by 01:00 US Pacific on day 1 of the next month", source: "G2" },
    RuleDoc { id: "gcp.request", codes: &[], value: "a report under 1 MB; a failed call is resent with the same operationIds; HTTP 200 with reportErrors is a partial failure", source: "G4, G5" },
    RuleDoc { id: "all.hourly", codes: &[DuplicateRequest], value: "one record per customer + dimension + hour; aggregate finer usage first (metergate aggregate)", source: "A4, M2" },
    RuleDoc { id: "all.final", codes: &[], value: "submissions are final: a wrong quantity is settled with the marketplace, never with a negative record", source: "seeds (Tackle)" },
    RuleDoc { id: "window", codes: &[WindowClosing], value: "valid now, but the deadline is within the warning margin (30m)", source: "derived from the look-back and post-cancel rules" },
    RuleDoc { id: "policy", codes: &[PolicyFailed], value: "a seller policy could not run for this record", source: "metergate sandbox" },
];

fn texts(code: Code) -> (&'static str, &'static str) {
    match code {
        InvalidRecord => ("A required field is missing, empty, or of the wrong form (not RFC 3339, unknown marketplace, ...).", "Fix the field the finding names; the hint shows the expected form."),
        InvalidQuantity => ("The quantity is not a number, negative, fractional where integers are needed, out of range, zero where refused, or not a whole multiple of the unit.", "Send the nearest valid quantity the hint gives and carry the remainder into the next hour."),
        TimestampOutOfBounds => ("A time is too old, in the future, before the contract's start, or at/after its cancellation.", "Send within the window; the hint gives the earliest allowed start or the latest allowed end."),
        CustomerNotEntitled => ("No usable contract: unknown customer, pending or suspended, not yet started, or the post-cancellation window has closed.", "Check the customer and product against the marketplace's subscriptions; usage after the window closes must be settled directly."),
        InvalidUsageDimension => ("The dimension is not one of the contract's (or the plan is not the one bought).", "Use the dimension id exactly as published; the hint names the closest match."),
        DuplicateRequest => ("The same customer + dimension + hour (Google: interval) was already accepted; the marketplace keeps the first.", "Aggregate the hour into one record (metergate aggregate) or carry the difference into the next hour."),
        InvalidUsageAllocations => ("AWS allocations: count, sum or tag-set uniqueness broken.", "Make the allocations sum to the quantity with unique tag sets, 1..2500 of them."),
        InvalidTag => ("An AWS allocation tag breaks length or character rules, or there are more than 5.", "Keys 1..100, values 1..256 characters of letters, digits, space and + - = . _ : / @."),
        InvalidCustomerIdentifier => ("The contract's marketplace identity is malformed, or two exclusive ones are set.", "Give exactly one identity of the right form in the contract."),
        InvalidLicense => ("The AWS LicenseArn is malformed or missing beside CustomerAWSAccountId.", "Use the LicenseArn that ResolveCustomer returned."),
        InvalidProductCode => ("The product identifier breaks the marketplace's length or pattern.", "Use the product code from the listing."),
        PolicyFailed => ("A seller policy could not run for this record: a script error or a sandbox limit.", "Fix the policy; the message names it and the limit."),
        DuplicateIgnored => ("An idempotent repeat: same key, same quantity; billed once.", "Drop the repeat."),
        LateReport => ("Google: reported more than 1 hour after the usage ended.", "Report as usage happens, at least hourly."),
        OverlappingInterval => ("Google: the interval overlaps another for the same consumer and metric.", "Chain intervals: each starts where the previous ended."),
        WindowClosing => ("Valid now, but it will be out of bounds within the warning margin.", "Send it now; the hint gives the deadline."),
        MonthEndCutoff => ("The usage's month has closed for invoicing, or is about to.", "Send before the cutoff, or expect it on the next invoice."),
    }
}

/// Explains a built-in code; `None` for codes metergate does not define (policy codes).
pub fn explain(code: &str) -> Option<Explanation> {
    let c = Code::parse(code)?;
    let (meaning, fix) = texts(c);
    Some(Explanation {
        code: c.as_str(),
        severity: c.severity(),
        meaning,
        fix,
        rules: RULES
            .iter()
            .filter(|r| r.codes.contains(&c))
            .copied()
            .collect(),
    })
}
