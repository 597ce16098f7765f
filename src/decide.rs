//! `decide(&Policy, &Request) -> Decision`: pure and total. No I/O, no clock, no environment.
//!
//! Precedence, the one rule: nothing runs unless a rule accepts the whole command. Among the
//! rules for the program the agent named, the first (in file order) whose grammar accepts
//! every word decides; if none does, the command is refused with the reason of the rule that
//! got furthest. The tokenizer and the built-in limits (docker's never-allowed options, shells,
//! sudo flags) come first and no rule can lift them.

use std::net::IpAddr;

use crate::policy::{KeyPolicy, Policy};
use crate::tokenize::{TokenizeError, tokenize};
use crate::verdict::{Classified, Decision, HELP_HINT, Outcome, Refusal, RefusalKind, Tier};
use crate::{deploy, docker, programs};

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
        "nh" | "nixos-rebuild" => deploy::gateway::check(policy, program, args),
        name => programs::host_program(policy, sudo, name, args),
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
