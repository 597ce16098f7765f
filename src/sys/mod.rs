//! Effects: reading the rules from disk, starting the one process, writing to syslog, the
//! approval store and the flake's state on disk.

pub mod exec;
pub mod flake;
pub mod load;
pub mod store;
pub mod syslog;
