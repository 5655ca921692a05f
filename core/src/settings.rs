//! Settings that change how rules judge, and the parameters handed to policies.

use std::collections::BTreeMap;
use std::fmt;

use chrono::Duration;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The AWS look-back profile.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AwsLookback {
    /// 6 hours (seller guide, Tackle): the default.
    #[default]
    #[serde(rename = "6h")]
    SixHours,
    /// 24 hours plus the month-end grace until 06:00 UTC on day 1 (newest SDK model).
    #[serde(rename = "24h")]
    TwentyFourHours,
}

/// AWS settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AwsSettings {
    /// Which look-back profile to apply.
    pub lookback: AwsLookback,
}

/// A duration written as `30m`, `2h`, `90s` or `1d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span(pub Duration);

impl Span {
    /// Parses `<digits><s|m|h|d>`.
    pub fn parse(s: &str) -> Option<Span> {
        // Split off the last character (not byte: `5é` must not panic).
        let last = s.char_indices().next_back()?.0;
        let (num, unit) = s.split_at(last);
        let n: i64 = num.parse().ok().filter(|n| *n >= 0 && *n <= 366 * 86_400)?;
        let secs = match unit {
            "s" => n,
            "m" => n * 60,
            "h" => n * 3600,
            "d" => n * 86_400,
            _ => return None,
        };
        Some(Span(Duration::seconds(secs)))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.num_seconds();
        if s % 3600 == 0 {
            write!(f, "{}h", s / 3600)
        } else if s % 60 == 0 {
            write!(f, "{}m", s / 60)
        } else {
            write!(f, "{s}s")
        }
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Span::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format_args!("{s:?} is not a duration like 30m, 2h or 90s"))
        })
    }
}

/// Everything that tunes the verdict. The defaults follow the rules reference, `docs/RULES.md`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// AWS options.
    pub aws: AwsSettings,
    /// How long before a deadline `window-closing` and `month-end-cutoff` warn. Default `30m`.
    pub warning_margin: Span,
    /// Parameters for each policy, by policy name (its file stem).
    pub params: BTreeMap<String, serde_json::Value>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            aws: AwsSettings::default(),
            warning_margin: Span(Duration::minutes(30)),
            params: BTreeMap::new(),
        }
    }
}

impl Settings {
    /// Reads settings from JSON (the wasm `settings` option, the CLI's converted TOML).
    pub fn from_json_value(v: serde_json::Value) -> Result<Settings, String> {
        serde_path_to_error::deserialize(v).map_err(|e| format!("{}: {}", e.path(), e.inner()))
    }
}
