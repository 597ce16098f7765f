//! The rendered sudoers file as a wall of its own: asked through the real sudo
//! as the account (`sudo -n -l COMMAND ARGS`, which says whether that exact command may run), it
//! admits the gateway's canonical forms and nothing the rules refuse, and runs in `/`.

use std::process::Command;

use super::host::{USER, which};

/// Whether the installed sudoers lets the account run `program args`.
fn admitted(program: &str, args: &[&str]) -> bool {
    super::sudoers_admits(
        &[program]
            .iter()
            .chain(args)
            .copied()
            .collect::<Vec<_>>()
            .join(" "),
    )
}

pub fn as_strict_as_the_rules() {
    let (ss, cat, sshd) = (
        which("ss").unwrap(),
        which("cat").unwrap(),
        which("sshd").unwrap(),
    );
    for (program, args) in [
        (&sshd, &["-T"][..]),
        (&ss, &["--tcp", "--listening", "--numeric"][..]),
        (&ss, &[][..]),
        (&cat, &["/proc/net/tcp"][..]),
        (&cat, &["--", "/proc/net/tcp6"][..]),
    ] {
        assert!(admitted(program, args), "{program} {args:?} is allowed");
    }
    for (program, args) in [
        // A second root sshd on the system's config: `-T` is required.
        (&sshd, &["--"][..]),
        (&sshd, &[][..]),
        (&sshd, &["-T", "-T"][..]),
        (&sshd, &["-T", "--", "-T"][..]),
        // `--` once, only before operands; `./--` in the caller's directory is not an operand.
        (&cat, &["--", "--"][..]),
        (&cat, &["--", "--", "/proc/net/tcp"][..]),
        (&cat, &["./--"][..]),
        (&cat, &["/proc/net/tcp", "/etc/shadow"][..]),
        // Only the canonical spelling, each option once.
        (&ss, &["-tln"][..]),
        (&ss, &["--tcp", "--tcp"][..]),
        (&ss, &["--listening", "--tcp"][..]),
        (&ss, &["--tcp", "--", "--listening"][..]),
    ] {
        assert!(
            !admitted(program, args),
            "{program} {args:?} is refused by sudo itself"
        );
    }
    let listing = Command::new("sudo")
        .args(["-n", "-l", "-U", USER])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    let entries: Vec<&str> = listing
        .lines()
        .filter(|l| l.contains("NOPASSWD:"))
        .collect();
    assert!(!entries.is_empty(), "{listing}");
    for entry in entries {
        assert!(
            entry.contains("CWD=/ NOPASSWD:"),
            "every command runs in /: {entry}"
        );
    }
}
