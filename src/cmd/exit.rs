//! Every exit code the gateway chooses, in one place (the child's own status passes through).

/// A command that could not be tokenized.
pub const EXIT_SYNTAX: i32 = 64;
/// Waiting for a human's approval (a deploy), or not decided in time.
pub const EXIT_ASK: i32 = 75;
/// Refused: nothing ran.
pub const EXIT_REFUSED: i32 = 77;
/// The configuration is broken: everything is refused.
pub const EXIT_CONFIG: i32 = 78;
/// The approved program could not be started.
pub const EXIT_NOT_STARTED: i32 = 126;
/// A command ended by signal N exits with this plus N, as a shell reports it.
pub const EXIT_SIGNALLED: i32 = 128;
