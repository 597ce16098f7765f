//! How an allowed command is run: its own process group, stdin only where the rule says so,
//! limits, and the whole group ended when the client goes away or the gateway is told to
//! stop. The programs are shell stubs (tests/support/world.rs); forced mode needs root.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/world.rs"]
mod world;

use std::io::Read;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use world::World;

fn field<'a>(text: &'a str, name: &str) -> &'a str {
    let start = text.find(&format!("{name}=")).unwrap() + name.len() + 1;
    text[start..].split([' ', '\n']).next().unwrap()
}

#[test]
fn the_child_leads_its_own_group_with_limits_and_no_blocked_signals() {
    need_root!();
    let w = World::new();
    let out = w
        .gate(Some("probe state"))
        .write_stdin("the agent's stdin")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(field(&text, "pid"), field(&text, "pgid"), "{text}");
    assert!(text.contains("SigBlk:\t0000000000000000"), "{text}");
    assert!(text.contains("core=0 nofile=1024"), "{text}");
    // RLIMIT_AS, in KiB as the shell reports it.
    let memory = agent_gate::sys::exec::MAX_MEMORY / 1024;
    assert!(text.contains(&format!("as={memory}\n")), "{text}");
    // The rule does not ask for stdin: the program reads /dev/null.
    assert!(text.contains("stdin=\n"), "{text}");
}

#[test]
fn a_program_that_cannot_be_started_is_told_and_recorded() {
    need_root!();
    let w = World::new();
    // The rule names a path where nothing is installed.
    let out = w.gate(Some("ghost")).output().unwrap();
    assert_eq!(out.status.code(), Some(126), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("could not be started"), "{err}");
    let (_, decision) = w.record();
    assert!(decision.contains(r#"decision="allow""#), "{decision}");
    let (_, finish) = w.record();
    assert!(finish.contains(r#"status="not started: "#), "{finish}");
}

#[test]
fn output_past_the_cap_is_cut_with_a_line_that_says_so() {
    need_root!();
    let w = World::new();
    // `yes` never stops writing: the gateway passes MAX_OUTPUT bytes, says so, and ends it.
    let out = w.gate(Some("probe flood")).output().unwrap();
    let cap = usize::try_from(agent_gate::sys::exec::MAX_OUTPUT).unwrap();
    assert_eq!(
        out.status.code(),
        Some(128 + 25),
        "{:?}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (body, note) = out.stdout.split_at(cap);
    assert!(body.starts_with(b"agent-gate\nagent-gate\n"));
    assert!(
        String::from_utf8_lossy(note).contains("output truncated"),
        "{:?}",
        String::from_utf8_lossy(note)
    );
    let (_, _decision) = w.record();
    let (_, finish) = w.record();
    assert!(finish.contains("its output passed 64 MiB"), "{finish}");
}

#[test]
fn stdin_reaches_the_program_only_where_the_rule_says_so() {
    need_root!();
    let w = World::new();
    let out = w
        .gate(Some("reader state"))
        .write_stdin("the agent's stdin")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("stdin=the agent's stdin\n"), "{text}");
}

/// Start the gateway on `command` with its stdout a pipe, and wait until the probe has
/// written the pids of its tree.
fn start_tree(w: &World, command: &str) -> (Child, Vec<i32>) {
    let mut child = w
        .process("hermes", Some(command))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let pids = loop {
        if let Ok(text) = std::fs::read_to_string(w.path("probe.pids")) {
            break text.lines().map(|l| l.parse().unwrap()).collect();
        }
        assert!(Instant::now() < deadline, "the probe never started");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the gateway ended early"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    (child, pids)
}

/// Wait for the gateway to exit, at most 20 s.
fn exit_code(child: &mut Child) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the gateway did not end");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Gone, or a zombie waiting for whoever inherited it to reap it.
fn dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

fn assert_all_dead(pids: &[i32]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !pids.iter().all(|&p| dead(p)) {
        if Instant::now() > deadline {
            for &p in pids {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
            panic!("orphans left behind: {pids:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn finish_record(w: &World) -> String {
    let (_, decision) = w.record();
    assert!(decision.contains("decision=\"allow\""), "{decision}");
    w.record().1
}

#[test]
fn a_stop_signal_to_the_gateway_ends_the_whole_group() {
    need_root!();
    for (signal, code) in [(Signal::SIGHUP, 129), (Signal::SIGTERM, 143)] {
        let w = World::new();
        let (mut gate, pids) = start_tree(&w, "probe tree");
        kill(Pid::from_raw(gate.id() as i32), signal).unwrap();
        assert_eq!(exit_code(&mut gate), Some(code));
        assert_all_dead(&pids);
        let finish = finish_record(&w);
        assert!(
            finish.contains(&format!(
                "status=\"process group ended: the gateway received {signal}"
            )),
            "{finish}"
        );
    }
}

#[test]
fn a_client_that_goes_away_ends_the_whole_group() {
    need_root!();
    let w = World::new();
    let (mut gate, pids) = start_tree(&w, "probe tree");
    // sshd going away closes the read end of the gateway's stdout.
    drop(gate.stdout.take());
    assert_eq!(exit_code(&mut gate), Some(141));
    assert_all_dead(&pids);
    let finish = finish_record(&w);
    assert!(
        finish.contains("status=\"process group ended: the client disconnected"),
        "{finish}"
    );
}

#[test]
fn a_group_that_ignores_sigterm_is_killed_after_the_grace() {
    need_root!();
    let w = World::new();
    let (mut gate, pids) = start_tree(&w, "probe stubborn");
    let signalled = Instant::now();
    kill(Pid::from_raw(gate.id() as i32), Signal::SIGTERM).unwrap();
    assert_eq!(exit_code(&mut gate), Some(143));
    assert!(signalled.elapsed() >= agent_gate::sys::exec::GRACE);
    assert_all_dead(&pids);
    let finish = finish_record(&w);
    assert!(finish.contains("(it died of signal 9)"), "{finish}");
}

#[test]
fn what_a_finished_program_leaves_in_its_group_is_killed() {
    need_root!();
    let w = World::new();
    // `tree` started as a normal command whose leader is killed from outside: its
    // background sleep must not outlive it.
    let (mut gate, pids) = start_tree(&w, "probe tree");
    let leader = pids[1];
    kill(Pid::from_raw(leader), Signal::SIGKILL).unwrap();
    assert_eq!(exit_code(&mut gate), Some(137));
    assert_all_dead(&pids);
    let mut rest = String::new();
    gate.stdout
        .take()
        .unwrap()
        .read_to_string(&mut rest)
        .unwrap();
    let finish = finish_record(&w);
    assert!(finish.contains("status=\"killed by signal 9\""), "{finish}");
}
