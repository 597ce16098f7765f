#![allow(clippy::print_stdout)] // the build script speaks to cargo on stdout
//! The build's identity, for the compiled policy record (`policy::record`): a SHA-256 over
//! every source file, the manifest and the lock file. A record written by one build is read
//! only by a build from the same sources and dependencies, so a changed type layout can never
//! be read as another: a gateway built from other sources finds the record stale and loads the
//! rules file itself.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

fn files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let mut inputs = Vec::new();
    files(&root.join("src"), &mut inputs)?;
    inputs.sort();
    inputs.extend(["Cargo.toml", "Cargo.lock", "build.rs"].map(|f| root.join(f)));
    let mut hash = Sha256::new();
    for path in &inputs {
        let name = path.strip_prefix(&root).unwrap_or(path);
        hash.update(name.to_string_lossy().as_bytes());
        hash.update([0]);
        // A lock file may be absent (a library build); that is part of the identity too.
        let bytes = std::fs::read(path).unwrap_or_default();
        hash.update(bytes.len().to_le_bytes());
        hash.update(&bytes);
    }
    let id: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    println!("cargo:rustc-env=AGENT_GATE_BUILD={id}");
    println!("cargo:rerun-if-changed=src");
    for f in ["Cargo.toml", "Cargo.lock", "build.rs"] {
        println!("cargo:rerun-if-changed={f}");
    }
    Ok(())
}
