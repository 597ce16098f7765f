//! The operator's side of deploy approvals, run as root on the host: `pending`, `approve ID`
//! and `deny ID --reason TEXT`. Everything shown comes from the store's records, escaped for
//! the terminal: text that reached a record from the agent's side (the key label, the client,
//! the fingerprint) cannot move the cursor, recolour, reorder or hide anything.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use super::exit::{EXIT_CONFIG, EXIT_REFUSED};
use crate::audit::{Origin, rfc3339};
use crate::cli::{Approve, Deny, Pending};
use crate::deploy::operator_command;
use crate::deploy::request::{DeployRequest, State, command_line};
use crate::escape::{for_terminal, one_line};
use crate::policy::{ApprovalPolicy, Policy};
use crate::sys::host::{self, operator_name, unix_now};
use crate::sys::store::{Store, StoreError};
use crate::sys::{flake, syslog::Syslog};

fn print(out: &mut dyn Write, text: &str) {
    let _ = writeln!(out, "{}", for_terminal(text));
}

struct Desk {
    /// The rules path as the operator gave it: the commands this desk prints name it.
    rules: PathBuf,
    policy: Policy,
    store: Store,
    audit: Syslog,
    origin: Origin,
}

impl Desk {
    fn approval(&self) -> Option<&ApprovalPolicy> {
        self.policy.deploy.as_ref().map(|d| &d.approval)
    }

    /// An operator command as it works on this host (with `--rules` when not the default).
    fn command(&self, words: &[&str], tail: &str) -> String {
        operator_command(&self.rules, words, tail)
    }

    /// One request, or why not (a missing one with the command that lists them).
    fn load(&self, id: &str) -> Result<DeployRequest, (i32, String)> {
        self.store.load(id).map_err(|e| match e {
            StoreError::NoSuchRequest(_) => {
                refuse(format!("{e} (see `{}`)", self.command(&["pending"], "")))
            }
            e => refuse(e),
        })
    }
}

/// Root, the rules, the store and the audit log, or the reason and exit code.
fn open(rules: &Path, what: &str) -> Result<Desk, (i32, String)> {
    if !host::is_root() {
        return Err((
            EXIT_REFUSED,
            format!(
                "{what} needs root: the approval store is root's alone, and no other account can decide a deploy (try `sudo agent-gate {what} ...`)"
            ),
        ));
    }
    // As forced mode reads them: root-owned, writable by root alone.
    let policy = crate::sys::load::deploy_policy(rules).map_err(config)?;
    let Some(deploy) = &policy.deploy else {
        return Err((
            EXIT_CONFIG,
            format!("{}: no deploy section, so no approvals", rules.display()),
        ));
    };
    let store = Store::open(&deploy.approval.store, true).map_err(config)?;
    let audit = Syslog::connect_within(
        &policy.audit.socket,
        policy.audit.format,
        policy.audit.timeout,
    )
    .map_err(|e| {
        (
            EXIT_REFUSED,
            format!(
                "the audit log cannot be written ({e}); no decision is taken without its record"
            ),
        )
    })?;
    let origin = host::origin("-", None, None, &policy.digest);
    Ok(Desk {
        rules: rules.to_path_buf(),
        policy,
        store,
        audit,
        origin,
    })
}

fn fail(err: &mut dyn Write, (code, message): (i32, String)) -> i32 {
    let _ = writeln!(err, "agent-gate: {}", for_terminal(&message));
    code
}

/// Expire what is due, with its records, under the lock.
fn sweep(desk: &mut Desk) -> Result<(), (i32, String)> {
    let lock = desk.store.lock().map_err(config)?;
    let now = unix_now();
    let (audit, origin) = (&mut desk.audit, &mut desk.origin);
    desk.store
        .sweep(now, &lock, |r| {
            audit.write_request(origin, "expired", r, &[])
        })
        .map_err(|m| (EXIT_REFUSED, m))
}

fn age(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// A request as the operator reads it before deciding.
pub fn show(r: &DeployRequest, now: u64) -> String {
    let b = &r.binding;
    let v = |text: &str| one_line(text);
    let mut lines = vec![format!(
        "request {}  {}  filed {} ({} ago)",
        v(&r.id),
        r.state.word(),
        rfc3339(r.filed_at, 0),
        age(now.saturating_sub(r.filed_at))
    )];
    let mut field = |name: &str, value: String| lines.push(format!("  {name:<13} {value}"));
    if r.state.is_open() {
        field(
            "expires",
            format!(
                "{} (in {})",
                rfc3339(r.expires_at, 0),
                age(r.expires_at.saturating_sub(now))
            ),
        );
    }
    field(
        "asked by",
        format!(
            "key {} from {} ({})",
            v(&r.key),
            v(r.client.as_deref().unwrap_or("an unknown address")),
            v(r.fingerprint.as_deref().unwrap_or("no fingerprint"))
        ),
    );
    field("runs as root", v(&command_line(&r.argv)));
    let env: Vec<String> = r.env.iter().map(|(k, val)| format!("{k}={val}")).collect();
    field("environment", v(&command_line(&env)));
    field("flake", v(&b.flake));
    field(
        "git",
        v(b.git_rev.as_deref().unwrap_or("(not a git repository)")),
    );
    field("flake.lock", v(&b.flake_lock));
    field("files", format!("{} ({} entries)", v(&b.tree), b.files));
    field("digest", v(&r.digest));
    if let Some(by) = &r.decided_by {
        field(
            "decided by",
            format!(
                "{} at {}",
                v(by),
                rfc3339(r.decided_at.unwrap_or_default(), 0)
            ),
        );
    }
    if let Some(reason) = &r.reason {
        field("reason", v(reason));
    }
    if let Some(status) = &r.status {
        field("status", v(status));
    }
    lines.join("\n")
}

/// An operator command's end: its exit code, or the exit code and what went wrong.
type Done = Result<i32, (i32, String)>;

fn config(e: impl std::fmt::Display) -> (i32, String) {
    (EXIT_CONFIG, e.to_string())
}

fn refuse(e: impl std::fmt::Display) -> (i32, String) {
    (EXIT_REFUSED, e.to_string())
}

/// Open the desk, expire what is due, and run the command.
fn with_desk(
    rules: &Path,
    what: &str,
    err: &mut dyn Write,
    command: impl FnOnce(&mut Desk) -> Done,
) -> i32 {
    let done = open(rules, what).and_then(|mut desk| {
        sweep(&mut desk)?;
        command(&mut desk)
    });
    done.unwrap_or_else(|failure| fail(err, failure))
}

pub fn pending(args: &Pending, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let mut damaged = Vec::new();
    let code = with_desk(&args.rules, "pending", err, |desk| {
        let now = unix_now();
        let mut shown = 0;
        for id in desk.store.ids().map_err(config)? {
            match desk.store.load(&id) {
                Ok(r) if args.all || r.state.is_open() => {
                    shown += 1;
                    if args.json {
                        let _ = writeln!(out, "{}", serde_json::to_string(&r).unwrap_or_default());
                    } else {
                        let mut shown = show(&r, now);
                        if r.state == State::Pending {
                            shown.push_str(&format!(
                                "\n  {:<13} {}   or   {}",
                                "decide",
                                desk.command(&["approve", &r.id], ""),
                                desk.command(&["deny", &r.id], "--reason ...")
                            ));
                        }
                        print(out, &format!("{shown}\n"));
                    }
                }
                Ok(_) => {}
                Err(e) => damaged.push(e.to_string()),
            }
        }
        if shown == 0 && !args.json {
            print(out, "no deploy request is waiting.");
        }
        Ok(0)
    });
    // Records that cannot be trusted are named, never shown as if they could.
    for why in damaged {
        print(err, &format!("agent-gate: {why}"));
    }
    code
}

pub fn approve(
    args: &Approve,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    with_desk(&args.rules, "approve", err, |desk| {
        let expire = desk
            .approval()
            .map(|a| a.expire.as_secs())
            .ok_or_else(|| config("no deploy section"))?;
        let shown = desk.load(&args.id)?;
        if shown.state != State::Pending {
            return Err(refuse(format!(
                "request {} is {}, not pending: nothing to approve",
                shown.id,
                shown.state.word()
            )));
        }
        // What is approved must be what will run: the flake as it is now.
        let bound = flake::bind(Path::new(&shown.binding.flake))
            .map_err(|e| refuse(format!("the flake cannot be bound now: {e}")))?;
        if bound != shown.binding {
            return Err(refuse(format!(
                "the flake changed since request {} was filed, so approving it would approve something else; deny it (`{}`) and let the agent ask again",
                shown.id,
                desk.command(&["deny", &shown.id], "--reason ...")
            )));
        }
        print(out, &show(&shown, unix_now()));
        if !args.yes {
            let _ = write!(
                out,
                "approve request {} to run once, as root? [y/N] ",
                shown.id
            );
            let _ = out.flush();
            let mut answer = String::new();
            let _ = input.read_line(&mut answer);
            if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
                print(out, "not approved; nothing changed.");
                return Ok(EXIT_REFUSED);
            }
        }
        let lock = desk.store.lock().map_err(config)?;
        // Decide exactly what was shown: the record may not have changed meanwhile.
        let mut request = desk.load(&args.id)?;
        if request != shown || request.is_expired(unix_now()) {
            return Err(refuse(format!(
                "request {} changed while you read it (it is {} now); look again with `{}`",
                request.id,
                request.state.word(),
                desk.command(&["pending"], "")
            )));
        }
        let by = operator_name();
        request.approve(&by, unix_now(), expire);
        // The audit log hears of the approval before the file says so: a waiting session can
        // act on nothing the log never saw. No record, no approval.
        let extra = [("by", by.clone())];
        desk.audit
            .write_request(&mut desk.origin, "approved", &request, &extra)
            .map_err(|m| {
                refuse(format!(
                    "{m}; request {} is still pending, unchanged",
                    request.id
                ))
            })?;
        if let Err(e) = desk.store.save(&request, &lock) {
            let _ = desk.audit.write_request(
                &mut desk.origin,
                "approve-failed",
                &request,
                &[("reason", e.to_string())],
            );
            return Err(config(format!(
                "{e}; the approval was logged but not stored, so request {} is still pending",
                request.id
            )));
        }
        print(
            out,
            &format!(
                "approved request {} as {by}: it runs once, for key {}, until {}. A waiting session runs it now; otherwise the same command sent again runs it.",
                request.id,
                request.key,
                rfc3339(request.expires_at, 0)
            ),
        );
        Ok(0)
    })
}

pub fn deny(args: &Deny, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    with_desk(&args.rules, "deny", err, |desk| {
        let lock = desk.store.lock().map_err(config)?;
        let mut request = desk.load(&args.id)?;
        if !request.state.is_open() {
            return Err(refuse(format!(
                "request {} is {}: nothing to deny",
                request.id,
                request.state.word()
            )));
        }
        let by = operator_name();
        request.deny(&by, unix_now(), &args.reason);
        // Logged first, as an approval is: the file never holds a decision the log lacks.
        let extra = [("by", by.clone()), ("reason", args.reason.clone())];
        desk.audit
            .write_request(&mut desk.origin, "denied", &request, &extra)
            .map_err(|m| refuse(format!("{m}; request {} is as it was", request.id)))?;
        if let Err(e) = desk.store.save(&request, &lock) {
            let _ = desk.audit.write_request(
                &mut desk.origin,
                "deny-failed",
                &request,
                &[("reason", e.to_string())],
            );
            return Err(config(format!(
                "{e}; the denial was logged but not stored, so request {} is still open",
                request.id
            )));
        }
        print(
            out,
            &format!(
                "denied request {} as {by}; the agent is told: {}",
                request.id, args.reason
            ),
        );
        Ok(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::request::Binding;
    use crate::deploy::{Asker, Form, root_plan};

    #[test]
    fn what_the_operator_reads_cannot_hide_or_forge_anything() {
        let policy = crate::rules::parse(
            "version: 1\nsudo: /usr/bin/sudo\nkeys: {hermes: {may: [deploy]}}\ndeploy: {flake: /etc/nixos, nh: /bin/nh}\n",
        )
        .unwrap();
        let plan = root_plan(&policy, Form::Nh).unwrap();
        let asker = Asker {
            key: "hermes\u{1b}[8m --impure\u{202e}".into(),
            client: None,
            fingerprint: Some("SHA256:x\r\n  runs as root  /bin/true".into()),
        };
        let binding = Binding {
            flake: "/etc/nixos".into(),
            flake_lock: "sha256:aa".into(),
            git_rev: None,
            tree: "sha256:bb".into(),
            files: 1,
        };
        let mut r =
            DeployRequest::file("0a1b2c3d".into(), 0, 60, &asker, None, "nh", &plan, binding);
        r.deny("root", 5, "no\u{7}");
        let shown = show(&r, 10);
        assert!(
            !shown.chars().any(|c| c.is_control() && c != '\n'),
            "{shown}"
        );
        assert!(!shown.contains('\u{202e}'));
        assert!(
            shown.contains("hermes\\x1b[8m --impure\\xe2\\x80\\xae"),
            "{shown}"
        );
        assert_eq!(shown.matches("runs as root").count(), 2);
        assert_eq!(
            shown
                .lines()
                .filter(|l| l.starts_with("  runs as root"))
                .count(),
            1,
            "a forged line stays inside its field: {shown}"
        );
    }
}
