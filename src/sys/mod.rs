//! Effects: reading the rules from disk, starting the one process, writing to syslog.

pub mod exec;
pub mod load;
pub mod syslog;
