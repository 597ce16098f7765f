//! The flake as it is on disk now, for the approval digest: the SHA-256 of `flake.lock`, the
//! git commit checked out (read from `.git` directly: no git process runs as root), and one
//! SHA-256 over every path, type, executable bit and content under the flake directory, so an
//! uncommitted edit changes the digest as surely as a new commit. Symlinks are hashed as their
//! target text and never followed. Bounded: a flake larger than the limits is refused.
//! Before anything is read, the flake directory and its flake.lock pass the path walk
//! (`sys::walk`): a flake that someone other than root can change is not what a human approved.

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::walk::{self, Expect};
use crate::deploy::request::Binding;
use crate::digest::hex;

const MAX_FILES: u64 = 100_000;
const MAX_BYTES: u64 = 1 << 30;
const MAX_DEPTH: usize = 64;
/// `.git/HEAD`, a ref, `packed-refs`: small files.
const MAX_GIT_FILE: u64 = 16 << 20;

/// Take the flake's binding, or say why the flake cannot be bound.
pub fn bind(flake: &Path) -> Result<Binding, String> {
    walk::check(flake, Expect::Dir).map_err(|e| format!("the flake {e}"))?;
    let lock = flake.join("flake.lock");
    if lock.exists() {
        walk::check(&lock, Expect::File).map_err(|e| format!("the flake's lock file {e}"))?;
    }
    bind_tree_with(flake, true)
}

/// The binding of a flake that passed the walk, its entries' owners not checked (for tests
/// that run without root).
#[cfg(test)]
fn bind_tree(flake: &Path) -> Result<Binding, String> {
    bind_tree_with(flake, false)
}

/// The binding; with `strict`, every entry must be root's and writable by root only.
fn bind_tree_with(flake: &Path, strict: bool) -> Result<Binding, String> {
    let shown = flake.display();
    let meta = fs::metadata(flake).map_err(|e| format!("the flake {shown}: {e}"))?;
    if !meta.is_dir() {
        return Err(format!("the flake {shown} is not a directory"));
    }
    let lock = flake.join("flake.lock");
    let flake_lock = match fs::symlink_metadata(&lock) {
        Ok(m) if m.is_file() => sha256_file(&lock)?,
        Ok(_) => return Err(format!("{} is not a regular file", lock.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "{shown} has no flake.lock: a deploy is bound to a locked flake; lock it first (`nix flake lock {shown}`)"
            ));
        }
        Err(e) => return Err(format!("{}: {e}", lock.display())),
    };
    let git_rev = git_rev(flake)?;
    let mut tree = Tree {
        strict,
        ..Tree::default()
    };
    tree.walk(flake, Path::new(""), 0)?;
    // Nix evaluates a git flake from what the index tracks: a `git add` of an untracked file
    // changes what is built while every file's content stays the same.
    let index = flake.join(".git/index");
    match fs::symlink_metadata(&index) {
        Ok(m) if m.is_file() => {
            let digest = sha256_file(&index)?;
            tree.entry(b"i", Path::new(".git/index"), digest.as_bytes());
        }
        Ok(_) => return Err(format!("{} is not a regular file", index.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {e}", index.display())),
    }
    Ok(Binding {
        flake: flake.display().to_string(),
        flake_lock: format!("sha256:{flake_lock}"),
        git_rev,
        tree: format!("sha256:{}", hex(&tree.hasher.finalize())),
        files: tree.files,
    })
}

/// Copy the flake, `.git` included, into `to` (a new directory in a root-private place), and
/// bind the copy: what nix then reads is exactly what was bound, whoever writes the flake
/// afterwards. Regular files, directories and symlinks only (a symlink is copied as one);
/// the copy is bounded like the binding (`MAX_FILES`, `MAX_BYTES`).
pub fn copy_bound(flake: &Path, to: &Path) -> Result<Binding, String> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    fn copy(from: &Path, to: &Path, depth: usize, budget: &mut (u64, u64)) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("{} is nested too deep to copy", from.display()));
        }
        fs::DirBuilder::new()
            .mode(0o700)
            .create(to)
            .map_err(|e| format!("{}: {e}", to.display()))?;
        let mut names: Vec<_> = fs::read_dir(from)
            .map_err(|e| format!("{}: {e}", from.display()))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("{}: {e}", from.display()))?;
        names.sort();
        for name in names {
            let (src, dst) = (from.join(&name), to.join(&name));
            budget.0 += 1;
            if budget.0 > MAX_FILES {
                return Err(format!(
                    "the flake has more than {MAX_FILES} files: too large to copy"
                ));
            }
            let meta = fs::symlink_metadata(&src).map_err(|e| format!("{}: {e}", src.display()))?;
            let kind = meta.file_type();
            if kind.is_symlink() {
                let target = fs::read_link(&src).map_err(|e| format!("{}: {e}", src.display()))?;
                std::os::unix::fs::symlink(&target, &dst)
                    .map_err(|e| format!("{}: {e}", dst.display()))?;
            } else if kind.is_dir() {
                copy(&src, &dst, depth + 1, budget)?;
                fs::set_permissions(
                    &dst,
                    fs::Permissions::from_mode(meta.permissions().mode() & 0o777),
                )
                .map_err(|e| format!("{}: {e}", dst.display()))?;
            } else if kind.is_file() {
                let mut input = fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
                    .open(&src)
                    .map_err(|e| format!("{}: {e}", src.display()))?;
                let mut output = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(meta.permissions().mode() & 0o777)
                    .open(&dst)
                    .map_err(|e| format!("{}: {e}", dst.display()))?;
                // Exactly the mode bound (the umask would narrow the one given at create).
                output
                    .set_permissions(fs::Permissions::from_mode(
                        meta.permissions().mode() & 0o777,
                    ))
                    .map_err(|e| format!("{}: {e}", dst.display()))?;
                let left = MAX_BYTES.saturating_sub(budget.1);
                let copied = std::io::copy(&mut (&mut input).take(left + 1), &mut output)
                    .map_err(|e| format!("{}: {e}", src.display()))?;
                budget.1 += copied;
                if budget.1 > MAX_BYTES {
                    return Err(format!(
                        "the flake holds more than {MAX_BYTES} bytes: too large to copy"
                    ));
                }
            } else {
                return Err(format!(
                    "{} is neither a file, a directory nor a symlink: it cannot be deployed",
                    src.display()
                ));
            }
        }
        Ok(())
    }
    walk::check(flake, Expect::Dir).map_err(|e| format!("the flake {e}"))?;
    copy(flake, to, 0, &mut (0, 0))?;
    let mut bound = bind_tree_with(to, true)?;
    bound.flake = flake.display().to_string();
    Ok(bound)
}

fn sha256_file(path: &Path) -> Result<String, String> {
    let mut file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(buf.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
    }
    Ok(hex(&hasher.finalize()))
}

#[derive(Default)]
struct Tree {
    hasher: Sha256,
    files: u64,
    bytes: u64,
    /// Every entry root's and writable by root only (the flake a deploy reads).
    strict: bool,
}

impl Tree {
    fn entry(&mut self, kind: &[u8], rel: &Path, extra: &[u8]) {
        self.hasher.update(kind);
        self.hasher.update(rel.as_os_str().as_bytes());
        self.hasher.update([0]);
        self.hasher.update(extra);
        self.hasher.update([0]);
    }

    fn walk(&mut self, dir: &Path, rel: &Path, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "{} is nested deeper than {MAX_DEPTH} directories",
                dir.display()
            ));
        }
        let listing = fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut names = Vec::new();
        for entry in listing {
            names.push(
                entry
                    .map_err(|e| format!("{}: {e}", dir.display()))?
                    .file_name(),
            );
        }
        names.sort();
        for name in names {
            if depth == 0 && name == ".git" {
                continue;
            }
            self.files += 1;
            if self.files > MAX_FILES {
                return Err(format!(
                    "the flake has more than {MAX_FILES} files: too large to bind"
                ));
            }
            let path = dir.join(&name);
            let rel: PathBuf = rel.join(&name);
            let meta =
                fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let kind = meta.file_type();
            if self.strict {
                use std::os::unix::fs::MetadataExt;
                let shown = path.display();
                if meta.uid() != 0 {
                    return Err(format!(
                        "{shown} is owned by uid {}: every entry of a flake to deploy is root's (chown -R root {})",
                        meta.uid(),
                        dir.display()
                    ));
                }
                if !kind.is_symlink() && meta.mode() & 0o022 != 0 {
                    return Err(format!(
                        "{shown} has mode {:o}: every entry of a flake to deploy is writable by root only (chmod go-w {shown})",
                        meta.mode() & 0o7777
                    ));
                }
            }
            if kind.is_symlink() {
                let target =
                    fs::read_link(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                self.entry(b"l", &rel, target.as_os_str().as_bytes());
            } else if kind.is_dir() {
                self.entry(b"d", &rel, b"");
                self.walk(&path, &rel, depth + 1)?;
            } else if kind.is_file() {
                self.bytes += meta.len();
                if self.bytes > MAX_BYTES {
                    return Err(format!(
                        "the flake holds more than {MAX_BYTES} bytes: too large to bind"
                    ));
                }
                let exec = if meta.permissions().mode() & 0o111 != 0 {
                    "x"
                } else {
                    "-"
                };
                let content = sha256_file(&path)?;
                self.entry(b"f", &rel, format!("{exec}{content}").as_bytes());
            } else {
                return Err(format!(
                    "{} is neither a file, a directory nor a symlink",
                    path.display()
                ));
            }
        }
        Ok(())
    }
}

fn read_small(path: &Path) -> Result<String, String> {
    let mut text = String::new();
    File::open(path)
        .and_then(|f| f.take(MAX_GIT_FILE).read_to_string(&mut text))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text)
}

fn is_object_id(text: &str) -> bool {
    matches!(text.len(), 40 | 64) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The commit checked out in the flake's repository; `None` when the flake has no `.git`.
/// A repository whose revision cannot be read is an error, never silently unbound.
fn git_rev(flake: &Path) -> Result<Option<String>, String> {
    let dotgit = flake.join(".git");
    let meta = match fs::symlink_metadata(&dotgit) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", dotgit.display())),
    };
    let unreadable = |why: String| {
        format!(
            "the flake is a git repository but its revision cannot be read ({why}); refusing to bind it"
        )
    };
    // A worktree or submodule has a `.git` file naming a git directory elsewhere, whose index
    // and refs (what nix evaluates) the binding would not cover, and others might write.
    if !meta.is_dir() {
        return Err(format!(
            "the flake's {} is not a directory (a worktree or submodule keeps its git directory outside the flake, beyond the binding): deploy from a repository whose .git is inside the flake",
            dotgit.display()
        ));
    }
    let gitdir = dotgit;
    let common = match read_small(&gitdir.join("commondir")) {
        Ok(_) => {
            return Err(format!(
                "the flake's {} shares another repository's objects and refs (commondir): deploy from a repository of its own",
                gitdir.display()
            ));
        }
        Err(_) => gitdir.clone(),
    };
    let head = read_small(&gitdir.join("HEAD")).map_err(unreadable)?;
    let head = head.trim_end();
    if is_object_id(head) {
        return Ok(Some(head.to_string()));
    }
    let reference = head
        .strip_prefix("ref: ")
        .filter(|r| r.starts_with("refs/") && !r.split('/').any(|p| p == ".." || p.is_empty()))
        .ok_or_else(|| unreadable(format!("HEAD is `{head}`")))?;
    for dir in [&gitdir, &common] {
        if let Ok(text) = read_small(&dir.join(reference)) {
            let id = text.trim_end();
            if is_object_id(id) {
                return Ok(Some(id.to_string()));
            }
            return Err(unreadable(format!("{reference} holds `{id}`")));
        }
    }
    if let Ok(packed) = read_small(&common.join("packed-refs")) {
        for line in packed.lines() {
            if let Some((id, name)) = line.split_once(' ')
                && name == reference
                && is_object_id(id)
            {
                return Ok(Some(id.to_string()));
            }
        }
    }
    Err(unreadable(format!("{reference} has no commit yet")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flake() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("flake.nix"), "{ outputs = _: {}; }\n").unwrap();
        fs::write(dir.path().join("flake.lock"), "{\"version\": 7}\n").unwrap();
        fs::create_dir(dir.path().join("hosts")).unwrap();
        fs::write(dir.path().join("hosts/web.nix"), "{}\n").unwrap();
        dir
    }

    #[test]
    fn every_change_under_the_flake_changes_the_binding() {
        let dir = flake();
        let p = dir.path();
        let base = bind_tree(p).unwrap();
        assert_eq!(base, bind_tree(p).unwrap(), "stable");
        assert_eq!(base.git_rev, None);
        assert_eq!(base.files, 4);
        fs::write(p.join("hosts/web.nix"), "{ x = 1; }\n").unwrap();
        let edited = bind_tree(p).unwrap();
        assert_ne!(edited.tree, base.tree);
        assert_eq!(edited.flake_lock, base.flake_lock);
        fs::write(p.join("flake.lock"), "{\"version\": 8}\n").unwrap();
        let relocked = bind_tree(p).unwrap();
        assert_ne!(relocked.flake_lock, edited.flake_lock);
        fs::set_permissions(p.join("flake.nix"), fs::Permissions::from_mode(0o755)).unwrap();
        assert_ne!(
            bind_tree(p).unwrap().tree,
            relocked.tree,
            "the executable bit"
        );
        std::os::unix::fs::symlink("/etc/shadow", p.join("hosts/link")).unwrap();
        assert_ne!(bind_tree(p).unwrap().tree, relocked.tree, "a new symlink");
    }

    #[test]
    fn git_revisions_are_read_without_git() {
        let dir = flake();
        let p = dir.path();
        let rev = "0123456789abcdef0123456789abcdef01234567";
        fs::create_dir_all(p.join(".git/refs/heads")).unwrap();
        fs::write(p.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
        let unborn = bind_tree(p).unwrap_err();
        assert!(unborn.contains("no commit yet"), "{unborn}");
        fs::write(
            p.join(".git/packed-refs"),
            format!("# pack\n{rev} refs/heads/main\n"),
        )
        .unwrap();
        assert_eq!(bind_tree(p).unwrap().git_rev.as_deref(), Some(rev));
        let newer = "fedcba9876543210fedcba9876543210fedcba98";
        fs::write(p.join(".git/refs/heads/main"), format!("{newer}\n")).unwrap();
        let b = bind_tree(p).unwrap();
        assert_eq!(b.git_rev.as_deref(), Some(newer));
        fs::write(p.join(".git/objects-stand-in"), "not part of the tree").unwrap();
        assert_eq!(
            bind_tree(p).unwrap().tree,
            b.tree,
            ".git's own files are not"
        );
        // But the index is: `git add` of an untracked file changes what nix evaluates.
        fs::write(p.join(".git/index"), "DIRC one").unwrap();
        let indexed = bind_tree(p).unwrap().tree;
        assert_ne!(indexed, b.tree, "the index is part of the binding");
        fs::write(p.join(".git/index"), "DIRC two").unwrap();
        assert_ne!(bind_tree(p).unwrap().tree, indexed);
        fs::remove_file(p.join(".git/index")).unwrap();
        // A git directory elsewhere (a worktree's `.git` file) is beyond the binding.
        let real = tempfile::tempdir().unwrap();
        let wt = tempfile::tempdir().unwrap();
        fs::write(wt.path().join("flake.lock"), "{}").unwrap();
        fs::write(
            wt.path().join(".git"),
            format!("gitdir: {}\n", real.path().display()),
        )
        .unwrap();
        let refused = bind_tree(wt.path()).unwrap_err();
        assert!(refused.contains("outside the flake"), "{refused}");
        fs::write(p.join(".git/HEAD"), "ref: refs/../../etc/passwd\n").unwrap();
        assert!(bind_tree(p).is_err());
        fs::write(p.join(".git/HEAD"), format!("{rev}\n")).unwrap();
        assert_eq!(
            bind_tree(p).unwrap().git_rev.as_deref(),
            Some(rev),
            "detached"
        );
    }

    #[test]
    fn an_unlocked_flake_cannot_be_bound() {
        let dir = flake();
        fs::remove_file(dir.path().join("flake.lock")).unwrap();
        assert!(bind_tree(dir.path()).unwrap_err().contains("no flake.lock"));
        assert!(bind_tree(&dir.path().join("nope")).is_err());
    }

    #[test]
    fn a_flake_others_can_write_is_not_bound() {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipped: needs root (a flake root owns, to walk)");
            return;
        }
        let dir = crate::sys::walk::trusted_test_dir();
        let p = dir.path().join("flake");
        fs::create_dir(&p).unwrap();
        fs::write(p.join("flake.lock"), "{}\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        assert!(bind(&p).is_ok());
        fs::set_permissions(&p, fs::Permissions::from_mode(0o775)).unwrap();
        let e = bind(&p).unwrap_err();
        assert!(
            e.starts_with("the flake ") && e.contains("`chmod go-w "),
            "{e}"
        );
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(p.join("flake.lock"), fs::Permissions::from_mode(0o666)).unwrap();
        assert!(bind(&p).unwrap_err().contains("lock file"));
        fs::set_permissions(p.join("flake.lock"), fs::Permissions::from_mode(0o644)).unwrap();
        // Every entry inside too: a directory others can write, a file another user owns.
        fs::create_dir(p.join("hosts")).unwrap();
        fs::set_permissions(p.join("hosts"), fs::Permissions::from_mode(0o777)).unwrap();
        let e = bind(&p).unwrap_err();
        assert!(
            e.contains("hosts has mode 777") && e.contains("chmod go-w"),
            "{e}"
        );
        fs::set_permissions(p.join("hosts"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(p.join("hosts/web.nix"), "{ }\n").unwrap();
        nix::unistd::chown(
            &p.join("hosts/web.nix"),
            Some(nix::unistd::Uid::from_raw(65534)),
            None,
        )
        .unwrap();
        let e = bind(&p).unwrap_err();
        assert!(e.contains("web.nix is owned by uid 65534"), "{e}");
        fs::remove_file(p.join("hosts/web.nix")).unwrap();
        assert!(bind(&p).is_ok());
        // Under /tmp (1777): refused whatever the flake's own modes.
        let tmp = flake();
        assert!(bind(tmp.path()).unwrap_err().contains("sticky bit"));
    }
}
