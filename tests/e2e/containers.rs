//! A killed client leaves no container running: a `docker run` in the foreground is labeled
//! with the session by the gateway, and when the client goes the gateway ends the docker CLI
//! and removes that container; one started with `-d` is meant to stay, and stays.

use std::process::Stdio;
use std::time::{Duration, Instant};

use super::{Ledger, expect, field, last_for, ssh, text};
use crate::host::{self, Host, IMAGE};

const SESSION_LABEL: &str = "agent-gate.session";

/// `docker ps` (running, or all with `-a`) of the containers made from the test image, as
/// `ID SESSION` pairs (SESSION: the gateway's session label, empty where there is none).
fn from_image(host: &Host, all: bool) -> Vec<(String, String)> {
    let mut args = vec!["ps"];
    if all {
        args.push("-a");
    }
    let filter = format!("ancestor={IMAGE}");
    let format = format!("{{{{.ID}}}} {{{{.Label \"{SESSION_LABEL}\"}}}}");
    args.extend(["--filter", &filter, "--format", &format]);
    let out = host::run(&host.docker, &args);
    text(&out.stdout)
        .lines()
        .map(|l| {
            let (id, session) = l.split_once(' ').unwrap_or((l, ""));
            (id.to_string(), session.trim().to_string())
        })
        .collect()
}

/// Returns the report line: how long the containers outlived their clients.
pub fn killed_client_leaves_no_container(host: &Host, ledger: &mut Ledger) -> String {
    let plain = foreground(
        host,
        ledger,
        &format!("docker run --network none {IMAGE} sleep 300"),
    );
    // With `--rm` the engine removes the container itself once it stops: that races the
    // gateway's `rm -f`, and must still end as "removed".
    let rm = foreground(
        host,
        ledger,
        &format!("docker run --rm --network none {IMAGE} sleep 299"),
    );

    // Detached: the CLI returns at once, the client goes, the container stays, unlabeled.
    let name = "agent-gate-e2e-kept";
    let command = format!("docker run -d --name {name} --network none {IMAGE} sleep 300");
    let out = ssh(host, "hermes", &command);
    expect(&out, 0, &command);
    ledger.allowed();
    let records = ledger.settle("containers: detached");
    let finish = last_for(&records, &command)
        .into_iter()
        .find(|r| field(r, "event") == Some("finish"))
        .unwrap_or_else(|| panic!("no finish record for {command}"));
    assert_eq!(field(finish, "status"), Some("exited 0"), "{finish}");
    let out = host::run(
        &host.docker,
        &[
            "inspect",
            "--format",
            &format!("{{{{.State.Running}}}}|{{{{index .Config.Labels \"{SESSION_LABEL}\"}}}}"),
            name,
        ],
    );
    assert_eq!(text(&out.stdout).trim(), "true|", "the detached container");
    host::run(&host.docker, &["rm", "-f", name]);
    format!(
        "containers: foreground runs' containers removed {:.1} s (plain) and {:.1} s (--rm) after their clients were killed; a detached one kept",
        plain.as_secs_f64(),
        rm.as_secs_f64()
    )
}

/// A foreground run through the gateway, its client killed: the container must go, and
/// the records say so. How long it outlived the client.
fn foreground(host: &Host, ledger: &mut Ledger, command: &str) -> Duration {
    let before = from_image(host, true);
    let mut client = host
        .ssh("hermes")
        .arg(command)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let (id, session) = loop {
        let new = from_image(host, false)
            .into_iter()
            .find(|(id, _)| !before.iter().any(|(old, _)| old == id));
        if let Some(found) = new {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "no container started for `{command}`"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let killed = Instant::now();
    let _ = client.kill();
    let _ = client.wait();
    // The gateway ends the CLI (SIGTERM, 2 s, SIGKILL), then removes the container.
    let filter = format!("id={id}");
    let gone = Instant::now() + Duration::from_secs(30);
    loop {
        let out = host::run(&host.docker, &["ps", "-aq", "--filter", &filter]);
        if text(&out.stdout).trim().is_empty() {
            break;
        }
        if Instant::now() > gone {
            host::run(&host.docker, &["rm", "-f", &id]);
            panic!("container {id} outlived its client (session label `{session}`)");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let removed_after = killed.elapsed();
    assert_eq!(
        session.len(),
        16,
        "the label holds the session id: {session:?}"
    );
    ledger.allowed();
    let records = ledger.settle("containers: the client killed");
    let ours = last_for(&records, command);
    let decision = ours
        .iter()
        .find(|r| field(r, "event") == Some("decision"))
        .unwrap_or_else(|| panic!("no decision record: {ours:?}"));
    assert_eq!(field(decision, "session"), Some(session.as_str()));
    assert!(
        decision.contains(&format!("{SESSION_LABEL}={session}")),
        "the decision's exec shows the label: {decision}"
    );
    let finish = ours
        .iter()
        .find(|r| field(r, "event") == Some("finish"))
        .unwrap_or_else(|| panic!("no finish record: {ours:?}"));
    let status = field(finish, "status").unwrap_or_default();
    assert!(
        status.starts_with("process group ended")
            && status.ends_with(&format!("; removed containers {id}")),
        "{finish}"
    );
    assert_eq!(field(finish, "session"), Some(session.as_str()));
    removed_after
}
