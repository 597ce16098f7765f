//! The programs the rules declare, with their option grammars, and the precedence rule
//! (`first_accepting`). Host programs are checked here (`sudo iptables -L -n`, `ss -tlnp`);
//! programs in a container are reached through `docker::exec`.

use crate::grammar::Mismatch;
use crate::plan::ExecPlan;
use crate::policy::{Policy, ProgramRule};
use crate::sudoers;
use crate::verdict::{Classified, HELP_HINT, Refusal, Tier};

pub fn host_program(
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
    // Through sudo the arguments go in the one form the rendered sudoers lines pin, so
    // those lines can be as narrow as the rule (`Grammar::canonical`).
    let (sudo, args) = if rule.sudo {
        let canonical = rule
            .grammar
            .canonical(args)
            .map_err(|m| Refusal::new(&rule.id, m.message))?;
        let full: Vec<String> = rule.forced_args.iter().chain(&canonical).cloned().collect();
        if !full.is_empty() {
            sudoers::fits(&rule.id, &rule.sudoers_check, &full)?;
        }
        (policy.sudo.as_deref(), full)
    } else {
        let full = rule.forced_args.iter().chain(args).cloned().collect();
        (None, full)
    };
    let plan = ExecPlan::new(
        &policy.defaults,
        sudo,
        &rule.path,
        args,
        &rule.env,
        rule.timeout,
    )
    .with_stdin(rule.stdin);
    Ok(Classified::new(
        rule.id.clone(),
        rule.id.clone(),
        Tier::Allow,
        plan,
    ))
}

/// The precedence rule: the first rule (in file order) whose grammar accepts every word; else
/// the rule that got furthest and why it stopped.
pub fn first_accepting<'a>(
    rules: impl IntoIterator<Item = &'a ProgramRule>,
    args: &[String],
) -> Result<&'a ProgramRule, Option<(&'a ProgramRule, Mismatch)>> {
    let mut best: Option<(&ProgramRule, Mismatch)> = None;
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
pub fn exec_forms(policy: &Policy) -> String {
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
    let refusal = Refusal::new("-", format!("`{name}` is refused: {why}"));
    if matches!(name, "sh" | "bash" | "dash" | "zsh" | "ksh" | "fish") {
        // An agent's terminal backend that wraps every command in `bash -l -c '...'` (as
        // Hermes's SSH backend does) cannot work here: say what does.
        return refusal.hint(SHELL_HINT);
    }
    refusal.hint(HELP_HINT)
}

/// For an agent that connects with a shell wrapper.
pub const SHELL_HINT: &str = "this host takes one command per SSH call, with no shell around it (`ssh ai-worker@HOST 'docker ps'`), or an MCP session: configure your MCP client to run `ssh -T ai-worker@HOST mcp` (tools run, explain, help); send `help` to see what this key may run";
