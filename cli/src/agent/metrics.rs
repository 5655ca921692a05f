//! Counters for `GET /metrics`. The Prometheus exposition is not built yet: the route answers
//! 501 "not yet" (see [`super::http`]) until it lands.

/// The agent's counters (empty until `/metrics` lands).
#[derive(Debug, Default)]
pub struct Counters {}
