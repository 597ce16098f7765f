//! Deploys that a human approves, in three sides:
//! - `gateway`: the agent's side. `decide` classifies `nh os switch` as `ask`, and the gateway
//!   starts the root-side step through sudo instead of the deploy;
//! - the root-side step (`cmd::deploy_step`, `agent-gate deploy-step`): reads the rules itself,
//!   binds the deploy to the flake on disk (`sys::flake`), files or joins a request in the
//!   root-owned store (`sys::store`), waits for the decision and runs the deploy once;
//! - the operator (`cmd::operator`): `pending`, `approve ID`, `deny ID` as root.
//!
//! `request` is the record all three read: its states, its digest and its checksum.

pub mod gateway;
pub mod request;

use crate::plan::ExecPlan;
use crate::policy::Policy;

/// The two deploy commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Nh,
    NixosRebuild,
}

impl Form {
    pub const ALL: [Form; 2] = [Form::Nh, Form::NixosRebuild];

    /// The word for it on the approval step's command line and in records.
    pub fn word(self) -> &'static str {
        match self {
            Form::Nh => "nh",
            Form::NixosRebuild => "nixos-rebuild",
        }
    }

    pub fn from_word(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.word() == word)
    }
}

/// What runs as root for this form of deploy, when the rules configure it. nh refuses to run
/// as root unless told it is meant (`--bypass-root-check`); as root it needs no sudo of its own.
pub fn root_plan(policy: &Policy, form: Form) -> Option<ExecPlan> {
    let deploy = policy.deploy.as_ref()?;
    let flake = deploy.flake.clone();
    let (program, args) = match form {
        Form::Nh => (
            deploy.nh.as_ref()?,
            vec![
                "os".into(),
                "switch".into(),
                "--bypass-root-check".into(),
                flake,
            ],
        ),
        Form::NixosRebuild => (
            deploy.nixos_rebuild.as_ref()?,
            vec!["switch".into(), "--flake".into(), flake],
        ),
    };
    let env = [("HOME".to_string(), "/root".to_string())];
    Some(ExecPlan::new(
        &policy.defaults,
        None,
        program,
        args,
        &env,
        deploy.timeout,
    ))
}

/// Who asked, as the gateway saw it: passed to the approval step for its records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Asker {
    pub key: String,
    pub client: Option<std::net::IpAddr>,
    pub fingerprint: Option<String>,
}
