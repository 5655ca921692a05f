//! `metergate serve`: the always-on metering agent (issue #18).

pub mod heartbeat;
pub mod hourly;
pub mod scheduler;
