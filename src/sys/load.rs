//! Secure loading of the rules file. In forced mode the file must be a regular file owned by
//! root and writable by nobody else, reached through directories (and symlinks) only root can
//! change (`sys::walk`): a rules file the agent could change or swap is no policy at all. The
//! file read is the one the walk checked (same device and inode, checked on the open file), so
//! a swap between check and read changes nothing. The docker config directory the rules name
//! is walked too: docker reads plugins and credential helpers from it.
//!
//! The policy itself comes from the rules' compiled record (`policy::record`, beside the file)
//! when that record passes the same walk and was written by this build for exactly the bytes
//! just read; else from the text, compiled and every example run.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::walk::{self, Expect, WalkError};
use crate::policy::{MAX_RULES_BYTES, record};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a regular file")]
    NotRegular { path: String },
    #[error("{path}: larger than {MAX_RULES_BYTES} bytes")]
    TooLarge { path: String },
    #[error("{path}: not UTF-8 text")]
    NotUtf8 { path: String },
    #[error("the rules file {0}")]
    Walk(WalkError),
    #[error("the docker config directory (docker.config) {0}")]
    DockerConfig(WalkError),
}

/// Read and compile the rules file: the policy, or one line saying what is wrong
/// (`FILE:LINE:COL: message` for an error in the rules themselves).
/// With `require_root` (the agent's side: forced mode, each MCP call) the docker config
/// directory must pass the walk as well.
pub fn policy(path: &Path, require_root: bool) -> Result<crate::policy::Policy, String> {
    let policy = parse(path, require_root)?;
    if require_root && let Some(docker) = &policy.docker {
        walk::check(Path::new(&docker.config), Expect::Dir)
            .map_err(|e| LoadError::DockerConfig(e).to_string())?;
    }
    Ok(policy)
}

/// The rules as root's deploy side reads them (the approval step, `deploy-status`, the
/// operator's `pending`/`approve`/`deny`): the rules file walked, but not the docker config
/// directory, which none of them hands to docker: a broken one refuses the agent's commands,
/// and does not keep an operator from deciding.
pub fn deploy_policy(path: &Path) -> Result<crate::policy::Policy, String> {
    parse(path, true)
}

/// The policy of the rules file at `path`: from its compiled record when root's record for
/// exactly these bytes is there (`policy::record`), else compiled from the text with every
/// example run. The file's own checks run first either way.
fn parse(path: &Path, require_root: bool) -> Result<crate::policy::Policy, String> {
    let text = read_rules(path, require_root).map_err(|e| e.to_string())?;
    if let Ok(policy) = compiled(path, &text) {
        return Ok(policy);
    }
    full(path, &text)
}

/// The policy compiled from `text` (the rules file at `path`), every example run: what
/// `check` and `compile` always do, and every loader without a current record.
pub fn full(path: &Path, text: &str) -> Result<crate::policy::Policy, String> {
    crate::rules::parse(text).map_err(|e| format!("{}:{e}", path.display()))
}

/// The rules file read as `read_rules` does and compiled in full whatever record is beside it
/// (`check`, `compile`, `doctor`): the policy and the text it came from.
pub fn in_full(path: &Path, require_root: bool) -> Result<(crate::policy::Policy, String), String> {
    let text = read_rules(path, require_root).map_err(|e| e.to_string())?;
    full(path, &text).map(|policy| (policy, text))
}

/// Why the compiled record of the rules file at `path` cannot stand in for `text`.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{0}")]
    Walk(WalkError),
    #[error("{path}: cannot read: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: larger than {} bytes", record::MAX_RECORD_BYTES)]
    TooLarge { path: String },
    #[error("{1}: {0}")]
    Stale(record::Stale, String),
}

/// The policy from the compiled record beside the rules file at `path`, when it is root's
/// (the same walk as the rules file: owner, mode, every component from `/`) and records
/// exactly `text`.
pub fn compiled(path: &Path, text: &str) -> Result<crate::policy::Policy, RecordError> {
    let at = record::path_for(path);
    let name = at.display().to_string();
    let (file, meta) = walk::open_file(&at).map_err(RecordError::Walk)?;
    let cap = u64::try_from(record::MAX_RECORD_BYTES).unwrap_or(u64::MAX);
    if meta.len() > cap {
        return Err(RecordError::TooLarge { path: name });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| RecordError::Io {
            path: name.clone(),
            source,
        })?;
    if bytes.len() > record::MAX_RECORD_BYTES {
        return Err(RecordError::TooLarge { path: name });
    }
    let digest = format!("sha256:{}", crate::digest::sha256_hex(text.as_bytes()));
    record::decode(&bytes, &digest).map_err(|e| RecordError::Stale(e, name))
}

/// Read the rules file. With `require_root`, refuse a file root does not own or others may write.
pub fn read_rules(path: &Path, require_root: bool) -> Result<String, LoadError> {
    let name = path.display().to_string();
    let io = |source| LoadError::Io {
        path: name.clone(),
        source,
    };
    // The walk checks owner and mode of every component and of the open file itself.
    let (file, meta) = if require_root {
        walk::open_file(path).map_err(LoadError::Walk)?
    } else {
        let file = File::open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        (file, meta)
    };
    if !meta.is_file() {
        return Err(LoadError::NotRegular { path: name });
    }
    let cap = u64::try_from(MAX_RULES_BYTES).unwrap_or(u64::MAX);
    if meta.len() > cap {
        return Err(LoadError::TooLarge { path: name });
    }
    // One sized read: the length is known, and one byte more shows a file that grew.
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0) + 1);
    file.take(cap + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() > MAX_RULES_BYTES {
        return Err(LoadError::TooLarge { path: name });
    }
    String::from_utf8(bytes).map_err(|_| LoadError::NotUtf8 { path: name })
}
