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
    root_plan_at(policy, form, policy.deploy.as_ref()?.flake.clone())
}

/// `root_plan`, reading the flake at `flake`: the step's private copy of the approved tree.
pub fn root_plan_at(policy: &Policy, form: Form, flake: String) -> Option<ExecPlan> {
    let deploy = policy.deploy.as_ref()?;
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

/// An operator command as printed for a person to run (to the agent, in the notify JSON, by
/// `pending`): `agent-gate WORDS...`, then `--rules PATH` when the rules are not at the
/// default path the operator commands assume, then `tail` (a placeholder such as
/// `--reason ...`). Every word is quoted for a shell where it needs it, so the command works
/// as printed.
pub fn operator_command(rules: &std::path::Path, words: &[&str], tail: &str) -> String {
    let mut argv: Vec<String> = std::iter::once("agent-gate")
        .chain(words.iter().copied())
        .map(String::from)
        .collect();
    if rules != std::path::Path::new(crate::policy::DEFAULT_RULES) {
        argv.push("--rules".to_string());
        argv.push(rules.to_string_lossy().into_owned());
    }
    let mut line = request::command_line(&argv);
    if !tail.is_empty() {
        line.push(' ');
        line.push_str(tail);
    }
    line
}

/// Who asked, as the gateway saw it: passed to the approval step for its records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Asker {
    pub key: String,
    pub client: Option<std::net::IpAddr>,
    pub fingerprint: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::operator_command;
    use std::path::Path;

    #[test]
    fn printed_operator_commands_name_the_rules_unless_they_are_the_default() {
        let default = Path::new(crate::policy::DEFAULT_RULES);
        assert_eq!(
            operator_command(default, &["approve", "0a1b2c3d"], ""),
            "agent-gate approve 0a1b2c3d"
        );
        assert_eq!(
            operator_command(
                Path::new("/srv/gate/rules.yaml"),
                &["deny", "0a1b2c3d"],
                "--reason ..."
            ),
            "agent-gate deny 0a1b2c3d --rules /srv/gate/rules.yaml --reason ..."
        );
        assert_eq!(
            operator_command(Path::new("/srv/my gate/it's.yaml"), &["pending"], ""),
            r"agent-gate pending --rules '/srv/my gate/it'\''s.yaml'"
        );
    }
}
