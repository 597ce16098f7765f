//! Every exit code the gateway chooses, in one place (the child's own status passes through),
//! and the table the man page's EXIT STATUS is made from (`STATUSES`), beside them so that
//! they cannot drift apart.

/// A command that could not be tokenized.
pub const EXIT_SYNTAX: i32 = 64;
/// Waiting for a human's approval (a deploy), or not decided in time.
pub const EXIT_ASK: i32 = 75;
/// Refused: nothing ran.
pub const EXIT_REFUSED: i32 = 77;
/// The configuration is broken: everything is refused.
pub const EXIT_CONFIG: i32 = 78;
/// The approved program ran past its rule's timeout; its process group was ended
/// (`sys::exec`'s `Finished::exit_code`, held to this value by a test below).
pub const EXIT_TIMED_OUT: i32 = 124;
/// The approved program could not be started.
pub const EXIT_NOT_STARTED: i32 = 126;
/// A command ended by signal N exits with this plus N, as a shell reports it.
pub const EXIT_SIGNALLED: i32 = 128;

/// One row of the man page's EXIT STATUS.
pub enum Status {
    /// The command ran: its own status.
    Child,
    /// A status the gateway chooses.
    Code(i32),
    /// `EXIT_SIGNALLED` plus a signal number.
    Signalled,
}

/// What each status means, in the order the man page lists them.
pub const STATUSES: &[(Status, &str)] = &[
    (
        Status::Child,
        "Forced mode, login-shell mode (-c): the command ran, and this is its own exit status.",
    ),
    (
        Status::Code(0),
        "The command ran and exited 0; check: the rules are valid and every example holds; \
         explain, list, render, generate, pending, approve, deny: done.",
    ),
    (
        Status::Code(EXIT_SYNTAX),
        "The command could not be tokenized (unquoted shell syntax, control or invisible \
         characters, more than 4096 bytes or 128 words). Nothing ran.",
    ),
    (
        Status::Code(EXIT_ASK),
        "A deploy waits for a human's approval (or its request expired); the message names the \
         request id. Send the same command again to wait again or, once approved, to run it.",
    ),
    (
        Status::Code(EXIT_REFUSED),
        "Refused: no rule accepts the command, the key or client is not the label's, the audit \
         record could not be written, or the deploy was denied. Nothing ran. The operator's \
         commands: not allowed here (not root, or no such request).",
    ),
    (
        Status::Code(EXIT_CONFIG),
        "Bad configuration: the rules file is invalid or not safely owned (check prints \
         FILE:LINE:COL: message), or the command line is wrong. Everything is refused.",
    ),
    (
        Status::Code(EXIT_TIMED_OUT),
        "The command ran past its rule's timeout; its process group was ended.",
    ),
    (
        Status::Code(EXIT_NOT_STARTED),
        "The approved program could not be started (missing, not executable).",
    ),
    (
        Status::Signalled,
        "The command was ended by signal N: 129 or 143 when the gateway was sent SIGHUP or \
         SIGTERM, 141 (SIGPIPE) when the client went away, 153 (SIGXFSZ) when its output \
         passed 64 MiB.",
    ),
];

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use nix::sys::signal::Signal;

    use super::*;
    use crate::sys::exec::{Ending, Finished};

    /// The codes the executor computes are the ones the table documents.
    #[test]
    fn the_executor_ends_with_the_documented_codes() {
        let code = |ending| {
            Finished {
                ending,
                duration: Duration::ZERO,
                child: None,
            }
            .exit_code()
        };
        assert_eq!(code(Ending::TimedOut), EXIT_TIMED_OUT);
        assert_eq!(code(Ending::ClientGone), 141);
        assert_eq!(code(Ending::OutputCapped), 153);
        assert_eq!(code(Ending::Signalled(15)), EXIT_SIGNALLED + 15);
        assert_eq!(code(Ending::Stopped(Signal::SIGHUP)), 129);
        assert_eq!(code(Ending::Stopped(Signal::SIGTERM)), 143);
        assert_eq!(code(Ending::Exited(3)), 3);
    }
}
