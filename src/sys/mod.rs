//! Effects: reading the rules from disk, starting processes (the only place that does),
//! writing to syslog, the approval store, the flake's state on disk, and the host's facts
//! (clock, host name, sudo user).

pub mod engine;
pub mod exec;
pub mod flake;
pub mod host;
pub mod load;
pub mod slots;
pub mod store;
pub mod syslog;
