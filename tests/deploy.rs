//! Deploy approvals, end to end on one machine: the gateway in forced mode files a request
//! through a stand-in sudo (which runs its command as the caller: root, in this suite), the
//! operator commands decide it, and stub `nh` and `nixos-rebuild` programs show what ran.
//! The flake is a temporary directory with a flake.lock and a git HEAD.
//!
//! The store and the rules must be root's, so these tests need root (CI runs as root).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/world.rs"]
mod world;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Desk {
    dir: tempfile::TempDir,
    /// Every audit record received and not yet taken, read as it comes (a syslog socket
    /// that nobody reads blocks its writers once its queue is full).
    audit: Arc<Mutex<Vec<String>>>,
    /// Set to make the listener close the audit socket (`close_audit`).
    closing: Arc<AtomicBool>,
    listener: Option<std::thread::JoinHandle<()>>,
}

const REV: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

fn script(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

impl Desk {
    /// Requests expire after `expire` seconds; the agent's session waits `wait`.
    fn new(expire: u64, wait: u64) -> Self {
        let dir = world::trusted_tempdir();
        let p = dir.path();
        let d = p.display().to_string();
        // sudo as the test runs it: drop `-n --`, run the command as the caller (root).
        script(
            &p.join("sudo"),
            "#!/bin/sh\n[ \"$1\" = -n ] && shift\n[ \"$1\" = -- ] && shift\nexec \"$@\"\n",
        );
        for name in ["nh", "nixos-rebuild"] {
            script(
                &p.join(name),
                &format!(
                    "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{d}/{name}.ran'\nid -u >> '{d}/{name}.ran'\nenv | sort > '{d}/{name}.env'\nfor a in \"$@\"; do [ -f \"$a/flake.nix\" ] && cat \"$a/flake.nix\" > '{d}/{name}.flake'; done\necho \"{name} switched\"\nexit 0\n"
                ),
            );
        }
        script(
            &p.join("notify"),
            &format!(
                "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{d}/notify.args'\ncat > '{d}/notify.json'\n"
            ),
        );
        let flake = p.join("flake");
        std::fs::create_dir_all(flake.join(".git/refs/heads")).unwrap();
        std::fs::write(flake.join("flake.nix"), "{ outputs = _: { }; }\n").unwrap();
        std::fs::write(
            flake.join("flake.lock"),
            "{ \"nodes\": {}, \"version\": 7 }\n",
        )
        .unwrap();
        std::fs::write(flake.join("configuration.nix"), "{ }\n").unwrap();
        std::fs::write(flake.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(flake.join(".git/refs/heads/main"), format!("{REV}\n")).unwrap();
        let rules = format!(
            r#"version: 1
sudo: {d}/sudo
audit:
  socket: {d}/log.sock
keys:
  hermes:
    may: [deploy]
  other:
    may: [deploy]
  pinned:
    may: [deploy]
    from: [192.0.2.0/24]
    public_key: {pinned_key}
deploy:
  flake: {d}/flake
  nh: {d}/nh
  nixos_rebuild: {d}/nixos-rebuild
  approval:
    store: {d}/store
    expire_seconds: {expire}
    wait_seconds: {wait}
    notify: [{d}/notify, --channel, ops]
"#,
            pinned_key = world::PINNED_KEY
        );
        std::fs::write(p.join("rules.yaml"), rules).unwrap();
        let socket = UnixDatagram::bind(p.join("log.sock")).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let audit = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&audit);
        let closing = Arc::new(AtomicBool::new(false));
        let closed = Arc::clone(&closing);
        let listener = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !closed.load(Ordering::SeqCst) {
                let n = match socket.recv(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => continue,
                    Err(_) => break,
                };
                let line = String::from_utf8_lossy(&buf[..n]).into_owned();
                let message = line
                    .split_once("]: ")
                    .map_or(line.clone(), |(_, m)| m.to_string());
                sink.lock().unwrap().push(message);
            }
        });
        Self {
            dir,
            audit,
            closing,
            listener: Some(listener),
        }
    }

    /// Close the audit socket: a writer that connected before now gets an error, and a new
    /// one cannot connect.
    fn close_audit(&mut self) {
        self.closing.store(true, Ordering::SeqCst);
        if let Some(listener) = self.listener.take() {
            listener.join().unwrap();
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn rules(&self) -> String {
        self.path("rules.yaml").display().to_string()
    }

    /// The agent's session: the gateway in forced mode.
    fn agent(&self, key: &str, command: &str) -> Command {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("agent-gate"));
        cmd.args(["--rules", &self.rules(), "--key", key])
            .env_clear()
            .env("SSH_ORIGINAL_COMMAND", command)
            .env("SSH_CONNECTION", "10.88.0.5 40000 10.88.0.1 22");
        cmd
    }

    /// A session that waits for the decision: the child, its stderr, and what it said up to
    /// the line that says it waits.
    fn waiting(&self, command: &str) -> (Child, BufReader<ChildStderr>, String) {
        let mut session = self
            .agent("hermes", command)
            .stderr(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(session.stderr.take().unwrap());
        let mut told = String::new();
        while !told.contains("waiting up to") {
            assert_ne!(err.read_line(&mut told).unwrap(), 0, "{told}");
        }
        (session, err, told)
    }

    fn ask(&self, key: &str, command: &str) -> Output {
        self.agent(key, command).output().unwrap()
    }

    /// An operator command as root: `pending`, `approve ID --yes`, `deny ID --reason ...`.
    fn operator(&self, args: &[&str]) -> Output {
        Command::new(assert_cmd::cargo::cargo_bin("agent-gate"))
            .args(args)
            .args(["--rules", &self.rules()])
            .env_clear()
            .env("SUDO_USER", "alice")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn approve(&self, id: &str) -> Output {
        self.operator(&["approve", id, "--yes"])
    }

    fn ran(&self, program: &str) -> Option<Vec<String>> {
        std::fs::read_to_string(self.path(&format!("{program}.ran")))
            .ok()
            .map(|t| t.lines().map(String::from).collect())
    }

    fn stored(&self, id: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(self.path(&format!("store/{id}.json"))).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// The audit records written so far, without waiting for more.
    fn records(&self) -> Vec<String> {
        // Datagrams sent before the command returned are queued; give the reader a moment.
        std::thread::sleep(Duration::from_millis(100));
        std::mem::take(&mut *self.audit.lock().unwrap())
    }

    fn events(&self) -> Vec<String> {
        self.records()
            .iter()
            .map(|r| field(r, "event").unwrap_or_default())
            .collect()
    }
}

fn field(record: &str, name: &str) -> Option<String> {
    let start = record.find(&format!("{name}=\""))? + name.len() + 2;
    let rest = &record[start..];
    Some(rest[..rest.find('"')?].to_string())
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The request id the agent was told.
fn request_id(text: &str) -> String {
    let at = text.find("deploy request ").expect("a request id") + "deploy request ".len();
    text[at..at + 8].to_string()
}

#[test]
fn approve_then_run_once() {
    need_root!();
    let desk = Desk::new(1800, 0);
    let out = desk.ask("hermes", "nh os switch");
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    let told = stderr(&out);
    let id = request_id(&told);
    assert!(told.contains(&format!("agent-gate approve {id}")), "{told}");
    assert!(
        told.contains(REV),
        "the agent sees what the request is bound to: {told}"
    );
    assert_eq!(desk.ran("nh"), None, "nothing ran before the approval");
    assert_eq!(
        desk.events(),
        ["decision", "requested", "finish"],
        "the gateway's decision, the step's request, the gateway's finish"
    );
    let notice: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(desk.path("notify.json")).unwrap()).unwrap();
    assert_eq!(notice["id"], id.as_str());
    assert_eq!(notice["git_rev"], REV);
    assert_eq!(notice["key"], "hermes");
    assert_eq!(notice["client"], "10.88.0.5");
    let notify_args = std::fs::read_to_string(desk.path("notify.args")).unwrap();
    assert_eq!(notify_args, "--channel\nops\n");

    let pending = desk.operator(&["pending"]);
    assert_eq!(pending.status.code(), Some(0));
    let listing = stdout(&pending);
    assert!(
        listing.contains(&format!("request {id}  pending")),
        "{listing}"
    );
    assert!(listing.contains(&format!(
        "{}/nh os switch --bypass-root-check",
        desk.dir.path().display()
    )));
    assert!(listing.contains(REV) && listing.contains("key hermes from 10.88.0.5"));

    let approved = desk.approve(&id);
    assert_eq!(approved.status.code(), Some(0), "{}", stderr(&approved));
    let records = desk.records();
    assert_eq!(records.len(), 1);
    assert_eq!(field(&records[0], "event").as_deref(), Some("approved"));
    assert_eq!(field(&records[0], "by").as_deref(), Some("alice"));
    assert_eq!(field(&records[0], "request"), Some(id.clone()));
    let digest = desk.stored(&id)["digest"].as_str().unwrap().to_string();
    assert_eq!(field(&records[0], "digest"), Some(digest.clone()));

    let run = desk.ask("hermes", "nh os switch");
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    assert!(stdout(&run).contains("nh switched"));
    assert!(
        stderr(&run).contains("approved by alice"),
        "{}",
        stderr(&run)
    );
    // The approved argv, as root, on the step's own copy of the approved tree, removed after.
    let copy = desk.path("store").join(format!("{id}.tree"));
    let flake = copy.display().to_string();
    assert!(!copy.exists(), "the copy is removed when the deploy ends");
    assert_eq!(
        std::fs::read_to_string(desk.path("nh.flake")).unwrap(),
        std::fs::read_to_string(desk.path("flake/flake.nix")).unwrap(),
        "nix read the approved flake.nix"
    );
    assert_eq!(
        desk.ran("nh").unwrap(),
        ["os", "switch", "--bypass-root-check", &flake, "0"],
        "exactly the approved argv, as root"
    );
    let env = std::fs::read_to_string(desk.path("nh.env")).unwrap();
    assert!(
        env.contains("HOME=/root\n") && !env.contains("SSH_"),
        "{env}"
    );
    let records = desk.records();
    let events: Vec<String> = records.iter().filter_map(|r| field(r, "event")).collect();
    assert_eq!(events, ["decision", "executed", "finished", "finish"]);
    for r in &records[1..3] {
        assert_eq!(field(r, "request"), Some(id.clone()));
        assert_eq!(field(r, "digest"), Some(digest.clone()));
    }
    assert_eq!(desk.stored(&id)["state"], "finished");

    // Replay: the approval is used up. The same command files a new request.
    std::fs::remove_file(desk.path("nh.ran")).unwrap();
    let again = desk.ask("hermes", "nh os switch");
    assert_eq!(again.status.code(), Some(75));
    assert_ne!(request_id(&stderr(&again)), id);
    assert_eq!(desk.ran("nh"), None, "an approval runs once");
}

#[test]
fn a_waiting_agent_sees_the_approval_within_a_second() {
    need_root!();
    let desk = Desk::new(1800, 60);
    // Another flake than the configured (temporary) one is refused outright.
    let other = desk.ask("hermes", "sudo nixos-rebuild switch --flake PLACEHOLDER");
    assert_eq!(other.status.code(), Some(77));
    let command = format!(
        "sudo nixos-rebuild switch --flake {}",
        desk.path("flake").display()
    );
    let (mut session, err, told) = desk.waiting(&command);
    assert!(told.contains("waiting up to 1m"), "{told}");
    let id = request_id(&told);
    let approved = desk.approve(&id);
    assert_eq!(approved.status.code(), Some(0), "{}", stderr(&approved));
    let decided = Instant::now();
    let ran = loop {
        if desk.ran("nixos-rebuild").is_some() {
            break decided.elapsed();
        }
        assert!(
            decided.elapsed() < Duration::from_secs(10),
            "the deploy never ran"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(
        ran < Duration::from_secs(1),
        "seen {ran:?} after the approval"
    );
    assert_eq!(session.wait().unwrap().code(), Some(0));
    let rest: Vec<String> = err.lines().map_while(Result::ok).collect();
    assert!(
        rest.iter().any(|l| l.contains("approved by alice")),
        "{rest:?}"
    );
    let ran = desk.ran("nixos-rebuild").unwrap();
    let flake = ran[2].clone();
    assert!(
        flake.starts_with(&desk.path("store").display().to_string()) && flake.ends_with(".tree"),
        "{flake}"
    );
    assert_eq!(ran, ["switch", "--flake", &flake, "0"]);
}

#[test]
fn a_denial_reaches_the_waiting_agent_escaped() {
    need_root!();
    let desk = Desk::new(1800, 60);
    let (mut session, mut err, told) = desk.waiting("nh os switch");
    let id = request_id(&told);
    let denied = desk.operator(&["deny", &id, "--reason", "not today\u{1b}[2J\u{202e}"]);
    assert_eq!(denied.status.code(), Some(0), "{}", stderr(&denied));
    assert_eq!(session.wait().unwrap().code(), Some(77));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert!(
        rest.contains(&format!(
            "request {id} was denied by alice: not today\\x1b[2J\\xe2\\x80\\xae"
        )),
        "{rest}"
    );
    assert!(!rest.contains('\u{1b}'));
    assert_eq!(desk.ran("nh"), None);
    let events = desk.events();
    assert!(events.contains(&"denied".to_string()), "{events:?}");
    // A denied request cannot be approved afterwards.
    let late = desk.approve(&id);
    assert_eq!(late.status.code(), Some(77));
    assert!(
        stderr(&late).contains("is denied, not pending"),
        "{}",
        stderr(&late)
    );
}

#[test]
fn requests_and_approvals_expire() {
    need_root!();
    // Records keep whole seconds: an expiry of 2 s is valid for at least 1 s after filing,
    // whatever fraction of a second the filing came at (1 s could be nothing at all).
    let desk = Desk::new(2, 0);
    let first = request_id(&stderr(&desk.ask("hermes", "nh os switch")));
    std::thread::sleep(Duration::from_millis(3100));
    let late = desk.approve(&first);
    assert_eq!(late.status.code(), Some(77));
    assert!(stderr(&late).contains("is expired"), "{}", stderr(&late));
    assert_eq!(desk.stored(&first)["state"], "expired");
    let events = desk.events();
    assert!(events.iter().any(|e| e == "expired"), "{events:?}");

    // Approved in time, used too late: nothing runs, and a new request is filed.
    let second = request_id(&stderr(&desk.ask("hermes", "nh os switch")));
    assert_ne!(second, first);
    assert_eq!(desk.approve(&second).status.code(), Some(0));
    std::thread::sleep(Duration::from_millis(3100));
    let out = desk.ask("hermes", "nh os switch");
    assert_eq!(out.status.code(), Some(75));
    assert_ne!(request_id(&stderr(&out)), second);
    assert_eq!(desk.ran("nh"), None);
    assert_eq!(desk.stored(&second)["state"], "expired");
}

#[test]
fn a_changed_flake_voids_the_request_and_the_approval() {
    need_root!();
    let desk = Desk::new(1800, 0);
    let flake = desk.path("flake");
    // Changed between filing and approval: the operator cannot approve it.
    let id = request_id(&stderr(&desk.ask("hermes", "nh os switch")));
    std::fs::write(
        flake.join("configuration.nix"),
        "{ services.openssh.enable = false; }\n",
    )
    .unwrap();
    let refused = desk.approve(&id);
    assert_eq!(refused.status.code(), Some(77));
    assert!(
        stderr(&refused).contains("the flake changed"),
        "{}",
        stderr(&refused)
    );

    // Changed between approval and run: the approval does not match; nothing runs.
    for change in ["lock", "commit", "file"] {
        let id = request_id(&stderr(&desk.ask("hermes", "nh os switch")));
        assert_eq!(desk.approve(&id).status.code(), Some(0));
        match change {
            "lock" => std::fs::write(flake.join("flake.lock"), "{ \"version\": 7 }\n").unwrap(),
            "commit" => std::fs::write(
                flake.join(".git/refs/heads/main"),
                "1111111111111111111111111111111111111111\n",
            )
            .unwrap(),
            _ => std::fs::write(flake.join("new.nix"), "{ }\n").unwrap(),
        }
        let out = desk.ask("hermes", "nh os switch");
        assert_eq!(out.status.code(), Some(75), "{change}: {}", stderr(&out));
        assert_ne!(request_id(&stderr(&out)), id, "{change}: a new request");
        assert_eq!(desk.ran("nh"), None, "{change}");
        assert_eq!(desk.stored(&id)["state"], "approved", "{change}: unused");
    }
}

#[test]
fn a_tampered_or_torn_request_file_is_refused() {
    need_root!();
    let desk = Desk::new(1800, 0);
    let id = request_id(&stderr(&desk.ask("hermes", "nh os switch")));
    let file = desk.path(&format!("store/{id}.json"));
    let text = std::fs::read_to_string(&file).unwrap();

    // Approved by editing the file, not by a human.
    std::fs::write(&file, text.replace("\"pending\"", "\"approved\"")).unwrap();
    let out = desk.ask("hermes", "nh os switch");
    assert_eq!(out.status.code(), Some(75));
    assert_eq!(desk.ran("nh"), None);
    let approve = desk.approve(&id);
    assert_eq!(approve.status.code(), Some(77));
    assert!(
        stderr(&approve).contains("altered or half written"),
        "{}",
        stderr(&approve)
    );

    // Half written: cut in the middle.
    std::fs::write(&file, &text[..text.len() / 2]).unwrap();
    let pending = desk.operator(&["pending"]);
    assert!(
        stderr(&pending).contains(&format!("request {id} is refused")),
        "{}",
        stderr(&pending)
    );
    assert_eq!(desk.approve(&id).status.code(), Some(77));
    assert_eq!(desk.ran("nh"), None);
}

#[test]
fn only_root_can_decide() {
    need_root!();
    let desk = Desk::new(1800, 0);
    let id = request_id(&stderr(&desk.ask("hermes", "nh os switch")));
    let file = desk.path(&format!("store/{id}.json"));
    let before = std::fs::read(&file).unwrap();
    std::fs::set_permissions(
        desk.path("rules.yaml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let rules = desk.rules();
    let as_nobody = |args: &[&str]| {
        Command::new(assert_cmd::cargo::cargo_bin("agent-gate"))
            .args(args)
            .env_clear()
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    };
    for verb in [
        ["approve", id.as_str(), "--yes", "--rules", &rules].as_slice(),
        &["deny", &id, "--rules", &rules],
        &["pending", "--rules", &rules],
    ] {
        let out = as_nobody(verb);
        assert_eq!(out.status.code(), Some(77), "{verb:?}");
        assert!(stderr(&out).contains("needs root"), "{}", stderr(&out));
    }
    // The approval step itself refuses to run as anyone else.
    let step = as_nobody(&[
        "deploy-step",
        "--rules",
        &rules,
        "--form",
        "nh",
        "--key",
        "hermes",
    ]);
    assert_eq!(step.status.code(), Some(77));
    assert_eq!(
        std::fs::read(&file).unwrap(),
        before,
        "the store is unchanged"
    );
    let mode = std::fs::metadata(desk.path("store"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "the store is root's alone");
    assert_eq!(desk.ran("nh"), None);
}

#[test]
fn two_requests_wait_side_by_side() {
    need_root!();
    let desk = Desk::new(1800, 0);
    let flake = desk.path("flake").display().to_string();
    let a = request_id(&stderr(&desk.ask("hermes", "nh os switch")));
    let rebuild = format!("nixos-rebuild switch --flake {flake}");
    let b = request_id(&stderr(&desk.ask("other", &rebuild)));
    assert_ne!(a, b);
    // The same deploy again joins its request rather than filing a third.
    let joined = desk.ask("hermes", "nh os switch");
    assert!(stderr(&joined).contains(&format!(
        "deploy request {a} for this deploy is already waiting"
    )));
    let listing = stdout(&desk.operator(&["pending"]));
    assert!(listing.contains(&format!("request {a}")) && listing.contains(&format!("request {b}")));
    assert_eq!(listing.matches("  pending  ").count(), 2, "{listing}");
    assert_eq!(desk.approve(&b).status.code(), Some(0));
    // Approving `other`'s request does not let hermes run it, nor run hermes' own.
    assert_eq!(desk.ask("hermes", &rebuild).status.code(), Some(75));
    assert_eq!(desk.ask("hermes", "nh os switch").status.code(), Some(75));
    assert_eq!((desk.ran("nh"), desk.ran("nixos-rebuild")), (None, None));
    let out = desk.ask("other", &rebuild);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(desk.ran("nixos-rebuild").is_some() && desk.ran("nh").is_none());
    assert_eq!(desk.stored(&a)["state"], "pending");
}

#[test]
fn the_operator_confirms_before_approving() {
    need_root!();
    let desk = Desk::new(1800, 0);
    let id = request_id(&stderr(&desk.ask("hermes", "nh os switch")));
    let approve = |answer: &str| {
        let mut child = Command::new(assert_cmd::cargo::cargo_bin("agent-gate"))
            .args(["approve", &id, "--rules", &desk.rules()])
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(answer.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let no = approve("n\n");
    assert_eq!(no.status.code(), Some(77));
    assert!(
        stdout(&no).contains("runs as root"),
        "the request is shown first"
    );
    assert!(stdout(&no).contains("not approved; nothing changed"));
    assert_eq!(desk.stored(&id)["state"], "pending");
    let yes = approve("y\n");
    assert_eq!(yes.status.code(), Some(0), "{}", stderr(&yes));
    assert_eq!(desk.stored(&id)["state"], "approved");
}

/// The session's exit code, once it ends; it must end within 20 s (then it is killed and the
/// test fails): a session that goes on waiting has not noticed.
fn ends_within_20s(session: &mut Child) -> Option<i32> {
    let started = Instant::now();
    loop {
        if let Some(status) = session.try_wait().unwrap() {
            return status.code();
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = session.kill();
            let _ = session.wait();
            panic!("the waiting session did not notice within 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The audit record of `event`, among those written so far.
fn record_of(desk: &Desk, event: &str) -> String {
    let records = desk.records();
    records
        .iter()
        .find(|r| field(r, "event").as_deref() == Some(event))
        .cloned()
        .unwrap_or_else(|| panic!("no {event} record in {records:#?}"))
}

#[test]
fn a_forged_approval_swapped_in_while_waiting_is_refused_and_audited() {
    need_root!();
    let desk = Desk::new(1800, 60);
    let (mut session, mut err, told) = desk.waiting("nh os switch");
    let id = request_id(&told);
    let file = desk.path(&format!("store/{id}.json"));
    // What another user wrote: the real record, approved, with its checksum recomputed.
    let text = std::fs::read_to_string(&file).unwrap();
    let mut forged = agent_gate::deploy::request::DeployRequest::from_json(&text, &id).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    forged.approve("mallory", now, 600);
    let tmp = desk.path(&format!("store/.{id}.forged"));
    std::fs::write(&tmp, forged.to_json()).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
    nix::unistd::chown(&tmp, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    std::fs::rename(&tmp, &file).unwrap();

    assert_eq!(ends_within_20s(&mut session), Some(77));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert!(
        rest.contains(&format!("request {id} can no longer be used"))
            && rest.contains("owned by uid 65534, not root"),
        "{rest}"
    );
    assert_eq!(desk.ran("nh"), None, "a forged approval deploys nothing");
    let refused = record_of(&desk, "approval-refused");
    assert_eq!(field(&refused, "request"), Some(id.clone()));
    assert!(
        refused.contains("owned by uid 65534"),
        "the reason is in the record: {refused}"
    );
    // Nor does the operator see it as a request.
    let pending = desk.operator(&["pending"]);
    assert!(
        stderr(&pending).contains("owned by uid 65534"),
        "{}",
        stderr(&pending)
    );
}

#[test]
fn a_store_made_world_writable_while_waiting_ends_the_wait_audited() {
    need_root!();
    let desk = Desk::new(1800, 60);
    let (mut session, mut err, told) = desk.waiting("nh os switch");
    let id = request_id(&told);
    let store = desk.path("store");
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o777)).unwrap();
    assert_eq!(ends_within_20s(&mut session), Some(78));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert!(rest.contains("mode 777"), "{rest}");
    let refused = record_of(&desk, "approval-refused");
    assert_eq!(field(&refused, "request"), Some(id.clone()));
    assert!(refused.contains("mode 777"), "{refused}");
    // Nobody decides in a store others can write.
    let approve = desk.approve(&id);
    assert_eq!(approve.status.code(), Some(78), "{}", stderr(&approve));
    assert!(
        stderr(&approve).contains("mode 777"),
        "{}",
        stderr(&approve)
    );
    assert_eq!(desk.stored(&id)["state"], "pending");
    assert_eq!(desk.ran("nh"), None);
}

#[test]
fn a_store_or_record_deleted_while_waiting_is_audited_as_lost() {
    need_root!();
    let desk = Desk::new(1800, 60);
    // The request's record alone.
    let (mut session, _err, told) = desk.waiting("nh os switch");
    let id = request_id(&told);
    std::fs::remove_file(desk.path(&format!("store/{id}.json"))).unwrap();
    assert_eq!(ends_within_20s(&mut session), Some(77));
    let lost = record_of(&desk, "request-lost");
    assert_eq!(field(&lost, "request"), Some(id.clone()));
    assert!(lost.contains(&format!("no request `{id}`")), "{lost}");

    // The whole store.
    let (mut session, mut err, told) = desk.waiting("nh os switch");
    let id = request_id(&told);
    std::fs::remove_dir_all(desk.path("store")).unwrap();
    assert_eq!(ends_within_20s(&mut session), Some(78));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert!(rest.contains("is gone"), "{rest}");
    let lost = record_of(&desk, "request-lost");
    assert_eq!(field(&lost, "request"), Some(id.clone()));
    assert!(lost.contains("is gone"), "{lost}");
    assert_eq!(desk.ran("nh"), None);
}

#[test]
fn an_approval_the_audit_log_cannot_hear_changes_nothing() {
    use std::os::unix::fs::MetadataExt;
    need_root!();
    let mut desk = Desk::new(1800, 0);
    let id = request_id(&stderr(&desk.ask("hermes", "nh os switch")));
    let file = desk.path(&format!("store/{id}.json"));
    // Inode numbers are reused at once: the file's identity is its inode and its times.
    let identity = |m: std::fs::Metadata| (m.ino(), m.mtime(), m.mtime_nsec(), m.ctime_nsec());
    let before = std::fs::read(&file).unwrap();
    let was = identity(std::fs::metadata(&file).unwrap());
    // The operator is asked to confirm; meanwhile the audit log goes away.
    let mut approve = Command::new(assert_cmd::cargo::cargo_bin("agent-gate"))
        .args(["approve", &id, "--rules", &desk.rules()])
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut shown = Vec::new();
    let mut stdout_pipe = approve.stdout.take().unwrap();
    while !String::from_utf8_lossy(&shown).contains("[y/N] ") {
        let mut byte = [0u8; 1];
        let n = std::io::Read::read(&mut stdout_pipe, &mut byte).unwrap();
        assert_ne!(n, 0, "no prompt: {}", String::from_utf8_lossy(&shown));
        shown.push(byte[0]);
    }
    desk.close_audit();
    approve.stdin.take().unwrap().write_all(b"y\n").unwrap();
    let out = approve.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(77), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(&file).unwrap(),
        before,
        "the record as it was"
    );
    assert_eq!(
        identity(std::fs::metadata(&file).unwrap()),
        was,
        "never rewritten, not even for a moment"
    );
    assert!(
        stderr(&out).contains("cannot be written") && stderr(&out).contains("still pending"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn every_printed_operator_command_works_as_printed() {
    need_root!();
    let desk = Desk::new(1800, 0);
    let rules = desk.rules();
    let out = desk.ask("hermes", "nh os switch");
    let told = stderr(&out);
    let id = request_id(&told);
    // The rules are not at the default path: every printed command names them.
    let approve = format!("agent-gate approve {id} --rules {rules}");
    let deny = format!("agent-gate deny {id} --rules {rules} --reason ...");
    assert!(
        told.contains(&format!("`{approve}` (or `{deny}`)")),
        "{told}"
    );
    let notice: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(desk.path("notify.json")).unwrap()).unwrap();
    assert_eq!(notice["approve"], approve.as_str());
    assert_eq!(
        notice["deny"],
        format!("agent-gate deny {id} --rules {rules} --reason TEXT").as_str()
    );
    let listing = stdout(&desk.operator(&["pending"]));
    assert!(
        listing.contains(&format!("decide        {approve}   or   {deny}")),
        "{listing}"
    );
    let missing = desk.operator(&["approve", "0000abcd", "--yes"]);
    assert!(
        stderr(&missing).contains(&format!("(see `agent-gate pending --rules {rules}`)")),
        "{}",
        stderr(&missing)
    );
    // Run as printed (the words are plain here; quoting is unit-tested in src/deploy).
    let words: Vec<&str> = approve.split_whitespace().collect();
    assert_eq!(words[0], "agent-gate");
    let done = Command::new(assert_cmd::cargo::cargo_bin("agent-gate"))
        .args(&words[1..])
        .arg("--yes")
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
    assert_eq!(desk.stored(&id)["state"], "approved");
}

#[test]
fn a_failing_notify_program_is_recorded_with_what_it_said() {
    need_root!();
    let desk = Desk::new(1800, 0);
    script(
        &desk.path("notify"),
        "#!/bin/sh\ncat > /dev/null\nprintf 'webhook: 401 \\033[31mdenied\\n' >&2\nfor n in 2 3 4 5 6 7; do echo \"line $n\" >&2; done\nexit 3\n",
    );
    let out = desk.ask("hermes", "nh os switch");
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
    let told = stderr(&out);
    assert!(
        told.contains("notification could not be sent") && !told.contains("webhook"),
        "the agent is told it failed, not what the operator's program said: {told}"
    );
    let failed = record_of(&desk, "notify-failed");
    assert!(failed.contains("ended with exit status: 3"), "{failed}");
    assert!(
        failed.contains(
            r#"stderr="webhook: 401 \x1b[31mdenied\x0aline 2\x0aline 3\x0aline 4\x0aline 5""#
        ),
        "the first five lines, escaped: {failed}"
    );
    assert!(!failed.contains("line 6"), "{failed}");
}

#[test]
fn a_flake_others_can_write_is_neither_filed_nor_approved() {
    need_root!();
    let desk = Desk::new(1800, 0);
    let flake = desk.path("flake");
    let id = request_id(&stderr(&desk.ask("hermes", "nh os switch")));
    let _ = desk.records();
    std::fs::set_permissions(&flake, std::fs::Permissions::from_mode(0o775)).unwrap();
    let why = format!("the flake {} has mode 775", flake.display());
    // Not approved: what would run is not what only root can change.
    let approve = desk.approve(&id);
    assert_eq!(approve.status.code(), Some(77), "{}", stderr(&approve));
    assert!(stderr(&approve).contains(&why), "{}", stderr(&approve));
    assert_eq!(desk.stored(&id)["state"], "pending");
    // Not filed: the step refuses, and the record says why.
    let out = desk.ask("hermes", "nh os switch");
    assert_eq!(out.status.code(), Some(77), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&why) && stderr(&out).contains("`chmod go-w "),
        "{}",
        stderr(&out)
    );
    let error = record_of(&desk, "config-error");
    assert!(error.contains(&why), "{error}");
    assert_eq!(desk.ran("nh"), None);
}

#[test]
fn the_step_called_directly_files_only_what_the_rules_allow_the_label() {
    need_root!();
    let desk = Desk::new(600, 0);
    let step = |extra: &[&str]| {
        let mut args = vec![
            "deploy-step",
            "--rules",
            desk.path("rules.yaml").to_str().unwrap(),
            "--form",
            "nh",
            "--key",
            "pinned",
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push("--no-wait".to_string());
        Command::new(assert_cmd::cargo::cargo_bin("agent-gate"))
            .args(&args)
            .output()
            .unwrap()
    };
    for (extra, why) in [
        (
            vec!["--client", "192.0.2.5", "--fingerprint", world::OTHER_FP],
            "not the one registered for this label",
        ),
        (
            vec!["--client", "203.0.113.9", "--fingerprint", world::PINNED_FP],
            "may not connect from this address",
        ),
        (
            vec!["--client", "192.0.2.5"],
            "cannot tell which key authenticated",
        ),
        (
            vec!["--fingerprint", world::PINNED_FP],
            "may not connect from this address",
        ),
    ] {
        let out = step(&extra);
        assert_eq!(out.status.code(), Some(77), "{extra:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(why), "{extra:?}: {}", stderr(&out));
        let records = desk.records();
        let last = records.last().unwrap();
        assert!(
            last.contains("rule=\"identity\"") && last.contains(why),
            "{last}"
        );
    }
    let pending = desk.operator(&[
        "pending",
        "--rules",
        desk.path("rules.yaml").to_str().unwrap(),
    ]);
    assert!(
        !stdout(&pending).contains("pinned"),
        "nothing was filed: {}",
        stdout(&pending)
    );
    // What the rules allow the label is filed.
    let out = step(&["--client", "192.0.2.5", "--fingerprint", world::PINNED_FP]);
    assert_eq!(out.status.code(), Some(75), "{}", stderr(&out));
}
