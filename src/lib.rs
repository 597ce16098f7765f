//! agent-gate: a restricted SSH forced-command gateway for AI agents.
//!
//! The path of one request, top down:
//! - `invocation`: the only reader of argv and the SSH_* environment;
//! - `cmd`: the command layer (forced mode, explain/check/list, render, the deploy step, the
//!   operator's commands): the only code that prints and chooses exit codes;
//! - `sys::load` and `rules`: the rules read from disk, compiled by `policy`, and checked
//!   against their own examples;
//! - `tokenize`: the command string split with no shell;
//! - `decide`: the pure decision, through the checkers `docker`, `programs` (with `grammar`
//!   and the one option scanner `optscan`), `deploy::gateway` and `sudoers`, which all return
//!   the types of `verdict`; a decision that allows carries a `plan`;
//! - `audit`: the record of the decision, written by `sys::syslog`;
//! - `sys::exec`: the only place that starts a process.
//!
//! Deploy approval has three sides (see `deploy`). `render` makes the installation pieces.
//! Nothing under the pure core reads the environment, the clock or the disk; `sys` holds the
//! effects.

pub mod audit;
pub mod cli;
pub mod cmd;
pub mod decide;
pub mod deploy;
pub mod digest;
pub mod docker;
pub mod escape;
pub mod facts;
pub mod grammar;
pub mod invocation;
pub mod list;
pub mod optscan;
pub mod plan;
pub mod policy;
pub mod programs;
pub mod redact;
pub mod render;
pub mod rules;
pub mod sshkey;
pub mod sudoers;
pub mod sys;
pub mod tokenize;
pub mod verdict;
