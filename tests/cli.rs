//! The operator's commands: `check`, `explain`, `list`, and the messages the agent reads.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use assert_cmd::Command;

const CORPUS_RULES: &str = "tests/corpus/rules.yaml";

fn gate() -> Command {
    Command::cargo_bin("agent-gate").unwrap()
}

fn explain_json(rules: &str, raw: &str) -> serde_json::Value {
    let out = gate()
        .args([
            "explain", "--rules", rules, "--key", "hermes", "--json", "--", raw,
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "explain always exits 0: {out:?}"
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_shipped_rules_check_clean_and_run_their_examples() {
    let out = gate()
        .args(["check", "--rules", "rules.yaml"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("rules.yaml: ok"));
    // The shipped policy's own decisions, spot-checked.
    assert_eq!(
        explain_json("rules.yaml", "docker ps -a")["decision"],
        "allow"
    );
    assert_eq!(
        explain_json("rules.yaml", "sudo journalctl -k -n 50")["exec"][0],
        "/run/wrappers/bin/sudo"
    );
    assert_eq!(
        explain_json("rules.yaml", "docker run --rm attacker/x")["decision"],
        "refuse"
    );
    assert_eq!(
        explain_json("rules.yaml", "nh os switch")["decision"],
        "ask"
    );
}

#[test]
fn explain_json_carries_decision_rule_reason_and_exec() {
    let allowed = explain_json(CORPUS_RULES, "sudo journalctl -u fail2ban -n 20");
    assert_eq!(allowed["decision"], "allow");
    assert_eq!(allowed["rule"], "journalctl");
    assert_eq!(
        allowed["exec"],
        serde_json::json!([
            "/run/wrappers/bin/sudo",
            "-n",
            "--",
            "/run/current-system/sw/bin/journalctl",
            "--no-pager",
            "--unit=fail2ban",
            "--lines=20"
        ])
    );
    assert_eq!(allowed["env"]["SYSTEMD_PAGERSECURE"], "1");

    let docker = explain_json(CORPUS_RULES, "docker ps -a");
    assert_eq!(
        docker["exec"],
        serde_json::json!(["/run/current-system/sw/bin/docker", "ps", "-a"])
    );
    assert_eq!(
        docker["env"]["DOCKER_CONFIG"],
        "/etc/agent-gate/docker-config"
    );
    assert!(docker["env"].get("DOCKER_HOST").is_none());

    let refused = explain_json(CORPUS_RULES, "docker run --privileged alpine");
    assert_eq!(refused["decision"], "refuse");
    assert_eq!(refused["rule"], "docker run");
    assert!(refused.get("exec").is_none());
    assert!(
        refused["reason"]
            .as_str()
            .unwrap()
            .contains("root on the host")
    );

    let help = explain_json(CORPUS_RULES, "help");
    assert_eq!(help["builtin"], "list");
}

#[test]
fn explain_for_humans() {
    let out = gate()
        .args([
            "explain",
            "--rules",
            CORPUS_RULES,
            "--key",
            "hermes",
            "docker logs -f web",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    insta::assert_snapshot!(text, @r"
    decision: refuse
    rule: docker logs
    reason: docker logs: `-f` is never allowed: `docker logs -f` never ends; use `--tail N` or `--since 10m`
    ");
}

#[test]
fn batch_answers_a_bad_line_without_losing_its_place() {
    let out = gate()
        .args([
            "explain",
            "--rules",
            CORPUS_RULES,
            "--key",
            "hermes",
            "--json",
            "--batch",
        ])
        .write_stdin("\"docker ps\"\nnot json\n\"bash\"\n")
        .output()
        .unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["decision"], "allow");
    assert_eq!(lines[1]["decision"], "refuse");
    assert!(
        lines[1]["reason"]
            .as_str()
            .unwrap()
            .contains("not a JSON string")
    );
    assert_eq!(lines[2]["decision"], "refuse");
}

/// Write `text` as a rules file, run `check`, return (exit code, stderr).
fn check_text(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.yaml");
    std::fs::write(&path, text).unwrap();
    let out = gate()
        .args(["check", "--rules", path.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr)
        .unwrap()
        .replace(path.to_str().unwrap(), "FILE");
    (out.status.code().unwrap(), stderr)
}

const MINIMAL: &str = "version: 1\nkeys:\n  hermes:\n    may: [docker]\ndocker:\n  program: /usr/bin/docker\n  config: /etc/agent-gate/docker\n  subcommands:\n    ps: [all]\n";

#[test]
fn check_reports_file_line_column_and_exits_78() {
    assert_eq!(check_text(MINIMAL).0, 0);
    let cases: &[(&str, &str)] = &[
        (
            &MINIMAL.replace("version: 1", "version: 2"),
            "FILE:1:10: this agent-gate reads rules `version: 1`",
        ),
        (
            &MINIMAL.replace("ps: [all]", "ps: [all]\n    run: [privileged]"),
            "FILE:10:11: docker run --privileged can never be allowed: a privileged container is root on the host",
        ),
        (
            &MINIMAL.replace("ps: [all]", "ps: [al]"),
            "FILE:9:10: docker ps has no option `--al`",
        ),
        (
            &MINIMAL.replace("ps: [all]", "exec: []"),
            "FILE:9:5: `docker exec` is allowed only through a program rule with `container:`",
        ),
        (
            &MINIMAL.replace("may: [docker]", "may: [dockre]"),
            "FILE:4:11: no rule `dockre` (rules: docker)",
        ),
        (
            &MINIMAL.replace("program: /usr/bin/docker", "program: usr/bin/docker"),
            "FILE:6:12: docker must be a clean absolute path",
        ),
        (
            &MINIMAL.replace(
                "may: [docker]",
                "may: [docker]\n    public_key: ssh-ed25519 AAAA",
            ),
            "FILE:5:17: not an OpenSSH public key",
        ),
        (
            &MINIMAL.replace(
                "may: [docker]",
                "may: [docker]\n    public_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBnhR3kRTRLTegHjS85xsaF59JzZ6iIFhCZphnjIGICs a\n  twin:\n    may: [docker]\n    public_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBnhR3kRTRLTegHjS85xsaF59JzZ6iIFhCZphnjIGICs b",
            ),
            "FILE:8:17: this public key is already pinned to label `hermes`",
        ),
        (
            &format!(
                "{MINIMAL}sudo: /usr/bin/sudo\nprograms:\n  - id: j\n    command: journalctl\n    path: /usr/bin/journalctl\n    sudo: true\n    options:\n      - {{long: since, value: {{pattern: '\\S+'}}}}\n"
            ),
            "FILE:17:40: `\\S` has no POSIX form for sudoers",
        ),
        (
            &format!(
                "{MINIMAL}sudo: /usr/bin/sudo\nprograms:\n  - id: j\n    command: journalctl\n    path: /usr/bin/journalctl\n    sudo: true\n    args:\n      - {{name: unit, value: {{enum: [a, 'b c']}}}}\n"
            ),
            "FILE:17:40: `b c` cannot be one argument of a sudo command",
        ),
        (
            &format!("{MINIMAL}bogus: 1\n"),
            "FILE:10:1: unknown field `bogus`",
        ),
        (
            &format!("{MINIMAL}keys: {{}}\n"),
            "FILE:10:1: duplicate mapping key: keys\n",
        ),
        (
            &MINIMAL.replace("may: [docker]", "may: &a [docker]\n  other:\n    may: *a"),
            "FILE:4:13: anchors and aliases are not accepted",
        ),
        (
            &MINIMAL.replace("ps: [all]", "ps: !custom [all]"),
            "FILE:9:17: unsupported tag `!custom`",
        ),
        (
            &MINIMAL.replace("ps: [all]", "ps: [all\n"),
            "FILE:9:9: unclosed bracket '['",
        ),
        (
            &format!("{MINIMAL}<<: {{}}\n"),
            "FILE:10:1: YAML merge keys are not allowed",
        ),
        (
            &format!("{MINIMAL}---\nversion: 1\n"),
            "FILE:10:1: a rules file is one YAML document",
        ),
        (
            &format!("{MINIMAL}  examples:\n    allow: [docker ps -q]\n"),
            "FILE:11:13: example `docker ps -q` should be allowed by rule `docker` but is refused: docker ps: option `-q` is not allowed by the rules",
        ),
        (
            &format!("{MINIMAL}  examples:\n    refuse: [docker ps -a]\n"),
            "FILE:11:14: example `docker ps -a` should be refused but rule `docker ps` allows it",
        ),
    ];
    for (text, want) in cases {
        let (code, stderr) = check_text(text);
        assert_eq!(code, 78, "{want}: {stderr}");
        assert!(stderr.starts_with(want), "want {want:?}\ngot  {stderr:?}");
    }
}

#[test]
fn check_on_a_missing_file() {
    let out = gate()
        .args(["check", "--rules", "/nonexistent/rules.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/rules.yaml: cannot read"));
}

#[test]
fn refusal_messages_teach_the_allowed_form() {
    let text = std::fs::read_to_string(CORPUS_RULES).unwrap();
    let policy = agent_gate::rules::parse(&text).unwrap();
    let commands = [
        "docker logs -f web",
        "docker run -p 8080:80 nginx:1.27",
        "docker run -v /:/host alpine",
        "docker exec -it web sh",
        "docker container ls",
        "docker -H tcp://10.0.0.5:2375 ps",
        "docker compose -f /tmp/evil.yml up -d",
        "docker build -f /etc/Dockerfile /srv/api",
        "sudo iptables -F",
        "sudo journalctl",
        "sudo -u root iptables -L",
        "iptables -L",
        "sudo fail2ban-client set sshd unbanip 1.2.3.4",
        "nh os switch --impure",
        "bash -i",
        "docker ps; sh",
        "docker ps \"$(id)\"",
        "docker ps\u{1b}[2J",
        "docker run \u{2013}privileged alpine",
        "DOCKER_HOST=tcp://x docker ps",
        "/usr/bin/docker ps",
        "",
    ];
    let mut all = String::new();
    for raw in commands {
        let d = agent_gate::decide::decide(
            &policy,
            &agent_gate::decide::Request {
                raw,
                key: Some("hermes"),
                by_key: false,
                client: None,
                fingerprint: None,
            },
        );
        all.push_str(&format!(
            "$ {}\n  {}: {}\n",
            agent_gate::escape::escape(raw),
            d.decision_word(),
            d.reason
        ));
        if let Some(hint) = &d.hint {
            all.push_str(&format!("  instead: {hint}\n"));
        }
    }
    insta::assert_snapshot!("refusals", all);
}

#[test]
fn list_is_what_the_agent_reads() {
    let out = gate()
        .args(["list", "--rules", CORPUS_RULES, "--key", "hermes"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    insta::assert_snapshot!("list_hermes", String::from_utf8(out.stdout).unwrap());
    let none = gate()
        .args(["list", "--rules", CORPUS_RULES, "--key", "nobody"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&none.stdout).contains("nothing is allowed"));
}

#[test]
fn the_man_page_and_completions_cover_every_command() {
    let man = gate().args(["generate", "man"]).output().unwrap();
    assert_eq!(man.status.code(), Some(0));
    let man = String::from_utf8(man.stdout).unwrap();
    assert!(
        man.starts_with(".ie") && man.contains(".TH agent-gate 1"),
        "{man:.200}"
    );
    assert!(
        man.contains("approve") && !man.contains("deploy\\-step"),
        "the step is hidden"
    );
    for shell in ["bash", "zsh", "fish"] {
        let out = gate().args(["generate", shell]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        for command in ["explain", "pending", "approve", "deny", "render"] {
            assert!(script.contains(command), "{shell} completes `{command}`");
        }
    }
}

/// `doctor` as root against a host made in a directory of its own: a rules file that names a
/// program that is not there, an audit socket the account cannot write, an sshd config with
/// the rendered block, no authorized_keys. Needs root and sshd; skipped otherwise.
#[test]
fn doctor_reports_each_finding_with_its_fix_and_fails_until_all_hold() {
    use std::os::unix::fs::PermissionsExt;
    let sshd = "/usr/sbin/sshd";
    if !nix::unistd::Uid::effective().is_root() || !std::path::Path::new(sshd).exists() {
        return;
    }
    if std::fs::create_dir_all("/run/sshd").is_err() {
        return;
    }
    // Under /run, root's and not shared, like the paths a host uses.
    let dir = tempfile::Builder::new()
        .prefix("agent-gate-doctor-")
        .tempdir_in("/run")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let at = |name: &str| dir.path().join(name).display().to_string();
    let rules = at("rules.yaml");
    std::fs::write(
        &rules,
        format!(
            "version: 1\naudit:\n  socket: {}\nkeys:\n  hermes:\n    public_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBnhR3kRTRLTegHjS85xsaF59JzZ6iIFhCZphnjIGICs hermes@agent\n    may: [nap]\nprograms:\n  - id: nap\n    command: sleep\n    path: {}\n    args:\n      - {{name: seconds, value: {{int: [1, 600]}}}}\n",
            at("log.sock"),
            at("missing-sleep")
        ),
    )
    .unwrap();
    let receiver = std::os::unix::net::UnixDatagram::bind(at("log.sock")).unwrap();
    receiver
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    std::fs::set_permissions(at("log.sock"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let made = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(at("host_key"))
        .status()
        .unwrap();
    assert!(made.success());
    let gate_path = assert_cmd::cargo::cargo_bin("agent-gate");
    let block = gate()
        .args(["render", "sshd", "--user", "nobody", "--rules", &rules])
        .output()
        .unwrap();
    assert!(block.status.success(), "{block:?}");
    std::fs::write(
        at("sshd_config"),
        format!(
            "HostKey {}\nUsePAM no\nAuthorizedKeysFile {}/%u\n{}",
            at("host_key"),
            at("keys"),
            String::from_utf8(block.stdout).unwrap()
        ),
    )
    .unwrap();
    let doctor = || {
        gate()
            .args(["doctor", "--json", "--user", "nobody", "--rules", &rules])
            .args(["--sshd-config", &at("sshd_config")])
            .timeout(std::time::Duration::from_secs(60))
            .output()
            .unwrap()
    };
    let find = |findings: &serde_json::Value, check: &str| -> serde_json::Value {
        findings
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["check"] == check)
            .unwrap_or_else(|| panic!("no `{check}` finding: {findings:#}"))
            .clone()
    };
    let out = doctor();
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let findings: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for f in findings.as_array().unwrap() {
        assert!(f["check"].is_string() && f["detail"].is_string(), "{f}");
        // A failure says how to fix it; a check that holds has nothing to fix.
        assert_eq!(f["ok"] == true, f["fix"].is_null(), "{f}");
    }
    assert_eq!(find(&findings, "rules path")["ok"], true);
    assert_eq!(find(&findings, "rules")["ok"], true);
    assert_eq!(find(&findings, "sshd PermitTTY")["ok"], true);
    assert_eq!(find(&findings, "sshd AcceptEnv")["ok"], true);
    let program = find(&findings, &format!("program {}", at("missing-sleep")));
    assert_eq!(program["ok"], false);
    assert!(
        program["detail"]
            .as_str()
            .unwrap()
            .contains("does not exist")
    );
    let socket = find(&findings, &format!("audit socket {}", at("log.sock")));
    assert_eq!(socket["ok"], false);
    assert!(
        socket["detail"]
            .as_str()
            .unwrap()
            .contains("nobody cannot write to it"),
        "{socket}"
    );
    // No authorized_keys file: the rendered line is missing.
    let keys = find(&findings, "authorized_keys");
    assert_eq!(keys["ok"], false);
    assert!(keys["detail"].as_str().unwrap().starts_with("missing:"));
    assert!(
        keys["fix"].as_str().unwrap().contains(&format!(
            "render authorized-keys --rules {rules} --user nobody --gate {}",
            gate_path.display()
        )),
        "{keys}"
    );

    // The socket opened to the account: a test datagram arrives, outside authpriv.
    std::fs::set_permissions(at("log.sock"), std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = doctor();
    let findings: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let socket = find(&findings, &format!("audit socket {}", at("log.sock")));
    assert_eq!(socket["ok"], true, "{socket}");
    let mut buf = [0u8; 512];
    let n = receiver.recv(&mut buf).unwrap();
    let datagram = String::from_utf8_lossy(&buf[..n]);
    assert!(
        datagram.starts_with("<15>agent-gate-doctor: "),
        "{datagram}"
    );

    // Text: one line per finding, FAIL lines carry their fix, and a summary.
    let out = gate()
        .args(["doctor", "--user", "nobody", "--rules", &rules])
        .args(["--sshd-config", &at("sshd_config")])
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("FAIL program {}", at("missing-sleep"))))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains(" -- fix: "), "{line}");
    assert!(
        text.lines().all(|l| l.starts_with("ok   ")
            || l.starts_with("FAIL ")
            || l.ends_with("checks fail")),
        "{text}"
    );
}

const DEBIAN_RULES: &str = "contrib/debian/rules.yaml";

/// Every NixOS path of the shipped rules and the Debian path that replaces it.
const DEBIAN_PATHS: &[(&str, &str)] = &[
    ("/run/wrappers/bin/sudo", "/usr/bin/sudo"),
    (
        "/run/wrappers/bin:/run/current-system/sw/bin",
        "/usr/sbin:/usr/bin",
    ),
    ("/run/current-system/sw/bin/docker", "/usr/bin/docker"),
    ("/run/current-system/sw/bin/iptables", "/usr/sbin/iptables"),
    (
        "/run/current-system/sw/bin/fail2ban-client",
        "/usr/bin/fail2ban-client",
    ),
    (
        "/run/current-system/sw/bin/journalctl",
        "/usr/bin/journalctl",
    ),
    ("/run/current-system/sw/bin/sshd", "/usr/sbin/sshd"),
    ("/run/current-system/sw/bin/ss", "/usr/bin/ss"),
    ("/run/current-system/sw/bin/cat", "/usr/bin/cat"),
];

/// A rules file as the policy it states: comments and blank lines gone, trailing comments cut.
fn policy_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| match line.find(" #") {
            // No value in these files holds ` #`; a quoted one would be cut here and differ.
            Some(at) if !line.trim_start().starts_with('#') => line[..at].trim_end(),
            _ if line.trim_start().starts_with('#') => "",
            _ => line.trim_end(),
        })
        .filter(|line| !line.is_empty())
        .map(String::from)
        .collect()
}

/// The shipped rules as Debian must read them: every NixOS path replaced (a whole YAML value,
/// never part of a longer one), the deploy section and `deploy` in `may` gone.
fn shipped_rules_on_debian() -> Vec<String> {
    let shipped = std::fs::read_to_string("rules.yaml").unwrap();
    let mut lines = Vec::new();
    let mut in_deploy = false;
    for line in policy_lines(&shipped) {
        if !line.starts_with(' ') {
            in_deploy = line == "deploy:";
        }
        if in_deploy {
            continue;
        }
        let mut line = line.replace("may: [docker, deploy, ", "may: [docker, ");
        if let Some((head, value)) = line.split_once(": ")
            && let Some((_, debian)) = DEBIAN_PATHS.iter().find(|(nixos, _)| *nixos == value)
        {
            line = format!("{head}: {debian}");
        }
        lines.push(line);
    }
    lines
}

#[test]
fn the_debian_rules_check_clean_and_are_the_shipped_policy_with_debian_paths() {
    let out = gate()
        .args(["check", "--rules", DEBIAN_RULES])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    let debian = policy_lines(&std::fs::read_to_string(DEBIAN_RULES).unwrap());
    let expected = shipped_rules_on_debian();
    for (at, (want, got)) in expected.iter().zip(&debian).enumerate() {
        assert_eq!(
            got, want,
            "{DEBIAN_RULES} has drifted from rules.yaml at policy line {at}"
        );
    }
    assert_eq!(
        debian.len(),
        expected.len(),
        "{DEBIAN_RULES}: lines added or missing"
    );
    // Nothing of NixOS is left, and every replacement is used.
    for line in &debian {
        assert!(
            !line.contains("/run/") && !line.contains("/nix/") && !line.contains("nixos"),
            "a NixOS path in {DEBIAN_RULES}: {line}"
        );
    }
    for (nixos, debian_path) in DEBIAN_PATHS {
        assert!(
            debian
                .iter()
                .any(|l| l.ends_with(&format!(": {debian_path}"))),
            "{debian_path} (for {nixos}) is not used"
        );
    }

    // Without a deploy section a deploy is refused, and sudoers gets no approval-step line.
    let nh = explain_json(DEBIAN_RULES, "nh os switch");
    assert_eq!(nh["decision"], "refuse", "{nh}");
    let sudoers = gate()
        .args(["render", "sudoers", "--rules", DEBIAN_RULES])
        .args(["--gate", "/usr/local/bin/agent-gate"])
        .output()
        .unwrap();
    assert_eq!(sudoers.status.code(), Some(0), "{sudoers:?}");
    let sudoers = String::from_utf8(sudoers.stdout).unwrap();
    assert!(!sudoers.contains("deploy-step"), "{sudoers}");
    for program in [
        "/usr/sbin/iptables",
        "/usr/bin/journalctl",
        "/usr/sbin/sshd",
        "/usr/bin/ss",
    ] {
        assert!(
            sudoers.contains(program),
            "no sudoers line for {program}: {sudoers}"
        );
    }
}

/// The man page's section `name` (from its `.SH` line to the next one).
fn man_section<'a>(page: &'a str, name: &str) -> &'a str {
    let head = format!(".SH {name}\n");
    let at = page
        .find(&head)
        .unwrap_or_else(|| panic!("the man page has no {name} section"));
    let rest = &page[at + head.len()..];
    &rest[..rest.find("\n.SH ").map_or(rest.len(), |end| end + 1)]
}

#[test]
fn the_man_page_is_one_complete_page() {
    let out = gate().args(["generate", "man"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let page = String::from_utf8(out.stdout).unwrap();

    // Every exit code src/cmd/exit.rs defines, read from the source so a new one is included.
    let source = std::fs::read_to_string("src/cmd/exit.rs").unwrap();
    let status = man_section(&page, "\"EXIT STATUS\"");
    let mut codes = 0;
    for line in source.lines() {
        let Some(rest) = line.strip_prefix("pub const EXIT_") else {
            continue;
        };
        let (name, value) = rest.split_once(": i32 = ").unwrap();
        let value = value.trim_end_matches(';');
        let shown = if name == "SIGNALLED" {
            format!("{value}+N")
        } else {
            value.to_string()
        };
        assert!(
            status.contains(&format!(".TP\n\\fB{shown}\\fR\n")),
            "EXIT STATUS lacks EXIT_{name} ({shown}):\n{status}"
        );
        codes += 1;
    }
    assert!(codes >= 7, "read {codes} exit codes from src/cmd/exit.rs");
    for code in ["0", "129", "141", "143"] {
        assert!(status.contains(code), "EXIT STATUS lacks {code}");
    }

    for section in ["FILES", "\"THE RULES FILE\"", "EXAMPLES", "COMMANDS"] {
        assert!(!man_section(&page, section).trim().is_empty(), "{section}");
    }
    let files = man_section(&page, "FILES");
    for file in [
        "/etc/agent\\-gate/rules.yaml",
        "/var/lib/agent\\-gate/approvals",
        "/dev/log",
        "/etc/sudoers.d/agent\\-gate",
    ] {
        assert!(files.contains(file), "FILES lacks {file}");
    }
    let commands = man_section(&page, "COMMANDS");
    for command in [
        "explain", "check", "compile", "list", "render", "pending", "approve", "deny", "generate",
    ] {
        assert!(
            commands.contains(&format!(".SS \"agent\\-gate {command}\"")),
            "COMMANDS lacks {command}"
        );
    }
    assert!(!commands.contains("deploy\\-step"), "the step is hidden");

    // Only one page is generated, so no other agent-gate page may be named anywhere.
    assert!(
        !page.contains("agent\\-gate\\-") && !page.contains("agent-gate-"),
        "the page names an agent-gate-* page nothing generates"
    );
    let see_also = man_section(&page, "\"SEE ALSO\"");
    let pages: Vec<&str> = see_also
        .split("\\fB")
        .skip(1)
        .filter_map(|entry| entry.split_once("\\fR("))
        .map(|(name, _)| name)
        .collect();
    assert!(pages.len() >= 5, "{see_also}");
    // Where this machine has man pages installed, each page named is one of them.
    let has_pages = std::process::Command::new("man")
        .args(["-w", "sshd_config"])
        .output()
        .is_ok_and(|o| o.status.success());
    for name in &pages {
        assert!(!name.starts_with("agent"), "SEE ALSO names {name}");
        if has_pages {
            let found = std::process::Command::new("man")
                .args(["-w", &name.replace("\\-", "-")])
                .output()
                .unwrap();
            assert!(
                found.status.success(),
                "SEE ALSO names {name}: no such page here"
            );
        }
    }

    // Valid roff: groff, warnings on, says nothing (where groff is installed).
    let groff = std::process::Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    if let Ok(mut groff) = groff {
        use std::io::Write;
        groff
            .stdin
            .take()
            .unwrap()
            .write_all(page.as_bytes())
            .unwrap();
        let checked = groff.wait_with_output().unwrap();
        assert!(
            checked.status.success() && checked.stderr.is_empty(),
            "groff: {}",
            String::from_utf8_lossy(&checked.stderr)
        );
    }
}
