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

/// A record's `name="value"` field.
fn quoted<'a>(record: &'a str, name: &str) -> &'a str {
    let start = record.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
    record[start..].split('"').next().unwrap()
}

/// The ID the stub engine gives its one container.
const CONTAINER: &str = "0123456789ab";

/// A World whose rules allow `docker run`, with a docker stub that acts as the CLI over an
/// engine: `run` creates "the container" (a file holding its labels, which outlives the
/// CLI, as a real container outlives a killed client) and then stays attached (`sleep`),
/// unless its command is `true` or it is detached; `ps` lists the container when every
/// `--filter label=...` matches its labels; `rm -f` removes it (or fails, while `rm.fails`
/// exists). Every call is appended to `docker.calls`.
fn docker_world() -> World {
    let w = World::new();
    let rules = std::fs::read_to_string(w.path("rules.yaml")).unwrap();
    let rules = rules.replace(
        "    inspect: [format]\n",
        "    inspect: [format]\n    run: [rm, detach]\n",
    );
    std::fs::write(w.path("rules.yaml"), rules).unwrap();
    let dir = w.path("").display().to_string();
    let script = format!(
        r#"#!/bin/sh
d='{dir}'
echo "$*" >> "$d/docker.calls"
case "$1" in
image)
  echo 'sha256:{id}|["example/app:1"]|[]'
  ;;
run)
  shift
  labels=
  while [ "$1" = --label ]; do labels="$labels $2"; shift 2; done
  case "$1" in -d) echo {container}{container}; exit 0;; esac
  echo "$labels" > "$d/container"
  [ "$3" = true ] && exit 0
  echo attached
  exec sleep 300
  ;;
ps)
  [ -e "$d/container" ] || exit 0
  shift 2
  while [ "$1" = --filter ]; do
    grep -q " ${{2#label=}}\( \|$\)" "$d/container" || exit 0
    shift 2
  done
  echo {container}
  ;;
rm)
  if [ -e "$d/rm.fails" ]; then echo 'Error response from daemon: the engine is busy' >&2; exit 1; fi
  [ "$4" = {container} ] && rm -f "$d/container"
  echo "$4"
  ;;
esac
"#,
        id = "a".repeat(64),
        container = CONTAINER,
    );
    std::fs::write(w.path("docker"), script).unwrap();
    w
}

/// Start a foreground `docker run` through the gateway and wait until its container exists.
fn start_container(w: &World) -> Child {
    start_container_with(w, &[])
}

/// The same, with more gateway flags (an MCP call's `--session ID --call N`).
fn start_container_with(w: &World, flags: &[&str]) -> Child {
    let mut gate = w
        .process("hermes", Some("docker run example/app:1 sleep 300"))
        .args(flags)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !w.path("container").exists() {
        assert!(Instant::now() < deadline, "docker run never started");
        assert!(
            gate.try_wait().unwrap().is_none(),
            "the gateway ended early"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    gate
}

fn docker_calls(w: &World) -> Vec<String> {
    std::fs::read_to_string(w.path("docker.calls"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn a_foreground_container_goes_when_the_gateway_ends_its_command() {
    need_root!();
    for ending in ["SIGTERM", "client gone"] {
        let w = docker_world();
        let mut gate = start_container(&w);
        let decision = w.record().1;
        let session = quoted(&decision, "session").to_string();
        assert_eq!(session.len(), 16, "{decision}");
        let label = format!("agent-gate.session={session}");
        assert!(
            decision.contains(&format!(r#"\"run\",\"--label\",\"{label}\",\"sha256:"#)),
            "the decision shows the label docker gets: {decision}"
        );
        match ending {
            "SIGTERM" => kill(Pid::from_raw(gate.id() as i32), Signal::SIGTERM).unwrap(),
            _ => drop(gate.stdout.take()),
        }
        let code = exit_code(&mut gate);
        assert_eq!(code, Some(if ending == "SIGTERM" { 143 } else { 141 }));
        assert!(
            !w.path("container").exists(),
            "{ending}: the container is left"
        );
        let calls = docker_calls(&w);
        assert_eq!(
            calls.get(2..),
            Some(
                &[
                    format!("ps -aq --filter label={label}"),
                    format!("rm -f -- {CONTAINER}"),
                    format!("ps -aq --filter label={label}"),
                ][..]
            ),
            "{ending}: {calls:?}"
        );
        // Through the same environment as the run.
        let finish = w.record().1;
        assert!(
            finish.contains(&format!("; removed containers {CONTAINER}\"")),
            "{ending}: {finish}"
        );
        assert_eq!(quoted(&finish, "session"), session);
        let mut told = String::new();
        gate.stderr
            .take()
            .unwrap()
            .read_to_string(&mut told)
            .unwrap();
        if ending == "SIGTERM" {
            assert!(
                told.contains(&format!("removed containers {CONTAINER}")),
                "{told}"
            );
        }
    }
}

#[test]
fn a_foreground_container_goes_at_the_rule_s_timeout() {
    need_root!();
    let w = docker_world();
    let rules = std::fs::read_to_string(w.path("rules.yaml")).unwrap();
    let rules = rules.replace("  subcommands:\n", "  timeout: 1\n  subcommands:\n");
    std::fs::write(w.path("rules.yaml"), rules).unwrap();
    let mut gate = start_container(&w);
    assert_eq!(exit_code(&mut gate), Some(124));
    assert!(!w.path("container").exists(), "the container is left");
    let _decision = w.record();
    let finish = w.record().1;
    assert!(
        finish.contains("process group ended at the rule's timeout")
            && finish.contains(&format!("; removed containers {CONTAINER}\"")),
        "{finish}"
    );
}

#[test]
fn a_cancelled_mcp_call_removes_only_its_own_container() {
    need_root!();
    let w = docker_world();
    // The MCP server cancels a call with SIGTERM to that call's gateway.
    let mut gate = start_container_with(&w, &["--session", "feedfacefeedface", "--call", "3"]);
    let labels = std::fs::read_to_string(w.path("container")).unwrap();
    assert_eq!(
        labels.trim(),
        "agent-gate.session=feedfacefeedface agent-gate.call=3"
    );
    kill(Pid::from_raw(gate.id() as i32), Signal::SIGTERM).unwrap();
    assert_eq!(exit_code(&mut gate), Some(143));
    let calls = docker_calls(&w);
    assert_eq!(
        calls.get(2).map(String::as_str),
        Some(
            "ps -aq --filter label=agent-gate.session=feedfacefeedface --filter label=agent-gate.call=3"
        ),
        "{calls:?}"
    );
    assert!(!w.path("container").exists());
    let _decision = w.record();
    let finish = w.record().1;
    assert!(
        finish.contains(&format!("; removed containers {CONTAINER}\"")),
        "{finish}"
    );
    assert_eq!(quoted(&finish, "session"), "feedfacefeedface");
    assert_eq!(quoted(&finish, "call"), "3");

    // Another call of the same session finds nothing of this one's to remove.
    let w = docker_world();
    std::fs::write(
        w.path("container"),
        " agent-gate.session=feedfacefeedface agent-gate.call=4\n",
    )
    .unwrap();
    let mut gate = w
        .process("hermes", Some("docker run example/app:1 sleep 300"))
        .args(["--session", "feedfacefeedface", "--call", "5"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The stub overwrites `container` with call 5's labels on run; wait for that.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(w.path("container"))
        .unwrap()
        .contains("call=5")
    {
        assert!(Instant::now() < deadline, "docker run never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::write(
        w.path("container"),
        " agent-gate.session=feedfacefeedface agent-gate.call=4\n",
    )
    .unwrap();
    kill(Pid::from_raw(gate.id() as i32), Signal::SIGTERM).unwrap();
    assert_eq!(exit_code(&mut gate), Some(143));
    assert!(
        w.path("container").exists(),
        "call 5 removed call 4's container"
    );
    let _decision = w.record();
    let finish = w.record().1;
    assert!(
        finish.contains("; no container it started was left"),
        "{finish}"
    );
}

#[test]
fn a_container_that_cannot_be_removed_is_named_in_the_finish_record() {
    need_root!();
    let w = docker_world();
    std::fs::write(w.path("rm.fails"), "").unwrap();
    let mut gate = start_container(&w);
    kill(Pid::from_raw(gate.id() as i32), Signal::SIGHUP).unwrap();
    assert_eq!(exit_code(&mut gate), Some(129));
    let _decision = w.record();
    let finish = w.record().1;
    assert!(
        finish.contains(&format!(
            "; could not remove containers: {CONTAINER} still there (`docker rm` failed: Error response from daemon: the engine is busy); remove them with `docker rm -f {CONTAINER}`\""
        )),
        "{finish}"
    );
}

#[test]
fn a_run_that_ends_by_itself_or_detaches_leaves_its_container() {
    need_root!();
    for (command, labeled) in [
        ("docker run example/app:1 sleep true", true),
        ("docker run -d example/app:1 sleep 300", false),
    ] {
        let w = docker_world();
        let out = w.gate(Some(command)).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{command}: {out:?}");
        let calls = docker_calls(&w);
        assert_eq!(
            calls.len(),
            2,
            "{command}: only the image lookup and the run: {calls:?}"
        );
        let run = calls.last().unwrap();
        assert_eq!(
            run.contains("--label agent-gate.session="),
            labeled,
            "{run}"
        );
        let _decision = w.record();
        let finish = w.record().1;
        assert!(
            finish.contains("status=\"exited 0\""),
            "{command}: {finish}"
        );
    }
}
