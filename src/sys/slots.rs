//! How many sessions of one label run at once: each holds a slot, an abstract unix socket
//! named for the rules file, the label and the slot's number
//! (`agent-gate.session.SCOPE.LABEL.N`, SCOPE from the SHA-256 of the rules file's absolute
//! path: labels belong to their rules), bound for the life of the process. The kernel frees it when the process ends, however it ends, so no
//! count can go stale; nothing on disk, nothing the account must be able to write.
//!
//! The names live in the host's network namespace: a local program there could hold them,
//! which keeps that label's sessions out (a denial of service, never an admission).

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// A held slot; dropping it (or ending the process) frees it.
#[derive(Debug)]
pub struct Slot {
    _socket: UnixDatagram,
    pub number: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    #[error(
        "key `{label}` already has {max} sessions running (keys.{label}.max_sessions); wait for one to end"
    )]
    Full { label: String, max: u32 },
    #[error("the session slots cannot be taken: {0}")]
    Io(std::io::Error),
}

/// The slots' scope for the rules file at `rules`.
pub fn scope(rules: &std::path::Path) -> String {
    let path = std::path::absolute(rules).unwrap_or_else(|_| rules.to_path_buf());
    let digest = crate::digest::sha256_hex(path.as_os_str().as_encoded_bytes());
    digest.get(..16).unwrap_or_default().to_string()
}

/// The name of slot `number` of `label` in `scope`.
pub fn name(scope: &str, label: &str, number: u32) -> String {
    format!("agent-gate.session.{scope}.{label}.{number}")
}

/// Take the first free slot of `label`'s `max`.
pub fn take(scope: &str, label: &str, max: u32) -> Result<Slot, SlotError> {
    for number in 0..max {
        let name = name(scope, label, number);
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).map_err(SlotError::Io)?;
        match UnixDatagram::bind_addr(&addr) {
            Ok(socket) => {
                return Ok(Slot {
                    _socket: socket,
                    number,
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {}
            Err(e) => return Err(SlotError::Io(e)),
        }
    }
    Err(SlotError::Full {
        label: label.to_string(),
        max,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_held_until_dropped() {
        let scope = format!("test-{}", std::process::id());
        let a = take(&scope, "hermes", 2).unwrap();
        let b = take(&scope, "hermes", 2).unwrap();
        assert_eq!((a.number, b.number), (0, 1));
        let full = take(&scope, "hermes", 2).unwrap_err();
        assert!(
            full.to_string().contains("already has 2 sessions running"),
            "{full}"
        );
        // Another label, or the same label of other rules, has slots of its own.
        assert_eq!(take(&scope, "other", 2).unwrap().number, 0);
        assert_eq!(take("elsewhere", "hermes", 1).unwrap().number, 0);
        drop(a);
        assert_eq!(take(&scope, "hermes", 2).unwrap().number, 0);
    }
}
