//! The rules reference, `docs/RULES.md`, generated from the core's own tables.
//!
//! Nothing in the reference is written twice: the finding codes come from [`Code::ALL`] and
//! [`crate::explain`], the rules from [`crate::explain::RULES`], the settings' defaults from
//! [`Settings::default`], and the constants (name, value, meaning, source, rule) from the
//! named-constant tables themselves, read from their source text at compile time
//! (`core/src/rules/{aws,azure,gcp,mod}.rs`, the input limits of `parse.rs`, the policy
//! sandbox limits of `policy/mod.rs`). A constant added or changed there shows up in the
//! reference with its doc comment. Source ids (`A1`, `M3`, `G2`, `seeds`) resolve to public
//! URLs in [`SOURCES`].
//!
//! `core/tests/reference.rs` fails when `docs/RULES.md` and [`rules_markdown`] disagree;
//! `METERGATE_BLESS=1 cargo test -p metergate-core --test reference` rewrites the file.

use std::fmt::Write as _;

use crate::explain::{explain, RULES};
use crate::finding::Code;
use crate::settings::Settings;

/// One public source behind the rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Source {
    /// The id the constants' doc comments and the rules use (`A1`, `M3`, `seeds`, ...).
    pub id: &'static str,
    /// What it is.
    pub title: &'static str,
    /// Where to read it.
    pub urls: &'static [&'static str],
}

/// Every source the rules cite.
pub const SOURCES: &[Source] = &[
    Source { id: "A1", title: "AWS SDK model `marketplace-metering.json` (aws-sdk-js-v3; the newest model: LicenseArn, the 24 h text, the BatchMeterUsage exceptions)", urls: &["https://github.com/aws/aws-sdk-js-v3/blob/main/codegen/sdk-codegen/aws-models/marketplace-metering.json"] },
    Source { id: "A2", title: "AWS API models (aws/api-models-aws, marketplace-metering)", urls: &["https://github.com/aws/api-models-aws/tree/main/models/marketplace-metering"] },
    Source { id: "A3", title: "botocore `meteringmarketplace` service-2.json (older model)", urls: &["https://github.com/boto/botocore/blob/develop/botocore/data/meteringmarketplace/2016-01-14/service-2.json"] },
    Source { id: "A4", title: "AWS Marketplace seller guide: metering for usage, SaaS subscriptions and contracts", urls: &["https://docs.aws.amazon.com/marketplace/latest/userguide/metering-for-usage.html", "https://docs.aws.amazon.com/marketplace/latest/userguide/saas-metering.html", "https://github.com/awsdocs/aws-marketplace-user-guide-for-sellers"] },
    Source { id: "A5", title: "AWS Marketplace Metering Service endpoints and quotas", urls: &["https://docs.aws.amazon.com/general/latest/gr/aws-marketplace.html"] },
    Source { id: "A6", title: "AWS API change log for metering.marketplace", urls: &["https://awsapichanges.com/archive/service/metering.marketplace.html"] },
    Source { id: "A7", title: "AWS agent toolkit `aws-marketplace-metering` skill (Concurrent Agreements dedup key, whole-call errors)", urls: &["https://github.com/aws/agent-toolkit-for-aws"] },
    Source { id: "M1", title: "Microsoft marketplace metering service API", urls: &["https://learn.microsoft.com/partner-center/marketplace-offers/marketplace-metering-service-apis", "https://github.com/MicrosoftDocs/azure-docs/blob/main/articles/marketplace/marketplace-metering-service-apis.md"] },
    Source { id: "M2", title: "Microsoft marketplace metering service API, Partner Center version", urls: &["https://learn.microsoft.com/partner-center/marketplace-offers/marketplace-metering-service-apis"] },
    Source { id: "M3", title: "Microsoft marketplace metering service FAQ", urls: &["https://learn.microsoft.com/partner-center/marketplace-offers/marketplace-metering-service-apis-faq"] },
    Source { id: "M4", title: "Microsoft metering OpenAPI description `meteringapi.v1.json` (2018-08-31)", urls: &["https://github.com/microsoft/commercial-marketplace-openapi/blob/main/Microsoft.Marketplace.Metering/2018-08-31/meteringapi.v1.json"] },
    Source { id: "M5", title: "microsoft/metered-billing-accelerator", urls: &["https://github.com/microsoft/metered-billing-accelerator"] },
    Source { id: "M6", title: "azure-docs issue 41420 (more than 25 events in a batch)", urls: &["https://github.com/MicrosoftDocs/azure-docs/issues/41420"] },
    Source { id: "M7", title: "Microsoft marketplace metering service authentication", urls: &["https://learn.microsoft.com/partner-center/marketplace-offers/marketplace-metering-service-authentication"] },
    Source { id: "M8", title: "Microsoft SaaS fulfillment API v2 OpenAPI description `saasapi.v2.json`", urls: &["https://github.com/microsoft/commercial-marketplace-openapi/blob/main/Microsoft.Marketplace.SaaS/2018-08-31/saasapi.v2.json"] },
    Source { id: "M9", title: "SaaS Accelerator issues 103 and 775 (the 403 text)", urls: &["https://github.com/Azure/Commercial-Marketplace-SaaS-Accelerator/issues/103", "https://github.com/Azure/Commercial-Marketplace-SaaS-Accelerator/issues/775"] },
    Source { id: "G1", title: "Google Cloud Marketplace: configure usage reporting", urls: &["https://cloud.google.com/marketplace/docs/partners/integrated-saas/configure-usage-reports"] },
    Source { id: "G2", title: "Google Cloud Marketplace: best practices for usage reporting", urls: &["https://cloud.google.com/marketplace/docs/partners/integrated-saas/best-practices-reporting"] },
    Source { id: "G4", title: "googleapis `google/api/servicecontrol/v1` protos", urls: &["https://github.com/googleapis/googleapis/tree/master/google/api/servicecontrol/v1"] },
    Source { id: "G5", title: "Service Control v1 discovery document", urls: &["https://servicecontrol.googleapis.com/$discovery/rest?version=v1"] },
    Source { id: "G6", title: "GoogleCloudPlatform/ubbagent (usage-based billing agent)", urls: &["https://github.com/GoogleCloudPlatform/ubbagent"] },
    Source { id: "G9", title: "Service Control `Operation.consumer_id` formats (operation.proto)", urls: &["https://github.com/googleapis/googleapis/blob/master/google/api/servicecontrol/v1/operation.proto"] },
    Source { id: "G10", title: "Cloud Commerce Partner Procurement API v1 discovery document", urls: &["https://github.com/googleapis/google-api-go-client/blob/main/cloudcommerceprocurement/v1/cloudcommerceprocurement-v1-api.json"] },
    Source { id: "seeds", title: "the marketplace-integration help pages this project started from (Tackle, Clazar, Labra)", urls: &["https://help.tackle.io/en/articles/14060088-submit-usage-metering-to-aws", "https://help.tackle.io/en/articles/10534915-metering-your-customer-s-usage-with-tackle", "https://help.clazar.io/articles/8346320981-how-to-submit-and-view-metering-records-in-clazar", "https://docs.labra.io/docs/usage-metering"] },
];

/// A named constant of one of the core's tables, as its source declares it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Constant {
    /// The table: `aws`, `azure`, `gcp`, `rules`, `parse` or `policy`.
    pub table: &'static str,
    /// The constant's name.
    pub name: String,
    /// Its value: the evaluated number for integer expressions (with the duration for
    /// `*_SECS`), else the expression as written.
    pub value: String,
    /// Its doc comment, on one line (meaning, source ids, rule id).
    pub doc: String,
    /// The rule id its doc names (`` Rule `aws.lookback` ``), if any.
    pub rule: Option<String>,
}

/// The constant tables and their source text, in reference order.
const TABLES: [(&str, &str, &str); 6] = [
    ("aws", "core/src/rules/aws.rs", include_str!("rules/aws.rs")),
    (
        "azure",
        "core/src/rules/azure.rs",
        include_str!("rules/azure.rs"),
    ),
    ("gcp", "core/src/rules/gcp.rs", include_str!("rules/gcp.rs")),
    (
        "rules",
        "core/src/rules/mod.rs",
        include_str!("rules/mod.rs"),
    ),
    ("parse", "core/src/parse.rs", include_str!("parse.rs")),
    (
        "policy",
        "core/src/policy/mod.rs",
        include_str!("policy/mod.rs"),
    ),
];

/// Evaluates a product of integer literals (`6 * 3600`, `2_147_483_647`).
fn eval_int(expr: &str) -> Option<i128> {
    expr.split('*').try_fold(1i128, |acc, f| {
        let digits: String = f.trim().chars().filter(|c| *c != '_').collect();
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        acc.checked_mul(digits.parse::<i128>().ok()?)
    })
}

fn duration(secs: i128) -> String {
    if secs % 3600 == 0 {
        format!("{} h", secs / 3600)
    } else if secs % 60 == 0 {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

/// The `Rule `id`` a doc comment names.
fn rule_of(doc: &str) -> Option<String> {
    let rest = doc.split("Rule `").nth(1)?;
    rest.split('`').next().map(str::to_owned)
}

/// Every top-level `pub const` of one table's source text, with its doc comment.
pub fn parse_constants(table: &'static str, text: &str) -> Vec<Constant> {
    let mut out = Vec::new();
    let mut doc: Vec<&str> = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some(d) = line.strip_prefix("///") {
            doc.push(d.trim());
            continue;
        }
        let Some(decl) = line.strip_prefix("pub const ") else {
            doc.clear();
            continue;
        };
        let mut full = decl.trim().to_owned();
        while !full.ends_with(';') {
            let Some(next) = lines.next() else { break };
            full.push(' ');
            full.push_str(next.trim());
        }
        let full = full.trim_end_matches(';');
        let (head, expr) = full.split_once('=').unwrap_or((full, ""));
        let name = head.split(':').next().unwrap_or(head).trim().to_owned();
        let expr = expr
            .trim()
            .replace("[ ", "[")
            .replace(", ]", "]")
            .replace(",]", "]");
        let value = match eval_int(&expr) {
            Some(v) if name.ends_with("_SECS") => format!("{v} ({})", duration(v)),
            Some(v) => v.to_string(),
            None => expr,
        };
        let doc_text = doc.join(" ");
        out.push(Constant {
            table,
            rule: rule_of(&doc_text),
            name,
            value,
            doc: doc_text,
        });
        doc.clear();
    }
    out
}

/// Every constant of every table.
pub fn constants() -> Vec<Constant> {
    TABLES
        .iter()
        .flat_map(|(table, _, text)| parse_constants(table, text))
        .collect()
}

/// Escapes a table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn codes_of(codes: &[Code]) -> String {
    codes
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Flattens the default settings into `key = value` pairs.
fn settings_rows(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                settings_rows(&key, x, out);
            }
        }
        other => out.push((prefix.to_owned(), other.to_string())),
    }
}

/// The whole reference, as Markdown (the content of `docs/RULES.md`).
pub fn rules_markdown() -> String {
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "# metergate rules reference\n");
    let _ = writeln!(
        w,
        "Generated from the core's tables by `core/src/reference.rs`; do not edit by hand. \
         Regenerate with `METERGATE_BLESS=1 cargo test -p metergate-core --test reference` \
         (the test fails while this file and the code disagree).\n"
    );
    let _ = writeln!(
        w,
        "Every rule has an id, a value, the finding codes it reports and the public sources \
         behind it ([Sources](#sources)). Time is UTC everywhere; \"now\" is an argument of \
         the core; the hour of a timestamp is the timestamp truncated to the clock hour.\n"
    );

    // Finding codes.
    let _ = writeln!(w, "## Finding codes\n");
    let _ = writeln!(
        w,
        "Errors make the verdict `rejected`; warnings leave it `accepted`. Sellers' policies \
         add their own codes. `metergate explain CODE` prints the same text.\n"
    );
    let _ = writeln!(w, "| code | severity | meaning | fix | rules |");
    let _ = writeln!(w, "| --- | --- | --- | --- | --- |");
    for code in Code::ALL {
        let Some(e) = explain(code.as_str()) else {
            continue;
        };
        let rules: Vec<String> = e.rules.iter().map(|r| format!("`{}`", r.id)).collect();
        let _ = writeln!(
            w,
            "| `{}` | {} | {} | {} | {} |",
            e.code,
            e.severity.as_str(),
            cell(e.meaning),
            cell(e.fix),
            rules.join(", ")
        );
    }

    // Rules, by marketplace, with the constants that carry their values.
    let consts = constants();
    let _ = writeln!(w, "\n## Rules\n");
    let groups: [(&str, &str); 4] = [
        ("AWS Marketplace (BatchMeterUsage, SaaS)", "aws."),
        (
            "Microsoft commercial marketplace (usageEvent / batchUsageEvent)",
            "azure.",
        ),
        (
            "Google Cloud Marketplace (Service Control services.report)",
            "gcp.",
        ),
        ("Every marketplace", ""),
    ];
    for (title, prefix) in groups {
        let _ = writeln!(w, "### {title}\n");
        let _ = writeln!(w, "| rule id | value | codes | constants | source |");
        let _ = writeln!(w, "| --- | --- | --- | --- | --- |");
        let mine = RULES.iter().filter(|r| {
            if prefix.is_empty() {
                !["aws.", "azure.", "gcp."]
                    .iter()
                    .any(|p| r.id.starts_with(p))
            } else {
                r.id.starts_with(prefix)
            }
        });
        for r in mine {
            let cs: Vec<String> = consts
                .iter()
                .filter(|c| c.rule.as_deref() == Some(r.id))
                .map(|c| format!("`{}::{}` = {}", c.table, c.name, c.value))
                .collect();
            let _ = writeln!(
                w,
                "| `{}` | {} | {} | {} | {} |",
                r.id,
                cell(r.value),
                codes_of(r.codes),
                cell(&cs.join("<br>")),
                cell(r.source)
            );
        }
        let _ = writeln!(w);
    }

    // Constants.
    let _ = writeln!(w, "## Constants\n");
    let _ = writeln!(
        w,
        "Each marketplace has one table of named constants; every value the rules use is one \
         of these. The meaning column is the constant's own documentation, with its source \
         ids.\n"
    );
    for (table, path, text) in TABLES {
        let list = parse_constants(table, text);
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(w, "### `{table}` (`{path}`)\n");
        let _ = writeln!(w, "| constant | value | rule | meaning and source |");
        let _ = writeln!(w, "| --- | --- | --- | --- |");
        for c in list {
            let _ = writeln!(
                w,
                "| `{}` | `{}` | {} | {} |",
                c.name,
                cell(&c.value),
                c.rule.map_or_else(|| "—".to_owned(), |r| format!("`{r}`")),
                cell(&c.doc)
            );
        }
        let _ = writeln!(w);
    }

    // Settings.
    let _ = writeln!(w, "## Settings and their defaults\n");
    let _ = writeln!(
        w,
        "The CLI's `--config` TOML and the npm package's `settings` option. See the README for \
         what each one changes.\n"
    );
    let _ = writeln!(w, "| setting | default |");
    let _ = writeln!(w, "| --- | --- |");
    let mut rows = Vec::new();
    if let Ok(v) = serde_json::to_value(Settings::default()) {
        settings_rows("", &v, &mut rows);
    }
    for (k, v) in rows {
        let _ = writeln!(w, "| `{k}` | `{}` |", cell(&v));
    }

    // Sources.
    let _ = writeln!(w, "\n## Sources\n");
    let _ = writeln!(w, "| id | source | where |");
    let _ = writeln!(w, "| --- | --- | --- |");
    for src in SOURCES {
        let links: Vec<String> = src.urls.iter().map(|u| format!("<{u}>")).collect();
        let _ = writeln!(
            w,
            "| {} | {} | {} |",
            src.id,
            cell(src.title),
            links.join("<br>")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{aws, azure, gcp};

    fn value(table: &str, name: &str) -> String {
        constants()
            .into_iter()
            .find(|c| c.table == table && c.name == name)
            .map(|c| c.value)
            .unwrap_or_else(|| panic!("{table}::{name} is not in the reference"))
    }

    #[test]
    fn values_are_the_constants_values() {
        let secs = |v: i64| v.to_string();
        assert!(value("aws", "LOOKBACK_SECS").starts_with(&secs(aws::LOOKBACK_SECS)));
        assert_eq!(value("aws", "MAX_QUANTITY"), aws::MAX_QUANTITY.to_string());
        assert_eq!(
            value("aws", "MAX_BATCH_RECORDS"),
            aws::MAX_BATCH_RECORDS.to_string()
        );
        assert!(value("azure", "LOOKBACK_SECS").starts_with(&secs(azure::LOOKBACK_SECS)));
        assert_eq!(
            value("azure", "TOKEN_RESOURCE"),
            format!("{:?}", azure::TOKEN_RESOURCE)
        );
        assert!(value("gcp", "MAX_FUTURE_SECS").starts_with(&secs(gcp::MAX_FUTURE_SECS)));
        assert_eq!(
            value("gcp", "MAX_REQUEST_BYTES"),
            gcp::MAX_REQUEST_BYTES.to_string()
        );
        for e in aws::RECORD_EXCEPTIONS {
            assert!(value("aws", "RECORD_EXCEPTIONS").contains(e));
        }
    }

    #[test]
    fn every_rule_and_code_and_source_is_in_the_reference() {
        let md = rules_markdown();
        for r in RULES {
            assert!(md.contains(&format!("| `{}` |", r.id)), "{}", r.id);
        }
        for c in Code::ALL {
            assert!(md.contains(&format!("| `{c}` |")), "{c}");
        }
        // Every source id a rule or constant cites has a URL.
        let mut cited = String::new();
        for r in RULES {
            cited.push_str(r.source);
            cited.push(' ');
        }
        for c in constants() {
            cited.push_str(&c.doc);
            cited.push(' ');
        }
        for id in [
            "A1", "A4", "A5", "A6", "M1", "M3", "M4", "G1", "G2", "G4", "G9",
        ] {
            assert!(cited.contains(id), "{id} is no longer cited");
        }
        for src in SOURCES {
            assert!(!src.urls.is_empty());
            assert!(src.urls.iter().all(|u| u.starts_with("https://")));
        }
        assert!(!md.contains("shared/"));
    }

    #[test]
    fn every_rule_a_constant_names_is_a_rule() {
        for c in constants() {
            if let Some(r) = &c.rule {
                assert!(
                    RULES.iter().any(|d| d.id == r),
                    "{}::{} names rule {r}, which explain::RULES does not list",
                    c.table,
                    c.name
                );
            }
        }
    }

    #[test]
    fn durations_and_rules_are_read_from_the_docs() {
        let c = parse_constants(
            "x",
            "/// One hour. Source: A1. Rule `x.y`.\npub const A_SECS: i64 = 60 * 60;\nfn f() {}\npub const B: [&str; 2] = [\n    \"p\",\n    \"q\",\n];\n",
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].value, "3600 (1 h)");
        assert_eq!(c[0].rule.as_deref(), Some("x.y"));
        assert_eq!(c[1].value, "[\"p\", \"q\"]");
        assert_eq!(c[1].doc, "");
    }
}
