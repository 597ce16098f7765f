//! The compiled record of a policy: the rules file compiled and its examples passed, in a
//! compact binary form, keyed by the SHA-256 of exactly the rules bytes it came from and by
//! the build that wrote it. `agent-gate compile` writes it (as root, beside the rules file:
//! `FILE.compiled`); every loader that finds a record for the bytes it just read uses it
//! instead of parsing YAML, compiling and running the examples again. Anything else (no
//! record, another rules digest, another build, bytes that do not decode) is `Stale`, and the
//! loader takes the full path. The checks on the rules file itself run either way.
//!
//! Only `encode` makes a record, and only from a policy `rules::parse` returned: a record
//! exists only for rules whose examples passed.

use serde::{Deserialize, Serialize};

use super::Policy;

/// The first bytes of every record: what the file is, for anyone who opens it.
pub const MAGIC: &str = "agent-gate compiled policy v1\n";
/// The build's identity (`build.rs`): a SHA-256 over the sources, manifest and lock file.
pub const BUILD: &str = env!("AGENT_GATE_BUILD");
/// The largest record read: a record is a few times its rules file at most.
pub const MAX_RECORD_BYTES: usize = 8 << 20;

/// What a record says before the policy: read first, and the policy decoded only when both
/// match.
#[derive(Serialize, Deserialize)]
struct Header<'a> {
    magic: &'a str,
    build: &'a str,
    /// `sha256:HEX` of the rules file.
    rules: &'a str,
}

/// Why a record was not used; each means "load the rules file itself".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Stale {
    #[error("it is not a compiled policy record")]
    NotARecord,
    #[error("it was written by another build of agent-gate")]
    OtherBuild,
    #[error("it was compiled from other rules (the rules file changed since)")]
    OtherRules,
    #[error("it is damaged: {0}")]
    Damaged(String),
}

/// The record of `policy` (one `rules::parse` returned), as this build writes it.
pub fn encode(policy: &Policy) -> Result<Vec<u8>, postcard::Error> {
    let header = Header {
        magic: MAGIC,
        build: BUILD,
        rules: &policy.digest,
    };
    let mut bytes = postcard::to_stdvec(&header)?;
    bytes.extend(postcard::to_stdvec(policy)?);
    Ok(bytes)
}

/// The policy in `bytes`, if they are this build's record of the rules whose digest is
/// `rules` (`sha256:HEX`).
pub fn decode(bytes: &[u8], rules: &str) -> Result<Policy, Stale> {
    let (header, rest): (Header<'_>, &[u8]) =
        postcard::take_from_bytes(bytes).map_err(|_| Stale::NotARecord)?;
    if header.magic != MAGIC {
        return Err(Stale::NotARecord);
    }
    if header.build != BUILD {
        return Err(Stale::OtherBuild);
    }
    if header.rules != rules {
        return Err(Stale::OtherRules);
    }
    let (policy, rest): (Policy, &[u8]) =
        postcard::take_from_bytes(rest).map_err(|e| Stale::Damaged(e.to_string()))?;
    if !rest.is_empty() {
        return Err(Stale::Damaged(format!(
            "{} bytes after the policy",
            rest.len()
        )));
    }
    if policy.digest != rules {
        return Err(Stale::Damaged(
            "its policy names other rules than its header".into(),
        ));
    }
    Ok(policy)
}

/// Where the record of the rules file at `rules` lives: beside it, `FILE.compiled`.
pub fn path_for(rules: &std::path::Path) -> std::path::PathBuf {
    let mut name = rules.as_os_str().to_owned();
    name.push(".compiled");
    std::path::PathBuf::from(name)
}
