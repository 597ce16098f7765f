//! The command layer: the only code that reads the parsed command line, prints, and chooses
//! exit codes. Each command wires the core (load, tokenize, decide, audit) to the effects in
//! `sys` (load, exec, syslog, store, flake, host facts):
//! - `forced`: what sshd runs for the agent's key (and `-c COMMAND`, the login shell);
//! - `explain`: `explain`, `check` and `list`, which run nothing;
//! - `render` and `generate`: installation pieces, the man page and completions;
//! - `doctor`: what is installed on this host, against what the rules render;
//! - `deploy_step`: the root side of a deploy, started by the gateway through sudo;
//! - `operator`: `pending`, `approve`, `deny`, as root.

mod deploy_step;
mod doctor;
pub mod exit;
mod explain;
mod forced;
mod generate;
pub mod mcp;
mod operator;
mod render;

use std::io::{BufRead, Write};
use std::path::Path;

use crate::cli::Cmd;
use crate::escape::for_terminal;
use crate::invocation::Invocation;
use crate::policy::Policy;
use crate::sys::load;
use exit::EXIT_CONFIG;

/// The process: read the invocation, run it, return its exit code.
pub fn main() -> i32 {
    let invocation = match Invocation::from_env() {
        Ok(inv) => inv,
        Err(e) => {
            let _ = e.print();
            if !e.use_stderr() {
                return 0;
            }
            // Under sshd a command line that does not parse is a broken installation (the
            // forced command in authorized_keys, the login-shell wrapper): record it where
            // the policy's records go.
            if let Some(unparsed) = crate::invocation::unparsed() {
                let mut origin = crate::sys::host::origin("-", None, unparsed.client, "-");
                origin.session = Some(crate::sys::host::session_id());
                let first = e.to_string();
                let first = first
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("error: ");
                let record = crate::audit::AuditRecord::config_error(
                    &origin,
                    &unparsed.command,
                    &format!("the gateway's command line does not parse: {first}"),
                );
                let _ = fallback_sink(unparsed.audit_socket.as_deref(), &unparsed.rules)
                    .and_then(|mut sink| sink.write(&record));
                say(
                    &mut std::io::stderr(),
                    "refused: the gateway's command line is broken, so everything is refused; the operator has to fix it",
                );
            }
            return EXIT_CONFIG;
        }
    };
    // Not locked for the whole run: the MCP server's transport reads and writes them from
    // other threads, and a lock held here would wait on itself.
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let mut input = std::io::BufReader::new(std::io::stdin());
    run(&invocation, &mut input, &mut out, &mut err)
}

pub fn run(
    inv: &Invocation,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    match &inv.cli.command {
        None => forced::run(inv, out, err),
        Some(Cmd::Explain(args)) => explain::explain(args, input, out, err),
        Some(Cmd::Check(args)) => explain::check(&args.rules, out, err),
        Some(Cmd::Compile(args)) => explain::compile(args, out, err),
        Some(Cmd::List(args)) => explain::list(&args.rules, &args.key, out, err),
        Some(Cmd::Render(args)) => render::run(args, out, err),
        Some(Cmd::Doctor(args)) => doctor::run(args, out, err),
        Some(Cmd::Pending(args)) => operator::pending(args, out, err),
        Some(Cmd::Approve(args)) => operator::approve(args, input, out, err),
        Some(Cmd::Deny(args)) => operator::deny(args, out, err),
        Some(Cmd::DeployStep(args)) => deploy_step::run(args, err),
        Some(Cmd::DeployStatus(args)) => deploy_step::status(args, out, err),
        Some(Cmd::Generate(args)) => generate::run(args.what, out, err),
    }
}

/// How the engine's facts went into a decision, for `explain` to say.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FactsUsed {
    /// The string said it all.
    NotNeeded,
    /// The engine answered these questions.
    Engine(crate::facts::Needs),
    /// Offline: the engine could not answer these (why), so the string alone decided.
    Lacked(crate::facts::Needs, String),
}

/// Decide; where an allow rests on the engine's state, ask the engine and decide again with
/// its answers. `strict` (forced mode): an engine that cannot answer refuses. Otherwise
/// (explain): the decision on the string alone stands, and says so.
fn decide_with_engine(
    policy: &Policy,
    request: &crate::decide::Request<'_>,
    strict: bool,
) -> (crate::verdict::Decision, FactsUsed) {
    use crate::facts::Facts;
    let offline = crate::decide::decide(policy, request);
    let (Some(docker), crate::verdict::Outcome::Allow(_)) = (&policy.docker, &offline.outcome)
    else {
        return (offline, FactsUsed::NotNeeded);
    };
    if offline.needs.is_empty() {
        return (offline, FactsUsed::NotNeeded);
    }
    let engine = crate::sys::engine::gather(docker, &policy.defaults, &offline.needs);
    let failed = engine.first_failure().map(String::from);
    match failed {
        Some(why) if !strict => {
            let needs = offline.needs.clone();
            (offline, FactsUsed::Lacked(needs, why))
        }
        _ => (
            crate::decide::decide_with(policy, request, &Facts::Engine(engine)),
            FactsUsed::Engine(offline.needs),
        ),
    }
}

/// Where a configuration error's record goes when the policy could not be used: the forced
/// command's own socket, else the one the rules name (read without running anything: the
/// check that failed may be one they still pass, a docker config directory others can write),
/// else /dev/log; in the rules' format where they read.
fn fallback_sink(
    audit_socket: Option<&str>,
    rules: &Path,
) -> Result<crate::sys::syslog::Syslog, crate::sys::syslog::AuditError> {
    let audit = load::deploy_policy(rules).ok().map(|p| p.audit);
    let socket = match (audit_socket, &audit) {
        (Some(socket), _) => socket,
        (None, Some(audit)) => audit.socket.as_str(),
        (None, None) => "/dev/log",
    };
    let format = audit
        .as_ref()
        .map_or(crate::policy::AuditFormat::Kv, |a| a.format);
    crate::sys::syslog::Syslog::connect(socket, format)
}

/// One line to the agent or the operator, escaped: `agent-gate: TEXT`.
fn say(err: &mut dyn Write, text: &str) {
    let _ = writeln!(err, "agent-gate: {}", for_terminal(text));
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
