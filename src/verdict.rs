//! The verdict types every checker returns and `decide` turns into one `Decision`: a leaf
//! module that imports nothing of the checkers, so the docker grammar, the declared programs
//! and the deploy forms all depend on it and never on each other through it.

use crate::facts::Needs;
use crate::plan::ExecPlan;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Allow,
    Ask,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// The command could not be split (exit 64).
    Syntax,
    /// An empty command: a login attempt.
    Login,
    /// The key label or client address does not fit the rules.
    Identity,
    /// No rule accepts the command.
    Policy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Allow(ExecPlan),
    Ask(ExecPlan),
    /// The agent sent `help`: answer with the `list` text, run nothing.
    Help,
    /// The agent sent `mcp`: serve an MCP session, each call decided on its own.
    Mcp,
    Refuse(RefusalKind),
}

/// The decision, carrying the rule and the reason, so that the audit record and the agent's
/// message come from the same value.
#[must_use]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub outcome: Outcome,
    /// The rule that decided (`docker run`, `iptables-list`, `deploy`), or `-`.
    pub rule: String,
    pub reason: String,
    /// What the agent may do instead, where something fits.
    pub hint: Option<String>,
    /// The words of the command, when it could be split.
    pub argv: Vec<String>,
    /// Facts from the engine an allow rests on; the edge gathers them and decides again.
    pub needs: Needs,
    /// What an allowed command will do (`image`, `mounts`, ...), for the audit record.
    pub details: Vec<(&'static str, String)>,
}

impl Decision {
    pub fn decision_word(&self) -> &'static str {
        match self.outcome {
            Outcome::Allow(_) | Outcome::Help | Outcome::Mcp => "allow",
            Outcome::Ask(_) => "ask",
            Outcome::Refuse(_) => "refuse",
        }
    }

    pub fn plan(&self) -> Option<&ExecPlan> {
        match &self.outcome {
            Outcome::Allow(plan) | Outcome::Ask(plan) => Some(plan),
            Outcome::Help | Outcome::Mcp | Outcome::Refuse(_) => None,
        }
    }
}

/// A refusal from one of the checkers, before it becomes a `Decision`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub rule: String,
    pub reason: String,
    pub hint: Option<String>,
}

impl Refusal {
    pub fn new(rule: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            rule: rule.into(),
            reason: reason.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// A command a rule accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// The rule as shown in decisions (`docker run`).
    pub rule: String,
    /// The rule id a key's `may` must list (`docker`).
    pub permission: String,
    pub tier: Tier,
    pub plan: ExecPlan,
    /// Facts from the engine this decision rests on (empty: the string says it all).
    pub needs: Needs,
    /// What the command will do, in the fields an auditor reads first (`image`, `mounts`,
    /// ...): the audit record puts them before anything long the agent wrote.
    pub details: Vec<(&'static str, String)>,
}

impl Classified {
    pub fn new(
        rule: impl Into<String>,
        permission: impl Into<String>,
        tier: Tier,
        plan: ExecPlan,
    ) -> Self {
        Self {
            rule: rule.into(),
            permission: permission.into(),
            tier,
            plan,
            needs: Needs::default(),
            details: Vec::new(),
        }
    }

    pub fn with_details(mut self, details: Vec<(&'static str, String)>) -> Self {
        self.details = details;
        self
    }

    pub fn with_needs(mut self, needs: Needs) -> Self {
        self.needs = needs;
        self
    }
}

/// The hint of refusals that have no closer allowed form.
pub const HELP_HINT: &str = "send `help` to see what this key may run";
