//! The path walk: a trusted path (the rules file, the approval store, the docker config
//! directory, the flake) is trusted only when nobody but root can change what it names. Like
//! sshd's StrictModes (`safe_path` in OpenSSH's misc.c) and sudo's secure path checks, every
//! component from `/` down must be owned by root and writable by nobody else: whoever may
//! write a directory on the way can rename a file of their choosing into place.
//!
//! - Group- or world-writable directories are refused even with the sticky bit (`/tmp`'s
//!   1777), as sshd refuses them: anyone can create a name in them before root does.
//! - A symlink is followed only where it sits in a directory that passed, and its target is
//!   walked the same way, from `/` for an absolute target, from the link's directory for a
//!   relative one; at most [`MAX_LINKS`] of them, as the kernel allows.
//! - `..` is resolved against the real directory reached so far (after every symlink on the
//!   way was resolved), which is what the kernel does: `/etc/link/..` is the parent of the
//!   link's target, not `/etc`. That directory has already passed.
//! - [`open_file`] opens the walked file by its resolved path with `O_NOFOLLOW` and compares
//!   the opened file's device and inode with the walk's, so a swap between walk and read
//!   changes nothing.
//!
//! Cheap enough for every forced-mode invocation: one `lstat` per component, one path buffer.

use std::ffi::OsString;
use std::fs::{self, File, Metadata, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use crate::deploy::request::shell_word;

/// Symlinks followed in one walk, as Linux's `MAXSYMLINKS`.
pub const MAX_LINKS: usize = 40;

/// What the walked path must name in the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    File,
    Dir,
}

impl Expect {
    fn word(self) -> &'static str {
        match self {
            Expect::File => "regular file",
            Expect::Dir => "directory",
        }
    }
}

/// Where a walk ended: the real path (no symlink, no `..` left) and the object it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walked {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
}

/// `{path}: ` before a component's problem, unless the component is the path itself.
fn on_the_way(path: &str, component: &str) -> String {
    if path == component {
        String::new()
    } else {
        format!("{path}: ")
    }
}

fn writable_fix(component: &str, mode: u32) -> String {
    let component = shell_word(component);
    if mode & 0o1000 != 0 {
        format!(
            " (the sticky bit does not make it safe: sshd's StrictModes refuses such a directory too, since anyone may create names in it); keep the file under a directory only root can write, or `chmod go-w {component}`"
        )
    } else {
        format!(": `chmod go-w {component}`")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error("{}{component} does not exist", on_the_way(path, component))]
    Missing { path: String, component: String },
    #[error("{}{component}: {source}", on_the_way(path, component))]
    Io {
        path: String,
        component: String,
        source: std::io::Error,
    },
    #[error(
        "{}{component} is owned by uid {uid}, not root, so that user could put anything in its place: `chown root {}`",
        on_the_way(path, component),
        shell_word(component)
    )]
    NotRootOwned {
        path: String,
        component: String,
        uid: u32,
    },
    #[error(
        "{}{component} has mode {mode:o}, which lets others than root write it{}",
        on_the_way(path, component),
        writable_fix(component, *mode)
    )]
    Writable {
        path: String,
        component: String,
        mode: u32,
    },
    #[error("{}{component} is not a directory", on_the_way(path, component))]
    NotDirectory { path: String, component: String },
    #[error("{}{component} is not a {}", on_the_way(path, component), expected.word())]
    WrongType {
        path: String,
        component: String,
        expected: Expect,
    },
    #[error("{path}: more than {MAX_LINKS} symlinks on the way (a loop?)")]
    TooManyLinks { path: String },
    #[error(
        "{path}: {component} was replaced between the check and the open; nothing was read from it (find out who changes it)"
    )]
    Swapped { path: String, component: String },
}

/// Walk `path` from `/`: every component root-owned and not group/world-writable, every
/// symlink resolved and its target walked too, the end a `expect`. The public check that
/// `doctor` and every loader of a trusted path call.
pub fn check(path: &Path, expect: Expect) -> Result<Walked, WalkError> {
    walk(path, expect).map(|(walked, _)| walked)
}

/// Walk `path` as [`check`] does, then open the file it names read-only, so that what is read
/// is exactly what was checked: opened by its resolved path with `O_NOFOLLOW` (and
/// `O_NONBLOCK`, so a FIFO cannot stall the open), then compared by device and inode, and its
/// owner and mode checked once more on the open file.
pub fn open_file(path: &Path) -> Result<(File, Metadata), WalkError> {
    let (walked, _) = walk(path, Expect::File)?;
    let shown = || path.display().to_string();
    let component = || walked.path.display().to_string();
    let io = |source| WalkError::Io {
        path: shown(),
        component: component(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(&walked.path)
        .map_err(|e| {
            if e.raw_os_error() == Some(nix::libc::ELOOP) {
                WalkError::Swapped {
                    path: shown(),
                    component: component(),
                }
            } else {
                io(e)
            }
        })?;
    let meta = file.metadata().map_err(io)?;
    if (meta.dev(), meta.ino()) != (walked.dev, walked.ino) {
        return Err(WalkError::Swapped {
            path: shown(),
            component: component(),
        });
    }
    trusted(path, &walked.path, &meta)?;
    if !meta.is_file() {
        return Err(WalkError::WrongType {
            path: shown(),
            component: component(),
            expected: Expect::File,
        });
    }
    Ok((file, meta))
}

/// Root-owned and writable by root alone; the error (and its strings) only when it is not,
/// so a passing walk allocates nothing per component.
fn trusted(path: &Path, component: &Path, meta: &Metadata) -> Result<(), WalkError> {
    if meta.uid() != 0 {
        return Err(WalkError::NotRootOwned {
            path: path.display().to_string(),
            component: component.display().to_string(),
            uid: meta.uid(),
        });
    }
    if meta.mode() & 0o022 != 0 {
        return Err(WalkError::Writable {
            path: path.display().to_string(),
            component: component.display().to_string(),
            mode: meta.mode() & 0o7777,
        });
    }
    Ok(())
}

/// Push `path`'s components onto `todo`, last first (so the first is popped first). `/` and
/// `.` are dropped: an absolute target restarts at `/` before this.
fn push_components(todo: &mut Vec<OsString>, path: &Path) {
    for component in path.components().rev() {
        match component {
            Component::Normal(name) => todo.push(name.to_os_string()),
            Component::ParentDir => todo.push(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
}

fn walk(path: &Path, expect: Expect) -> Result<(Walked, Metadata), WalkError> {
    // A relative path is walked from `/` too: the working directory's components are checked
    // like any other (sshd starts the gateway in the agent's home, which fails the walk).
    let absolute;
    let path = if path.is_absolute() {
        path
    } else {
        absolute = std::path::absolute(path).map_err(|source| WalkError::Io {
            path: path.display().to_string(),
            component: ".".to_string(),
            source,
        })?;
        absolute.as_path()
    };
    let shown = || path.display().to_string();
    let lstat = |real: &Path| {
        fs::symlink_metadata(real).map_err(|source| {
            let component = real.display().to_string();
            if source.kind() == std::io::ErrorKind::NotFound {
                WalkError::Missing {
                    path: shown(),
                    component,
                }
            } else {
                WalkError::Io {
                    path: shown(),
                    component,
                    source,
                }
            }
        })
    };
    // The real path reached so far: no symlink in it, each component checked.
    let mut real = PathBuf::with_capacity(path.as_os_str().len() + 32);
    real.push("/");
    let mut meta = lstat(&real)?;
    trusted(path, &real, &meta)?;
    let mut todo = Vec::with_capacity(8);
    push_components(&mut todo, path);
    let mut links = 0;
    while let Some(name) = todo.pop() {
        if name == ".." {
            // `real` holds no symlink, so its parent is the real parent, already checked.
            if real.pop() {
                meta = lstat(&real)?;
            }
            continue;
        }
        real.push(&name);
        let here = lstat(&real)?;
        if here.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return Err(WalkError::TooManyLinks { path: shown() });
            }
            // The link sits in `real`'s parent, which passed: only root could have made it.
            let target = fs::read_link(&real).map_err(|source| WalkError::Io {
                path: shown(),
                component: real.display().to_string(),
                source,
            })?;
            real.pop();
            if target.is_absolute() {
                real.clear();
                real.push("/");
                meta = lstat(&real)?;
            }
            push_components(&mut todo, &target);
            continue;
        }
        trusted(path, &real, &here)?;
        if !todo.is_empty() && !here.is_dir() {
            return Err(WalkError::NotDirectory {
                path: shown(),
                component: real.display().to_string(),
            });
        }
        meta = here;
    }
    let fits = match expect {
        Expect::File => meta.is_file(),
        Expect::Dir => meta.is_dir(),
    };
    if !fits {
        return Err(WalkError::WrongType {
            path: shown(),
            component: real.display().to_string(),
            expected: expect,
        });
    }
    let walked = Walked {
        path: real,
        dev: meta.dev(),
        ino: meta.ino(),
    };
    Ok((walked, meta))
}

/// A temporary directory the walk trusts, for tests run as root: under `/run` (root 0755),
/// not under the checkout, which may itself sit in /tmp (1777) as a CI clone can.
#[cfg(test)]
pub(crate) fn trusted_test_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let base = Path::new(TRUSTED_TEST_BASE);
    let _ = fs::create_dir(base);
    let _ = fs::set_permissions(base, fs::Permissions::from_mode(0o755));
    let dir = tempfile::tempdir_in(base).unwrap_or_else(|e| panic!("{}: {e}", base.display()));
    let _ = fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755));
    dir
}

/// Where the tests' trusted directories go (tests/support/world.rs uses the same).
#[cfg(test)]
const TRUSTED_TEST_BASE: &str = "/run/agent-gate-tests";

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    /// A root-owned 0755 tree to walk, under the target directory (root 0755 all the way when
    /// the suite runs as root; /tmp is 1777 and would refuse everything). `None` when not
    /// root: the walk refuses files root does not own, so it cannot be tried.
    fn tree() -> Option<tempfile::TempDir> {
        if !nix::unistd::Uid::effective().is_root() {
            let required = std::env::var("AGENT_GATE_ROOT").is_ok_and(|v| v == "required");
            assert!(
                !required,
                "the path walk tests need root, and AGENT_GATE_ROOT=required"
            );
            eprintln!("skipped: the path walk needs root to own its test tree");
            return None;
        }
        let dir = trusted_test_dir();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir(dir.path().join("etc")).unwrap();
        fs::write(dir.path().join("etc/rules.yaml"), "version: 1\n").unwrap();
        fs::set_permissions(
            dir.path().join("etc/rules.yaml"),
            fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        Some(dir)
    }

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_root_tree_passes_and_resolves_to_its_real_path() {
        let Some(dir) = tree() else { return };
        let file = dir.path().join("etc/rules.yaml");
        let walked = check(&file, Expect::File).unwrap();
        assert_eq!(walked.path, file);
        assert_eq!(
            check(&dir.path().join("etc"), Expect::Dir).unwrap().path,
            dir.path().join("etc")
        );
        let (_, meta) = open_file(&file).unwrap();
        assert_eq!(meta.ino(), walked.ino);
        assert!(check(Path::new("/"), Expect::Dir).is_ok());
    }

    #[test]
    fn every_component_is_checked_and_the_message_names_it_and_the_fix() {
        let Some(dir) = tree() else { return };
        let etc = dir.path().join("etc");
        let file = etc.join("rules.yaml");
        for (mode, fix) in [
            (0o775, "`chmod go-w "),
            (0o757, "`chmod go-w "),
            (0o1777, "sticky bit does not make it safe"),
        ] {
            chmod(&etc, mode);
            let e = check(&file, Expect::File).unwrap_err().to_string();
            assert!(
                e.contains(&format!(
                    "{}: {} has mode {mode:o}",
                    file.display(),
                    etc.display()
                )),
                "{e}"
            );
            assert!(
                e.contains(fix) && e.contains("lets others than root write it"),
                "{e}"
            );
        }
        chmod(&etc, 0o755);
        nix::unistd::chown(&etc, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        let e = check(&file, Expect::File).unwrap_err().to_string();
        assert!(
            e.contains("owned by uid 65534, not root")
                && e.contains(&format!("`chown root {}`", etc.display())),
            "{e}"
        );
        nix::unistd::chown(&etc, Some(nix::unistd::Uid::from_raw(0)), None).unwrap();
        chmod(&file, 0o664);
        let e = check(&file, Expect::File).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{} has mode 664", file.display())),
            "{e}"
        );
        chmod(&file, 0o644);
        assert!(matches!(
            check(&file, Expect::Dir),
            Err(WalkError::WrongType { .. })
        ));
        assert!(matches!(
            check(&etc, Expect::File),
            Err(WalkError::WrongType { .. })
        ));
        assert!(matches!(
            check(&etc.join("rules.yaml/x"), Expect::File),
            Err(WalkError::NotDirectory { .. })
        ));
        assert!(matches!(
            check(&etc.join("nope"), Expect::File),
            Err(WalkError::Missing { .. })
        ));
        // Relative: from the working directory, whose components are walked too.
        let relative = check(Path::new("no-such-dir/rules.yaml"), Expect::File).unwrap_err();
        let cwd = std::env::current_dir().unwrap();
        assert!(
            relative
                .to_string()
                .starts_with(&format!("{}/no-such-dir/rules.yaml: ", cwd.display())),
            "{relative}"
        );
    }

    #[test]
    fn symlinks_are_followed_only_into_trusted_places() {
        let Some(dir) = tree() else { return };
        let p = dir.path();
        let file = p.join("etc/rules.yaml");
        // Relative and absolute targets, resolved from the link's directory or from `/`.
        symlink("etc/rules.yaml", p.join("rel")).unwrap();
        symlink(&file, p.join("abs")).unwrap();
        symlink("../etc/./rules.yaml", p.join("etc/up")).unwrap();
        for link in ["rel", "abs", "etc/up"] {
            assert_eq!(
                check(&p.join(link), Expect::File).unwrap().path,
                file,
                "{link}"
            );
        }
        // A link to a directory, then `..`: the parent of the target, as the kernel resolves.
        fs::create_dir_all(p.join("deep/inner")).unwrap();
        symlink(p.join("deep/inner"), p.join("etc/in")).unwrap();
        assert_eq!(
            check(&p.join("etc/in/.."), Expect::Dir).unwrap().path,
            p.join("deep")
        );
        // The target in a world-writable directory: refused, naming that directory.
        let open = p.join("open");
        fs::create_dir(&open).unwrap();
        chmod(&open, 0o777);
        fs::write(open.join("rules.yaml"), "x").unwrap();
        symlink(open.join("rules.yaml"), p.join("etc/bad")).unwrap();
        let e = check(&p.join("etc/bad"), Expect::File)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("{} has mode 777", open.display())),
            "{e}"
        );
        // A good link inside a world-writable directory: the link itself could be swapped.
        symlink(&file, open.join("link")).unwrap();
        assert!(matches!(
            check(&open.join("link"), Expect::File),
            Err(WalkError::Writable { .. })
        ));
        // Loops end.
        symlink("loop", p.join("loop")).unwrap();
        assert!(matches!(
            check(&p.join("loop"), Expect::File),
            Err(WalkError::TooManyLinks { .. })
        ));
        // open_file on a link reads the target and says nothing of the link.
        let (_, meta) = open_file(&p.join("rel")).unwrap();
        assert!(meta.is_file());
    }
}
