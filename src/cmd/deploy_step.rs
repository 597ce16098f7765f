//! The root-side approval step: `agent-gate deploy-step`, started by the gateway through sudo
//! (the one sudoers line `render sudoers` writes for deploys): the root side of `deploy`. It trusts nothing it is given:
//! it reads the rules itself, builds the deploy's plan itself, and binds it to the flake as it
//! is on disk now. Then, holding the store's lock:
//! - an approved request of this key with the same digest is consumed, and the deploy runs;
//! - otherwise an open request with the same digest is joined, or a new one filed (and the
//!   notify program told);
//!
//! and without the lock it waits, within `wait_seconds`, for a human to decide, telling the
//! agent how long it has waited. An approval is checked once more against the flake just
//! before it is consumed, so a flake that changed after the approval does not deploy.
//!
//! Every read of the store checks it again (`sys::store`): a store that is no longer root's
//! alone, a record that root did not write, a store or record that vanished while the session
//! waited, each ends the session with a refusal that the audit log records first
//! (`approval-refused`, `request-lost`).

use std::io::Write;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use super::exit::{EXIT_ASK, EXIT_CONFIG, EXIT_NOT_STARTED, EXIT_REFUSED, EXIT_SIGNALLED};
use super::say;
use crate::audit::{AuditRecord, Origin, rfc3339};
use crate::cli::DeployStep;
use crate::deploy::request::{self, Binding, DeployRequest, State, command_line};
use crate::deploy::{Asker, Form, operator_command, root_plan, root_plan_at};
use crate::plan::ExecPlan;
use crate::policy::{DeployPolicy, Policy};
use crate::sys::exec::{self, Interrupts};
use crate::sys::host::{self, unix_now};
use crate::sys::store::{Locked, Store, StoreError};
use crate::sys::{flake, load, syslog::Syslog};

/// How often a waiting step looks at its request: an approval is seen within this.
const POLL: Duration = Duration::from_millis(100);
/// How often the waiting agent is told it is still waiting.
const PROGRESS: Duration = Duration::from_secs(10);
/// The notify program gets this long.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the step stops: the agent's message and the exit code.
struct Stop(i32, String);

type Step<T> = Result<T, Stop>;

fn refused(message: impl Into<String>) -> Stop {
    Stop(EXIT_REFUSED, message.into())
}

/// The approval step's view of the world, once everything it needs is in hand.
struct Ctx<'a> {
    deploy: &'a DeployPolicy,
    policy: &'a Policy,
    form: Form,
    plan: ExecPlan,
    asker: Asker,
    origin: Origin,
    audit: Syslog,
    store: Store,
    /// The rules path the step read: printed operator commands name it.
    rules: &'a Path,
}

impl Ctx<'_> {
    fn record(
        &mut self,
        event: &'static str,
        r: &DeployRequest,
        extra: &[(&'static str, String)],
    ) -> Step<()> {
        self.audit
            .write_request(&mut self.origin, event, r, extra)
            .map_err(|m| refused(format!("refused: {m}")))
    }

    /// The store, or the request's record in it, can no longer be trusted or is gone: the
    /// audit log says so (with the request as it was filed), then the session refuses.
    fn untrusted(&mut self, r: &DeployRequest, e: &StoreError) -> Stop {
        let (event, code) = match e {
            StoreError::Gone { .. } => ("request-lost", EXIT_CONFIG),
            StoreError::NoSuchRequest(_) => ("request-lost", EXIT_REFUSED),
            StoreError::Unsafe { .. } | StoreError::Io { .. } => ("approval-refused", EXIT_CONFIG),
            StoreError::Untrusted { .. } | StoreError::Damaged { .. } => {
                ("approval-refused", EXIT_REFUSED)
            }
        };
        let reason = e.to_string();
        let logged = self.record(event, r, &[("reason", reason.clone())]);
        let mut message = format!(
            "refused: request {} can no longer be used: {reason}. Nothing ran; the operator has to look at the approval store",
            r.id
        );
        if logged.is_err() {
            message.push_str(" (and the audit log could not be written)");
        }
        Stop(code, message)
    }

    /// The store itself cannot be used, before any request is at hand: a `config-error` record.
    fn broken_store(&mut self, e: &StoreError) -> Stop {
        broken_store(&mut self.audit, &mut self.origin, e)
    }

    /// The flake as it is now; a flake that cannot be bound (one the path walk refuses, one
    /// without a lock) is a broken install, and its `config-error` record says why.
    fn binding(&mut self) -> Step<Binding> {
        flake::bind(Path::new(&self.deploy.flake)).map_err(|e| {
            let message = format!("refused: {e}");
            self.origin.time = host::now();
            let record = AuditRecord::config_error(&self.origin, "deploy-step", &message);
            let _ = self.audit.write(&record);
            refused(message)
        })
    }

    fn lock(&mut self) -> Step<Locked> {
        match self.store.lock() {
            Ok(lock) => Ok(lock),
            Err(e) => Err(self.broken_store(&e)),
        }
    }

    /// The lock, for the waited-for request `r`: a store that went wrong meanwhile is
    /// recorded against it.
    fn lock_for(&mut self, r: &DeployRequest) -> Step<Locked> {
        match self.store.lock() {
            Ok(lock) => Ok(lock),
            Err(e) => Err(self.untrusted(r, &e)),
        }
    }

    fn expire_seconds(&self) -> u64 {
        self.deploy.approval.expire.as_secs()
    }
}

fn broken_store(audit: &mut Syslog, origin: &mut Origin, e: &StoreError) -> Stop {
    origin.time = host::now();
    let mut message = format!("refused: {e}; the operator has to fix it");
    let record = AuditRecord::config_error(origin, "deploy-step", &message);
    if audit.write(&record).is_err() {
        message.push_str(" (and the audit log could not be written)");
    }
    Stop(EXIT_CONFIG, message)
}

pub fn run(args: &DeployStep, err: &mut dyn Write) -> i32 {
    match step(args, err) {
        Ok(code) => code,
        Err(Stop(code, message)) => {
            say(err, &message);
            code
        }
    }
}

fn step(args: &DeployStep, err: &mut dyn Write) -> Step<i32> {
    if !host::is_root() {
        return Err(refused(
            "refused: the deploy step runs as root, started by the gateway through sudo; nothing was filed",
        ));
    }
    let policy = load::deploy_policy(&args.rules).map_err(|e| {
        Stop(
            EXIT_CONFIG,
            format!(
                "refused: the gateway's configuration is broken ({e}); the operator has to fix it"
            ),
        )
    })?;
    let deploy = policy
        .deploy
        .as_ref()
        .ok_or_else(|| refused("refused: deploys are not configured on this host"))?;
    let form = Form::from_word(&args.form)
        .ok_or_else(|| refused(format!("refused: `{}` is not a deploy form", args.form)))?;
    let plan = root_plan(&policy, form).ok_or_else(|| {
        refused(format!(
            "refused: deploys through {} are not configured",
            form.word()
        ))
    })?;
    if !policy
        .keys
        .get(&args.key)
        .is_some_and(|k| k.may.contains("deploy"))
    {
        return Err(refused(format!(
            "refused: the key `{}` may not deploy",
            args.key
        )));
    }
    if let Some(fp) = &args.fingerprint
        && !crate::sshkey::is_fingerprint(fp)
    {
        return Err(refused("refused: that is not a key fingerprint"));
    }
    let asker = Asker {
        key: args.key.clone(),
        client: args.client,
        fingerprint: args.fingerprint.clone(),
    };
    let mut origin = host::origin(
        &asker.key,
        asker.fingerprint.clone(),
        asker.client,
        &policy.digest,
    );
    let mut audit = Syslog::connect_within(&policy.audit.socket, policy.audit.format, policy.audit.timeout).map_err(|e| {
        refused(format!(
            "refused: the audit log cannot be written ({e}); nothing about a deploy happens without its record"
        ))
    })?;
    // Called through its sudoers line directly, the step would file whatever client and key
    // it is told, and `pending` would show them as fact: they must be what the rules allow
    // the label (its pinned key, an address inside its `from`).
    let claimed = crate::decide::Request {
        raw: "",
        key: Some(&args.key),
        by_key: false,
        client: args.client,
        fingerprint: args.fingerprint.as_deref(),
    };
    if let Err(why) = crate::decide::identity(&policy, &claimed) {
        let record = AuditRecord::refused(&origin, "deploy-step", "identity", &why.reason);
        let _ = audit.write(&record);
        return Err(refused(format!("refused: {}", why.reason)));
    }
    let store = Store::open(&deploy.approval.store, true)
        .map_err(|e| broken_store(&mut audit, &mut origin, &e))?;
    let mut ctx = Ctx {
        deploy,
        policy: &policy,
        form,
        plan,
        asker,
        origin,
        audit,
        store,
        rules: &args.rules,
    };
    let binding = ctx.binding()?;
    let digest = request::digest(ctx.plan.argv(), ctx.plan.env(), &binding);
    match find_or_file(&mut ctx, binding, &digest, form)? {
        Found::Approved(request) => execute(&mut ctx, request, err),
        Found::Open { request, new } => {
            if new {
                notify(&mut ctx, &request, err);
            }
            tell_filed(&ctx, &request, new, err);
            if args.no_wait {
                say(
                    err,
                    &format!(
                        "this call does not wait: ask `deploy_status` for request {}, and send the same command again once it is approved; it runs then, once.",
                        request.id
                    ),
                );
                return Ok(EXIT_ASK);
            }
            if ctx.deploy.approval.wait.is_zero() {
                say(
                    err,
                    "this host does not wait for the decision: send the same command again once it is approved, and it runs then.",
                );
                return Ok(EXIT_ASK);
            }
            wait(&mut ctx, request, err)
        }
    }
}

enum Found {
    Approved(DeployRequest),
    Open { request: DeployRequest, new: bool },
}

/// Under the lock: mark what has expired, then use an approval, join an open request or
/// file a new one.
fn find_or_file(ctx: &mut Ctx, binding: Binding, digest: &str, form: Form) -> Step<Found> {
    let lock = ctx.lock()?;
    let now = unix_now();
    let (audit, origin) = (&mut ctx.audit, &mut ctx.origin);
    ctx.store
        .sweep(now, &lock, |r| {
            audit.write_request(origin, "expired", r, &[])
        })
        .map_err(|m| refused(format!("refused: {m}")))?;
    let ids = match ctx.store.ids() {
        Ok(ids) => ids,
        Err(e) => return Err(ctx.broken_store(&e)),
    };
    let mut open = None;
    for id in ids {
        // A record root did not write, or a damaged one, is never used; a store that went
        // wrong since the listing ends the step.
        let request = match ctx.store.load(&id) {
            Ok(request) => request,
            Err(e @ (StoreError::Unsafe { .. } | StoreError::Gone { .. })) => {
                return Err(ctx.broken_store(&e));
            }
            Err(_) => continue,
        };
        if request.runs(digest, &ctx.asker.key, now) {
            let request = consume(ctx, &lock, request, now)?;
            return Ok(Found::Approved(request));
        }
        if request.state == State::Pending
            && request.digest == digest
            && request.key == ctx.asker.key
        {
            open = Some(request);
        }
    }
    if let Some(request) = open {
        return Ok(Found::Open {
            request,
            new: false,
        });
    }
    let id = ctx
        .store
        .new_id(&lock)
        .map_err(|e| Stop(EXIT_CONFIG, e.to_string()))?;
    let request = DeployRequest::file(
        id,
        now,
        ctx.expire_seconds(),
        &ctx.asker,
        host::sudo_uid(),
        form.word(),
        &ctx.plan,
        binding,
    );
    ctx.store
        .save(&request, &lock)
        .map_err(|e| Stop(EXIT_CONFIG, format!("refused: {e}")))?;
    if let Err(stop) = ctx.record("requested", &request, &[]) {
        let _ = ctx.store.remove(&request.id, &lock);
        return Err(stop);
    }
    Ok(Found::Open { request, new: true })
}

/// Use the approval up, under the lock; the record says so before anything runs.
fn consume(
    ctx: &mut Ctx,
    lock: &Locked,
    mut request: DeployRequest,
    now: u64,
) -> Step<DeployRequest> {
    request.consume(now);
    ctx.store
        .save(&request, lock)
        .map_err(|e| Stop(EXIT_CONFIG, format!("refused: {e}")))?;
    if let Err(stop) = ctx.record("executed", &request, &[]) {
        request.finish("not run: the audit log could not be written");
        let _ = ctx.store.save(&request, lock);
        return Err(stop);
    }
    Ok(request)
}

fn tell_filed(ctx: &Ctx, r: &DeployRequest, new: bool, err: &mut dyn Write) {
    let what = command_line(&r.argv);
    if new {
        say(
            err,
            &format!(
                "deploy request {} filed: `{what}` as root, bound to {}.",
                r.id,
                describe(&r.binding)
            ),
        );
    } else {
        say(
            err,
            &format!(
                "deploy request {} for this deploy is already waiting (filed {}).",
                r.id,
                rfc3339(r.filed_at, 0)
            ),
        );
    }
    say(
        err,
        &format!(
            "a human must approve it: as root on {}, `{}` (or `{}`). It expires at {}.",
            ctx.origin.host,
            operator_command(ctx.rules, &["approve", &r.id], ""),
            operator_command(ctx.rules, &["deny", &r.id], "--reason ..."),
            rfc3339(r.expires_at, 0),
        ),
    );
}

fn describe(b: &Binding) -> String {
    let rev = b
        .git_rev
        .as_deref()
        .map_or("no git repository".to_string(), |r| format!("git {r}"));
    format!(
        "flake {} ({rev}, flake.lock {}, {} files {})",
        b.flake, b.flake_lock, b.files, b.tree
    )
}

/// Run the notify program with the request as JSON on stdin. A failure is recorded and told,
/// and changes nothing else: the request stands.
fn notify(ctx: &mut Ctx, request: &DeployRequest, err: &mut dyn Write) {
    let argv = &ctx.deploy.approval.notify;
    let Some((program, args)) = argv.split_first() else {
        return;
    };
    let input = request.notice(&ctx.origin.host, ctx.rules).to_string();
    if let Err(failed) = exec::feed(
        program,
        args,
        &ctx.policy.defaults.path,
        &input,
        NOTIFY_TIMEOUT,
    ) {
        // What the program said goes to the record only: it is the operator's, not the agent's.
        let mut extra = vec![("reason", failed.reason.clone())];
        if !failed.stderr.is_empty() {
            extra.push(("stderr", failed.stderr));
        }
        let _ = ctx.record("notify-failed", request, &extra);
        say(
            err,
            &format!(
                "(the operator's notification could not be sent: {}; the request stands, but nobody may know of it)",
                failed.reason
            ),
        );
    }
}

/// Wait for the human, bounded; say every `PROGRESS` that it still waits.
fn wait(ctx: &mut Ctx, request: DeployRequest, err: &mut dyn Write) -> Step<i32> {
    let limit = ctx.deploy.approval.wait;
    let id = request.id.clone();
    say(
        err,
        &format!(
            "waiting up to {} for the decision on request {id}...",
            minutes(limit)
        ),
    );
    let mut interrupts =
        Interrupts::new().map_err(|e| Stop(EXIT_CONFIG, format!("refused: {e}")))?;
    let started = Instant::now();
    let mut next_progress = started + PROGRESS;
    loop {
        if let Some(sig) = interrupts
            .sleep(POLL)
            .map_err(|e| Stop(EXIT_CONFIG, e.to_string()))?
        {
            say(
                err,
                &format!(
                    "stopped ({sig}) while waiting; request {id} stays pending until it expires."
                ),
            );
            return Ok(EXIT_SIGNALLED + sig as i32);
        }
        let now = unix_now();
        let current = match ctx.store.load(&id) {
            Ok(current) => current,
            Err(e) => return Err(ctx.untrusted(&request, &e)),
        };
        match current.state {
            State::Approved => {
                drop(interrupts);
                return run_approved(ctx, &current, err);
            }
            State::Denied => {
                return Err(refused(format!(
                    "refused: request {id} was denied by {}: {}",
                    current.decided_by.as_deref().unwrap_or("-"),
                    current.reason.as_deref().unwrap_or("no reason given")
                )));
            }
            State::Pending if current.is_expired(now) => {
                let lock = ctx.lock_for(&request)?;
                if let Ok(mut r) = ctx.store.load(&id)
                    && r.is_expired(now)
                {
                    r.expire();
                    let _ = ctx.store.save(&r, &lock);
                    ctx.record("expired", &r, &[])?;
                }
                return Ok(expired(&id, err));
            }
            State::Expired => return Ok(expired(&id, err)),
            State::Executed | State::Finished => {
                return Err(refused(format!(
                    "refused: request {id} was approved and already used by another session; a new deploy needs a new approval"
                )));
            }
            State::Pending => {}
        }
        let waited = started.elapsed();
        if waited >= limit {
            say(
                err,
                &format!(
                    "no decision on request {id} within {}: it stays pending until {}. Send the same command again to wait again; once it is approved, the same command runs it.",
                    minutes(limit),
                    rfc3339(current.expires_at, 0)
                ),
            );
            return Ok(EXIT_ASK);
        }
        if Instant::now() >= next_progress {
            next_progress += PROGRESS;
            say(
                err,
                &format!(
                    "still waiting for a human to approve request {id} ({} of {}).",
                    minutes(waited),
                    minutes(limit)
                ),
            );
        }
    }
}

fn expired(id: &str, err: &mut dyn Write) -> i32 {
    say(
        err,
        &format!(
            "request {id} expired without a decision; send the command again to file a new one."
        ),
    );
    EXIT_ASK
}

fn minutes(d: Duration) -> String {
    let secs = d.as_secs();
    match (secs / 60, secs % 60) {
        (0, s) => format!("{s}s"),
        (m, 0) => format!("{m}m"),
        (m, s) => format!("{m}m{s:02}s"),
    }
}

/// The waited-for request was approved: check it against the flake as it is now, consume it
/// under the lock, and run.
fn run_approved(ctx: &mut Ctx, seen: &DeployRequest, err: &mut dyn Write) -> Step<i32> {
    let id = seen.id.as_str();
    let binding = ctx.binding()?;
    let live = request::digest(ctx.plan.argv(), ctx.plan.env(), &binding);
    let lock = ctx.lock_for(seen)?;
    let now = unix_now();
    let request = match ctx.store.load(id) {
        Ok(request) => request,
        Err(e) => return Err(ctx.untrusted(seen, &e)),
    };
    if !request.runs(&live, &ctx.asker.key, now) {
        let why = if request.digest != live {
            format!(
                "the flake or the deploy changed after request {id} was filed: it is now {}; the approval does not cover that. Send the command again to file a new request",
                describe(&binding)
            )
        } else {
            format!("request {id} is {} now", request.state.word())
        };
        return Err(refused(format!("refused: {why}")));
    }
    let request = consume(ctx, &lock, request, now)?;
    drop(lock);
    execute(ctx, request, err)
}

/// The deploy itself, as root, with its finish recorded in the store and the audit log.
fn execute(ctx: &mut Ctx, request: DeployRequest, err: &mut dyn Write) -> Step<i32> {
    say(
        err,
        &format!(
            "request {} was approved by {}: running `{}` as root.",
            request.id,
            request.decided_by.as_deref().unwrap_or("-"),
            command_line(&request.argv)
        ),
    );
    let stdout = std::io::stdout();
    let started = Instant::now();
    // nix reads a root-private copy of the tree, bound again as it is copied: whoever can
    // write the flake cannot change what is built between the approval and the build.
    let copy = ctx.store.tree_path(&request.id);
    let _ = std::fs::remove_dir_all(&copy);
    let approved = &request.binding;
    let plan = match flake::copy_bound(Path::new(&ctx.deploy.flake), &copy) {
        Ok(b)
            if b.tree == approved.tree
                && b.flake_lock == approved.flake_lock
                && b.git_rev == approved.git_rev =>
        {
            root_plan_at(ctx.policy, ctx.form, copy.display().to_string())
                .ok_or_else(|| "the deploy form is no longer configured".to_string())
        }
        Ok(b) => Err(format!(
            "the flake changed between the approval and its copy: it is now {}",
            describe(&b)
        )),
        Err(e) => Err(format!("the approved tree could not be copied: {e}")),
    };
    let (status, code) = match plan.map(|plan| exec::run(&plan, stdout.as_fd())) {
        Ok(Ok(finished)) => (finished.describe(), finished.exit_code()),
        Ok(Err(e)) => (format!("not started: {e}"), EXIT_NOT_STARTED),
        Err(why) => (format!("not started: {why}"), EXIT_REFUSED),
    };
    let _ = std::fs::remove_dir_all(&copy);
    let elapsed = started.elapsed().as_millis().to_string();
    let mut finished = request;
    if let Ok(lock) = ctx.store.lock() {
        finished.finish(&status);
        let _ = ctx.store.save(&finished, &lock);
    }
    if ctx
        .record(
            "finished",
            &finished,
            &[("status", status.clone()), ("duration_ms", elapsed)],
        )
        .is_err()
    {
        say(
            err,
            "warning: the finishing audit record could not be written",
        );
    }
    say(err, &format!("deploy {}: {status}", finished.id));
    Ok(code)
}

/// `agent-gate deploy-status`: as root (the store is root's), started through sudo by the
/// agent's MCP session; one request of this label, as one JSON object on stdout. Changes
/// nothing: an expired request is reported as such, and left for the next sweep.
pub fn status(args: &crate::cli::DeployStatus, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let shown = (|| -> Step<serde_json::Value> {
        if !host::is_root() {
            return Err(refused(
                "refused: deploy-status runs as root, started through sudo",
            ));
        }
        if !request::valid_id(&args.id) {
            return Err(refused("refused: that is not a request id"));
        }
        let policy = load::deploy_policy(&args.rules)
            .map_err(|e| Stop(EXIT_CONFIG, format!("refused: {e}")))?;
        let deploy = policy
            .deploy
            .as_ref()
            .ok_or_else(|| refused("refused: deploys are not configured on this host"))?;
        let store = Store::open(&deploy.approval.store, false)
            .map_err(|e| Stop(EXIT_CONFIG, format!("refused: {e}")))?;
        let r = store
            .load(&args.id)
            .map_err(|e| refused(format!("refused: request {}: {e}", args.id)))?;
        if r.key != args.key {
            // Another label's request is not this agent's business.
            return Err(refused(format!(
                "refused: no request {} for this key",
                args.id
            )));
        }
        let state = if r.state.is_open() && r.is_expired(unix_now()) {
            "expired"
        } else {
            r.state.word()
        };
        Ok(serde_json::json!({
            "id": r.id,
            "state": state,
            "command": command_line(&r.argv),
            "filed": rfc3339(r.filed_at, 0),
            "expires": rfc3339(r.expires_at, 0),
            "decided_by": r.decided_by,
            "reason": r.reason,
            "status": r.status,
        }))
    })();
    match shown {
        Ok(json) => {
            let _ = writeln!(out, "{json}");
            0
        }
        Err(Stop(code, message)) => {
            say(err, &message);
            code
        }
    }
}
