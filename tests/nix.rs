//! The Nix files, checked with Debian's nix-bin where nixpkgs is not available: every `.nix`
//! file parses (`nix-instantiate --parse`), and the module's pure functions (nix/lib.nix)
//! produce exactly the lines `agent-gate render` prints for the same input. The example
//! policy (nix/examples/rules.nix) is the shipped rules.yaml, and the JSON the module writes
//! from it passes `agent-gate check`. The NixOS VM test (nix/tests/gateway.nix) needs nixpkgs
//! and KVM and does not run here.
//!
//! Without nix-instantiate these tests report themselves skipped; `.ci/run` installs nix-bin
//! and sets AGENT_GATE_NIX=required, under which a missing nix-instantiate fails them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stderr
)]

#[path = "support/corpus.rs"]
mod corpus;

use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn nix_instantiate() -> Option<&'static str> {
    let found = [
        "/usr/bin/nix-instantiate",
        "/run/current-system/sw/bin/nix-instantiate",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists());
    if found.is_none() {
        let required = std::env::var("AGENT_GATE_NIX").is_ok_and(|v| v == "required");
        assert!(
            !required,
            "nix-instantiate is missing (apt-get install nix-bin)"
        );
        // Straight to the stderr handle: libtest captures eprintln! of a passing test.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "skipped: nix-instantiate is missing (set AGENT_GATE_NIX=required to fail)"
        );
    }
    found
}

/// Run nix-instantiate, one at a time: concurrent ones on a freshly installed Nix can fail
/// with "SQLite database '/nix/var/nix/db/db.sqlite' is busy".
fn run_nix(command: &mut Command) -> std::process::Output {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    command.output().unwrap()
}

/// Evaluate an expression strictly, as JSON.
fn eval(nix: &str, expr: &str) -> serde_json::Value {
    let out = run_nix(
        Command::new(nix)
            .args(["--eval", "--strict", "--json", "--expr", expr])
            .current_dir(ROOT),
    );
    assert!(
        out.status.success(),
        "{expr}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn gate(args: &[&str]) -> String {
    let out = Command::new(assert_cmd::cargo::cargo_bin("agent-gate"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// What render prints, without its comment lines.
fn lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(String::from)
        .collect()
}

fn nix_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" {
                nix_files(&path, out);
            }
        } else if name.ends_with(".nix") {
            out.push(path);
        }
    }
}

#[test]
fn every_nix_file_parses() {
    let Some(nix) = nix_instantiate() else {
        return;
    };
    let mut files = Vec::new();
    nix_files(Path::new(ROOT), &mut files);
    let names: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(ROOT).unwrap().display().to_string())
        .collect();
    for expected in [
        "flake.nix",
        "nix/package.nix",
        "nix/module.nix",
        "nix/lib.nix",
        "nix/tests/gateway.nix",
        "nix/examples/host.nix",
        "nix/examples/users/ai-worker.nix",
        "nix/examples/rules.nix",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    for file in &files {
        let out = run_nix(Command::new(nix).arg("--parse").arg(file));
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Keys with every case the line maker must agree on: a plain comment, none, a comment that
/// is not plain words, networks with and without a prefix, and a label without a key.
const KEYS: &str = r#"{
  "hermes": { "publicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBnhR3kRTRLTegHjS85xsaF59JzZ6iIFhCZphnjIGICs hermes@container", "from": ["172.20.0.0/16", "10.1.2.3", "2001:db8::/32"] },
  "carol": { "publicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILvtejmUGKHE2n6HmmoN+jGRtIVi4F38xHifoz1jxxeh", "from": [] },
  "eve": { "publicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE6yYQ1xUBuWFnqW0fiomGZ8zlkjnaO9W3FJIbbPRXnJ two  words caf\u00e9", "from": ["192.0.2.7"] },
  "nokey": { "publicKey": null, "from": [] }
}"#;

fn fixture_rules(dir: &Path) -> PathBuf {
    let keys: serde_json::Value = serde_json::from_str(KEYS).unwrap();
    let mut rules = String::from("version: 1\nkeys:\n");
    for (label, key) in keys.as_object().unwrap() {
        rules.push_str(&format!("  {label}:\n    may: [docker]\n"));
        if let Some(pk) = key["publicKey"].as_str() {
            rules.push_str(&format!(
                "    public_key: {}\n",
                serde_json::to_string(pk).unwrap()
            ));
        }
        let from = key["from"].as_array().unwrap();
        if !from.is_empty() {
            rules.push_str(&format!(
                "    from: {}\n",
                serde_json::to_string(from).unwrap()
            ));
        }
    }
    rules.push_str(
        "docker:\n  program: /run/current-system/sw/bin/docker\n  config: /etc/agent-gate/docker-config\n  subcommands:\n    ps: [all]\n",
    );
    let path = dir.join("rules.yaml");
    std::fs::write(&path, rules).unwrap();
    path
}

const GATE: &str = "/nix/store/00000000000000000000000000000000-agent-gate-0.1.0/bin/agent-gate";
const RULES: &str = "/etc/agent-gate/rules.yaml";

#[test]
fn the_modules_authorized_keys_are_what_render_prints() {
    let Some(nix) = nix_instantiate() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rules = fixture_rules(dir.path());
    let rendered = gate(&[
        "render",
        "authorized-keys",
        "--rules",
        rules.to_str().unwrap(),
        "--gate",
        GATE,
        "--installed-rules",
        RULES,
    ]);
    let expr = format!(
        "(import ./nix/lib.nix).authorizedKeys {{ gate = \"{GATE}\"; rules = \"{RULES}\"; keys = builtins.fromJSON ''{KEYS}''; }}"
    );
    let from_nix: Vec<String> = serde_json::from_value(eval(nix, &expr)).unwrap();
    assert_eq!(from_nix, lines(&rendered));
    assert_eq!(from_nix.len(), 3, "one line per key, none for `nokey`");
    let eve = from_nix.iter().find(|l| l.contains("--key eve")).unwrap();
    assert!(
        eve.ends_with("nJ agent-gate:eve"),
        "a comment that is not plain words: {eve}"
    );
}

#[test]
fn the_modules_sshd_block_is_what_render_prints() {
    let Some(nix) = nix_instantiate() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rules = fixture_rules(dir.path());
    // --force-command needs every label pinned: `nokey` is left out for it.
    let text = std::fs::read_to_string(&rules).unwrap();
    let pinned = dir.path().join("pinned.yaml");
    std::fs::write(&pinned, text.replace("  nokey:\n    may: [docker]\n", "")).unwrap();
    for force in [false, true] {
        let file = if force { &pinned } else { &rules };
        let mut args = vec![
            "render",
            "sshd",
            "--rules",
            file.to_str().unwrap(),
            "--gate",
            GATE,
            "--installed-rules",
            RULES,
            "--user",
            "ai-worker",
        ];
        if force {
            args.push("--force-command");
        }
        let rendered = gate(&args);
        let expr = format!(
            "(import ./nix/lib.nix).sshdMatchBlock {{ user = \"ai-worker\"; gate = \"{GATE}\"; rules = \"{RULES}\"; forceCommand = {force}; }}"
        );
        let from_nix = eval(nix, &expr);
        let from_nix: Vec<String> = from_nix
            .as_str()
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        assert_eq!(from_nix, lines(&rendered), "force-command: {force}");
    }
}

#[test]
fn the_example_policy_is_the_shipped_rules_and_passes_check() {
    let Some(nix) = nix_instantiate() else {
        return;
    };
    // The module writes settings as JSON (YAML 1.2) and the gateway reads it as it is.
    let from_nix = eval(nix, "import ./nix/examples/rules.nix");
    let dir = tempfile::tempdir().unwrap();
    let written = dir.path().join("rules.yaml");
    std::fs::write(&written, from_nix.to_string()).unwrap();
    let written = written.to_str().unwrap();
    let out = gate(&["check", "--rules", written]);
    assert!(out.contains(": ok ("), "{out}");
    // Same policy: every corpus command is decided alike, and hermes is told the same.
    let shipped = Path::new(ROOT).join("rules.yaml");
    let shipped = shipped.to_str().unwrap();
    let mut batch = String::new();
    for file in [
        "attack.tsv",
        "legit.tsv",
        "attack-classes.tsv",
        "attack-classes-programs.tsv",
        "legit-classes.tsv",
    ] {
        for row in corpus::rows(file) {
            batch.push_str(&serde_json::to_string(&row.command).unwrap());
            batch.push('\n');
        }
    }
    let explain = |rules: &str| {
        let out = assert_cmd::Command::cargo_bin("agent-gate")
            .unwrap()
            .args([
                "explain", "--rules", rules, "--key", "hermes", "--json", "--batch",
            ])
            .write_stdin(batch.clone())
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let (a, b) = (explain(shipped), explain(written));
    assert!(a.lines().count() > 400, "{}", a.lines().count());
    assert_eq!(
        a, b,
        "nix/examples/rules.nix decides differently from rules.yaml"
    );
    let list = |rules: &str| gate(&["list", "--rules", rules, "--key", "hermes"]);
    assert_eq!(list(shipped), list(written));
    // A key that names no rules gets every rule in the settings: here, what hermes has.
    let ids = eval(
        nix,
        "(import ./nix/lib.nix).ruleIds (import ./nix/examples/rules.nix)",
    );
    let mut ids: Vec<String> = serde_json::from_value(ids).unwrap();
    let mut may: Vec<String> =
        serde_json::from_value(from_nix["keys"]["hermes"]["may"].clone()).unwrap();
    ids.sort();
    may.sort();
    assert_eq!(ids, may);
}
