//! A label's concurrent sessions are bounded (`keys.LABEL.max_sessions`, default 32): each
//! session holds a slot (an abstract unix socket named for the label) while it runs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "support/world.rs"]
mod world;

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

use world::World;

/// Hold slots `range` of `label`, as that many running sessions would.
fn hold(w: &World, label: &str, range: std::ops::Range<u32>) -> Vec<UnixDatagram> {
    let scope = agent_gate::sys::slots::scope(&w.path("rules.yaml"));
    range
        .map(|n| {
            let name = agent_gate::sys::slots::name(&scope, label, n);
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap()
        })
        .collect()
}

#[test]
fn the_thirty_third_session_of_a_label_is_refused() {
    need_root!();
    let w = World::new();
    // The default bound.
    let held = hold(&w, "hermes", 0..32);
    let out = w.gate(Some("docker ps")).output().unwrap();
    assert_eq!(out.status.code(), Some(77), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("key `hermes` already has 32 sessions running (keys.hermes.max_sessions)"),
        "{stderr}"
    );
    let record = w.record().1;
    assert!(
        record.contains("rule=\"max_sessions\"") && record.contains("decision=\"refuse\""),
        "{record}"
    );
    assert_eq!(w.ran("docker"), None);
    // One session ends: the next one runs.
    drop(held);
    let _held = hold(&w, "hermes", 1..32);
    w.gate(Some("docker ps")).assert().success();
    assert!(w.ran("docker").is_some());
}

#[test]
fn an_mcp_call_cannot_open_an_mcp_session() {
    need_root!();
    let w = World::new();
    let out = w
        .process("hermes", Some("mcp"))
        .args(["--session", "0123456789abcdef", "--call", "3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(77), "{out:?}");
    let record = w.record().1;
    assert!(
        record.contains("rule=\"mcp\"") && record.contains("cannot be opened inside one"),
        "{record}"
    );
    assert!(!record.contains("session-start"), "{record}");
    w.no_more_records();
}
