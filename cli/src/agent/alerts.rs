//! Alerts (`[alerts] webhook`). Not built yet: [`Alerter`] delivers nothing, and the agent
//! logs a warning at start when the config asks for a webhook.

/// Alert delivery (not yet built; see the module docs).
#[derive(Debug, Default)]
pub struct Alerter {}

impl Alerter {
    /// From the raw config; warns when `[alerts]` is set, since nothing is delivered yet.
    pub fn new(config: &serde_json::Value) -> Alerter {
        if config.get("alerts").is_some() {
            tracing::warn!("[alerts] is configured, but alert delivery is not built yet: no alert will be sent");
        }
        Alerter {}
    }
}
