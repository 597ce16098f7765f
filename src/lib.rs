//! agent-gate: a restricted SSH forced-command gateway for AI agents.
//!
//! The pure core (`tokenize`, `grammar`, `docker`, `policy`, `decide`, `audit`) reads no
//! environment, clock or disk; `sys` holds the effects and `app` wires them together.

pub mod app;
pub mod approval;
pub mod audit;
pub mod cli;
pub mod decide;
pub mod deploy;
pub mod deploy_step;
pub mod digest;
pub mod docker;
pub mod escape;
pub mod grammar;
pub mod invocation;
pub mod list;
pub mod operator;
pub mod plan;
pub mod policy;
pub mod render;
pub mod sshkey;
pub mod sys;
pub mod tokenize;
