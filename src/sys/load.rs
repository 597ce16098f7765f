//! Secure loading of the rules file. In forced mode the file must be a regular file owned by
//! root and writable by nobody else: a rules file the agent could change is no policy at all.
//! The checks use the opened file's own metadata (fstat), not the path, so a swap between
//! check and read changes nothing.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

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
    #[error("{path}: owned by uid {uid}, not root")]
    NotRootOwned { path: String, uid: u32 },
    #[error("{path}: mode {mode:o} lets others than root write it")]
    Writable { path: String, mode: u32 },
    #[error("{path}: larger than {MAX_RULES_BYTES} bytes")]
    TooLarge { path: String },
    #[error("{path}: not UTF-8 text")]
    NotUtf8 { path: String },
}

/// Read and compile the rules file: the policy, or one line saying what is wrong
/// (`FILE:LINE:COL: message` for an error in the rules themselves).
pub fn policy(path: &Path, require_root: bool) -> Result<crate::policy::Policy, String> {
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
    let file = File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(LoadError::NotRegular { path: name });
    }
    if require_root {
        if meta.uid() != 0 {
            return Err(LoadError::NotRootOwned {
                path: name,
                uid: meta.uid(),
            });
        }
        if meta.mode() & 0o022 != 0 {
            return Err(LoadError::Writable {
                path: name,
                mode: meta.mode() & 0o7777,
            });
        }
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
