//! The shipped Debian rules (`contrib/debian/rules.yaml`) through the real sshd and sudo: a
//! fourth client key whose authorized_keys line `render authorized-keys` writes from a copy of
//! the file with only this key's public key and the test's syslog socket put in, its sudoers
//! rendered from the same copy and installed, and the docker config directory at the path the
//! file names. The commands are the file's own diagnostics whose programs this host has
//! (fail2ban is not installed here: its rules are left out), and refusals.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::{Ledger, expect, field, last_for, ssh, text};
use crate::host::{self, Host, IMAGE, USER, path};

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/debian/rules.yaml");
const SUDOERS: &str = "/etc/sudoers.d/agent-gate-e2e-debian";
/// The docker config directory the Debian rules name.
const DOCKER_CONFIG: &str = "/etc/agent-gate/docker-config";
const KEY: &str = "debian";

/// Removes what the step installed outside ROOT, also when the step fails.
struct Installed {
    made: Vec<&'static str>,
}

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(SUDOERS);
        for dir in self.made.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// `text` with `from` replaced by `to`, which must occur exactly once.
fn substitute(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "{SHIPPED} no longer has `{from}` exactly once"
    );
    text.replacen(from, to, 1)
}

fn gate(args: &[&str]) -> String {
    let gate = path("bin/agent-gate");
    let out = host::run(gate.to_str().unwrap(), args);
    text(&out.stdout)
}

pub fn shipped_debian_rules(host: &Host, ledger: &mut Ledger) {
    let mut installed = Installed { made: Vec::new() };
    for dir in ["/etc/agent-gate", DOCKER_CONFIG] {
        if !Path::new(dir).exists() {
            std::fs::create_dir(dir).unwrap();
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            installed.made.push(dir);
        }
    }
    host::run(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            KEY,
            "-f",
            path(&format!("client/{KEY}")).to_str().unwrap(),
        ],
    );

    std::fs::create_dir(path("debian")).unwrap();
    std::fs::set_permissions(path("debian"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let shipped = std::fs::read_to_string(SHIPPED).unwrap();
    let rules = substitute(
        &shipped,
        "    # public_key: ssh-ed25519 AAAA... hermes",
        &format!("    public_key: {} #", Host::public_key(KEY)),
    );
    let rules = substitute(
        &rules,
        "  socket: /dev/log",
        &format!("  socket: {}", path("log.sock").display()),
    );
    let file = path("debian/rules.yaml");
    std::fs::write(&file, rules).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let file = file.to_str().unwrap();
    let checked = gate(&["check", "--rules", file]);
    let digest = checked
        .split("sha256:")
        .nth(1)
        .and_then(|rest| rest.get(..64))
        .unwrap_or_else(|| panic!("check names no digest: {checked}"))
        .to_string();

    let gate_path = path("bin/agent-gate");
    let gate_path = gate_path.to_str().unwrap();
    let render = |piece: &str| {
        gate(&[
            "render", piece, "--rules", file, "--gate", gate_path, "--user", USER,
        ])
    };
    let sudoers = path("debian/sudoers");
    std::fs::write(&sudoers, render("sudoers")).unwrap();
    host::run("visudo", &["-c", "-q", "-f", sudoers.to_str().unwrap()]);
    std::fs::copy(&sudoers, SUDOERS).unwrap();
    std::fs::set_permissions(SUDOERS, std::fs::Permissions::from_mode(0o440)).unwrap();
    host::run("visudo", &["-c", "-q"]);

    let lines = render("authorized-keys");
    let line = lines
        .lines()
        .find(|l| !l.starts_with('#'))
        .unwrap_or_else(|| panic!("no authorized_keys line: {lines}"));
    assert!(
        line.starts_with("restrict,command=\"")
            && line.contains(&format!("--rules {file} --key hermes\"")),
        "{line}"
    );
    let keys = path(&format!("keys/{USER}"));
    let mut all = std::fs::read_to_string(&keys).unwrap();
    all.push_str(line);
    all.push('\n');
    std::fs::write(&keys, all).unwrap();

    let allowed: &[(&str, &str)] = &[
        ("docker ps -q --no-trunc", ""),
        ("sudo ss -tlnp", "sshd"),
        ("sudo cat /proc/net/tcp", "local_address"),
        (
            "sudo sshd -T -C user=ai-worker,host=agent.example,addr=127.0.0.1",
            "permitrootlogin",
        ),
        ("sudo iptables -L -n", "Chain INPUT"),
        ("sudo iptables -t nat -S", "-P PREROUTING"),
        ("ss -tln", "LISTEN"),
        ("cat /proc/net/tcp", "local_address"),
    ];
    for (command, wants) in allowed {
        let out = ssh(host, KEY, command);
        expect(&out, 0, command);
        assert!(
            text(&out.stdout).contains(wants),
            "{command}: {}",
            text(&out.stdout)
        );
        ledger.allowed();
    }
    // journalctl runs through sudo with --no-pager first; whether this host keeps a kernel
    // journal is not the question, only that sudo let it run.
    let command = "sudo journalctl -k -n 5";
    let out = ssh(host, KEY, command);
    assert!(
        ![1, 77, 126].contains(&out.status.code().unwrap_or(-1)),
        "{command}: {out:?}"
    );
    assert!(!text(&out.stderr).contains("password"), "{out:?}");
    ledger.allowed();

    for command in [
        "sudo iptables -F",
        "sudo iptables -t raw -L",
        "sudo journalctl -k -f",
        "sudo cat /etc/shadow",
        "sudo sshd -T -f /etc/shadow",
        "docker run --privileged alpine",
        // The Debian rules' allow-list is library/* and ollama/ollama.
        &format!("docker run --rm {IMAGE} echo hi"),
        // No deploy section: no deploys.
        "nh os switch",
        "sudo nixos-rebuild switch --flake /etc/nixos",
    ] {
        let out = ssh(host, KEY, command);
        expect(&out, 77, command);
        assert!(
            text(&out.stderr).contains("agent-gate: refused:"),
            "{command}: {}",
            text(&out.stderr)
        );
        ledger.refused();
    }
    let records = ledger.settle("the shipped Debian rules");
    let decision = last_for(&records, "sudo iptables -L -n")
        .into_iter()
        .rev()
        .find(|r| field(r, "event") == Some("decision"))
        .unwrap_or_else(|| panic!("no decision record for sudo iptables -L -n"));
    assert_eq!(
        field(decision, "rules"),
        Some(format!("sha256:{digest}").as_str()),
        "the Debian rules decided: {decision}"
    );
    assert!(decision.contains("/usr/sbin/iptables"), "{decision}");

    // The second wall: the sudoers rendered from the Debian rules refuses on its own.
    for (command, allowed) in [
        // Only the canonical form the gateway passes through sudo.
        ("/usr/sbin/iptables --list --numeric", true),
        ("/usr/sbin/iptables -L -n", false),
        ("/usr/sbin/iptables -F", false),
        ("/usr/bin/journalctl --no-pager --dmesg --lines=5", true),
        ("/usr/bin/journalctl --no-pager -k -n 5", false),
        ("/usr/bin/journalctl --no-pager", false),
        ("/usr/bin/journalctl -k -n 5", false),
        ("/usr/bin/journalctl --no-pager -k -f", false),
        ("/usr/bin/cat /etc/shadow", false),
    ] {
        assert_eq!(
            super::sudoers_admits(command),
            allowed,
            "sudoers on `{command}`"
        );
    }
    drop(installed);
}
