//! Secure loading of the rules file. In forced mode the file must be a regular file owned by
//! root and writable by nobody else, reached through directories (and symlinks) only root can
//! change (`sys::walk`): a rules file the agent could change or swap is no policy at all. The
//! file read is the one the walk checked (same device and inode, checked on the open file), so
//! a swap between check and read changes nothing. The docker config directory the rules name
//! is walked too: docker reads plugins and credential helpers from it.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::walk::{self, Expect, WalkError};
use crate::policy::MAX_RULES_BYTES;

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

fn parse(path: &Path, require_root: bool) -> Result<crate::policy::Policy, String> {
    let text = read_rules(path, require_root).map_err(|e| e.to_string())?;
    crate::rules::parse(&text).map_err(|e| format!("{}:{e}", path.display()))
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
    let mut bytes = Vec::new();
    file.take(cap + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() > MAX_RULES_BYTES {
        return Err(LoadError::TooLarge { path: name });
    }
    String::from_utf8(bytes).map_err(|_| LoadError::NotUtf8 { path: name })
}
