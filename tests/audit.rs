//! The audit transport under faults: a receiver that stops reading must make the gateway
//! refuse within its bound, never hang, and never run the command later.
//!
//! The receiver is the test's own unix datagram socket (tests/support/world.rs); the end-to-end
//! suite stops the real rsyslogd the same way (tests/e2e/faults.rs).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/world.rs"]
mod world;

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use world::World;

/// Fill the receiver's queue (net.unix.max_dgram_qlen datagrams) without reading it, as a
/// stopped syslog daemon would leave it. Returns the filler, whose datagrams stay queued.
fn fill(socket: &std::path::Path) -> (UnixDatagram, usize) {
    let filler = UnixDatagram::unbound().unwrap();
    filler.connect(socket).unwrap();
    filler.set_nonblocking(true).unwrap();
    let mut sent = 0;
    while filler.send(b"<14>filler").is_ok() {
        sent += 1;
        assert!(sent < 100_000, "the receiver's queue never filled");
    }
    (filler, sent)
}

#[test]
fn a_receiver_that_stops_reading_refuses_within_the_bound() {
    need_root!();
    let w = World::new();
    let (_filler, queued) = fill(&w.path("log.sock"));
    assert!(queued > 0);
    let mut child = w
        .process("hermes", Some("sleeper now"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The gateway's own bound is 2 s; an unbounded send never returns.
    world::exit_within(
        &mut child,
        Duration::from_secs(20),
        "the gateway hung on a receiver that does not read",
    );
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(77), "{stderr}");
    assert!(
        stderr.contains("the audit log cannot be written")
            && stderr.contains("took no record within 2000 ms")
            && stderr.contains("nothing runs without its record"),
        "{stderr}"
    );
    assert_eq!(w.ran("sleeper"), None, "the command ran without its record");
    // The receiver drains: only the filler was queued, and nothing starts late.
    let mut buf = [0u8; 256];
    for _ in 0..queued {
        let n = w.audit.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"<14>filler");
    }
    w.no_more_records();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        w.ran("sleeper"),
        None,
        "the command started after the receiver drained"
    );
}

#[test]
fn every_record_of_a_command_shares_its_session() {
    need_root!();
    let w = World::new();
    w.gate(Some("sleeper now")).assert().success();
    let (_, decision) = w.record();
    let (_, finish) = w.record();
    let session = |line: &str| {
        let at = line.find(" session=\"").unwrap() + 10;
        line[at..at + line[at..].find('"').unwrap()].to_string()
    };
    assert_eq!(session(&decision).len(), 16, "{decision}");
    assert_eq!(session(&decision), session(&finish));
    w.gate(Some("sleeper now")).assert().success();
    let (_, next) = w.record();
    let _ = w.record();
    assert_ne!(
        session(&next),
        session(&decision),
        "each SSH command is its own session"
    );
}

#[test]
fn a_forced_command_line_that_does_not_parse_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("log.sock");
    let audit = UnixDatagram::bind(&socket).unwrap();
    audit
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let gate = |ssh: bool| {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("agent-gate"));
        cmd.args(["--rules", "/etc/agent-gate/rules.yaml", "--key", "hermes"])
            .args([
                "--audit-socket",
                socket.to_str().unwrap(),
                "--flush-everything",
            ])
            .env("SSH_ORIGINAL_COMMAND", "docker ps\u{1b}[2J")
            .env_remove("SSH_CONNECTION");
        if ssh {
            cmd.env("SSH_CONNECTION", "203.0.113.9 50022 192.0.2.1 22");
        }
        cmd.output().unwrap()
    };
    let out = gate(true);
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("command line is broken"), "{stderr}");
    let mut buf = vec![0u8; 65536];
    let n = audit
        .recv(&mut buf)
        .expect("a record of the broken command line");
    let line = String::from_utf8_lossy(&buf[..n]).into_owned();
    for field in [
        r#"event="config-error""#,
        r#"key="-""#,
        r#"client="203.0.113.9""#,
        r#"cmd="docker ps\x1b[2J""#,
        r#"decision="refuse""#,
        "--flush-everything",
    ] {
        assert!(line.contains(field), "{field}: {line}");
    }
    // At an operator's terminal (no sshd), the usage message is the whole answer.
    let out = gate(false);
    assert_eq!(out.status.code(), Some(78));
    audit
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(audit.recv(&mut buf).is_err(), "no record outside sshd");
}

#[test]
fn a_broken_forced_command_line_is_recorded_where_its_rules_send_records() {
    need_root!();
    let dir = world::trusted_tempdir();
    let socket = dir.path().join("log.sock");
    let rules = dir.path().join("rules.yaml");
    std::fs::write(
        &rules,
        format!(
            "version: 1\naudit:\n  socket: {}\n  format: json\nkeys: {{hermes: {{may: []}}}}\n",
            socket.display()
        ),
    )
    .unwrap();
    let audit = UnixDatagram::bind(&socket).unwrap();
    audit
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("agent-gate"))
        .args([
            "--rules",
            rules.to_str().unwrap(),
            "--key",
            "hermes",
            "--bogus",
        ])
        .env("SSH_ORIGINAL_COMMAND", "docker ps")
        .env("SSH_CONNECTION", "203.0.113.9 50022 192.0.2.1 22")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let mut buf = vec![0u8; 65536];
    let n = audit.recv(&mut buf).expect("a record on the rules' socket");
    let line = String::from_utf8_lossy(&buf[..n]).into_owned();
    let json = &line[line.find('{').unwrap()..];
    let record: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(record["event"], "config-error", "{line}");
    assert_eq!(record["cmd"], "docker ps", "{line}");
    assert!(
        record["reason"].as_str().unwrap().contains("--bogus"),
        "{line}"
    );
}
