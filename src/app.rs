//! Wiring: forced mode (load, decide, audit, run, audit), `explain`, `check`, `list`.
//! Output to the agent goes through `escape::for_terminal`; write errors (a closed pipe) are
//! ignored rather than allowed to panic.

use std::io::{BufRead, Write};
use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::audit::{AuditRecord, Origin, rfc3339};
use crate::cli::{Cmd, Explain};
use crate::decide::{Decision, Outcome, RefusalKind, Request, decide};
use crate::escape::for_terminal;
use crate::invocation::{Entry, Invocation};
use crate::policy::{AuditFormat, Policy};
use crate::sys::{exec, load, syslog::Syslog};

pub const EXIT_SYNTAX: i32 = 64;
pub const EXIT_ASK: i32 = 75;
pub const EXIT_REFUSED: i32 = 77;
pub const EXIT_CONFIG: i32 = 78;
/// The approved program could not be started.
pub const EXIT_NOT_STARTED: i32 = 126;

pub fn main() -> i32 {
    let invocation = match Invocation::from_env() {
        Ok(inv) => inv,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_CONFIG } else { 0 };
        }
    };
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    run(
        &invocation,
        &mut std::io::stdin().lock(),
        &mut out,
        &mut err,
    )
}

pub fn run(
    inv: &Invocation,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    match &inv.cli.command {
        None => forced(inv, out, err),
        Some(Cmd::Explain(args)) => explain(args, input, out, err),
        Some(Cmd::Check(args)) => check(&args.rules, out, err),
        Some(Cmd::List(args)) => match load_for_operator(&args.rules, err) {
            Some(policy) => {
                let _ = out.write_all(crate::list::render(&policy, &args.key).as_bytes());
                0
            }
            None => EXIT_CONFIG,
        },
        Some(Cmd::Render(args)) => render(args, out, err),
        Some(Cmd::Pending(args)) => crate::operator::pending(args, out, err),
        Some(Cmd::Approve(args)) => crate::operator::approve(args, input, out, err),
        Some(Cmd::Deny(args)) => crate::operator::deny(args, out, err),
        Some(Cmd::DeployStep(args)) => crate::deploy_step::run(args, err),
        Some(Cmd::Generate(args)) => generate(args.what, out, err),
    }
}

/// The man page or a completion script, made from the same clap definition that parses.
fn generate(what: crate::cli::Generated, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    use crate::cli::Generated;
    use clap::CommandFactory;
    use clap_complete::Shell;
    let mut command = crate::cli::Cli::command();
    let shell = match what {
        Generated::Man => {
            let mut page = Vec::new();
            if let Err(e) = clap_mangen::Man::new(command).render(&mut page) {
                let _ = writeln!(err, "generate: {e}");
                return EXIT_CONFIG;
            }
            let _ = out.write_all(&page);
            return 0;
        }
        Generated::Bash => Shell::Bash,
        Generated::Zsh => Shell::Zsh,
        Generated::Fish => Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "agent-gate", &mut script);
    let _ = out.write_all(&script);
    0
}

fn render(args: &crate::cli::Render, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    use crate::cli::Piece;
    use crate::render::{self, Install};
    let Some(policy) = load_for_operator(&args.rules, err) else {
        return EXIT_CONFIG;
    };
    let absolute =
        |path: &Path| std::path::absolute(path).map(|p| p.to_string_lossy().into_owned());
    let gate = match &args.gate {
        Some(gate) => Ok(gate.clone()),
        None => std::env::current_exe().and_then(|p| absolute(&p)),
    };
    let rules = match &args.installed_rules {
        Some(rules) => Ok(rules.clone()),
        None => absolute(&args.rules),
    };
    let (gate, rules) = match (gate, rules) {
        (Ok(gate), Ok(rules)) => (gate, rules),
        (Err(e), _) | (_, Err(e)) => {
            let _ = writeln!(err, "render: {e}");
            return EXIT_CONFIG;
        }
    };
    let install = Install {
        gate,
        rules,
        user: args.user.clone(),
    };
    let text = match args.piece {
        Piece::AuthorizedKeys => render::authorized_keys(&policy, &install),
        Piece::Sshd => render::sshd(&policy, &install, args.force_command),
        Piece::Sudoers => render::sudoers(&policy, &install),
    };
    match text {
        Ok(text) => {
            let _ = out.write_all(text.as_bytes());
            0
        }
        Err(e) => {
            let _ = writeln!(err, "render: {e}");
            EXIT_CONFIG
        }
    }
}

pub(crate) fn now() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(since.as_secs(), since.subsec_millis())
}

pub(crate) fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "-".to_string())
}

pub(crate) fn say(err: &mut dyn Write, text: &str) {
    let _ = writeln!(err, "agent-gate: {}", for_terminal(text));
}

/// Forced mode: what sshd runs for the agent's key.
fn forced(inv: &Invocation, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let raw = inv.command.clone().unwrap_or_default();
    let mut origin = Origin {
        time: now(),
        host: hostname(),
        key: inv.key.clone().unwrap_or_else(|| "-".to_string()),
        fingerprint: inv.fingerprint.clone(),
        client: inv.client.map(|ip| ip.to_string()),
        pid: std::process::id(),
        rules_digest: "-".to_string(),
    };
    let loaded = match &inv.error {
        Some(e) => Err(e.clone()),
        None => load::policy(&inv.rules, true),
    };
    let policy = match loaded {
        Ok(policy) => policy,
        Err(error) => {
            let socket = inv.cli.forced.audit_socket.as_deref().unwrap_or("/dev/log");
            let record = AuditRecord::config_error(&origin, &raw, &error);
            let logged =
                Syslog::connect(socket, AuditFormat::Kv).and_then(|mut s| s.write(&record));
            say(
                err,
                "refused: the gateway's configuration is broken, so everything is refused; the operator has to fix it",
            );
            if logged.is_err() {
                say(err, "(and the audit log is unavailable too)");
            }
            return EXIT_CONFIG;
        }
    };
    origin.rules_digest = policy.digest.clone();
    let socket = inv
        .cli
        .forced
        .audit_socket
        .clone()
        .unwrap_or_else(|| policy.audit.socket.clone());
    let request = Request {
        raw: &raw,
        key: inv.key.as_deref(),
        by_key: inv.entry == Entry::LoginShell || inv.key.is_none(),
        client: inv.client,
        fingerprint: inv.fingerprint.as_deref(),
    };
    // The label the request runs under, once identity holds: what the record and `list` name.
    let label = crate::decide::identity(&policy, &request)
        .ok()
        .map(|(label, _)| label.to_string());
    if let Some(label) = &label {
        origin.key = label.clone();
    }
    let decision = decide(&policy, &request);
    let record = AuditRecord::decision(&origin, &raw, &decision);
    let audited = Syslog::connect(&socket, policy.audit.format)
        .and_then(|mut sink| sink.write(&record).map(|()| sink));
    let mut sink = match audited {
        Ok(sink) => sink,
        Err(e) => {
            say(
                err,
                &format!(
                    "refused: the audit log cannot be written ({e}); nothing runs without its record"
                ),
            );
            return EXIT_REFUSED;
        }
    };
    match &decision.outcome {
        Outcome::Refuse(kind) => {
            tell_refusal(err, &decision);
            if let (RefusalKind::Login, Some(label)) = (kind, &label) {
                let _ = err.write_all(crate::list::render(&policy, label).as_bytes());
            }
            if *kind == RefusalKind::Syntax {
                EXIT_SYNTAX
            } else {
                EXIT_REFUSED
            }
        }
        Outcome::Help => {
            let label = origin.key.as_str();
            let _ = out.write_all(crate::list::render(&policy, label).as_bytes());
            0
        }
        Outcome::Ask(plan) => {
            // The gateway never runs a deploy: the root-side approval step does, through sudo.
            let gate = std::env::current_exe().and_then(std::path::absolute);
            let rules = std::path::absolute(&inv.rules);
            let step = match (crate::deploy::form_of(&policy, plan), gate, rules) {
                (Some(form), Ok(gate), Ok(rules)) => crate::deploy::step_plan(
                    &policy,
                    form,
                    &gate.to_string_lossy(),
                    &rules.to_string_lossy(),
                    &crate::deploy::Asker {
                        key: origin.key.clone(),
                        client: inv.client,
                        fingerprint: inv.fingerprint.clone(),
                    },
                ),
                _ => None,
            };
            let Some(step) = step else {
                say(
                    err,
                    "refused: the approval step cannot be started on this host; nothing was filed and nothing ran",
                );
                return EXIT_REFUSED;
            };
            run_plan(&step, &decision.rule, &raw, &mut origin, &mut sink, err)
        }
        Outcome::Allow(plan) => run_plan(plan, &decision.rule, &raw, &mut origin, &mut sink, err),
    }
}

/// Run what was decided, then write its finishing record; the exit code is the child's.
fn run_plan(
    plan: &crate::plan::ExecPlan,
    rule: &str,
    raw: &str,
    origin: &mut Origin,
    sink: &mut Syslog,
    err: &mut dyn Write,
) -> i32 {
    let started = Instant::now();
    let stdout = std::io::stdout();
    let result = exec::run(plan, std::os::fd::AsFd::as_fd(&stdout));
    let (status, code) = match &result {
        Ok(finished) => (finished.describe(), finished.exit_code()),
        Err(e) => {
            say(
                err,
                &format!("the allowed program could not be started: {e}"),
            );
            (format!("not started: {e}"), EXIT_NOT_STARTED)
        }
    };
    origin.time = now();
    let record = AuditRecord::finish(origin, raw, rule, &status, started.elapsed().as_millis());
    if let Err(e) = sink.write(&record) {
        say(
            err,
            &format!("warning: the finishing audit record could not be written: {e}"),
        );
    }
    code
}

fn tell_refusal(err: &mut dyn Write, decision: &Decision) {
    say(err, &format!("refused: {}", decision.reason));
    if let Some(hint) = &decision.hint {
        say(err, &format!("instead: {hint}"));
    }
}

/// `explain` and `check` read files as the operator asks: no ownership requirement, since
/// they run nothing (the Nix build sandbox, for one, owns its files as nixbld).
fn load_for_operator(path: &Path, err: &mut dyn Write) -> Option<Policy> {
    match load::policy(path, false) {
        Ok(policy) => Some(policy),
        Err(e) => {
            let _ = writeln!(err, "{e}");
            None
        }
    }
}

fn check(path: &Path, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match load_for_operator(path, err) {
        Some(policy) => {
            let _ = writeln!(
                out,
                "{}: ok ({} keys, {} rules, {})",
                path.display(),
                policy.keys.len(),
                policy.rule_ids().len(),
                policy.digest
            );
            0
        }
        None => EXIT_CONFIG,
    }
}

fn explain(
    args: &Explain,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let Some(policy) = load_for_operator(&args.rules, err) else {
        return EXIT_CONFIG;
    };
    // Without --fingerprint, explain assumes the agent used the key registered for the label.
    let pinned = policy
        .keys
        .get(&args.key)
        .and_then(|k| k.public_key.as_ref())
        .map(|(_, fp)| fp.as_str());
    let fingerprint = args.fingerprint.as_deref().or(pinned);
    let one = |raw: &str| {
        decide(
            &policy,
            &Request {
                raw,
                key: Some(&args.key),
                by_key: false,
                client: args.client,
                fingerprint,
            },
        )
    };
    if !args.batch {
        let raw = args.command.clone().unwrap_or_default();
        let decision = one(&raw);
        let text = if args.json {
            to_json(&decision).to_string()
        } else {
            human(&decision)
        };
        let _ = writeln!(out, "{text}");
        return 0;
    }
    let mut line = String::new();
    loop {
        line.clear();
        match input.read_line(&mut line) {
            Ok(0) => return 0,
            Ok(_) => {}
            Err(e) => {
                let _ = writeln!(err, "reading stdin: {e}");
                return EXIT_CONFIG;
            }
        }
        let answer = match serde_json::from_str::<String>(line.trim_end_matches(['\n', '\r'])) {
            Ok(raw) => to_json(&one(&raw)),
            Err(e) => serde_json::json!({
                "decision": "refuse",
                "rule": "batch",
                "reason": format!("this input line is not a JSON string: {e}"),
            }),
        };
        if writeln!(out, "{answer}").is_err() {
            return 0;
        }
    }
}

pub fn to_json(d: &Decision) -> serde_json::Value {
    use serde_json::Value;
    let mut v = serde_json::Map::new();
    v.insert("decision".into(), d.decision_word().into());
    v.insert("rule".into(), d.rule.clone().into());
    v.insert("reason".into(), d.reason.clone().into());
    v.insert("argv".into(), d.argv.clone().into());
    if let Some(hint) = &d.hint {
        v.insert("hint".into(), hint.clone().into());
    }
    if let Some(plan) = d.plan() {
        v.insert("exec".into(), plan.argv().to_vec().into());
        let env: serde_json::Map<String, Value> = plan
            .env()
            .iter()
            .map(|(k, val)| (k.clone(), val.clone().into()))
            .collect();
        v.insert("env".into(), env.into());
    }
    if d.outcome == Outcome::Help {
        v.insert("builtin".into(), "list".into());
    }
    Value::Object(v)
}

fn human(d: &Decision) -> String {
    let mut text = format!(
        "decision: {}\nrule: {}\nreason: {}",
        d.decision_word(),
        d.rule,
        d.reason
    );
    if let Some(hint) = &d.hint {
        text.push_str(&format!("\ninstead: {hint}"));
    }
    match &d.outcome {
        Outcome::Ask(plan) => text.push_str(&format!(
            "\nexec (as root, once a human approves it): {}",
            plan.argv().join(" ")
        )),
        Outcome::Allow(plan) => text.push_str(&format!("\nexec: {}", plan.argv().join(" "))),
        _ => {}
    }
    for_terminal(&text)
}
