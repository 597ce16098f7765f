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
    let Some(bytes) =
        read_at_most(file, &meta, record::MAX_RECORD_BYTES).map_err(|source| RecordError::Io {
            path: name.clone(),
            source,
        })?
    else {
        return Err(RecordError::TooLarge { path: name });
    };
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
    let Some(bytes) = read_at_most(file, &meta, MAX_RULES_BYTES).map_err(io)? else {
        return Err(LoadError::TooLarge { path: name });
    };
    String::from_utf8(bytes).map_err(|_| LoadError::NotUtf8 { path: name })
}

/// The whole of an open file in one sized read, or `None` when it is (or, read, turns out to
/// be) longer than `cap` bytes: the length is known, and one byte more shows a file that grew.
fn read_at_most(
    file: File,
    meta: &std::fs::Metadata,
    cap: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    let limit = u64::try_from(cap).unwrap_or(u64::MAX);
    if meta.len() > limit {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0) + 1);
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    Ok((bytes.len() <= cap).then_some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_of(dir: &Path, name: &str, len: usize) -> (File, std::fs::Metadata) {
        let path = dir.join(name);
        std::fs::write(&path, vec![b'x'; len]).unwrap();
        let file = File::open(&path).unwrap();
        let meta = file.metadata().unwrap();
        (file, meta)
    }

    #[test]
    fn a_read_is_bounded_by_the_length_and_by_what_it_reads() {
        let dir = tempfile::tempdir().unwrap();
        let (file, meta) = file_of(dir.path(), "at", 5);
        assert_eq!(read_at_most(file, &meta, 5).unwrap(), Some(vec![b'x'; 5]));
        let (file, meta) = file_of(dir.path(), "over", 6);
        assert_eq!(read_at_most(file, &meta, 5).unwrap(), None);
        // A file that grew after its length was taken: the read sees the extra byte.
        let (_, small) = file_of(dir.path(), "small", 3);
        let (grown, _) = file_of(dir.path(), "grown", 10);
        assert_eq!(read_at_most(grown, &small, 5).unwrap(), None);
        let (empty, meta) = file_of(dir.path(), "empty", 0);
        assert_eq!(read_at_most(empty, &meta, 5).unwrap(), Some(Vec::new()));
    }

    #[test]
    fn a_rules_file_over_the_bound_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.yaml");
        std::fs::write(&path, vec![b'#'; MAX_RULES_BYTES + 1]).unwrap();
        let e = read_rules(&path, false).unwrap_err().to_string();
        assert!(
            e.ends_with(&format!("larger than {MAX_RULES_BYTES} bytes")),
            "{e}"
        );
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        let e = read_rules(&path, false).unwrap_err().to_string();
        assert!(e.ends_with("not UTF-8 text"), "{e}");
    }
}
