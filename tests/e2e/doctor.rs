//! `agent-gate doctor` on the end-to-end host, as root: the host as set up (with its two
//! deliberately unrendered authorized_keys lines), then clean, then with each piece broken in
//! turn and restored: a stale sudoers, a missing program, an `AcceptEnv *` in a Match after
//! the block, the block narrowed to one address. Doctor writes no audit record (its test datagram goes at user.debug, which the
//! host's receiver does not keep), so the ledger is unchanged.

use std::os::unix::fs::PermissionsExt;
use std::process::{Output, Stdio};
use std::time::Duration;

use crate::host::{Host, USER, path, run};
use crate::{Ledger, finish, text};

/// The host's sudoers file (tests/e2e/host.rs installs it there).
const SUDOERS: &str = "/etc/sudoers.d/agent-gate-e2e";

fn doctor(extra: &[&str]) -> Output {
    let child = std::process::Command::new(path("bin/agent-gate"))
        .arg("doctor")
        .arg("--rules")
        .arg(path("rules.yaml"))
        .args(["--user", USER])
        .arg("--sshd-config")
        .arg(path("sshd_config"))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish(child, Duration::from_secs(60), "agent-gate doctor")
}

/// Doctor failed, with a FAIL line for `check` that says `says`.
fn fails_naming(out: &Output, check: &str, says: &str, what: &str) {
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(78),
        "{what}: doctor must fail\n{stdout}{}",
        text(&out.stderr)
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with(&format!("FAIL {check}")) && l.contains(says)),
        "{what}: no FAIL line for `{check}` naming `{says}`:\n{stdout}"
    );
}

fn write_mode(file: &str, content: &str, mode: u32) {
    std::fs::write(file, content).unwrap();
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode)).unwrap();
}

pub fn doctor_names_what_is_broken(_host: &Host, ledger: &mut Ledger) {
    let keys = path("keys").join(USER);
    let keys = keys.to_str().unwrap();
    let installed_keys = std::fs::read_to_string(keys).unwrap();

    // As set up: a `restrict` line without command= for the login-shell step, and a
    // stranger's key. With the shell /bin/sh, the first is a shell for that key.
    let out = doctor(&[]);
    fails_naming(
        &out,
        "authorized_keys",
        "extra: `restrict ssh-ed25519",
        "as set up",
    );
    fails_naming(
        &out,
        "forced command",
        "such a key gets a shell",
        "as set up",
    );

    // Clean: authorized_keys exactly as rendered; everything else as the host installed it.
    write_mode(keys, &Host::render("authorized-keys"), 0o644);
    let out = doctor(&["--json"]);
    let findings: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor --json: {e}: {}", text(&out.stdout)));
    let failed: Vec<&serde_json::Value> = findings
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["ok"] != true)
        .collect();
    assert!(failed.is_empty(), "a clean host: {failed:#?}");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for check in [
        "sudoers",
        "authorized_keys",
        "forced command",
        "sshd PermitTTY",
        "sshd AcceptEnv",
        "sshd ExposeAuthInfo",
        "sshd MaxStartups",
    ] {
        assert!(
            findings
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["check"] == check),
            "no `{check}` finding: {findings:#}"
        );
    }
    let out = doctor(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    // The host's sshd allows 200 startups but leaves MaxSessions at its default.
    let out = doctor(&["--sessions", "200"]);
    fails_naming(
        &out,
        "sshd MaxSessions",
        "10 for 200 sessions",
        "--sessions 200",
    );

    // A stale sudoers: one line removed, then an older rendering of one line.
    let sudoers = std::fs::read_to_string(SUDOERS).unwrap();
    let sshd = crate::host::which("sshd").unwrap();
    let without: String = sudoers
        .lines()
        .filter(|l| !l.contains(&format!("NOPASSWD: {sshd} ")))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(without, sudoers, "the sudoers has a line for {sshd}");
    write_mode(SUDOERS, &without, 0o440);
    run("visudo", &["-c", "-q"]);
    let out = doctor(&[]);
    fails_naming(
        &out,
        "sudoers",
        &format!("missing: sudo does not grant `{USER} ALL=(root) CWD=/ NOPASSWD: {sshd} "),
        "a sudoers line removed",
    );
    let older = format!("{without}{USER} ALL=(root) NOPASSWD: {sshd} ^-T$\n");
    write_mode(SUDOERS, &older, 0o440);
    run("visudo", &["-c", "-q"]);
    let out = doctor(&[]);
    fails_naming(&out, "sudoers", "stale", "an older rendering");
    write_mode(SUDOERS, &sudoers, 0o440);
    run("visudo", &["-c", "-q"]);

    // A missing program: the deploy's nh, renamed away.
    let nh = path("bin/nh");
    let moved = path("bin/nh.moved");
    std::fs::rename(&nh, &moved).unwrap();
    let out = doctor(&[]);
    std::fs::rename(&moved, &nh).unwrap();
    fails_naming(
        &out,
        &format!("program {}", nh.display()),
        "does not exist",
        "a missing program",
    );

    // `AcceptEnv *` in a Match after the block: it adds to the block's list for the account.
    // (A global one before the block is replaced by the block's: see tests/render.rs.)
    let config = path("sshd_config");
    let sshd_config = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{sshd_config}\nMatch all\n    AcceptEnv *\n"),
    )
    .unwrap();
    let out = doctor(&[]);
    std::fs::write(&config, &sshd_config).unwrap();
    fails_naming(
        &out,
        "sshd AcceptEnv",
        " *` from the client",
        "a global AcceptEnv *",
    );

    // The block narrowed to one client address: every other client gets sshd's defaults.
    let narrowed = sshd_config.replace(
        &format!("Match User {USER}\n"),
        &format!("Match User {USER} Address 127.0.0.1\n"),
    );
    assert_ne!(
        narrowed, sshd_config,
        "the host's config has the rendered block"
    );
    std::fs::write(&config, &narrowed).unwrap();
    let out = doctor(&[]);
    std::fs::write(&config, &sshd_config).unwrap();
    fails_naming(
        &out,
        "sshd from other addresses",
        "must match on User alone",
        "a block matched on Address too",
    );

    // Everything restored: clean again, and as the host set it up for the later steps.
    let out = doctor(&[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "restored: {}",
        text(&out.stdout)
    );
    write_mode(keys, &installed_keys, 0o644);
    ledger.settle("doctor");
}
