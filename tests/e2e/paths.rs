//! The path walk through the real sshd: a docker config directory others can write refuses
//! everything (exit 78, a `config-error` record to the rules' socket); a flake others can
//! write is never bound, and the approval step's `config-error` record says why. Both put
//! back as they were.

use std::os::unix::fs::PermissionsExt;

use super::host::{Host, path};
use super::{Ledger, expect, field, ssh, text};

fn chmod(name: &str, mode: u32) {
    std::fs::set_permissions(path(name), std::fs::Permissions::from_mode(mode)).unwrap();
}

pub fn trusted_paths(host: &Host, ledger: &mut Ledger) {
    chmod("docker-config", 0o777);
    let out = ssh(host, "hermes", "docker ps");
    chmod("docker-config", 0o755);
    expect(&out, 78, "a docker config directory others can write");
    assert!(
        text(&out.stderr).contains("configuration is broken"),
        "{}",
        text(&out.stderr)
    );
    // The rules still read, so its config-error record goes to the rules' own socket.
    ledger.refused();
    let records = ledger.settle("docker config directory");
    let error = records.last().unwrap();
    assert_eq!(field(error, "event"), Some("config-error"), "{error}");
    assert!(error.contains("docker.config"), "{error}");

    let ran = || {
        std::fs::metadata(path("nh.ran"))
            .and_then(|m| m.modified())
            .ok()
    };
    let ran_before = ran();
    chmod("flake", 0o775);
    let out = ssh(host, "hermes", "nh os switch");
    chmod("flake", 0o755);
    expect(&out, 77, "a flake others can write");
    let flake = path("flake").display().to_string();
    let why = format!("the flake {flake} has mode 775");
    assert!(text(&out.stderr).contains(&why), "{}", text(&out.stderr));
    ledger.expected += 3; // the decision, the step's config-error, the session's finish
    let records = ledger.settle("flake others can write");
    let error = records
        .iter()
        .rev()
        .find(|r| field(r, "event") == Some("config-error"))
        .unwrap();
    assert!(error.contains(&why), "{error}");
    assert_eq!(ran(), ran_before, "nh did not run");
}
