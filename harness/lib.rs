//! mailharness: an end-to-end delivery test harness for mail into Microsoft 365 tenants.
//!
//! Data flows one way: scenario → plan → attempts → observations → analysis → reports.

pub mod analysis;
pub mod connector;
pub mod dns;
pub mod endpoint;
pub mod observe;
pub mod ops;
pub mod record;
pub mod reply;
pub mod report;
pub mod run;
pub mod scenario;
pub mod send;
pub mod signal;
pub mod sim;
pub mod stats;
pub mod text;
mod trust;
pub mod vocab;
pub mod wire;
