//! The fuzz targets' bounded mirrors, on stable in the normal suite: each feeds the same
//! check as its libFuzzer target (`fuzz/checks.rs`) a few hundred inputs, raw bytes or one of
//! the target's seeds with a few bytes inserted, removed or changed. The seeds are the ones
//! `scripts/fuzz.sh` gives libFuzzer (it writes them with the ignored test `write_seeds`):
//! the corpus rows, the rules files, `--format` templates, approval records filed through
//! the real code, and MCP messages.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;

use agent_gate::deploy::request::{Binding, DeployRequest};
use agent_gate::deploy::{Asker, Form};
use proptest::prelude::*;

#[path = "../fuzz/checks.rs"]
mod checks;
#[path = "support/corpus.rs"]
mod support;

type Check = fn(&[u8]) -> bool;

/// Every fuzz target (its name in fuzz/Cargo.toml) and its check.
const TARGETS: &[(&str, Check)] = &[
    ("tokenize", checks::tokenize),
    ("rules", checks::rules),
    ("decide", checks::decide),
    ("docker_options", checks::docker_options),
    ("template", checks::template),
    ("approval_record", checks::approval_record),
    ("policy_record", checks::policy_record),
    ("mcp_message", checks::mcp_messages),
];

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Templates from docker's documentation and the grammar's own cases, accepted and refused.
const TEMPLATES: &[&str] = &[
    "",
    "json",
    "table",
    "{{.Names}}",
    r"table {{.ID}}\t{{.Image}}\t{{.Status}}",
    "{{json .}}",
    "{{json .Config.Labels}}",
    "{{.State.Health.Status}}",
    "{{range .Mounts}}{{.Source}} -> {{.Destination}}{{println}}{{end}}",
    "{{range .Config.Env}}{{.}}{{else}}none{{end}}",
    r#"{{index .Config.Labels "com.docker.compose.project"}}"#,
    r#"{{.Label "com.docker.compose.service"}}"#,
    r#"{{join .Names ","}}"#,
    "{{truncate .ID 12}} {{pad .Name 2 2}} {{len .Mounts}}",
    "{{- .Name -}}{{.Names | upper}}{{.|json}}",
    r#"{{(index (index .NetworkSettings.Ports "80/tcp") 0).HostPort}}"#,
    r#"{{if eq .State.Status "running"}}up{{else if .State.Restarting}}again{{else}}down{{end}}"#,
    r#"{{with index .Config.Labels "x"}}{{.}}{{else}}-{{end}}"#,
    "{{and .State.Running (not .State.Paused)}} {{title (lower .Name)}}",
    "{{/* a comment */}}{{- /* trimmed */ -}}{{.ID}}",
    r#"{{"}}"}} {{`raw {{`}} {{"a\tb\u00e9\x41\101"}}"#,
    "{{-3}} {{print .ID .Names}} {{json (json .)}}",
    r#"{{printf "%999999999d" 1}}"#,
    "{{range .Mounts}}{{range .Config.Env}}{{end}}{{end}}",
    "{{range .HostConfig.ShmSize}}x{{end}}",
    "{{$x := .}}{{call .F}}{{0x10}}",
    "{{with .Config}}{{.Env}}{{end}}",
    "{{(((((.A)))))}}{{.Names",
];

const MCP_LINES: &[&str] = &[
    r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
    r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
    r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"deploy_status","arguments":{"id":"0a1b2c3d"}}}"#,
    r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"run","arguments":{"command":42}}}"#,
    r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3,"reason":"x"}}"#,
    r#"{"jsonrpc":"2.0","id":5,"result":{}}"#,
    r#"{"jsonrpc":"2.0","id":6,"method":"ping"}"#,
    r#"[{"jsonrpc":"2.0","id":7,"method":"ping"}]"#,
    "{this is not json",
];

/// The commands of every corpus row: tests/corpus/*.tsv, and the shared corpus beside the
/// repository when it is there.
fn commands() -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for dir in [
        format!("{ROOT}/tests/corpus"),
        format!("{ROOT}/../shared/corpus"),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<_> = entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "tsv"))
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for line in text.split('\n').skip(1).filter(|l| !l.is_empty()) {
                let command = support::decode(line.split('\t').nth(2).unwrap());
                if !out.contains(&command) {
                    out.push(command);
                }
            }
        }
    }
    out
}

/// Approval records as the deploy step files and moves them on, under `checks::RECORD_ID`.
fn records() -> Vec<DeployRequest> {
    let text = std::fs::read_to_string(format!("{ROOT}/rules.yaml")).unwrap();
    let policy = agent_gate::rules::parse(&text).unwrap();
    let binding = Binding {
        flake: "/etc/nixos".into(),
        flake_lock: "sha256:aa".into(),
        git_rev: Some("0123456789abcdef0123456789abcdef01234567".into()),
        tree: "sha256:bb".into(),
        files: 3,
    };
    let asker = Asker {
        key: "hermes".into(),
        client: "2001:db8::7".parse().ok(),
        fingerprint: Some("SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU".into()),
    };
    let file = |form: Form, word: &str| {
        let plan = agent_gate::deploy::root_plan(&policy, form).unwrap();
        let mut binding = binding.clone();
        if form == Form::NixosRebuild {
            binding.git_rev = None;
        }
        DeployRequest::file(
            checks::RECORD_ID.into(),
            1_700_000_000,
            1800,
            &asker,
            Some(1001),
            word,
            &plan,
            binding,
        )
    };
    let pending = file(Form::Nh, "nh");
    let mut approved = file(Form::NixosRebuild, "nixos-rebuild");
    approved.approve("root", 1_700_000_060, 1800);
    let mut denied = pending.clone();
    denied.deny(
        "alice",
        1_700_000_090,
        "not during the \"freeze\" \u{2014} ask again",
    );
    let mut finished = approved.clone();
    finished.consume(1_700_000_120);
    finished.finish("exit status 0");
    let mut expired = pending.clone();
    expired.expire();
    vec![pending, approved, denied, finished, expired]
}

/// What `scripts/fuzz.sh` starts each target's corpus with.
fn seeds(target: &str) -> Vec<Vec<u8>> {
    match target {
        "tokenize" | "decide" => commands().into_iter().map(String::into_bytes).collect(),
        "rules" => [
            "rules.yaml",
            "contrib/debian/rules.yaml",
            "tests/corpus/rules.yaml",
            "tests/fixtures/render.yaml",
        ]
        .iter()
        .map(|f| std::fs::read(Path::new(ROOT).join(f)).unwrap())
        .collect(),
        "docker_options" => {
            let mut out = Vec::new();
            for command in commands() {
                let Ok(argv) = agent_gate::tokenize::tokenize(&command) else {
                    continue;
                };
                let argv = match argv.iter().position(|w| w == "docker") {
                    Some(at) if at <= 2 => argv[at + 1..].to_vec(),
                    _ => continue,
                };
                out.push(argv.join("\0").into_bytes());
                // Two-word table names: `volume inspect`, `compose up`.
                if let [first, second, rest @ ..] = argv.as_slice() {
                    let mut words = vec![format!("{first} {second}")];
                    words.extend(rest.iter().cloned());
                    out.push(words.join("\0").into_bytes());
                }
            }
            out
        }
        "template" => {
            let mut out: Vec<Vec<u8>> = TEMPLATES.iter().map(|t| t.as_bytes().to_vec()).collect();
            for command in commands() {
                let Ok(argv) = agent_gate::tokenize::tokenize(&command) else {
                    continue;
                };
                for (i, word) in argv.iter().enumerate() {
                    if let Some(value) = word.strip_prefix("--format=") {
                        out.push(value.as_bytes().to_vec());
                    } else if word == "--format"
                        && let Some(value) = argv.get(i + 1)
                    {
                        out.push(value.as_bytes().to_vec());
                    }
                }
            }
            out
        }
        "approval_record" => records().iter().map(|r| r.to_json().into_bytes()).collect(),
        "policy_record" => vec![checks::policy_record_seed()],
        "mcp_message" => {
            let mut out: Vec<Vec<u8>> = MCP_LINES.iter().map(|l| format!("{l}\n").into()).collect();
            out.push(format!("{}\n", MCP_LINES.join("\r\n")).into_bytes());
            for (id, command) in commands().into_iter().enumerate().step_by(7) {
                let call = serde_json::json!({
                    "jsonrpc": "2.0", "id": id + 10, "method": "tools/call",
                    "params": {"name": "explain", "arguments": {"command": command}},
                });
                out.push(format!("{call}\n").into_bytes());
            }
            out
        }
        other => panic!("no seeds for {other}"),
    }
}

fn check_of(target: &str) -> Check {
    TARGETS.iter().find(|(name, _)| *name == target).unwrap().1
}

#[test]
fn every_target_has_seeds_and_some_get_through() {
    for (target, check) in TARGETS {
        let seeds = seeds(target);
        let through = seeds.iter().filter(|s| check(s)).count();
        assert!(
            through > 0,
            "{target}: none of {} seeds got past the first refusal",
            seeds.len()
        );
    }
    // Records filed through the real code are read back, all of them; so are the rules files.
    for target in ["approval_record", "policy_record", "rules"] {
        let seeds = seeds(target);
        assert!(seeds.iter().all(|s| check_of(target)(s)), "{target}");
    }
}

#[test]
#[ignore = "writes the fuzz seeds into $AGENT_GATE_FUZZ_SEEDS/TARGET/; run by scripts/fuzz.sh"]
fn write_seeds() {
    let dir = std::env::var_os("AGENT_GATE_FUZZ_SEEDS").expect("AGENT_GATE_FUZZ_SEEDS=DIR");
    for (target, _) in TARGETS {
        let out = Path::new(&dir).join(target);
        std::fs::create_dir_all(&out).unwrap();
        for (n, seed) in seeds(target).iter().enumerate() {
            std::fs::write(out.join(format!("seed-{n:04}")), seed).unwrap();
        }
    }
}

/// Pieces to insert: any byte, any character, and the ones the readers treat specially.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<u8>().prop_map(|b| vec![b]),
        any::<char>().prop_map(|c| c.to_string().into_bytes()),
        prop::sample::select(vec![
            " ", "'", "\"", "\\", ";", "$", "\0", "\n", "\r\n", "\t", "-", "--", "=", ",", ":",
            "{{", "}}", "|", "(", ")", ".", "/", "{", "}", "[", "]", "&", "*", "!", "#", "~",
            "\u{202e}", "\u{200b}", "\u{a0}", "\u{fffd}", "\u{feff}",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
    ]
}

/// A seed with up to eight edits, or raw bytes.
fn input(target: &str) -> impl Strategy<Value = Vec<u8>> {
    let edit = (any::<prop::sample::Index>(), 0u8..3, piece());
    let mutated = (
        prop::sample::select(seeds(target)),
        prop::collection::vec(edit, 0..8),
    )
        .prop_map(|(mut data, edits)| {
            for (at, op, piece) in edits {
                let i = at.index(data.len() + 1);
                match op {
                    0 => drop(data.splice(i..i, piece)),
                    1 if i < data.len() => drop(data.drain(i..(i + piece.len()).min(data.len()))),
                    _ => {
                        let end = (i + piece.len()).min(data.len());
                        drop(data.splice(i..end, piece));
                    }
                }
            }
            data
        });
    prop_oneof![1 => prop::collection::vec(any::<u8>(), 0..256), 4 => mutated]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn tokenize_mirror(data in input("tokenize")) {
        checks::tokenize(&data);
    }

    #[test]
    fn decide_mirror(data in input("decide")) {
        checks::decide(&data);
    }

    #[test]
    fn docker_options_mirror(data in input("docker_options")) {
        checks::docker_options(&data);
    }

    #[test]
    fn template_mirror(data in input("template")) {
        checks::template(&data);
    }

    #[test]
    fn approval_record_mirror(data in input("approval_record")) {
        checks::approval_record(&data);
    }

    #[test]
    fn policy_record_mirror(data in input("policy_record")) {
        checks::policy_record(&data);
    }

    #[test]
    fn mcp_message_mirror(data in input("mcp_message")) {
        checks::mcp_messages(&data);
    }

    #[test]
    fn rules_mirror(data in input("rules")) {
        checks::rules(&data);
    }
}
