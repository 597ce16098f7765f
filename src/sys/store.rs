//! The approval store: a root-owned directory (mode 0700) with one `ID.json` per request and a
//! `lock` file. Every change of a record happens under an exclusive lock on `lock` and is
//! written whole to a temporary file, synced, then renamed over the record, so a reader sees
//! the old record or the new one, never a mixture; a crash leaves at most a stray temporary
//! file, which is ignored. Consuming an approval is one such change, made under the lock: two
//! runs cannot both consume it.
//!
//! Nothing read from the store is trusted on the strength of an earlier check: every read
//! (each record, each listing, each lock) walks the store's path again (`sys::walk`), finds the
//! same directory still root's with mode 0700, and opens the record with `O_NOFOLLOW |
//! O_NONBLOCK` and checks the open file: regular, root's, mode 0600. A store made writable, a
//! record swapped in by another user (a forged approval with a recomputed checksum), a store
//! deleted and made again: each is an error the caller refuses on, never a record it uses.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::walk::{self, Expect, WalkError};

use crate::deploy::request::{Damage, DeployRequest, valid_id};

/// A record is a few kilobytes; anything larger is not one.
const MAX_RECORD: u64 = 1 << 20;
/// Final records are kept this long for `pending --all`, then removed.
pub const KEEP_FINAL_SECONDS: u64 = 7 * 86_400;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the approval store {path}: {message}")]
    Unsafe { path: String, message: String },
    #[error("the approval store {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the approval store {path} is gone (deleted, or replaced by another directory, while in use)"
    )]
    Gone { path: String },
    #[error("no request `{0}` in the approval store")]
    NoSuchRequest(String),
    #[error(
        "request {id}: its record {path} {why}; only root writes records (0600, in a 0700 store), so this one is not trusted"
    )]
    Untrusted {
        id: String,
        path: String,
        why: String,
    },
    #[error("request {id} is refused: {damage}")]
    Damaged { id: String, damage: Damage },
}

pub struct Store {
    /// The store's real path (symlinks resolved by the walk), as every later read uses it.
    dir: PathBuf,
    /// The path as configured, for messages.
    given: String,
    /// The directory the store was opened as: a store replaced later is not this one.
    dev: u64,
    ino: u64,
}

/// The store directory itself: a real directory, root's, mode 0700.
fn private(path: &str, meta: &fs::Metadata) -> Result<(), StoreError> {
    let unsafe_store = |message: String| StoreError::Unsafe {
        path: path.to_string(),
        message,
    };
    if !meta.is_dir() {
        return Err(unsafe_store("is not a directory".into()));
    }
    if meta.uid() != 0 {
        return Err(unsafe_store(format!(
            "owned by uid {}, not root: approvals must be beyond the agent's reach (`chown root {path}`)",
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(unsafe_store(format!(
            "mode {:o}: only root may read or write it (`chmod 700 {path}`)",
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

/// The held lock; dropping it releases it.
pub struct Locked(#[allow(dead_code)] Flock<File>);

impl Store {
    /// Open the store, creating it (mode 0700) when `create` and it is missing. It must be a
    /// real directory, owned by root and closed to everyone else.
    pub fn open(dir: &Path, create: bool) -> Result<Self, StoreError> {
        let path = dir.display().to_string();
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        match fs::symlink_metadata(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                if let Some(parent) = dir.parent() {
                    DirBuilder::new()
                        .recursive(true)
                        .mode(0o755)
                        .create(parent)
                        .map_err(io)?;
                }
                DirBuilder::new().mode(0o700).create(dir).map_err(io)?;
            }
            Err(e) => return Err(io(e)),
            Ok(_) => {}
        }
        let walked = walk::check(dir, Expect::Dir).map_err(|e| StoreError::Unsafe {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let meta = fs::symlink_metadata(&walked.path).map_err(io)?;
        private(&path, &meta)?;
        Ok(Self {
            dir: walked.path,
            given: path,
            dev: walked.dev,
            ino: walked.ino,
        })
    }

    /// The same store as at `open`, still root's alone: walked again, compared by device and
    /// inode, mode 0700. Every read starts with this.
    pub fn verify(&self) -> Result<(), StoreError> {
        let gone = || StoreError::Gone {
            path: self.given.clone(),
        };
        let walked = match walk::check(Path::new(&self.given), Expect::Dir) {
            Ok(walked) => walked,
            Err(WalkError::Missing { .. }) => return Err(gone()),
            Err(e) => {
                return Err(StoreError::Unsafe {
                    path: self.given.clone(),
                    message: e.to_string(),
                });
            }
        };
        if (walked.dev, walked.ino) != (self.dev, self.ino) || walked.path != self.dir {
            return Err(gone());
        }
        let meta = fs::symlink_metadata(&self.dir).map_err(|e| self.io(e))?;
        private(&self.given, &meta)
    }

    fn io(&self, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: self.given.clone(),
            source,
        }
    }

    /// Wait for the store's exclusive lock.
    pub fn lock(&self) -> Result<Locked, StoreError> {
        self.verify()?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(self.dir.join("lock"))
            .map_err(|e| self.io(e))?;
        Flock::lock(file, FlockArg::LockExclusive)
            .map(Locked)
            .map_err(|(_, errno)| self.io(errno.into()))
    }

    /// Where the step copies a request's approved tree while it deploys it (root-private, as
    /// the store is; removed when the deploy ends).
    pub fn tree_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.tree"))
    }

    fn path_of(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// One request, whole and consistent, or why not.
    pub fn load(&self, id: &str) -> Result<DeployRequest, StoreError> {
        if !valid_id(id) {
            return Err(StoreError::NoSuchRequest(id.to_string()));
        }
        self.verify()?;
        let path = self.path_of(id);
        let untrusted = |why: String| StoreError::Untrusted {
            id: id.to_string(),
            path: path.display().to_string(),
            why,
        };
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NoSuchRequest(id.to_string()));
            }
            Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
                return Err(untrusted("is a symlink".into()));
            }
            Err(e) => return Err(self.io(e)),
        };
        let meta = file.metadata().map_err(|e| self.io(e))?;
        if !meta.is_file() {
            return Err(untrusted("is not a regular file".into()));
        }
        if meta.uid() != 0 {
            return Err(untrusted(format!(
                "is owned by uid {}, not root",
                meta.uid()
            )));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(untrusted(format!(
                "has mode {:o}, not 0600",
                meta.mode() & 0o7777
            )));
        }
        let mut text = String::new();
        let damaged = |damage| StoreError::Damaged {
            id: id.to_string(),
            damage,
        };
        file.take(MAX_RECORD)
            .read_to_string(&mut text)
            .map_err(|e| damaged(Damage::Unreadable(e.to_string())))?;
        DeployRequest::from_json(&text, id).map_err(damaged)
    }

    /// Every request id in the store, sorted.
    pub fn ids(&self) -> Result<Vec<String>, StoreError> {
        self.verify()?;
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(|e| self.io(e))? {
            let name = entry.map_err(|e| self.io(e))?.file_name();
            if let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json"))
                && valid_id(id)
            {
                ids.push(id.to_string());
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Write a record whole: a temporary file, synced, renamed over the old one, and the
    /// directory synced so the rename survives a crash. Call with the lock held.
    pub fn save(&self, request: &DeployRequest, _lock: &Locked) -> Result<(), StoreError> {
        if !valid_id(&request.id) {
            return Err(StoreError::NoSuchRequest(request.id.clone()));
        }
        let tmp = self
            .dir
            .join(format!(".{}.{}.tmp", request.id, std::process::id()));
        let written = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(request.to_json().as_bytes())?;
            file.sync_all()?;
            fs::rename(&tmp, self.path_of(&request.id))?;
            File::open(&self.dir)?.sync_all()
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written.map_err(|e| self.io(e))
    }

    pub fn remove(&self, id: &str, _lock: &Locked) -> Result<(), StoreError> {
        if !valid_id(id) {
            return Err(StoreError::NoSuchRequest(id.to_string()));
        }
        fs::remove_file(self.path_of(id)).map_err(|e| self.io(e))
    }

    /// A fresh request id: 32 random bits, not in use.
    pub fn new_id(&self, _lock: &Locked) -> Result<String, StoreError> {
        for _ in 0..16 {
            let mut bytes = [0u8; 4];
            File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut bytes))
                .map_err(|e| self.io(e))?;
            let id = crate::digest::hex(&bytes);
            if !self.path_of(&id).exists() {
                return Ok(id);
            }
        }
        Err(self.io(std::io::Error::other("no free request id")))
    }

    /// What every user of the store does first, under the lock: tidy up, then mark each open
    /// request whose time is up `expired`, calling `record` for each (its audit record).
    pub fn sweep(
        &self,
        now: u64,
        lock: &Locked,
        mut record: impl FnMut(&DeployRequest) -> Result<(), String>,
    ) -> Result<(), String> {
        let _ = self.tidy(now, lock);
        for id in self.ids().map_err(|e| e.to_string())? {
            if let Ok(mut request) = self.load(&id)
                && request.is_expired(now)
            {
                request.expire();
                self.save(&request, lock).map_err(|e| e.to_string())?;
                record(&request)?;
            }
        }
        Ok(())
    }

    /// Remove stray temporary files (a crash mid-write) and final records older than
    /// `KEEP_FINAL_SECONDS`.
    fn tidy(&self, now: u64, lock: &Locked) -> Result<(), StoreError> {
        for entry in fs::read_dir(&self.dir).map_err(|e| self.io(e))? {
            let name = entry.map_err(|e| self.io(e))?.file_name();
            if name
                .to_str()
                .is_some_and(|n| n.starts_with('.') && n.ends_with(".tmp"))
            {
                let _ = fs::remove_file(self.dir.join(&name));
            }
        }
        for id in self.ids()? {
            if let Ok(request) = self.load(&id)
                && !request.state.is_open()
                && now.saturating_sub(
                    request
                        .executed_at
                        .or(request.decided_at)
                        .unwrap_or(request.filed_at),
                ) > KEEP_FINAL_SECONDS
            {
                let _ = self.remove(&id, lock);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::request::Binding;
    use crate::deploy::{Asker, Form, root_plan};
    use std::os::unix::fs::PermissionsExt;

    /// A store with one request in it, under a root-owned 0755 directory; `None` when not
    /// root (the store refuses what root does not own).
    fn store() -> Option<(tempfile::TempDir, Store, String)> {
        if !nix::unistd::Uid::effective().is_root() {
            let required = std::env::var("AGENT_GATE_ROOT").is_ok_and(|v| v == "required");
            assert!(
                !required,
                "the store tests need root, and AGENT_GATE_ROOT=required"
            );
            eprintln!("skipped: the approval store tests need root");
            return None;
        }
        let dir = crate::sys::walk::trusted_test_dir();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let store = Store::open(&dir.path().join("store"), true).unwrap();
        let policy = crate::rules::parse(
            "version: 1\nsudo: /usr/bin/sudo\nkeys: {hermes: {may: [deploy]}}\ndeploy: {flake: /etc/nixos, nh: /bin/nh}\n",
        )
        .unwrap();
        let plan = root_plan(&policy, Form::Nh).unwrap();
        let binding = Binding {
            flake: "/etc/nixos".into(),
            flake_lock: "sha256:aa".into(),
            git_rev: None,
            tree: "sha256:bb".into(),
            files: 1,
        };
        let asker = Asker {
            key: "hermes".into(),
            ..Asker::default()
        };
        let request =
            DeployRequest::file("0a1b2c3d".into(), 0, 60, &asker, None, "nh", &plan, binding);
        let lock = store.lock().unwrap();
        store.save(&request, &lock).unwrap();
        Some((dir, store, request.id))
    }

    #[test]
    fn a_record_root_did_not_write_is_not_read() {
        let Some((dir, store, id)) = store() else {
            return;
        };
        let file = dir.path().join(format!("store/{id}.json"));
        assert!(store.load(&id).is_ok());
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        let e = store.load(&id).unwrap_err().to_string();
        assert!(e.contains("has mode 644, not 0600"), "{e}");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        // A symlink to a good record is not the record.
        fs::rename(&file, dir.path().join("elsewhere.json")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere.json"), &file).unwrap();
        let e = store.load(&id).unwrap_err().to_string();
        assert!(e.contains("is a symlink"), "{e}");
        fs::remove_file(&file).unwrap();
        // A directory (or a FIFO: O_NONBLOCK, no hang) in its place.
        nix::unistd::mkfifo(&file, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = store.load(&id).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }

    #[test]
    fn a_store_changed_under_its_user_is_noticed_at_the_next_read() {
        let Some((dir, store, id)) = store() else {
            return;
        };
        let path = dir.path().join("store");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o750)).unwrap();
        assert!(matches!(store.load(&id), Err(StoreError::Unsafe { .. })));
        assert!(matches!(store.ids(), Err(StoreError::Unsafe { .. })));
        assert!(store.lock().is_err());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
        assert!(store.load(&id).is_ok());
        // Replaced by another directory, root's and 0700 as well: not the store it opened.
        fs::rename(&path, dir.path().join("old")).unwrap();
        fs::create_dir(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
        fs::rename(
            dir.path().join(format!("old/{id}.json")),
            path.join(format!("{id}.json")),
        )
        .unwrap();
        assert!(matches!(store.load(&id), Err(StoreError::Gone { .. })));
        fs::remove_dir_all(&path).unwrap();
        assert!(matches!(store.load(&id), Err(StoreError::Gone { .. })));
    }
}
