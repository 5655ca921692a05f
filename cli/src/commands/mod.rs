//! The subcommands.

pub mod aggregate;
pub mod check;
pub mod contracts;
pub mod deadlines;
pub mod explain;
pub mod heartbeat;
pub mod import;
pub mod ledger;
pub mod resume;
pub mod serve;
pub mod submit;
