//! Forced mode, what sshd runs for the agent's key: read the rules, decide, write the
//! decision's record, run the plan, write the finish record, exit with the child's status.
//! Output to the agent goes through `escape::for_terminal`; write errors (a closed pipe) are
//! ignored rather than allowed to panic.

use std::io::Write;
use std::time::Instant;

use super::exit::{EXIT_CONFIG, EXIT_NOT_STARTED, EXIT_REFUSED, EXIT_SYNTAX};
use super::say;
use crate::audit::{AuditRecord, Origin};
use crate::decide::Request;
use crate::deploy::{Asker, gateway};
use crate::invocation::{Entry, Invocation};
use crate::plan::ExecPlan;
use crate::sys::{exec, host, load, slots, syslog::Syslog};
use crate::verdict::{Decision, Outcome, RefusalKind};

pub fn run(inv: &Invocation, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let raw = inv.command.clone().unwrap_or_default();
    let recorded = inv.recorded_command();
    let mut origin = host::origin(
        inv.claimed_label(),
        inv.fingerprint.clone(),
        inv.client,
        "-",
    );
    // Every record of this command shares one session id: the MCP session's when the call
    // came through one (with its call number), else a fresh one for this SSH command.
    origin.session = Some(
        inv.cli
            .forced
            .session
            .clone()
            .unwrap_or_else(host::session_id),
    );
    origin.call = inv.cli.forced.call;
    let loaded = match (&inv.error, inv.entry) {
        (Some(e), Entry::Forced) => Err(e.clone()),
        _ => load::policy(&inv.rules, true),
    };
    let policy = match loaded {
        Ok(policy) => policy,
        Err(error) => {
            let record = AuditRecord::config_error(&origin, &recorded, &error);
            let logged = super::fallback_sink(inv.cli.forced.audit_socket.as_deref(), &inv.rules)
                .and_then(|mut s| s.write(&record));
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
    // In login-shell mode the `-c` string may be the agent's own imitation of a forced
    // command: what it tried to change is refused like any command, to the policy's socket.
    if let (Some(error), Entry::LoginShell) = (&inv.error, inv.entry) {
        let record = AuditRecord::refused(&origin, &recorded, "login-shell", error);
        return refuse_early(&record, &socket, &policy, err);
    }
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
    // An MCP call that asks for MCP would serve a second session inside the first, writing
    // session-start and session-end records under the first one's id.
    let nested = inv.cli.forced.session.is_some()
        && crate::tokenize::tokenize(&raw).is_ok_and(|words| words == ["mcp"]);
    if nested {
        let record = AuditRecord::refused(
            &origin,
            &recorded,
            "mcp",
            "an MCP session cannot be opened inside one: call `run` with the command itself",
        );
        return refuse_early(&record, &socket, &policy, err);
    }
    // Each SSH session of a label holds one of its slots until this process ends; the calls
    // of an MCP session (`--session`) run inside the session's own.
    let _slot = match (&label, &inv.cli.forced.session) {
        (Some(label), None) => match policy.keys.get(label) {
            Some(key) => match slots::take(&slots::scope(&inv.rules), label, key.max_sessions) {
                Ok(slot) => Some(slot),
                Err(e) => {
                    let reason = e.to_string();
                    let record = AuditRecord::refused(&origin, &recorded, "max_sessions", &reason);
                    return refuse_early(&record, &socket, &policy, err);
                }
            },
            None => None,
        },
        _ => None,
    };
    // Where the decision rests on the engine's state, the engine is asked (bounded).
    let (mut decision, _) = super::decide_with_engine(&policy, &request, true);
    if let (Outcome::Allow(plan), Some(session)) = (&mut decision.outcome, &origin.session) {
        plan.bind_session(session, origin.call);
    }
    let record = AuditRecord::decision(&origin, &recorded, &decision);
    let audited = Syslog::connect_within(&socket, policy.audit.format, policy.audit.timeout)
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
        Outcome::Mcp => {
            let session = origin
                .session
                .clone()
                .unwrap_or_else(crate::sys::host::session_id);
            origin.session = Some(session.clone());
            let caller = super::mcp::Caller {
                label: origin.key.clone(),
                key: request.key.map(String::from),
                by_key: request.by_key,
                client: request.client,
                fingerprint: request.fingerprint.map(String::from),
                max_calls: policy.keys.get(&origin.key).map_or(1, |k| k.max_sessions),
            };
            let started = Instant::now();
            let _ = sink.write(&AuditRecord::session("session-start", &origin, "serving"));
            let how = super::mcp::serve(
                inv.call_template(),
                inv.rules.clone(),
                caller,
                session,
                policy.mcp,
            );
            origin.time = host::now();
            let how = format!("{how} after {} s", started.elapsed().as_secs());
            if sink
                .write(&AuditRecord::session("session-end", &origin, &how))
                .is_err()
            {
                say(
                    err,
                    "warning: the session's last audit record could not be written",
                );
            }
            0
        }
        Outcome::Ask(plan) => {
            // The gateway never runs a deploy: the root-side approval step does, through sudo.
            let gate = std::env::current_exe().and_then(std::path::absolute);
            let rules = std::path::absolute(&inv.rules);
            let step = match (gateway::form_of(&policy, plan), gate, rules) {
                (Some(form), Ok(gate), Ok(rules)) => gateway::step_plan(
                    &policy,
                    form,
                    &gate.to_string_lossy(),
                    &rules.to_string_lossy(),
                    &Asker {
                        key: origin.key.clone(),
                        client: inv.client,
                        fingerprint: inv.fingerprint.clone(),
                    },
                    inv.cli.forced.session.is_none(),
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

/// A refusal decided before any rule: its record to the policy's socket, its reason to the
/// agent, exit 77.
fn refuse_early(
    record: &AuditRecord,
    socket: &str,
    policy: &crate::policy::Policy,
    err: &mut dyn Write,
) -> i32 {
    let logged = Syslog::connect_within(socket, policy.audit.format, policy.audit.timeout)
        .and_then(|mut sink| sink.write(record));
    if let Some(crate::audit::Value::Text(reason)) = record.get("reason") {
        say(err, &format!("refused: {reason}"));
    }
    if let Err(e) = logged {
        say(err, &format!("(and the audit log cannot be written: {e})"));
    }
    EXIT_REFUSED
}

/// Run what was decided, then write its finishing record; the exit code is the child's.
fn run_plan(
    plan: &ExecPlan,
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
        Ok(finished) => {
            let mut status = finished.describe();
            // The gateway ended the docker CLI: the containers it started in the foreground
            // go too. A command that ended by itself leaves everything as it is.
            if finished.ended_early()
                && let Some(containers) = plan.containers()
            {
                let removal = exec::remove_containers(containers).describe();
                say(err, &format!("the gateway ended the command{removal}"));
                status.push_str(&removal);
            }
            (status, finished.exit_code())
        }
        Err(e) => {
            say(
                err,
                &format!("the allowed program could not be started: {e}"),
            );
            (format!("not started: {e}"), EXIT_NOT_STARTED)
        }
    };
    origin.time = host::now();
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
