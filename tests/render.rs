//! `agent-gate render`: the installation pieces made from the rules, as snapshots, and
//! checked by the real tools where this machine has them (`visudo -c -f`, `sshd -t`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;

use assert_cmd::Command;

const FIXTURE: &str = "tests/fixtures/render.yaml";
const GATE: &str = "/nix/store/0000000000000000000000000000000-agent-gate-0.1.0/bin/agent-gate";

fn render(piece: &str, extra: &[&str]) -> (i32, String, String) {
    let out = Command::cargo_bin("agent-gate")
        .unwrap()
        .args(["render", piece, "--rules", FIXTURE, "--gate", GATE])
        .args(["--installed-rules", "/etc/agent-gate/rules.yaml"])
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// The named tool, if this machine has it. `.ci/run` installs them, and the end-to-end
/// suite fails without them; here a missing one only skips the extra check.
fn tool(path: &str) -> Option<&str> {
    Path::new(path).exists().then_some(path)
}

/// A scratch sshd configuration with a host key of its own, for `sshd -t` and `sshd -T`;
/// `None` where this machine has no sshd.
struct Scratch {
    sshd: &'static str,
    dir: tempfile::TempDir,
    key: std::path::PathBuf,
}

impl Scratch {
    fn new() -> Option<Self> {
        let sshd = tool("/usr/sbin/sshd")?;
        // sshd insists on its privilege-separation directory even for `-t`.
        if !Path::new("/run/sshd").exists() && std::fs::create_dir_all("/run/sshd").is_err() {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("host_key");
        let made = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(made.success());
        Some(Self { sshd, dir, key })
    }

    /// `sshd_config` holding the host key, `UsePAM no`, then `text`; its path.
    fn config(&self, text: &str) -> std::path::PathBuf {
        let config = self.dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!("HostKey {}\nUsePAM no\n{text}", self.key.display()),
        )
        .unwrap();
        config
    }
}

#[test]
fn authorized_keys_lines_are_restricted_and_bound_to_their_label() {
    let (code, text, _) = render("authorized-keys", &[]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("authorized_keys", text);
}

#[test]
fn the_sshd_block_closes_every_channel() {
    let (code, text, _) = render("sshd", &[]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("sshd", text);
    let (code, forced, _) = render("sshd", &["--user", "agent", "--force-command"]);
    // `legacy` pins no key, so no ForceCommand can pick its label.
    assert_eq!(code, 78);
    assert!(forced.is_empty());
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let sshd = scratch.sshd;
    let config = scratch.config(&text);
    let out = std::process::Command::new(sshd)
        .arg("-t")
        .arg("-f")
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "sshd -t: {out:?}");
    // The operator's mistake SECURITY.md warns of, a global `AcceptEnv *`: for the account the
    // block's AcceptEnv replaces it (sshd -T -C evaluates the Match as a connection would).
    let config = scratch.config(&format!("AcceptEnv *\n{text}"));
    let accepted = |user: &str| {
        let out = std::process::Command::new(sshd)
            .args(["-T", "-f"])
            .arg(&config)
            .args([
                "-C",
                &format!("user={user},host=agent.example,addr=10.88.0.5"),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "sshd -T: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("acceptenv "))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(accepted("ai-worker"), ["AGENT_GATE_ACCEPTS_NO_ENVIRONMENT"]);
    assert_eq!(
        accepted("someone-else"),
        ["*"],
        "the block is the account's only"
    );
}

#[test]
fn sudoers_lines_pin_every_argument_and_visudo_accepts_them() {
    let (code, text, _) = render("sudoers", &[]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("sudoers", text);
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            line.starts_with("ai-worker ALL=(root) CWD=/ NOPASSWD: /"),
            "{line}"
        );
        assert!(!line.contains(".*"), "no wildcard across arguments: {line}");
    }
    let Some(visudo) = tool("/usr/sbin/visudo") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent-gate");
    std::fs::write(&file, &text).unwrap();
    let out = std::process::Command::new(visudo)
        .args(["-c", "-f"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "visudo -c -f: {out:?}");
}

#[test]
fn render_refuses_what_it_cannot_write_safely() {
    for (args, want) in [
        (
            vec!["--gate", "/opt/agent gate/bin/agent-gate"],
            "must be an absolute path of letters, digits and /._+-",
        ),
        (vec!["--gate", "agent-gate"], "must be an absolute path"),
        (vec!["--user", "Root;x"], "is not a user name"),
    ] {
        let out = Command::cargo_bin("agent-gate")
            .unwrap()
            .args(["render", "sudoers", "--rules", FIXTURE])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(78), "{args:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
}

#[test]
fn the_gateway_refuses_what_the_rendered_sudoers_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    std::fs::write(
        &rules,
        "version: 1\nsudo: /usr/bin/sudo\nkeys:\n  hermes:\n    may: [unit-status]\nprograms:\n  - id: unit-status\n    command: systemctl\n    path: /usr/bin/systemctl\n    sudo: true\n    words: [status]\n    args:\n      - {name: unit, value: text}\n",
    )
    .unwrap();
    let explain = |raw: &str| {
        let out = Command::cargo_bin("agent-gate")
            .unwrap()
            .args(["explain", "--json", "--key", "hermes", "--rules"])
            .arg(&rules)
            .arg(raw)
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    assert_eq!(
        explain("sudo systemctl status fail2ban")["decision"],
        "allow"
    );
    // sudo sees `status fail2ban -H`: `-H` is no token of this rule, so sudo would refuse;
    // the gateway refuses first and says why. (`'fail2ban sshd'` would pass both: two
    // tokens the rule allows, and the program still gets one argument.)
    let spaced = explain("sudo systemctl status 'fail2ban -H'");
    assert_eq!(spaced["decision"], "refuse");
    assert!(
        spaced["reason"]
            .as_str()
            .unwrap()
            .contains("`fail2ban -H` (with a space) cannot be told from two arguments"),
        "{spaced}"
    );
}

#[test]
fn sshds_global_limits_are_sized_for_the_sessions_and_sshd_accepts_them() {
    // In the block, as comments (sshd reads MaxStartups outside any Match only).
    let (code, block, _) = render("sshd", &[]);
    assert_eq!(code, 0);
    assert!(block.contains("#     MaxStartups 200:30:400\n"), "{block}");
    assert!(block.contains("Debian's default 10:30:100 drops most of 200"));
    // As lines, for the top of sshd_config.
    let (code, global, _) = render("sshd", &["--global", "--sessions", "300"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = global.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        lines,
        [
            "MaxStartups 300:30:600",
            "PerSourceMaxStartups none",
            "MaxSessions 300"
        ]
    );
    assert!(!global.lines().any(|l| l.starts_with("Match")), "{global}");
    // --global is sshd's alone, and no number of sessions is zero.
    let (code, _, err) = render("sudoers", &["--global"]);
    assert_eq!(code, 78);
    assert!(err.contains("render sshd --global"), "{err}");
    let (code, _, _) = render("sshd", &["--global", "--sessions", "0"]);
    assert_ne!(code, 0);
    let Some(scratch) = Scratch::new() else {
        return;
    };
    let sshd = scratch.sshd;
    // sshd takes the lines before the block, and reports them as the values in effect.
    let config = scratch.config(&format!("{global}{block}"));
    let out = std::process::Command::new(sshd)
        .arg("-T")
        .arg("-f")
        .arg(&config)
        .args(["-C", "user=ai-worker,host=localhost,addr=127.0.0.1"])
        .output()
        .unwrap();
    assert!(out.status.success(), "sshd -T: {out:?}");
    let effective = String::from_utf8(out.stdout).unwrap();
    for line in [
        "maxstartups 300:30:600",
        "persourcemaxstartups none",
        "maxsessions 300",
    ] {
        assert!(effective.lines().any(|l| l == line), "{line}: {effective}");
    }
}
