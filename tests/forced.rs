//! Forced mode, as sshd runs it: `agent-gate --rules FILE --key LABEL` with the command in
//! SSH_ORIGINAL_COMMAND. The programs are recording stubs in a temporary directory and the
//! audit socket is a unix datagram listener owned by the test.
//!
//! Forced mode requires a root-owned rules file, so these tests need root (CI runs as root).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/world.rs"]
mod world;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use assert_cmd::Command;
use world::{OTHER_FP, OTHER_KEY, PINNED_FP, PINNED_KEY, World};

const AUTHPRIV_INFO: u32 = 10 * 8 + 6;
const AUTHPRIV_NOTICE: u32 = 10 * 8 + 5;

#[test]
fn an_allowed_command_runs_exactly_and_is_audited_twice() {
    need_root!();
    let w = World::new();
    let out = w.gate(Some("docker ps -a")).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "stub docker ran\n");
    assert_eq!(
        w.ran("docker").unwrap(),
        vec![
            w.path("docker").display().to_string(),
            "ps".into(),
            "-a".into()
        ]
    );
    let env = w.env_of("docker");
    assert!(
        env.contains(&format!(
            "DOCKER_CONFIG={}",
            w.path("docker-config").display()
        )),
        "{env}"
    );
    assert!(
        !env.contains("DOCKER_HOST") && !env.contains("LESSOPEN") && !env.contains("SSH_"),
        "{env}"
    );
    let (pri, decision) = w.record();
    assert_eq!(pri, AUTHPRIV_INFO);
    for field in [
        "event=\"decision\"",
        "key=\"hermes\"",
        "client=\"203.0.113.9\"",
        "cmd=\"docker ps -a\"",
        "decision=\"allow\"",
        "rule=\"docker ps\"",
        "rules=\"sha256:",
    ] {
        assert!(decision.contains(field), "{field} in {decision}");
    }
    let (_, finish) = w.record();
    assert!(
        finish.contains("event=\"finish\"") && finish.contains("status=\"exited 0\""),
        "{finish}"
    );
    w.no_more_records();
}

#[test]
fn the_childs_exit_status_passes_through() {
    need_root!();
    let w = World::new();
    let out = w.gate(Some("docker inspect exit3")).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    w.record();
    assert!(w.record().1.contains("status=\"exited 3\""));
}

#[test]
fn a_sudo_diagnostic_runs_through_sudo_n() {
    need_root!();
    let w = World::new();
    let out = w.gate(Some("sudo iptables -nL")).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let argv = w.ran("sudo").unwrap();
    assert_eq!(
        argv[1..],
        [
            "-n",
            "--",
            &w.path("iptables").display().to_string(),
            "--list",
            "--numeric"
        ],
        "through sudo, the rule's canonical form"
    );
    assert!(
        w.ran("iptables").is_none(),
        "the gateway never runs the program itself"
    );
}

#[test]
fn a_refused_command_runs_nothing_and_says_why() {
    need_root!();
    let w = World::new();
    let out = w
        .gate(Some("docker run --privileged alpine"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(77));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("agent-gate: refused: `docker run` is refused"),
        "{stderr}"
    );
    assert!(
        stderr.contains("agent-gate: instead: allowed: docker inspect, docker ps"),
        "{stderr}"
    );
    assert!(w.ran("docker").is_none());
    let (pri, rec) = w.record();
    assert_eq!(pri, AUTHPRIV_NOTICE);
    assert!(rec.contains("decision=\"refuse\""), "{rec}");
    w.no_more_records();
}

#[test]
fn untokenizable_commands_exit_64_and_are_escaped_in_the_log() {
    need_root!();
    let w = World::new();
    let out = w
        .gate(Some("docker ps\n\u{1b}[2K\u{202e}event=\"finish\""))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("control character U+000A at column 10"),
        "{stderr}"
    );
    assert!(!stderr.contains('\u{1b}'));
    let (_, rec) = w.record();
    assert!(
        !rec.contains('\n') && !rec.contains('\u{1b}') && !rec.contains('\u{202e}'),
        "{rec}"
    );
    assert!(
        rec.contains(r#"cmd="docker ps\x0a\x1b[2K\xe2\x80\xaeevent=\"finish\"""#),
        "{rec}"
    );
    assert_eq!(rec.matches("event=\"").count(), 1, "{rec}");
    assert!(w.ran("docker").is_none());
}

#[test]
fn an_empty_command_is_a_login_and_gets_the_list() {
    need_root!();
    let w = World::new();
    for command in [None, Some(""), Some("   ")] {
        let out = w.gate(command).output().unwrap();
        assert_eq!(out.status.code(), Some(77), "{command:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr.contains("no login shell") && stderr.contains("what key `hermes` may run"),
            "{stderr}"
        );
        assert!(w.record().1.contains("decision=\"refuse\""));
    }
}

#[test]
fn help_prints_the_list_and_runs_nothing() {
    need_root!();
    let w = World::new();
    let out = w.gate(Some("help")).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("sudo iptables (-L|--list) [-n|--numeric]")
    );
    assert!(w.record().1.contains("rule=\"help\""));
}

#[test]
fn a_deploy_starts_the_approval_step_through_sudo_and_never_nh() {
    need_root!();
    let w = World::new();
    let out = w
        .gate(Some("sudo nh os switch /etc/nixos"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "the stub sudo's own status");
    let gate = assert_cmd::cargo::cargo_bin("agent-gate");
    let rules = w.path("rules.yaml");
    let sudo = w.path("sudo");
    let expected = [
        sudo.to_str().unwrap(),
        "-n",
        "--",
        gate.to_str().unwrap(),
        "deploy-step",
        "--rules",
        rules.to_str().unwrap(),
        "--form",
        "nh",
        "--key",
        "hermes",
        "--client",
        "203.0.113.9",
    ];
    assert_eq!(w.ran("sudo").unwrap(), expected);
    assert_eq!(w.ran("nh"), None, "the gateway itself runs no deploy");
    let (_, decision) = w.record();
    assert!(decision.contains("decision=\"ask\""), "{decision}");
    assert!(
        decision.contains("--bypass-root-check"),
        "the record names what runs as root once approved: {decision}"
    );
    assert!(w.record().1.contains("event=\"finish\""));
}

#[test]
fn the_timeout_kills_the_child() {
    need_root!();
    let w = World::new();
    let started = std::time::Instant::now();
    let out = w.gate(Some("sleeper sleep")).output().unwrap();
    assert_eq!(out.status.code(), Some(124));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "killed well before the stub's 30 s sleep"
    );
    w.record();
    assert!(
        w.record()
            .1
            .contains("process group ended at the rule's timeout")
    );
}

#[test]
fn no_audit_socket_means_nothing_runs() {
    need_root!();
    let w = World::new();
    std::fs::remove_file(w.path("log.sock")).unwrap();
    let out = w.gate(Some("docker ps")).output().unwrap();
    assert_eq!(out.status.code(), Some(77));
    assert!(String::from_utf8_lossy(&out.stderr).contains("audit log cannot be written"));
    assert!(w.ran("docker").is_none());
}

#[test]
fn rules_the_agent_could_write_refuse_everything() {
    need_root!();
    let w = World::new();
    let rules = w.path("rules.yaml");
    std::fs::set_permissions(&rules, std::fs::Permissions::from_mode(0o664)).unwrap();
    let out = w.gate(Some("docker ps")).output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    let (_, rec) = w.record();
    assert!(
        rec.contains("event=\"config-error\"") && rec.contains("lets others than root write it"),
        "{rec}"
    );
    std::fs::set_permissions(&rules, std::fs::Permissions::from_mode(0o644)).unwrap();
    nix::unistd::chown(&rules, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let out = w.gate(Some("docker ps")).output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(w.record().1.contains("owned by uid 65534, not root"));
    assert!(w.ran("docker").is_none());
}

#[test]
fn a_broken_rules_file_refuses_everything() {
    need_root!();
    let w = World::new();
    std::fs::write(w.path("rules.yaml"), "version: 1\nkeys: {}\nbogus: 1\n").unwrap();
    let out = w.gate(Some("docker ps")).output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("configuration is broken"));
    assert!(w.record().1.contains("unknown field `bogus`"));
}

#[test]
fn identity_label_and_client_network() {
    need_root!();
    let w = World::new();
    let unknown = w.gate_as("stranger", Some("docker ps")).output().unwrap();
    assert_eq!(unknown.status.code(), Some(77));
    assert!(w.record().1.contains("not in the rules"));
    // `other` may connect only from 192.0.2.0/24; this client is 203.0.113.9.
    let other = w.gate_as("other", Some("docker ps")).output().unwrap();
    assert_eq!(other.status.code(), Some(77));
    assert!(w.record().1.contains("may not connect from this address"));
    let mut inside = w.gate_as("other", Some("docker ps"));
    inside.env("SSH_CONNECTION", "192.0.2.77 1 192.0.2.1 22");
    assert_eq!(inside.output().unwrap().status.code(), Some(0));
    assert!(w.ran("docker").is_some());
}

#[test]
fn a_command_that_is_not_utf8_is_refused() {
    need_root!();
    use std::os::unix::ffi::OsStrExt;
    let w = World::new();
    let mut cmd = w.gate(None);
    cmd.env(
        "SSH_ORIGINAL_COMMAND",
        std::ffi::OsStr::from_bytes(b"docker ps \xff"),
    );
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("U+FFFD"));
    assert!(w.ran("docker").is_none());
    assert!(w.record().1.contains(r#"cmd="docker ps \xef\xbf\xbd""#));
}

/// Write an ExposeAuthInfo file (`publickey TYPE BLOB`) for `key` as sshd does (its name
/// template in /tmp, mode 0600, owned by the account: here root, who runs the gateway); the
/// file goes when the returned path is dropped.
fn user_auth(key: &str) -> tempfile::TempPath {
    let blob: Vec<&str> = key.split(' ').take(2).collect();
    let file = tempfile::Builder::new()
        .prefix("sshauth.")
        .rand_bytes(15)
        .tempfile_in("/tmp")
        .unwrap();
    std::fs::write(file.path(), format!("publickey {}\n", blob.join(" "))).unwrap();
    file.into_temp_path()
}

#[test]
fn the_authenticating_key_is_logged_and_must_match_a_pinned_label() {
    need_root!();
    let w = World::new();
    let right = user_auth(PINNED_KEY);
    let wrong = user_auth(OTHER_KEY);

    let out = w
        .gate_as("pinned", Some("docker ps"))
        .env("SSH_USER_AUTH", &right)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        w.record()
            .1
            .contains(&format!("fingerprint=\"{PINNED_FP}\""))
    );
    w.record();

    let out = w
        .gate_as("pinned", Some("docker ps"))
        .env("SSH_USER_AUTH", &wrong)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(77));
    let rec = w.record().1;
    assert!(
        rec.contains("not the one registered for this label") && rec.contains(OTHER_FP),
        "{rec}"
    );

    let out = w.gate_as("pinned", Some("docker ps")).output().unwrap();
    assert_eq!(out.status.code(), Some(77));
    assert!(w.record().1.contains("ExposeAuthInfo"));

    // A label without a pinned key runs, and the record still says which key it was.
    let out = w
        .gate(Some("docker ps"))
        .env("SSH_USER_AUTH", &wrong)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        w.record()
            .1
            .contains(&format!("fingerprint=\"{OTHER_FP}\""))
    );
}

#[test]
fn a_login_shell_takes_the_label_from_the_key_that_authenticated() {
    need_root!();
    let w = World::new();
    let pinned = user_auth(PINNED_KEY);
    let unpinned = user_auth(OTHER_KEY);

    let out = w
        .shell("docker ps")
        .env("SSH_USER_AUTH", &pinned)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(w.record().1.contains("key=\"pinned\""));
    w.record();

    let out = w.shell("docker ps").output().unwrap();
    assert_eq!(out.status.code(), Some(77));
    assert!(w.record().1.contains("ExposeAuthInfo"));

    let out = w
        .shell("docker ps")
        .env("SSH_USER_AUTH", &unpinned)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(77));
    assert!(
        w.record()
            .1
            .contains("no label in the rules pins the key that authenticated")
    );
    assert!(
        w.ran("docker").is_some(),
        "only the pinned key's command ran"
    );
}

#[test]
fn a_forced_command_seen_through_the_login_shell_can_change_nothing() {
    need_root!();
    let w = World::new();
    let pinned = user_auth(PINNED_KEY);
    let rules = w.path("rules.yaml").display().to_string();
    let forced = |flags: &str| format!("/nix/store/x-agent-gate/bin/agent-gate {flags}");

    // The usual case: authorized_keys' command= runs through the shell.
    let out = w
        .shell(&forced(&format!("--rules {rules} --key pinned")))
        .env("SSH_USER_AUTH", &pinned)
        .env("SSH_ORIGINAL_COMMAND", "docker ps")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    w.record();
    w.record();

    // No command from the agent: a login, answered with the list of the key's label.
    let out = w
        .shell(&forced("--key pinned"))
        .env("SSH_USER_AUTH", &pinned)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(77));
    assert!(String::from_utf8_lossy(&out.stderr).contains("what key `pinned` may run"));
    w.record();

    // Another label than the key's own.
    let out = w
        .shell(&forced("--key hermes"))
        .env("SSH_USER_AUTH", &pinned)
        .env("SSH_ORIGINAL_COMMAND", "docker ps")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(77));
    assert!(w.record().1.contains("names another label"));

    // Another rules file, another audit socket: refused (the `-c` string may be the agent's
    // own imitation), recorded to the policy's socket with the label unknown; nothing runs.
    for flags in [
        "--rules /nix/store/old-rules.yaml --key pinned".to_string(),
        format!("--rules {rules} --audit-socket /tmp/mine.sock"),
    ] {
        let out = w
            .shell(&forced(&flags))
            .env("SSH_USER_AUTH", &pinned)
            .env("SSH_ORIGINAL_COMMAND", "docker ps")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(77), "{flags}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("configuration is broken"), "{stderr}");
        let record = w.record().1;
        for field in [
            "event=\"decision\"",
            "decision=\"refuse\"",
            "rule=\"login-shell\"",
            "key=\"-\"",
            "cmd=\"docker ps\"",
        ] {
            assert!(record.contains(field), "{field}: {record}");
        }
    }
    // The agent's own `-c` strings shape no record: the label stays unknown until the key
    // that authenticated names one, and the command recorded is what the agent sent.
    for (command, reason) in [
        (
            "agent-gate --key approved-by-root",
            "no login shell: send one command",
        ),
        (
            "agent-gate --flush-everything",
            "may pass only --rules and --key",
        ),
    ] {
        let out = w
            .shell(command)
            .env("SSH_USER_AUTH", &pinned)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(77), "{command}");
        let record = w.record().1;
        assert!(record.contains("key=\"-\""), "{record}");
        assert!(record.contains(&format!("cmd=\"{command}\"")), "{record}");
        assert!(record.contains(reason), "{reason}: {record}");
        assert!(!record.contains("config-error"), "{record}");
    }
    // A command that starts with `-` is a command, not the gateway's own option.
    for command in ["-x", "--rules=/etc/shadow", "-h"] {
        let out = w
            .shell(command)
            .env("SSH_USER_AUTH", &pinned)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(77), "{command}: {out:?}");
        let record = w.record().1;
        assert!(record.contains("event=\"decision\""), "{record}");
        assert!(record.contains(&format!("cmd=\"{command}\"")), "{record}");
    }
    assert_eq!(
        w.ran("docker").unwrap().len(),
        2,
        "docker ran once: `docker ps`"
    );
}

#[test]
fn a_forced_command_without_a_label_uses_the_pinned_key() {
    need_root!();
    let w = World::new();
    let pinned = user_auth(PINNED_KEY);
    let out = Command::cargo_bin("agent-gate")
        .unwrap()
        .args(["--rules", w.path("rules.yaml").to_str().unwrap()])
        .args(["--audit-socket", w.path("log.sock").to_str().unwrap()])
        .env("SSH_ORIGINAL_COMMAND", "help")
        .env("SSH_USER_AUTH", &pinned)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("what key `pinned` may run"));
    assert!(w.record().1.contains("key=\"pinned\""));
}

/// The rules at `rules` refuse everything (exit 78, a `config-error` record saying `why`).
fn refused_by_the_walk(w: &World, rules: &std::path::Path, why: &str) {
    let out = w.gate_with_rules(rules, "docker ps").output().unwrap();
    assert_eq!(out.status.code(), Some(78), "{}: {out:?}", rules.display());
    assert!(String::from_utf8_lossy(&out.stderr).contains("configuration is broken"));
    let (_, rec) = w.record();
    assert!(
        rec.contains("event=\"config-error\"") && rec.contains(why),
        "{why} in {rec}"
    );
    assert!(w.ran("docker").is_none(), "nothing ran");
}

#[test]
fn rules_reached_through_a_directory_others_can_write_refuse_everything() {
    need_root!();
    let w = World::new();
    let rules = std::fs::read(w.path("rules.yaml")).unwrap();
    for (dir, mode) in [("open", 0o777), ("sticky", 0o1777), ("group", 0o775)] {
        let d = w.path(dir);
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("rules.yaml"), &rules).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).unwrap();
        let why = format!(
            "{} has mode {mode:o}, which lets others than root write it",
            d.display()
        );
        refused_by_the_walk(&w, &d.join("rules.yaml"), &why);
    }
    // A directory on the way owned by someone else.
    let theirs = w.path("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::write(theirs.join("rules.yaml"), &rules).unwrap();
    nix::unistd::chown(&theirs, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    refused_by_the_walk(
        &w,
        &theirs.join("rules.yaml"),
        &format!("`chown root {}`", theirs.display()),
    );
}

#[test]
fn rules_reached_through_a_symlink_count_only_where_the_target_passes_too() {
    need_root!();
    let w = World::new();
    // Into a world-writable directory: the file there could be swapped at any time.
    let open = w.path("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::copy(w.path("rules.yaml"), open.join("rules.yaml")).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::os::unix::fs::symlink(open.join("rules.yaml"), w.path("via-open.yaml")).unwrap();
    refused_by_the_walk(
        &w,
        &w.path("via-open.yaml"),
        &format!("{} has mode 777", open.display()),
    );
    // To the good file (relative, through `..`): accepted, and the rules are the target's.
    std::fs::create_dir(w.path("etc")).unwrap();
    std::os::unix::fs::symlink("../rules.yaml", w.path("etc/rules.yaml")).unwrap();
    let out = w
        .gate_with_rules(&w.path("etc/rules.yaml"), "docker ps")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(w.ran("docker").is_some());
}

#[test]
fn a_docker_config_directory_others_can_write_refuses_everything() {
    need_root!();
    let w = World::new();
    let config = w.path("docker-config");
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o777)).unwrap();
    refused_by_the_walk(
        &w,
        &w.path("rules.yaml"),
        &format!(
            "the docker config directory (docker.config) {} has mode 777",
            config.display()
        ),
    );
    std::fs::remove_dir(&config).unwrap();
    refused_by_the_walk(&w, &w.path("rules.yaml"), "does not exist");
}
