//! sshd's auth-info file (ExposeAuthInfo, named by SSH_USER_AUTH) is trusted only as sshd
//! writes it. With a global `AcceptEnv *` and sshd failing to write its own file (a full
//! /tmp), a client can send SSH_USER_AUTH naming a file of its choosing: listing another
//! key, or a FIFO that would block the gateway before any record.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/world.rs"]
mod world;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use world::{PINNED_KEY, World};

fn auth_text() -> String {
    let blob: Vec<&str> = PINNED_KEY.split(' ').take(2).collect();
    format!("publickey {}\n", blob.join(" "))
}

/// A name of sshd's template (`/tmp/sshauth.` and 15 characters), not yet taken.
fn sshd_name() -> tempfile::TempPath {
    tempfile::Builder::new()
        .prefix("sshauth.")
        .rand_bytes(15)
        .tempfile_in("/tmp")
        .unwrap()
        .into_temp_path()
}

/// The pinned label's command with this auth-info path: exit code and the decision record.
fn run(w: &World, auth: &Path) -> (Option<i32>, String) {
    let mut child = w
        .process("pinned", Some("docker ps"))
        .env("SSH_USER_AUTH", auth)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    world::exit_within(
        &mut child,
        Duration::from_secs(20),
        &format!("the gateway blocked on {}", auth.display()),
    );
    let code = child.wait().unwrap().code();
    let record = w.record().1;
    if code == Some(0) {
        w.record();
    }
    (code, record)
}

#[test]
fn only_a_file_as_sshd_writes_it_names_the_key() {
    need_root!();
    let w = World::new();
    let good = sshd_name();
    std::fs::write(&good, auth_text()).unwrap();
    std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, record) = run(&w, &good);
    assert_eq!(code, Some(0), "{record}");
    assert!(record.contains("fingerprint=\"SHA256:"), "{record}");

    // A file of the client's own elsewhere, though it lists the pinned key.
    let elsewhere = w.path("auth-elsewhere");
    std::fs::write(&elsewhere, auth_text()).unwrap();
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The template's name, but readable by others; then the right mode but a link to it.
    let loose = sshd_name();
    std::fs::write(&loose, auth_text()).unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    let link = sshd_name();
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(&good, &link).unwrap();
    // A FIFO: opening it for reading would wait for a writer forever.
    let fifo = sshd_name();
    std::fs::remove_file(&fifo).unwrap();
    nix::unistd::mkfifo(
        fifo.as_os_str(),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    // Owned by another user.
    let theirs = sshd_name();
    std::fs::write(&theirs, auth_text()).unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o600)).unwrap();
    nix::unistd::chown(
        theirs.as_os_str(),
        Some(nix::unistd::Uid::from_raw(65534)),
        None,
    )
    .unwrap();

    for (what, path) in [
        ("outside sshd's name template", elsewhere.as_path()),
        ("mode 0644", &loose),
        ("a symlink", &link),
        ("a FIFO", &fifo),
        ("owned by nobody", &theirs),
    ] {
        let (code, record) = run(&w, path);
        assert_eq!(code, Some(77), "{what}: {record}");
        assert!(record.contains("fingerprint=\"-\""), "{what}: {record}");
        assert!(record.contains("ExposeAuthInfo"), "{what}: {record}");
    }
    assert_eq!(
        w.ran("docker").map(|_| ()),
        Some(()),
        "only the command with sshd's own file ran"
    );
}
