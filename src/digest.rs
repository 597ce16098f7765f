//! Lowercase hex, and SHA-256 written as hex: the one spelling of every digest the gateway
//! logs, stores or compares (rules files, commands, approval requests, flakes).

use sha2::{Digest, Sha256};

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of `bytes`, as 64 hex digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}
