//! The compiled policy record (`policy::record`, `agent-gate compile`): a policy read back from
//! its record decides every corpus row as the policy compiled from the YAML does and renders
//! the same sudoers; a record is used only for exactly the bytes it was made from, only when
//! root owns it on a root-only path, and only from this build; `compile` writes nothing for
//! rules whose examples fail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/corpus.rs"]
mod corpus;
#[path = "support/world.rs"]
mod world;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use agent_gate::decide::{Request, decide};
use agent_gate::policy::{Policy, record};
use assert_cmd::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(rel: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/{rel}")).unwrap()
}

fn round_trip(policy: &Policy) -> Policy {
    let bytes = record::encode(policy).unwrap();
    record::decode(&bytes, &policy.digest).unwrap()
}

fn decided(policy: &Policy, raw: &str) -> String {
    let request = Request {
        raw,
        key: Some("hermes"),
        by_key: false,
        client: None,
        fingerprint: None,
    };
    format!("{:?}", decide(policy, &request))
}

fn sudoers(policy: &Policy) -> String {
    let install = agent_gate::render::Install {
        gate: "/run/current-system/sw/bin/agent-gate".into(),
        rules: "/etc/agent-gate/rules.yaml".into(),
        user: "ai-worker".into(),
    };
    agent_gate::render::sudoers(policy, &install).unwrap()
}

#[test]
fn a_policy_from_its_record_decides_every_corpus_row_as_the_yaml_does() {
    for rules in ["tests/corpus/rules.yaml", "rules.yaml"] {
        let full = agent_gate::rules::parse(&read(rules)).unwrap();
        let back = round_trip(&full);
        let mut rows = 0;
        for file in [
            "legit.tsv",
            "attack.tsv",
            "legit-classes.tsv",
            "attack-classes.tsv",
            "attack-classes-programs.tsv",
        ] {
            for row in corpus::rows(file) {
                assert_eq!(
                    decided(&back, &row.command),
                    decided(&full, &row.command),
                    "{rules}: {} decides otherwise from the record",
                    row.id
                );
                rows += 1;
            }
        }
        assert!(rows > 500, "{rules}: only {rows} rows");
        assert_eq!(sudoers(&back), sudoers(&full), "{rules}: sudoers differ");
        assert_eq!(back.examples.len(), full.examples.len());
    }
}

#[test]
fn a_record_is_only_for_its_own_rules_and_build() {
    let text = read("rules.yaml");
    let policy = agent_gate::rules::parse(&text).unwrap();
    let bytes = record::encode(&policy).unwrap();
    let changed = agent_gate::rules::parse(&format!("{text}\n# one more line\n")).unwrap();
    assert_eq!(
        record::decode(&bytes, &changed.digest).unwrap_err(),
        record::Stale::OtherRules
    );
    // The header names the build: one byte of it changed is another build.
    let at = bytes
        .windows(record::BUILD.len())
        .position(|w| w == record::BUILD.as_bytes())
        .unwrap();
    let mut other_build = bytes.clone();
    other_build[at] ^= 1;
    assert_eq!(
        record::decode(&other_build, &policy.digest).unwrap_err(),
        record::Stale::OtherBuild
    );
    assert_eq!(
        record::decode(b"version: 1\n", &policy.digest).unwrap_err(),
        record::Stale::NotARecord
    );
    // Cut anywhere after the header, or with bytes added, it is damaged, never a policy.
    for cut in (at + record::BUILD.len() + 80..bytes.len()).step_by(97) {
        assert!(
            record::decode(&bytes[..cut], &policy.digest).is_err(),
            "cut at {cut}"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        record::decode(&longer, &policy.digest),
        Err(record::Stale::Damaged(_))
    ));
}

/// Rules that allow only `true`, and rules that allow only `false`: what a record says is
/// visible in what the gateway does.
fn rules_running(dir: &Path, program: &str) -> String {
    format!(
        r#"version: 1
keys:
  hermes:
    may: [run]
programs:
  - id: run
    command: {program}
    path: /bin/{program}
    examples:
      allow: ["{program}"]
"#
    ) + &format!("# {}\n", dir.display())
}

/// The record of `other` rules, relabelled as the record of `rules`' bytes: what only root could
/// write, and what shows whether the gateway read the record or the YAML.
fn forged_record(rules: &str, other: &str) -> Vec<u8> {
    let mut policy = agent_gate::rules::parse(other).unwrap();
    policy.digest = agent_gate::rules::parse(rules).unwrap().digest;
    record::encode(&policy).unwrap()
}

/// Forced mode's exit code for `command`, its records sent to a socket beside the rules.
fn forced(rules: &Path, command: &str) -> i32 {
    let socket = rules.with_file_name("log.sock");
    let _ = std::fs::remove_file(&socket);
    let _audit = std::os::unix::net::UnixDatagram::bind(&socket).unwrap();
    let out = Command::cargo_bin("agent-gate")
        .unwrap()
        .args(["--rules", rules.to_str().unwrap(), "--key", "hermes"])
        .args(["--audit-socket", socket.to_str().unwrap()])
        .env("SSH_ORIGINAL_COMMAND", command)
        .env("SSH_CONNECTION", "127.0.0.1 1 127.0.0.1 22")
        .output()
        .unwrap();
    out.status.code().unwrap_or(-1)
}

/// `agent-gate ARGS --rules RULES [LAST]`, as the operator runs it.
fn operator(args: &[&str], rules: &Path, last: Option<&str>) -> std::process::Output {
    Command::cargo_bin("agent-gate")
        .unwrap()
        .args(args)
        .arg("--rules")
        .arg(rules)
        .args(last)
        .output()
        .unwrap()
}

fn explained(rules: &Path, command: &str) -> String {
    let out = operator(
        &["explain", "--json", "--offline", "--key", "hermes"],
        rules,
        Some(command),
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    json["decision"].as_str().unwrap().to_string()
}

#[test]
fn the_gateway_reads_the_record_only_for_the_same_bytes_and_only_when_root_owns_it() {
    if world::skip_unless_root("the compiled record must be root's") {
        return;
    }
    let dir = world::trusted_tempdir();
    let path = dir.path().join("rules.yaml");
    let yaml = rules_running(dir.path(), "true");
    std::fs::write(&path, &yaml).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let at = record::path_for(&path);
    assert_eq!(explained(&path, "true"), "allow", "no record: the YAML");
    assert_eq!(explained(&path, "false"), "refuse");

    // Root's record for these bytes is what decides, even where it says otherwise.
    std::fs::write(
        &at,
        forged_record(&yaml, &rules_running(dir.path(), "false")),
    )
    .unwrap();
    std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o444)).unwrap();
    assert_eq!(explained(&path, "false"), "allow", "the record decides");
    assert_eq!(explained(&path, "true"), "refuse");
    assert_eq!(
        forced(&path, "false"),
        1,
        "forced mode runs /bin/false from the record"
    );
    assert_eq!(forced(&path, "true"), 77, "and refuses /bin/true");

    // A record others may write, or owned by another user, is not read.
    std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert_eq!(explained(&path, "false"), "refuse", "a writable record");
    std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o444)).unwrap();
    nix::unistd::chown(&at, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    assert_eq!(
        explained(&path, "false"),
        "refuse",
        "another owner's record"
    );
    nix::unistd::chown(&at, Some(nix::unistd::Uid::from_raw(0)), None).unwrap();
    assert_eq!(explained(&path, "false"), "allow");

    // The rules changed by one byte: the record is stale and the YAML decides.
    std::fs::write(&path, format!("{yaml} ")).unwrap();
    assert_eq!(explained(&path, "false"), "refuse", "a stale record");
    assert_eq!(explained(&path, "true"), "allow");
    // And back: the same bytes, the record again (it is keyed by content, not by time).
    std::fs::write(&path, &yaml).unwrap();
    assert_eq!(explained(&path, "false"), "allow");

    // `check` never reads the record: it says the record is current and decides nothing.
    let out = operator(&["check"], &path, None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ok (1 keys, 1 rules"), "{stdout}");
    assert!(stdout.contains(": current"), "{stdout}");

    // `compile` replaces the forged record with the true one.
    let out = operator(&["compile"], &path, None);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let meta = std::fs::metadata(&at).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o444);
    assert_eq!(explained(&path, "false"), "refuse");
    assert_eq!(explained(&path, "true"), "allow");
    assert_eq!(forced(&path, "true"), 0);
}

#[test]
fn compile_writes_nothing_for_rules_whose_examples_fail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.yaml");
    let yaml =
        rules_running(dir.path(), "true").replace(r#"allow: ["true"]"#, r#"allow: ["true x"]"#);
    std::fs::write(&path, yaml).unwrap();
    let out = operator(&["compile"], &path, None);
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("should be allowed"), "{stderr}");
    assert!(!record::path_for(&path).exists());
    let out = operator(&["check"], &path, None);
    assert_eq!(out.status.code(), Some(78));
}

/// The gateway reads the record as the agent's account: `compile` makes it 0444 whatever the
/// operator's umask (a root shell's 077 would leave a record only root reads, which doctor,
/// run as root, would call current).
#[test]
fn compile_writes_a_record_everyone_may_read_under_any_umask() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.yaml");
    std::fs::write(&path, rules_running(dir.path(), "true")).unwrap();
    let out = std::process::Command::new("sh")
        .args(["-c", "umask 077 && exec \"$0\" compile --rules \"$1\""])
        .arg(env!("CARGO_BIN_EXE_agent-gate"))
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let meta = std::fs::metadata(record::path_for(&path)).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o444);
}
