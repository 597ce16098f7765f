//! `decide(&Policy, &Request) -> Decision`: pure and total. No I/O, no clock, no environment.
//!
//! Precedence, the one rule: nothing runs unless a rule accepts the whole command. Among the
//! rules for the program the agent named, the first (in file order) whose grammar accepts
//! every word decides; if none does, the command is refused with the reason of the rule that
//! got furthest. The tokenizer and the built-in limits (docker's never-allowed options, shells,
//! sudo flags) come first and no rule can lift them.

use std::net::IpAddr;

use crate::docker;
use crate::plan::ExecPlan;
use crate::policy::{KeyPolicy, Policy, ProgramRule};
use crate::tokenize::{TokenizeError, tokenize};

/// What the edge knows about one request: plain data, built once.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `SSH_ORIGINAL_COMMAND` exactly as sshd passed it.
    pub raw: &'a str,
    /// The key label from the forced command (`--key hermes`).
    pub key: Option<&'a str>,
    /// The label is the one whose pinned public key authenticated (login-shell mode, or a
    /// forced command without `--key`); a `key` given as well must agree with it.
    pub by_key: bool,
    /// The client address from `SSH_CONNECTION`, when known.
    pub client: Option<IpAddr>,
    /// SHA256 fingerprint of the key that authenticated (sshd's ExposeAuthInfo), when known.
    pub fingerprint: Option<&'a str>,
}

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
}

impl Decision {
    pub fn decision_word(&self) -> &'static str {
        match self.outcome {
            Outcome::Allow(_) | Outcome::Help => "allow",
            Outcome::Ask(_) => "ask",
            Outcome::Refuse(_) => "refuse",
        }
    }

    pub fn plan(&self) -> Option<&ExecPlan> {
        match &self.outcome {
            Outcome::Allow(plan) | Outcome::Ask(plan) => Some(plan),
            Outcome::Help | Outcome::Refuse(_) => None,
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
        }
    }
}

const HELP_HINT: &str = "send `help` to see what this key may run";

pub fn decide(policy: &Policy, request: &Request<'_>) -> Decision {
    let argv = match tokenize(request.raw) {
        Ok(argv) => argv,
        Err(TokenizeError::Empty) => {
            return refused(
                RefusalKind::Login,
                Vec::new(),
                Refusal::new("-", "no login shell: send one command").hint(HELP_HINT),
            );
        }
        Err(e) => {
            return refused(
                RefusalKind::Syntax,
                Vec::new(),
                Refusal::new("tokenize", e.to_string())
                    .hint("send one command, plain words, single-quote anything unusual"),
            );
        }
    };
    let key = match identity(policy, request) {
        Ok((_, key)) => key,
        Err(r) => return refused(RefusalKind::Identity, argv, r),
    };
    if argv.len() == 1 && argv.first().is_some_and(|a| a == "help") {
        return Decision {
            outcome: Outcome::Help,
            rule: "help".to_string(),
            reason: "list what this key may run".to_string(),
            hint: None,
            argv,
        };
    }
    match classify(policy, &argv) {
        Ok(c) if key.may.contains(&c.permission) => Decision {
            reason: match c.tier {
                Tier::Allow => format!("allowed by rule `{}`", c.rule),
                Tier::Ask => "a deploy: a human must approve it".to_string(),
            },
            outcome: match c.tier {
                Tier::Allow => Outcome::Allow(c.plan),
                Tier::Ask => Outcome::Ask(c.plan),
            },
            rule: c.rule,
            hint: None,
            argv,
        },
        Ok(c) => {
            let reason = format!("this key may not use rule `{}`", c.permission);
            refused(
                RefusalKind::Policy,
                argv,
                Refusal::new(c.rule, reason).hint(HELP_HINT),
            )
        }
        Err(r) => refused(RefusalKind::Policy, argv, r),
    }
}

/// The label this request runs under, and its policy: the label given, or the one whose
/// pinned key authenticated; then the key's client networks and pinned key are checked.
pub fn identity<'p>(
    policy: &'p Policy,
    request: &Request<'_>,
) -> Result<(&'p str, &'p KeyPolicy), Refusal> {
    let refuse = |reason: &str| Err(Refusal::new("identity", reason));
    let found = if request.by_key {
        let Some(fp) = request.fingerprint else {
            return refuse(
                "cannot tell which key authenticated (sshd needs `ExposeAuthInfo yes`), and the label comes from it here",
            );
        };
        let Some((label, key)) = policy.label_pinning(fp) else {
            return refuse("no label in the rules pins the key that authenticated");
        };
        if request.key.is_some_and(|given| given != label) {
            return refuse(
                "the forced command names another label than the one of the key that authenticated",
            );
        }
        (label, key)
    } else {
        match request
            .key
            .and_then(|given| policy.keys.get_key_value(given))
        {
            Some((label, key)) => (label.as_str(), key),
            None => return refuse("this key's label is not in the rules; nothing is allowed"),
        }
    };
    let (_, key) = found;
    if !key.from.is_empty()
        && !request
            .client
            .is_some_and(|ip| key.from.iter().any(|n| n.contains(ip)))
    {
        return refuse("this key may not connect from this address");
    }
    if let Some((_, pinned)) = &key.public_key {
        match request.fingerprint {
            Some(fp) if fp == pinned => {}
            Some(_) => {
                return refuse(
                    "the key that authenticated is not the one registered for this label",
                );
            }
            None => {
                return refuse(
                    "cannot tell which key authenticated (sshd needs `ExposeAuthInfo yes`), and this label pins one",
                );
            }
        }
    }
    Ok(found)
}

fn refused(kind: RefusalKind, argv: Vec<String>, r: Refusal) -> Decision {
    Decision {
        outcome: Outcome::Refuse(kind),
        rule: r.rule,
        reason: r.reason,
        hint: r.hint,
        argv,
    }
}

/// Tokenize and classify, for a rule's own examples: which rule, if any, accepts `raw`.
pub fn classify_raw(policy: &Policy, raw: &str) -> Result<Classified, Refusal> {
    let argv = tokenize(raw).map_err(|e| Refusal::new("tokenize", e.to_string()))?;
    classify(policy, &argv)
}

/// Which rule accepts these words, independent of any key.
pub fn classify(policy: &Policy, argv: &[String]) -> Result<Classified, Refusal> {
    let (sudo, rest) = strip_sudo(argv)?;
    let Some((program, args)) = rest.split_first() else {
        return Err(Refusal::new("sudo", "`sudo` needs a command").hint(HELP_HINT));
    };
    if program.contains('=') {
        return Err(Refusal::new(
            "environment",
            format!("`{program}` sets an environment variable: the environment of every command is fixed by the gateway"),
        )
        .hint("send the command without `NAME=value` in front"));
    }
    if program.contains('/') {
        return Err(Refusal::new(
            "program",
            format!("`{program}` is a path: programs are named, never given by path"),
        )
        .hint(HELP_HINT));
    }
    match program.as_str() {
        "docker" => docker::check(policy, sudo, args),
        "nh" | "nixos-rebuild" => crate::deploy::check(policy, program, args),
        name => program_rules(policy, sudo, name, args),
    }
}

/// `sudo [-n] PROGRAM ...`: the only sudo flag accepted is `-n`, which the gateway sets anyway.
fn strip_sudo(argv: &[String]) -> Result<(bool, &[String]), Refusal> {
    let Some((first, mut rest)) = argv.split_first() else {
        return Err(Refusal::new("-", "empty command"));
    };
    if first != "sudo" {
        return Ok((false, argv));
    }
    if let Some((flag, after)) = rest.split_first()
        && flag == "-n"
    {
        rest = after;
    }
    if let Some(flag) = rest.first().filter(|a| a.starts_with('-')) {
        return Err(Refusal::new(
            "sudo",
            format!("sudo flag `{flag}` is not accepted: the gateway runs sudo itself as `sudo -n --` with a fixed command"),
        )
        .hint("write `sudo PROGRAM ARGS`, for example `sudo iptables -L -n`"));
    }
    Ok((true, rest))
}

fn program_rules(
    policy: &Policy,
    sudo: bool,
    name: &str,
    args: &[String],
) -> Result<Classified, Refusal> {
    let candidates: Vec<&ProgramRule> = policy
        .programs
        .iter()
        .filter(|p| p.command == name && p.container.is_none())
        .collect();
    if candidates.is_empty() {
        return Err(unknown_program(name, sudo));
    }
    let matching_sudo: Vec<&ProgramRule> = candidates
        .iter()
        .copied()
        .filter(|p| p.sudo == sudo)
        .collect();
    if matching_sudo.is_empty() {
        let reason = if sudo {
            format!("`{name}` does not run through sudo here; send it without `sudo`")
        } else {
            format!("`{name}` runs as root: write `sudo {name} ...`")
        };
        return Err(Refusal::new(
            candidates.first().map_or("-", |p| p.id.as_str()),
            reason,
        ));
    }
    let best = match first_accepting(matching_sudo.iter().copied(), args) {
        Ok(rule) => return program_plan(policy, rule, args),
        Err(best) => best,
    };
    let prefix = if sudo { "sudo " } else { "" };
    let usages: Vec<String> = matching_sudo
        .iter()
        .map(|p| format!("{prefix}{name} {}", p.grammar.usage()))
        .collect();
    let (rule, mismatch) = match best {
        Some((rule, m)) => (rule.id.clone(), m.message),
        None => ("-".to_string(), "no rule accepts it".to_string()),
    };
    Err(Refusal::new(rule, format!("{prefix}{name}: {mismatch}"))
        .hint(format!("allowed: {}", usages.join(" ; "))))
}

fn program_plan(
    policy: &Policy,
    rule: &ProgramRule,
    args: &[String],
) -> Result<Classified, Refusal> {
    let sudo = if rule.sudo {
        if !args.is_empty() || !rule.forced_args.is_empty() {
            let full: Vec<String> = rule.forced_args.iter().chain(args).cloned().collect();
            sudo_fits(&rule.id, rule.sudoers_args.as_slice(), &full)?;
        }
        policy.sudo.as_deref()
    } else {
        None
    };
    let args = rule.forced_args.iter().chain(args).cloned();
    let plan = ExecPlan::new(policy, sudo, &rule.path, args, &rule.env, rule.timeout)
        .with_stdin(rule.stdin);
    Ok(Classified::new(
        rule.id.clone(),
        rule.id.clone(),
        Tier::Allow,
        plan,
    ))
}

/// The sudoers lines rendered from the rules must accept what the gateway is about to run
/// through sudo; where they would not (an argument with a space the rule does not spell out),
/// the gateway refuses it itself, with the reason, rather than let sudo fail.
pub(crate) fn sudo_fits(
    rule: &str,
    expressions: &[crate::render::SudoersArgs],
    args: &[String],
) -> Result<(), Refusal> {
    if crate::render::sudo_accepts(expressions, args) {
        return Ok(());
    }
    let spaced = args.iter().find(|a| a.chars().any(char::is_whitespace));
    let reason = match spaced {
        Some(arg) => format!(
            "sudo matches its arguments joined by spaces, so `{arg}` (with a space) cannot be told from two arguments; sudo's rules would refuse it"
        ),
        None => "sudo's rules, rendered from the same policy, would not accept this argument list"
            .to_string(),
    };
    Err(Refusal::new(rule, reason).hint("write each argument without spaces"))
}

/// A program in a container, reached as `docker exec CONTAINER PROGRAM ARGS`.
pub fn container_program(
    policy: &Policy,
    container: &str,
    program: &str,
    args: &[String],
) -> Result<Classified, Refusal> {
    let candidates: Vec<&ProgramRule> = policy
        .programs
        .iter()
        .filter(|p| p.container.as_deref() == Some(container) && p.command == program)
        .collect();
    let best = match first_accepting(candidates.iter().copied(), args) {
        Ok(rule) => {
            let Some(docker) = &policy.docker else {
                return Err(Refusal::new(
                    "docker exec",
                    "docker is not configured on this host",
                ));
            };
            let argv = [
                "exec".to_string(),
                container.to_string(),
                program.to_string(),
            ]
            .into_iter()
            .chain(rule.forced_args.iter().cloned())
            .chain(args.iter().cloned());
            let env = docker::docker_env(docker, &rule.env);
            let plan = ExecPlan::new(policy, None, &docker.program, argv, &env, rule.timeout)
                .with_stdin(rule.stdin);
            return Ok(Classified::new(
                rule.id.clone(),
                rule.id.clone(),
                Tier::Allow,
                plan,
            ));
        }
        Err(best) => best,
    };
    let hint = exec_forms(policy);
    match best {
        Some((rule, m)) => Err(Refusal::new(
            rule.id.clone(),
            format!("docker exec {container} {program}: {}", m.message),
        )
        .hint(hint)),
        None => Err(Refusal::new(
            "docker exec",
            "`docker exec` runs only the configured programs in the configured containers"
                .to_string(),
        )
        .hint(hint)),
    }
}

/// The precedence rule: the first rule (in file order) whose grammar accepts every word; else
/// the rule that got furthest and why it stopped.
fn first_accepting<'a>(
    rules: impl IntoIterator<Item = &'a ProgramRule>,
    args: &[String],
) -> Result<&'a ProgramRule, Option<(&'a ProgramRule, crate::grammar::Mismatch)>> {
    let mut best: Option<(&ProgramRule, crate::grammar::Mismatch)> = None;
    for rule in rules {
        match rule.grammar.check(args) {
            Ok(()) => return Ok(rule),
            Err(m) => {
                if best.as_ref().is_none_or(|(_, b)| m.progress > b.progress) {
                    best = Some((rule, m));
                }
            }
        }
    }
    Err(best)
}

/// The configured `docker exec` forms, for hints.
pub(crate) fn exec_forms(policy: &Policy) -> String {
    let usages: Vec<String> = policy
        .programs
        .iter()
        .filter_map(|p| {
            p.container
                .as_ref()
                .map(|c| format!("docker exec {c} {} {}", p.command, p.grammar.usage()))
        })
        .collect();
    if usages.is_empty() {
        "no exec rules are configured".to_string()
    } else {
        format!("the only exec forms are: {}", usages.join(" ; "))
    }
}

fn unknown_program(name: &str, sudo: bool) -> Refusal {
    let why = match name {
        "sh" | "bash" | "dash" | "zsh" | "ksh" | "fish" | "csh" | "tcsh" | "busybox" | "tmux"
        | "screen" => "no shell is available through this gateway, by design",
        "scp" | "sftp" | "sftp-server" | "internal-sftp" | "rsync" | "git-upload-pack"
        | "git-receive-pack" | "git-upload-archive" => {
            "file transfer is not available through this gateway"
        }
        "sudoedit" | "doas" | "pkexec" | "su" | "run0" => {
            "the only elevation is `sudo` in front of a declared diagnostic"
        }
        "env" | "command" | "exec" | "nice" | "nohup" | "timeout" | "stdbuf" | "setsid"
        | "time" | "xargs" => {
            "wrappers that run other programs are not accepted; send the command itself"
        }
        _ if sudo => "it is not a diagnostic declared for sudo",
        _ => "it is not a command this gateway runs",
    };
    Refusal::new("-", format!("`{name}` is refused: {why}")).hint(HELP_HINT)
}
