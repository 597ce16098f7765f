//! The Nix files, checked with Debian's nix-bin where nixpkgs is not available: every `.nix`
//! file parses (`nix-instantiate --parse`), and the module's pure functions (nix/lib.nix)
//! produce exactly the lines `agent-gate render` prints for the same input. The example
//! policy (nix/examples/rules.nix) is the shipped rules.yaml, and the JSON the module writes
//! from it passes `agent-gate check`.
//!
//! The `module_evaluates` tests evaluate nix/module.nix with nixpkgs' own module system
//! (`lib.evalModules` of ../shared/nixpkgs-lib) through nix/tests/eval.nix: beside it the NixOS
//! options it sets, mirrored from nixpkgs with NixOS's types and merging
//! (nix/tests/nixos-options.nix), and a stand-in `pkgs` that builds nothing
//! (nix/tests/pkgs.nix). They compare the evaluated /etc files, account, sshd_config and
//! sudoers with what `agent-gate` renders and accepts, run the module's build-time check
//! script with the host's tools, and check the assertions that refuse a bad configuration.
//! Building the package, the real nixpkgs modules and the NixOS VM test (nix/tests/gateway.nix)
//! need nixpkgs and KVM and do not run here (README: "What runs here and what does not").
//!
//! Without nix-instantiate (or ../shared/nixpkgs-lib, or visudo for the build check) these
//! tests report themselves skipped; `.ci/run` installs nix-bin and sudo and sets
//! AGENT_GATE_NIX=required, under which anything missing fails them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stderr
)]

#[path = "support/corpus.rs"]
mod corpus;

use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn nix_instantiate() -> Option<&'static str> {
    let found = [
        "/usr/bin/nix-instantiate",
        "/run/current-system/sw/bin/nix-instantiate",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists());
    if found.is_none() {
        let required = std::env::var("AGENT_GATE_NIX").is_ok_and(|v| v == "required");
        assert!(
            !required,
            "nix-instantiate is missing (apt-get install nix-bin)"
        );
        // Straight to the stderr handle: libtest captures eprintln! of a passing test.
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "skipped: nix-instantiate is missing (set AGENT_GATE_NIX=required to fail)"
        );
    }
    found
}

/// Run nix-instantiate, one at a time: concurrent ones on a freshly installed Nix can fail
/// with "SQLite database '/nix/var/nix/db/db.sqlite' is busy".
fn run_nix(command: &mut Command) -> std::process::Output {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    command.output().unwrap()
}

/// Evaluate an expression strictly, as JSON.
fn eval(nix: &str, expr: &str) -> serde_json::Value {
    let out = run_nix(
        Command::new(nix)
            .args(["--eval", "--strict", "--json", "--expr", expr])
            .current_dir(ROOT),
    );
    assert!(
        out.status.success(),
        "{expr}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn gate(args: &[&str]) -> String {
    let out = Command::new(assert_cmd::cargo::cargo_bin("agent-gate"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// What render prints, without its comment lines.
fn lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// Every corpus command, as `explain --batch` reads them.
fn corpus_batch() -> String {
    let mut batch = String::new();
    for file in [
        "attack.tsv",
        "legit.tsv",
        "attack-classes.tsv",
        "attack-classes-programs.tsv",
        "legit-classes.tsv",
    ] {
        for row in corpus::rows(file) {
            batch.push_str(&serde_json::to_string(&row.command).unwrap());
            batch.push('\n');
        }
    }
    batch
}

/// hermes's decision on every corpus command under these rules, one JSON line each.
fn explain_corpus(rules: &str, extra: &[&str]) -> String {
    let out = assert_cmd::Command::cargo_bin("agent-gate")
        .unwrap()
        .args([
            "explain", "--rules", rules, "--key", "hermes", "--json", "--batch",
        ])
        .args(extra)
        .write_stdin(corpus_batch())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn nix_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" {
                nix_files(&path, out);
            }
        } else if name.ends_with(".nix") {
            out.push(path);
        }
    }
}

#[test]
fn every_nix_file_parses() {
    let Some(nix) = nix_instantiate() else {
        return;
    };
    let mut files = Vec::new();
    nix_files(Path::new(ROOT), &mut files);
    let names: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(ROOT).unwrap().display().to_string())
        .collect();
    for expected in [
        "flake.nix",
        "nix/package.nix",
        "nix/module.nix",
        "nix/lib.nix",
        "nix/tests/gateway.nix",
        "nix/tests/eval.nix",
        "nix/tests/nixos-options.nix",
        "nix/tests/pkgs.nix",
        "nix/examples/host.nix",
        "nix/examples/users/ai-worker.nix",
        "nix/examples/rules.nix",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    for file in &files {
        let out = run_nix(Command::new(nix).arg("--parse").arg(file));
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Keys with every case the line maker must agree on: a plain comment, none, a comment that
/// is not plain words, networks with and without a prefix, and a label without a key.
const KEYS: &str = r#"{
  "hermes": { "publicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBnhR3kRTRLTegHjS85xsaF59JzZ6iIFhCZphnjIGICs hermes@container", "from": ["172.20.0.0/16", "10.1.2.3", "2001:db8::/32"] },
  "carol": { "publicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILvtejmUGKHE2n6HmmoN+jGRtIVi4F38xHifoz1jxxeh", "from": [] },
  "eve": { "publicKey": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE6yYQ1xUBuWFnqW0fiomGZ8zlkjnaO9W3FJIbbPRXnJ two  words caf\u00e9", "from": ["192.0.2.7"] },
  "nokey": { "publicKey": null, "from": [] }
}"#;

fn fixture_rules(dir: &Path) -> PathBuf {
    let keys: serde_json::Value = serde_json::from_str(KEYS).unwrap();
    let mut rules = String::from("version: 1\nkeys:\n");
    for (label, key) in keys.as_object().unwrap() {
        rules.push_str(&format!("  {label}:\n    may: [docker]\n"));
        if let Some(pk) = key["publicKey"].as_str() {
            rules.push_str(&format!(
                "    public_key: {}\n",
                serde_json::to_string(pk).unwrap()
            ));
        }
        let from = key["from"].as_array().unwrap();
        if !from.is_empty() {
            rules.push_str(&format!(
                "    from: {}\n",
                serde_json::to_string(from).unwrap()
            ));
        }
    }
    rules.push_str(
        "docker:\n  program: /run/current-system/sw/bin/docker\n  config: /etc/agent-gate/docker-config\n  subcommands:\n    ps: [all]\n",
    );
    let path = dir.join("rules.yaml");
    std::fs::write(&path, rules).unwrap();
    path
}

const GATE: &str = "/nix/store/00000000000000000000000000000000-agent-gate-0.1.0/bin/agent-gate";
const RULES: &str = "/etc/agent-gate/rules.yaml";

#[test]
fn the_modules_authorized_keys_are_what_render_prints() {
    let Some(nix) = nix_instantiate() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rules = fixture_rules(dir.path());
    let rendered = gate(&[
        "render",
        "authorized-keys",
        "--rules",
        rules.to_str().unwrap(),
        "--gate",
        GATE,
        "--installed-rules",
        RULES,
    ]);
    let expr = format!(
        "(import ./nix/lib.nix).authorizedKeys {{ gate = \"{GATE}\"; rules = \"{RULES}\"; keys = builtins.fromJSON ''{KEYS}''; }}"
    );
    let from_nix: Vec<String> = serde_json::from_value(eval(nix, &expr)).unwrap();
    assert_eq!(from_nix, lines(&rendered));
    assert_eq!(from_nix.len(), 3, "one line per key, none for `nokey`");
    let eve = from_nix.iter().find(|l| l.contains("--key eve")).unwrap();
    assert!(
        eve.ends_with("nJ agent-gate:eve"),
        "a comment that is not plain words: {eve}"
    );
}

#[test]
fn the_modules_sshd_block_is_what_render_prints() {
    let Some(nix) = nix_instantiate() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rules = fixture_rules(dir.path());
    // --force-command needs every label pinned: `nokey` is left out for it.
    let text = std::fs::read_to_string(&rules).unwrap();
    let pinned = dir.path().join("pinned.yaml");
    std::fs::write(&pinned, text.replace("  nokey:\n    may: [docker]\n", "")).unwrap();
    for force in [false, true] {
        let file = if force { &pinned } else { &rules };
        let mut args = vec![
            "render",
            "sshd",
            "--rules",
            file.to_str().unwrap(),
            "--gate",
            GATE,
            "--installed-rules",
            RULES,
            "--user",
            "ai-worker",
        ];
        if force {
            args.push("--force-command");
        }
        let rendered = gate(&args);
        let expr = format!(
            "(import ./nix/lib.nix).sshdMatchBlock {{ user = \"ai-worker\"; gate = \"{GATE}\"; rules = \"{RULES}\"; forceCommand = {force}; }}"
        );
        let from_nix = eval(nix, &expr);
        let from_nix: Vec<String> = from_nix
            .as_str()
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        assert_eq!(from_nix, lines(&rendered), "force-command: {force}");
    }
}

#[test]
fn the_example_policy_is_the_shipped_rules_and_passes_check() {
    let Some(nix) = nix_instantiate() else {
        return;
    };
    // The module writes settings as JSON (YAML 1.2) and the gateway reads it as it is.
    let from_nix = eval(nix, "import ./nix/examples/rules.nix");
    let dir = tempfile::tempdir().unwrap();
    let written = dir.path().join("rules.yaml");
    std::fs::write(&written, from_nix.to_string()).unwrap();
    let written = written.to_str().unwrap();
    let out = gate(&["check", "--rules", written]);
    assert!(out.contains(": ok ("), "{out}");
    // Same policy: every corpus command is decided alike, and hermes is told the same.
    let shipped = Path::new(ROOT).join("rules.yaml");
    let shipped = shipped.to_str().unwrap();
    let (a, b) = (explain_corpus(shipped, &[]), explain_corpus(written, &[]));
    assert!(a.lines().count() > 400, "{}", a.lines().count());
    assert_eq!(
        a, b,
        "nix/examples/rules.nix decides differently from rules.yaml"
    );
    let list = |rules: &str| gate(&["list", "--rules", rules, "--key", "hermes"]);
    assert_eq!(list(shipped), list(written));
    // A key that names no rules gets every rule in the settings: here, what hermes has.
    let ids = eval(
        nix,
        "(import ./nix/lib.nix).ruleIds (import ./nix/examples/rules.nix)",
    );
    let mut ids: Vec<String> = serde_json::from_value(ids).unwrap();
    let mut may: Vec<String> =
        serde_json::from_value(from_nix["keys"]["hermes"]["may"].clone()).unwrap();
    ids.sort();
    may.sort();
    assert_eq!(ids, may);
}

// The module, evaluated by nixpkgs' module system (nix/tests/eval.nix): the mirrored NixOS
// options, a stand-in `pkgs`, and the host's modules given here as Nix text.

/// nixpkgs' lib beside the repository (`../shared/nixpkgs-lib`, or the copy
/// AGENT_GATE_NIXPKGS_LIB names, as `.ci/run` sets it for a clone made elsewhere), whose
/// module system evaluates the module. Missing: the evaluation tests skip, or fail under
/// AGENT_GATE_NIX=required.
fn nixpkgs_lib() -> Option<PathBuf> {
    let base = std::env::var_os("AGENT_GATE_NIXPKGS_LIB").map_or_else(
        || Path::new(ROOT).join("../shared/nixpkgs-lib"),
        PathBuf::from,
    );
    let lib = base.join("lib");
    if lib.join("default.nix").exists() {
        return Some(lib);
    }
    let required = std::env::var("AGENT_GATE_NIX").is_ok_and(|v| v == "required");
    assert!(!required, "{} is missing", lib.display());
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "skipped: {} is missing (set AGENT_GATE_NIX=required to fail)",
        lib.display()
    );
    None
}

struct Evaluator {
    nix: &'static str,
    lib: PathBuf,
}

impl Evaluator {
    fn new() -> Option<Self> {
        let nix = nix_instantiate()?;
        Some(Self {
            nix,
            lib: nixpkgs_lib()?,
        })
    }

    /// Evaluate the module with `modules` (a Nix list, paths relative to the repository),
    /// the stand-in derivations under `store` (default /nix/store): the summary eval.nix
    /// returns, or the evaluation's error.
    fn try_eval(&self, modules: &str, store: Option<&Path>) -> Result<serde_json::Value, String> {
        let mut command = Command::new(self.nix);
        command
            .args(["--eval", "--strict", "--json", "nix/tests/eval.nix"])
            .arg("--arg")
            .arg("lib")
            .arg(format!("import {}", self.lib.display()))
            .args(["--arg", "modules", modules])
            .current_dir(ROOT);
        if let Some(store) = store {
            command.arg("--argstr").arg("storeDir").arg(store);
        }
        let out = run_nix(&mut command);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            Ok(serde_json::from_slice(&out.stdout).unwrap())
        } else {
            Err(stderr)
        }
    }

    fn eval(&self, modules: &str) -> serde_json::Value {
        self.try_eval(modules, None)
            .unwrap_or_else(|e| panic!("{modules}\n{e}"))
    }

    fn fails(&self, modules: &str) -> String {
        match self.try_eval(modules, None) {
            Ok(_) => panic!("evaluated, but should not have: {modules}"),
            Err(e) => e,
        }
    }
}

const HERMES_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBnhR3kRTRLTegHjS85xsaF59JzZ6iIFhCZphnjIGICs hermes@container";
const INSTALLED: &str = "/etc/agent-gate/rules.yaml";

/// A small host of its own for the edge cases: sshd, docker, one key, a docker-only policy;
/// `extra` is a module (Nix text) merged in.
fn small_host(extra: &str) -> String {
    format!(
        r#"[ ({{ lib, ... }}: {{
  services.openssh.enable = true;
  virtualisation.docker.enable = true;
  system.stateVersion = "25.05";
  services.agent-gate = {{
    enable = true;
    keys.hermes.publicKey = "{HERMES_KEY}";
    settings = {{
      version = 1;
      docker = {{
        program = "/run/current-system/sw/bin/docker";
        config = "/etc/agent-gate/docker-config";
        subcommands.ps = [ "all" "quiet" ];
      }};
    }};
  }};
}}) ({extra}) ]"#
    )
}

fn str_of<'a>(v: &'a serde_json::Value, path: &[&str]) -> &'a str {
    let mut v = v;
    for p in path {
        v = &v[p];
    }
    v.as_str()
        .unwrap_or_else(|| panic!("{path:?} is not a string: {v}"))
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{v}: {e}"))
}

/// The gateway the module installs, as command= and sudoers name it.
fn gate_of(summary: &serde_json::Value) -> String {
    format!("{}/bin/agent-gate", str_of(summary, &["package", "path"]))
}

/// The rules file the module writes, saved where the gateway can read it.
fn write_rules(summary: &serde_json::Value, dir: &Path) -> PathBuf {
    let text = str_of(summary, &["etc", "agent-gate/rules.yaml", "text"]);
    let path = dir.join("rules.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// What `agent-gate render PIECE` prints for the module's rules and paths.
fn render_for(summary: &serde_json::Value, rules: &Path, piece: &str, extra: &[&str]) -> String {
    let gate_path = gate_of(summary);
    let mut args = vec![
        "render",
        piece,
        "--rules",
        rules.to_str().unwrap(),
        "--gate",
        &gate_path,
        "--installed-rules",
        INSTALLED,
        "--user",
        str_of(summary, &["user", "name"]),
    ];
    args.extend_from_slice(extra);
    gate(&args)
}

/// The host's tool that stands in for a stand-in package's `bins` entry.
fn host_tool(bin: &str) -> Option<PathBuf> {
    if bin == "agent-gate" {
        return Some(assert_cmd::cargo::cargo_bin("agent-gate"));
    }
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.exists())
}

/// Write a stand-in derivation out where it pretends to be: a text file, a script in bin/, or
/// a package whose bin/ links the host's tools. False if a tool is missing here.
fn materialize(drv: &serde_json::Value) -> bool {
    let path = Path::new(str_of(drv, &["path"]));
    match str_of(drv, &["standIn"]) {
        "text" => {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, str_of(drv, &["text"])).unwrap();
        }
        "package" => {
            let bin = path.join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            for name in strings(&drv["bins"]) {
                let Some(tool) = host_tool(&name) else {
                    return false;
                };
                let link = bin.join(&name);
                if !link.exists() {
                    std::os::unix::fs::symlink(tool, link).unwrap();
                }
            }
        }
        other => panic!("not written out: {other}"),
    }
    true
}

/// Run a stand-in runCommand as Nix would (`set -eu -o pipefail`, `$out`, its attributes as
/// the environment, passAsFile as files, nativeBuildInputs on PATH), with the host's tools in
/// place of the packages. None if a tool it needs is missing here.
fn run_build(drv: &serde_json::Value, build_dir: &Path) -> Option<std::process::Output> {
    assert_eq!(str_of(drv, &["standIn"]), "runCommand");
    let mut path = Vec::new();
    for input in drv["nativeBuildInputs"].as_array().unwrap() {
        if !materialize(input) {
            return None;
        }
        path.push(format!("{}/bin", str_of(input, &["path"])));
    }
    path.push("/usr/bin:/bin".into());
    std::fs::create_dir_all(build_dir).unwrap();
    let mut command = Command::new("bash");
    command
        .args([
            "-eu",
            "-o",
            "pipefail",
            "-c",
            str_of(drv, &["buildCommand"]),
        ])
        .current_dir(build_dir)
        .env_clear()
        .env("PATH", path.join(":"))
        .env("HOME", "/homeless-shelter")
        .env("out", str_of(drv, &["path"]));
    let as_file = strings(&drv["passAsFile"]);
    for (name, value) in drv["env"].as_object().unwrap() {
        let value = value.as_str().unwrap();
        if as_file.contains(name) {
            let file = build_dir.join(format!(".attr-{name}"));
            std::fs::write(&file, value).unwrap();
            command.env(format!("{name}Path"), file);
        } else {
            command.env(name, value);
        }
    }
    Some(command.output().unwrap())
}

fn visudo_present() -> bool {
    if host_tool("visudo").is_some() {
        return true;
    }
    let required = std::env::var("AGENT_GATE_NIX").is_ok_and(|v| v == "required");
    assert!(!required, "visudo is missing (apt-get install sudo)");
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "skipped: visudo is missing, the module's build check is not run"
    );
    false
}

#[test]
fn the_module_evaluates_for_the_example_host() {
    let Some(ev) = Evaluator::new() else {
        return;
    };
    let host = ev.eval("[ ./nix/examples/host.nix ]");
    let dir = tempfile::tempdir().unwrap();
    let etc = &host["etc"];

    // The rules: the shipped policy (nix/examples/rules.nix) with hermes's key merged in,
    // root-owned copy 0444; the gateway accepts it and decides as with the shipped rules.yaml.
    let rules_etc = &etc["agent-gate/rules.yaml"];
    assert_eq!(str_of(rules_etc, &["mode"]), "0444");
    assert_eq!(str_of(rules_etc, &["user"]), "+0");
    assert_eq!(str_of(rules_etc, &["group"]), "+0");
    let written: serde_json::Value = serde_json::from_str(str_of(rules_etc, &["text"])).unwrap();
    let mut expected = eval(ev.nix, "import ./nix/examples/rules.nix");
    expected["keys"]["hermes"]["public_key"] = HERMES_KEY.into();
    expected["keys"]["hermes"]["from"] = serde_json::json!(["172.20.0.0/16"]);
    assert_eq!(written, expected);
    let rules = write_rules(&host, dir.path());
    let rules_str = rules.to_str().unwrap();
    assert!(gate(&["check", "--rules", rules_str]).contains(": ok ("));
    let shipped = Path::new(ROOT).join("rules.yaml");
    let client = ["--client", "172.20.3.4"];
    assert_eq!(
        explain_corpus(rules_str, &client),
        explain_corpus(shipped.to_str().unwrap(), &client),
        "the module's rules decide differently from rules.yaml"
    );

    // The account: locked password, a normal user in the docker group (which exists and
    // lists it), agent-gate as its login shell, listed in /etc/shells.
    let user = &host["user"];
    assert_eq!(str_of(user, &["name"]), "ai-worker");
    assert_eq!(str_of(user, &["hashedPassword"]), "!");
    assert_eq!(user["isNormalUser"], true);
    assert_eq!(str_of(user, &["group"]), "users");
    assert_eq!(str_of(user, &["home"]), "/home/ai-worker");
    assert_eq!(strings(&user["extraGroups"]), ["docker"]);
    assert_eq!(strings(&host["groups"]["docker"]), ["ai-worker"]);
    let shell = str_of(user, &["shell"]);
    assert!(
        shell.starts_with("/nix/store/")
            && shell.ends_with("-agent-gate-shell/bin/agent-gate-shell"),
        "{shell}"
    );
    assert_eq!(strings(&host["shells"]), [shell]);
    let shells = str_of(etc, &["shells", "text"]);
    assert!(shells.lines().any(|l| l == shell), "{shells}");

    // authorized_keys: what the gateway renders for these rules, in the file sshd reads.
    let keys = strings(&user["authorizedKeys"]);
    assert_eq!(
        keys,
        lines(&render_for(&host, &rules, "authorized-keys", &[]))
    );
    assert_eq!(keys.len(), 1);
    assert!(
        keys[0].starts_with("restrict,from=\"172.20.0.0/16\",command=\"/nix/store/"),
        "{}",
        keys[0]
    );
    let file = &etc["ssh/authorized_keys.d/ai-worker"];
    assert_eq!(str_of(file, &["mode"]), "0444");
    let in_file: Vec<&str> = str_of(file, &["text"])
        .lines()
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(in_file, keys);

    // sshd_config: the host's settings first, then the gateway's Match block, last (every
    // line after a Match belongs to it).
    let sshd = str_of(etc, &["ssh/sshd_config", "text"]);
    for line in [
        "PasswordAuthentication no",
        "PermitRootLogin no",
        "UsePAM yes",
    ] {
        assert!(sshd.lines().any(|l| l == line), "{line} in\n{sshd}");
    }
    let block = lines(&render_for(&host, &rules, "sshd", &[]));
    let sshd_lines: Vec<&str> = sshd.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        sshd_lines.ends_with(&block.iter().map(String::as_str).collect::<Vec<_>>()),
        "the Match block is not last:\n{sshd}"
    );
    assert_eq!(sshd.matches("Match ").count(), 1, "{sshd}");
    // NixOS writes extraConfig through an unquoted here-document: `$` and backquotes would be
    // the shell's.
    assert!(!sshd.contains('$') && !sshd.contains('`'), "{sshd}");

    // sudoers: NixOS's file includes the rendered lines last; they are the build check's
    // output, installed 0440.
    let sudoers = host["sudoers"].as_str().unwrap();
    assert_eq!(
        sudoers.lines().rfind(|l| !l.is_empty()),
        Some("@includedir /etc/agent-gate/sudoers.d"),
        "{sudoers}"
    );
    assert_eq!(str_of(etc, &["sudoers", "mode"]), "0440");
    let checks = host["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 1);
    let check = &checks[0];
    assert_eq!(str_of(check, &["name"]), "agent-gate-checked");
    let dropin = &etc["agent-gate/sudoers.d/agent-gate"];
    assert_eq!(str_of(dropin, &["mode"]), "0440");
    assert_eq!(
        str_of(dropin, &["source"]),
        format!("{}/sudoers", str_of(check, &["path"]))
    );

    // The approval store and the docker config directory, root's; the package installed.
    let tmpfiles = strings(&host["tmpfiles"]);
    for rule in [
        "d /var/lib/agent-gate/approvals 0700 root root -",
        "d /etc/agent-gate/docker-config 0755 root root -",
    ] {
        assert!(tmpfiles.iter().any(|r| r == rule), "{rule} in {tmpfiles:?}");
    }
    assert!(
        str_of(etc, &["tmpfiles.d/00-nixos.conf", "text"])
            .contains("d /var/lib/agent-gate/approvals 0700 root root -")
    );
    let packages = strings(&host["systemPackages"]);
    let package = str_of(&host, &["package", "name"]);
    assert!(packages.iter().any(|p| p == package), "{packages:?}");
    assert!(
        packages.iter().any(|p| p.starts_with("nh-")),
        "{packages:?}"
    );
    assert_eq!(host["warnings"], serde_json::json!([]));
}

#[test]
fn the_module_evaluates_to_a_build_check_that_passes_and_renders_the_sudoers() {
    let Some(ev) = Evaluator::new() else {
        return;
    };
    if !visudo_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let host = ev
        .try_eval("[ ./nix/examples/host.nix ]", Some(&store))
        .unwrap();
    let rules = &host["etc"]["agent-gate/rules.yaml"]["sourceDrv"];
    assert!(materialize(rules));
    let check = &host["checks"][0];
    let out = run_build(check, &dir.path().join("build")).unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The file environment.etc installs is what the gateway renders for these rules.
    let dropin = str_of(&host, &["etc", "agent-gate/sudoers.d/agent-gate", "source"]);
    let built = std::fs::read_to_string(dropin).unwrap();
    let rules_file = Path::new(str_of(rules, &["path"]));
    assert_eq!(built, render_for(&host, rules_file, "sudoers", &[]));
    // The compiled record /etc holds beside the rules is this build's record of them.
    let record_etc = &host["etc"]["agent-gate/rules.yaml.compiled"];
    assert_eq!(str_of(record_etc, &["mode"]), "0444");
    let record = std::fs::read(str_of(record_etc, &["source"])).unwrap();
    let text = std::fs::read_to_string(rules_file).unwrap();
    let policy = agent_gate::rules::parse(&text).unwrap();
    let from_record = agent_gate::policy::record::decode(&record, &policy.digest).unwrap();
    assert_eq!(from_record.rule_ids(), policy.rule_ids());
    let gate_path = gate_of(&host);
    for program in ["journalctl", "iptables", "sshd", "ss"] {
        assert!(
            built
                .lines()
                .any(|l| l.starts_with("ai-worker ALL=(root) CWD=/ NOPASSWD: /")
                    && l.contains(&format!("/bin/{program} "))),
            "{program} in\n{built}"
        );
    }
    assert!(
        built.contains(&gate_path),
        "the deploy's approval step:\n{built}"
    );
}

#[test]
fn the_module_evaluates_several_keys_in_label_order() {
    let Some(ev) = Evaluator::new() else {
        return;
    };
    let summary = ev.eval(&small_host(
        r#"{
  services.agent-gate.keys = {
    hermes.from = [ "172.20.0.0/16" "10.1.2.3" "2001:db8::/32" ];
    carol = { publicKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILvtejmUGKHE2n6HmmoN+jGRtIVi4F38xHifoz1jxxeh"; may = [ "docker" ]; };
    eve = { publicKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE6yYQ1xUBuWFnqW0fiomGZ8zlkjnaO9W3FJIbbPRXnJ two  words café"; from = [ "192.0.2.7" ]; description = "a second agent"; };
  };
  services.openssh.extraConfig = "X11UseLocalhost yes";
  security.sudo.extraConfig = "Defaults lecture=never";
}"#,
    ));
    let dir = tempfile::tempdir().unwrap();
    let rules = write_rules(&summary, dir.path());
    assert!(gate(&["check", "--rules", rules.to_str().unwrap()]).contains(": ok ("));
    let keys = strings(&summary["user"]["authorizedKeys"]);
    assert_eq!(
        keys,
        lines(&render_for(&summary, &rules, "authorized-keys", &[]))
    );
    let labels: Vec<&str> = keys
        .iter()
        .map(|k| k.split("--key ").nth(1).unwrap().split('"').next().unwrap())
        .collect();
    assert_eq!(labels, ["carol", "eve", "hermes"]);
    assert!(
        keys[1].starts_with("restrict,from=\"192.0.2.7/32\","),
        "{}",
        keys[1]
    );
    assert!(keys[1].ends_with(" agent-gate:eve"), "{}", keys[1]);
    assert!(
        keys[2].starts_with("restrict,from=\"172.20.0.0/16,10.1.2.3/32,2001:db8::/32\","),
        "{}",
        keys[2]
    );
    // The rules pin every key; a key without `may` gets every rule in the settings.
    let written: serde_json::Value =
        serde_json::from_str(str_of(&summary, &["etc", "agent-gate/rules.yaml", "text"])).unwrap();
    assert_eq!(written["keys"]["eve"]["description"], "a second agent");
    assert_eq!(written["keys"]["eve"]["may"], serde_json::json!(["docker"]));
    assert_eq!(written["keys"]["carol"]["from"], serde_json::Value::Null);
    // Another module's sshd lines (default order) stay before the Match block.
    let sshd = str_of(&summary, &["etc", "ssh/sshd_config", "text"]);
    let (x11, m) = (
        sshd.find("X11UseLocalhost yes").unwrap(),
        sshd.find("Match User ai-worker").unwrap(),
    );
    assert!(x11 < m, "{sshd}");
    // And sudoers includes the gateway's lines after every other module's: the last match
    // wins in sudoers.
    let sudoers = summary["sudoers"].as_str().unwrap();
    let (other, include) = (
        sudoers.find("Defaults lecture=never").unwrap(),
        sudoers
            .find("@includedir /etc/agent-gate/sudoers.d")
            .unwrap(),
    );
    assert!(other < include, "{sudoers}");
    // No deploy and no sudo program: the check renders no sudoers line, and sudo is not
    // needed (the module still enables it by default, as NixOS does).
    assert!(lines(&render_for(&summary, &rules, "sudoers", &[])).is_empty());
    let without_sudo = ev.eval(&small_host("{ security.sudo.enable = false; }"));
    assert_eq!(without_sudo["sudoers"], serde_json::Value::Null);
    assert!(without_sudo["etc"].get("sudoers").is_none());
}

#[test]
fn the_module_evaluates_a_rules_file_as_it_is_and_its_check_compares_the_keys() {
    let Some(ev) = Evaluator::new() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.yaml");
    let policy = |key: &str| {
        format!(
            "version: 1\nkeys:\n  hermes:\n    public_key: {key}\n    from: [172.20.0.0/16]\n    may: [docker]\ndocker:\n  program: /run/current-system/sw/bin/docker\n  config: /etc/agent-gate/docker-config\n  subcommands:\n    ps: [all]\n"
        )
    };
    std::fs::write(&rules, policy(HERMES_KEY)).unwrap();
    let host = format!(
        r#"[ ./nix/examples/host.nix ({{ lib, ... }}: {{
  services.agent-gate.settings = lib.mkForce {{ }};
  services.agent-gate.rulesFile = "{}";
}}) ]"#,
        rules.display()
    );
    let store = dir.path().join("store");
    let summary = ev.try_eval(&host, Some(&store)).unwrap();
    let etc = &summary["etc"]["agent-gate/rules.yaml"];
    assert_eq!(str_of(etc, &["source"]), rules.to_str().unwrap());
    assert_eq!(str_of(etc, &["mode"]), "0444");
    assert_eq!(
        strings(&summary["user"]["authorizedKeys"]),
        lines(&render_for(&summary, &rules, "authorized-keys", &[]))
    );
    if !visudo_present() {
        return;
    }
    let check = &summary["checks"][0];
    let out = run_build(check, &dir.path().join("build")).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The same host with a rules file that pins another key: the build check fails.
    std::fs::write(
        &rules,
        policy("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILvtejmUGKHE2n6HmmoN+jGRtIVi4F38xHifoz1jxxeh"),
    )
    .unwrap();
    let out = run_build(check, &dir.path().join("build-again")).unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("services.agent-gate.keys and the rules disagree"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_module_evaluates_without_the_login_shell() {
    let Some(ev) = Evaluator::new() else {
        return;
    };
    let summary = ev.eval(&small_host(
        "{ services.agent-gate.loginShell = false; services.agent-gate.dockerGroup = false; }",
    ));
    let user = &summary["user"];
    // NixOS's default for a normal user (users.defaultUserShell, bash), and nothing added to
    // /etc/shells; the key is still gated by its command=.
    assert_eq!(str_of(user, &["shell"]), "/run/current-system/sw/bin/bash");
    assert_eq!(summary["shells"], serde_json::json!([]));
    assert_eq!(
        str_of(&summary, &["etc", "shells", "text"]).trim(),
        "/bin/sh"
    );
    assert_eq!(user["extraGroups"], serde_json::json!([]));
    assert_eq!(summary["groups"]["docker"], serde_json::json!([]));
    let keys = strings(&user["authorizedKeys"]);
    assert_eq!(keys.len(), 1);
    assert!(keys[0].contains("command=\"/nix/store/"), "{}", keys[0]);
}

#[test]
fn the_module_evaluates_to_failed_assertions_for_bad_configurations() {
    let Some(ev) = Evaluator::new() else {
        return;
    };
    // (the host's module, what the evaluation must say). The first ones are the module
    // system's own errors, the rest the module's assertions, thrown as NixOS throws them.
    let cases = [
        (
            small_host("{ services.agent-gate.keys.carol.from = [ \"10.0.0.0/8\" ]; }"),
            "The option `services.agent-gate.keys.carol.publicKey' was accessed but has no value defined.",
        ),
        (
            small_host(
                "{ lib, ... }: { services.agent-gate.keys.hermes.publicKey = lib.mkForce \"AAAAC3Nza\"; }",
            ),
            "the public key of `hermes` is not `TYPE BLOB [COMMENT]`",
        ),
        (
            small_host("{ services.agent-gate.user = \"Agent\"; }"),
            "services.agent-gate.user' is not of type `string matching the pattern",
        ),
        (
            "[ ./nix/examples/host.nix { security.sudo.enable = false; } ]".to_string(),
            "- services.agent-gate: the rules run sudo (deploy, docker, iptables-list,",
        ),
        (
            small_host("{ services.agent-gate.rulesFile = \"/etc/rules.yaml\"; }"),
            "- services.agent-gate: set exactly one of `settings` and `rulesFile`.",
        ),
        (
            small_host("{ lib, ... }: { services.agent-gate.keys = lib.mkForce { }; }"),
            "- services.agent-gate: declare at least one key in `keys`.",
        ),
        (
            small_host("{ lib, ... }: { services.openssh.enable = lib.mkForce false; }"),
            "- services.agent-gate: the agent reaches the gateway through sshd; enable services.openssh.",
        ),
        (
            small_host("{ services.agent-gate.user = \"root\"; }"),
            "- services.agent-gate: `user` is the agent's own account, not root.",
        ),
        (
            small_host(
                "{ services.agent-gate.keys.\"x\\\" ,permitopen=\\\"*\".publicKey = \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILvtejmUGKHE2n6HmmoN+jGRtIVi4F38xHifoz1jxxeh\"; }",
            ),
            "- services.agent-gate.keys: a label is lowercase letters, digits, `-`, `_`, `.` (it goes into command=\"... --key LABEL\" and the rules); not so: `x\" ,permitopen=\"*`.",
        ),
        (
            small_host(
                "{ services.agent-gate.keys.hermes.from = [ \"10.0.0.0/8\\\",permitopen=\\\"*\" ]; }",
            ),
            "not so: `10.0.0.0/8\",permitopen=\"*` (of hermes).",
        ),
        (
            small_host(
                "{ users.users.ai-worker.openssh.authorizedKeys.keys = [ \"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILvtejmUGKHE2n6HmmoN+jGRtIVi4F38xHifoz1jxxeh carol\" ]; }",
            ),
            "- services.agent-gate: users.users.ai-worker.openssh.authorizedKeys has keys that services.agent-gate.keys did not make",
        ),
        (
            small_host("{ lib, ... }: { virtualisation.docker.enable = lib.mkForce false; }"),
            "- services.agent-gate: dockerGroup puts the account in the `docker` group, which does not exist; enable virtualisation.docker or set dockerGroup = false.",
        ),
        (
            small_host(
                "{ services.agent-gate.forceCommand = true; services.agent-gate.settings.keys.spare.may = [ \"docker\" ]; }",
            ),
            "- services.agent-gate: forceCommand needs every label to pin a public key; without one in `settings.keys`: `spare`.",
        ),
    ];
    for (modules, want) in &cases {
        let error = ev.fails(modules);
        assert!(
            error.contains(want),
            "{modules}\nwant: {want}\ngot: {error}"
        );
        if want.starts_with("- ") {
            assert!(error.contains("Failed assertions:"), "{error}");
        }
    }
    // The edge cases that must pass still do: with dockerGroup off, docker may be absent;
    // forceCommand with every label pinned.
    ev.eval(&small_host(
        "{ lib, ... }: { virtualisation.docker.enable = lib.mkForce false; services.agent-gate.dockerGroup = false; services.agent-gate.forceCommand = true; }",
    ));
}

#[test]
fn the_module_evaluates_only_declared_options_of_their_declared_types() {
    let Some(ev) = Evaluator::new() else {
        return;
    };
    // The mirrored NixOS options are as strict as NixOS's: an option that is not declared, or
    // a value of the wrong type, is an error, in the host's modules and in nix/module.nix.
    for (module, want) in [
        (
            "{ users.users.ai-worker.extraGroup = [ \"wheel\" ]; }",
            "The option `users.users.ai-worker.extraGroup' does not exist.",
        ),
        (
            "{ users.users.ai-worker.extraGroups = \"wheel\"; }",
            "is not of type `list of string'",
        ),
        (
            "{ services.openssh.settings.PermitRootLogin = \"maybe\"; }",
            "services.openssh.settings.PermitRootLogin' is not of type",
        ),
        (
            "{ environment.etc.\"agent-gate/rules.yaml\".mode = 444; }",
            "environment.etc.\"agent-gate/rules.yaml\".mode' is not of type `string'",
        ),
    ] {
        let error = ev.fails(&small_host(module));
        assert!(error.contains(want), "{module}\nwant: {want}\ngot: {error}");
    }
    // A copy of nix/ with the module broken: a misspelt option name, then a wrong type.
    for (from, to, want) in [
        (
            "extraGroups = lib.optional cfg.dockerGroup",
            "extraGroup = lib.optional cfg.dockerGroup",
            "The option `users.users.ai-worker.extraGroup' does not exist.",
        ),
        (
            "hashedPassword = \"!\";",
            "hashedPassword = false;",
            "users.users.ai-worker.hashedPassword' is not of type",
        ),
    ] {
        let copy = tempfile::tempdir().unwrap();
        copy_tree(&Path::new(ROOT).join("nix"), &copy.path().join("nix"));
        std::fs::copy(
            Path::new(ROOT).join("Cargo.toml"),
            copy.path().join("Cargo.toml"),
        )
        .unwrap();
        let module = copy.path().join("nix/module.nix");
        let text = std::fs::read_to_string(&module).unwrap();
        assert_eq!(text.matches(from).count(), 1, "{from}");
        std::fs::write(&module, text.replace(from, to)).unwrap();
        let out = run_nix(
            Command::new(ev.nix)
                .args(["--eval", "--strict", "--json", "nix/tests/eval.nix"])
                .arg("--arg")
                .arg("lib")
                .arg(format!("import {}", ev.lib.display()))
                .current_dir(copy.path()),
        );
        let error = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{to}: evaluated");
        assert!(error.contains(want), "{to}\nwant: {want}\ngot: {error}");
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}
