//! Effects: reading the rules from disk, starting processes (the only place that does),
//! writing to syslog, the approval store, the flake's state on disk, and the host's facts
//! (clock, host name, sudo user), and the walk that every trusted path passes first.

pub mod engine;
pub mod exec;
pub mod flake;
pub mod host;
pub mod load;
pub mod slots;
pub mod store;
pub mod syslog;
pub mod walk;
