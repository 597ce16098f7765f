//! Faults where they live: the real rsyslogd stops reading (SIGSTOP) with its socket's queue
//! full. The gateway must refuse within its bound (exit 77), leave no process behind, and
//! never start the command when the receiver drains later.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::host::{Host, path};
use super::{Ledger, expect, ssh, text};

/// Gateway processes of the account's sessions (sshd runs it as `agent-gate --rules ...`).
fn gateways() -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                c.split(|b| *b == 0)
                    .next()
                    .is_some_and(|p| p.ends_with(b"bin/agent-gate"))
            })
        })
        .count()
}

/// Every thread of `pid` is stopped (state `T` in its stat line).
fn stopped(pid: i32) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(Result::ok)
        .all(|task| {
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            // The state follows the command name's closing parenthesis.
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('T'))
        })
}

/// Fill the socket's queue as root with user.info datagrams (the test's rsyslog.conf writes
/// only authpriv), as a stopped daemon's backlog would. A sender's own buffer can run out
/// before the receiver's queue (`net.unix.max_dgram_qlen`) does, so fresh senders go on
/// until one cannot send even its first datagram: the queue itself is full. The senders
/// stay open, as the filled queue is charged to them.
fn fill(socket: &std::path::Path) -> Vec<UnixDatagram> {
    let mut senders = Vec::new();
    for _ in 0..10_000 {
        let filler = UnixDatagram::unbound().unwrap();
        filler.connect(socket).unwrap();
        filler.set_nonblocking(true).unwrap();
        let mut sent = 0;
        loop {
            match filler.send(b"<14>agent-gate-e2e: filler") {
                Ok(_) => sent += 1,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("filling {}: {e}", socket.display()),
            }
        }
        senders.push(filler);
        if sent == 0 {
            return senders;
        }
    }
    panic!("{}: its queue never filled", socket.display());
}

pub fn stopped_receiver(host: &Host, ledger: &mut Ledger) {
    ledger.settle("before the receiver stops");
    let pid: i32 = std::fs::read_to_string(path("rsyslogd.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let rsyslogd = Pid::from_raw(pid);
    let before = gateways();
    kill(rsyslogd, Signal::SIGSTOP).unwrap();
    // Resumed however this step ends, so a failure leaves the rest of the suite a receiver.
    struct Resume(Pid);
    impl Drop for Resume {
        fn drop(&mut self) {
            let _ = kill(self.0, Signal::SIGCONT);
        }
    }
    let resume = Resume(rsyslogd);
    // kill() returns before every thread has stopped: a thread busy on the other core can
    // still drain the queue filled below. Wait until all of them show state T.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stopped(pid) {
        assert!(Instant::now() < deadline, "rsyslogd never stopped");
        std::thread::sleep(Duration::from_millis(10));
    }
    let _senders = fill(&path("log.sock"));
    let started = Instant::now();
    let out = ssh(host, "hermes", "sleep 93");
    let waited = started.elapsed();
    drop(resume);
    expect(&out, 77, "a stopped syslog receiver");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("the audit log cannot be written")
            && stderr.contains("took no record within"),
        "{stderr}"
    );
    assert!(waited < Duration::from_secs(60), "bounded: {waited:?}");
    // Nothing left behind, and nothing starts once the receiver drains.
    let deadline = Instant::now() + Duration::from_secs(10);
    while gateways() > before {
        assert!(Instant::now() < deadline, "a gateway outlived its client");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !Host::process_running("sleep 93"),
        "the refused command started after the receiver drained"
    );
    // No record for the refused command: the decision record never reached the log.
    let records = ledger.settle("the receiver resumed");
    let logged: Vec<&String> = records.iter().filter(|r| r.contains("sleep 93")).collect();
    assert!(
        logged.is_empty(),
        "a record for a command whose decision could not be logged: {logged:?}"
    );
}

/// A label's sessions are bounded (`keys.shell.max_sessions: 1` in the e2e rules): while one
/// runs, the next is refused with the reason, and once it ends the next runs.
pub fn sessions_per_label(host: &Host, ledger: &mut Ledger) {
    let first = host
        .ssh("shell")
        .arg("docker run --rm agent-gate-e2e/busybox:1 sleep 4")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !Host::records()
        .iter()
        .any(|r| r.contains("event=\"decision\"") && r.contains("busybox:1 sleep 4"))
    {
        assert!(Instant::now() < deadline, "the first session never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = ssh(host, "shell", "docker ps -q");
    expect(&second, 77, "a second session of a label bounded to one");
    assert!(
        text(&second.stderr).contains("key `shell` already has 1 sessions running"),
        "{}",
        text(&second.stderr)
    );
    let first = super::finish(first, Duration::from_secs(60), "the first session");
    expect(&first, 0, "the first session");
    let third = ssh(host, "shell", "docker ps -q");
    expect(&third, 0, "a session once the first has ended");
    ledger.allowed();
    ledger.refused();
    ledger.allowed();
    let records = ledger.settle("sessions per label");
    assert!(
        records
            .iter()
            .any(|r| r.contains("rule=\"max_sessions\"") && r.contains("decision=\"refuse\"")),
        "the refusal is recorded"
    );
}
