//! The forced-mode test world, shared by tests/forced.rs and tests/execution.rs: a temporary
//! directory of recording stub programs, a rules file naming them, and a unix datagram
//! listener standing in for syslog.
#![allow(dead_code)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;

pub struct World {
    pub dir: tempfile::TempDir,
    pub audit: UnixDatagram,
}

pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// Whether a test that needs root should end here: true when the suite is not run as root.
/// Under `AGENT_GATE_ROOT=required` (`.ci/run` sets it) that is a failure instead. The skip
/// line goes to the stderr handle itself, which libtest does not capture (it captures only
/// `eprintln!`), and the test is added to `target/tmp/skipped.txt` for a summary.
pub fn skip_unless_root(what: &str) -> bool {
    if is_root() {
        return false;
    }
    let thread = std::thread::current();
    let test = format!(
        "{}::{}",
        env!("CARGO_CRATE_NAME"),
        thread.name().unwrap_or("?")
    );
    let required = std::env::var("AGENT_GATE_ROOT").is_ok_and(|v| v == "required");
    assert!(
        !required,
        "{test} needs root: {what}, and AGENT_GATE_ROOT=required"
    );
    let _ = writeln!(
        std::io::stderr(),
        "skipped: {test}: needs root: {what} (set AGENT_GATE_ROOT=required to fail)"
    );
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let _ = std::fs::create_dir_all(tmp).and_then(|()| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(tmp.join("skipped.txt"))?
            .write_all(format!("{test}: needs root: {what}\n").as_bytes())
    });
    true
}

/// A stub that records `$0`, its arguments and its environment, then exits 3 if an argument
/// is `exit3`, sleeps if one is `sleep`.
fn stub(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let record = dir.join(format!("{name}.record"));
    let script = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$0\" \"$@\" > '{rec}'\nenv | sort > '{rec}.env'\nfor a in \"$@\"; do\n  [ \"$a\" = exit3 ] && exit 3\n  [ \"$a\" = sleep ] && exec sleep 30\ndone\necho \"stub {name} ran\"\nexit 0\n",
        rec = record.display()
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The probe reports how it was started (`state`: its process group, blocked signals,
/// limits and whatever stdin holds) or starts a process tree and waits (`tree`; `stubborn`
/// also ignores SIGTERM, as do its children), writing the pids it started to `probe.pids`.
fn probe(dir: &Path) {
    let path = dir.join("probe");
    let pids = dir.join("probe.pids");
    let script = format!(
        r#"#!/bin/sh
case "$1" in
state)
  echo "pid=$$ pgid=$(cut -d' ' -f5 /proc/$$/stat)"
  # Read by the shell itself: dash blocks every signal around a fork, so a `grep` child
  # could see the parent's mask mid-fork rather than the one it started with.
  while read -r line; do case "$line" in SigBlk*) echo "$line";; esac; done < /proc/$$/status
  echo "core=$(ulimit -c) nofile=$(ulimit -n) as=$(ulimit -v)"
  echo "stdin=$(cat)"
  ;;
flood)
  exec yes agent-gate
  ;;
tree|stubborn)
  [ "$1" = stubborn ] && trap '' TERM
  sleep 300 &
  echo $! > '{pids}.tmp'
  echo $$ >> '{pids}.tmp'
  mv '{pids}.tmp' '{pids}'
  wait
  sleep 300
  ;;
esac
"#,
        pids = pids.display()
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A temporary directory that forced mode can trust: under /run (root 0755), not /tmp, whose
/// 1777 the path walk refuses, nor the checkout, which may itself sit under /tmp.
pub fn trusted_tempdir() -> tempfile::TempDir {
    let base = Path::new("/run/agent-gate-tests");
    let _ = std::fs::create_dir(base);
    std::fs::set_permissions(base, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = tempfile::tempdir_in(base).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

impl World {
    pub fn new() -> Self {
        let dir = trusted_tempdir();
        let d = dir.path().display().to_string();
        std::fs::create_dir(dir.path().join("docker-config")).unwrap();
        for name in ["docker", "sudo", "iptables", "sleeper"] {
            stub(dir.path(), name);
        }
        probe(dir.path());
        let rules = format!(
            r#"version: 1
sudo: {d}/sudo
keys:
  hermes:
    may: [docker, iptables-list, sleeper, deploy, probe, reader, ghost]
  other:
    may: [docker]
    from: [192.0.2.0/24]
  pinned:
    may: [docker]
    public_key: {PINNED_KEY}
docker:
  program: {d}/docker
  config: {d}/docker-config
  subcommands:
    ps: [all]
    inspect: [format]
programs:
  - id: iptables-list
    command: iptables
    path: {d}/iptables
    sudo: true
    options:
      - {{short: L, long: list}}
      - {{short: n, long: numeric}}
    exactly_one_of: [[list]]
  - id: sleeper
    command: sleeper
    path: {d}/sleeper
    args:
      - {{name: what, value: {{enum: [sleep, now]}}}}
    timeout: 1
  - id: probe
    command: probe
    path: {d}/probe
    args:
      - {{name: what, value: {{enum: [state, tree, stubborn, flood]}}}}
    timeout: 60
  - id: reader
    command: reader
    path: {d}/probe
    args:
      - {{name: what, value: {{enum: [state]}}}}
    stdin: true
  - id: ghost
    command: ghost
    path: {d}/ghost
deploy:
  flake: /etc/nixos
  nh: {d}/nh
"#
        );
        let rules_path = dir.path().join("rules.yaml");
        std::fs::write(&rules_path, rules).unwrap();
        std::fs::set_permissions(&rules_path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let audit = UnixDatagram::bind(dir.path().join("log.sock")).unwrap();
        audit
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        Self { dir, audit }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn gate(&self, command: Option<&str>) -> Command {
        self.gate_as("hermes", command)
    }

    pub fn gate_as(&self, key: &str, command: Option<&str>) -> Command {
        Command::from_std(self.process(key, command))
    }

    /// The gateway as a login shell: `agent-gate -c COMMAND` (and its test-only flags).
    pub fn shell(&self, command: &str) -> Command {
        let mut shell = std::process::Command::new(assert_cmd::cargo::cargo_bin("agent-gate"));
        shell
            .args(["--rules", self.path("rules.yaml").to_str().unwrap()])
            .args(["--audit-socket", self.path("log.sock").to_str().unwrap()])
            .args(["-c", command])
            .env_clear()
            .env("SSH_CONNECTION", "203.0.113.9 50022 192.0.2.1 22");
        Command::from_std(shell)
    }

    /// The gateway as a plain process, for tests that signal it or close its pipes.
    pub fn process(&self, key: &str, command: Option<&str>) -> std::process::Command {
        self.process_with(&self.path("rules.yaml"), key, command)
    }

    /// The gateway reading the rules at another path (the path walk's tests).
    pub fn gate_with_rules(&self, rules: &Path, command: &str) -> Command {
        Command::from_std(self.process_with(rules, "hermes", Some(command)))
    }

    fn process_with(
        &self,
        rules: &Path,
        key: &str,
        command: Option<&str>,
    ) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("agent-gate"));
        cmd.args(["--rules", rules.to_str().unwrap(), "--key", key])
            .args(["--audit-socket", self.path("log.sock").to_str().unwrap()])
            .env_remove("SSH_ORIGINAL_COMMAND")
            .env("SSH_CONNECTION", "203.0.113.9 50022 192.0.2.1 22")
            // The child must see none of this: its environment is built, not inherited.
            .env("DOCKER_HOST", "tcp://10.0.0.5:2375")
            .env("LESSOPEN", "|sh -c id");
        if let Some(c) = command {
            cmd.env("SSH_ORIGINAL_COMMAND", c);
        }
        cmd
    }

    /// The next audit record, as (priority, message).
    pub fn record(&self) -> (u32, String) {
        let mut buf = vec![0u8; 65536];
        let n = self.audit.recv(&mut buf).expect("an audit record");
        let line = String::from_utf8(buf[..n].to_vec()).unwrap();
        let pri: u32 = line[1..line.find('>').unwrap()].parse().unwrap();
        let msg = line.split_once("]: ").unwrap().1.to_string();
        (pri, msg)
    }

    pub fn no_more_records(&self) {
        self.audit
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 16];
        assert!(
            self.audit.recv(&mut buf).is_err(),
            "no further audit record"
        );
    }

    pub fn ran(&self, stub: &str) -> Option<Vec<String>> {
        std::fs::read_to_string(self.path(&format!("{stub}.record")))
            .ok()
            .map(|t| t.lines().map(String::from).collect())
    }

    pub fn env_of(&self, stub: &str) -> String {
        std::fs::read_to_string(self.path(&format!("{stub}.record.env"))).unwrap()
    }
}

/// Two ed25519 keys made with ssh-keygen; the fingerprints are what `ssh-keygen -l` printed.
pub const PINNED_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBnhR3kRTRLTegHjS85xsaF59JzZ6iIFhCZphnjIGICs test@agent-gate";
pub const PINNED_FP: &str = "SHA256:n1ThldcEJ5O0cPbS4NSbo838Eg5eN8wK+D8UDIzKNF4";
pub const OTHER_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILvtejmUGKHE2n6HmmoN+jGRtIVi4F38xHifoz1jxxeh other@agent-gate";
pub const OTHER_FP: &str = "SHA256:H/5LDx0gVh/wdwubgYP8ICZZPSbYBEEBUBNiUKSA1p4";

/// Wait for `child` at most `limit` (a bound, never a timing claim); past it, kill it and fail
/// the test with `hung`.
pub fn exit_within(child: &mut std::process::Child, limit: Duration, hung: &str) {
    let deadline = std::time::Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{hung}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Ends the test unless it runs as root: see [`skip_unless_root`].
#[macro_export]
macro_rules! need_root {
    () => {
        if $crate::world::skip_unless_root("forced mode needs a root-owned rules file") {
            return;
        }
    };
}
