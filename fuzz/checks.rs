//! What each fuzz target checks, one function per target, so the libFuzzer targets
//! (`fuzz/fuzz_targets/`, nightly) and their bounded mirrors (`tests/fuzz_mirrors.rs`, stable,
//! in the normal suite) run the same code on the same kind of input: the raw bytes, turned
//! into what the reader is given the way the gateway's edge does it. Each panics when a
//! property fails and returns whether the input got through, so that a mirror can show it
//! reached more than the first refusal.

use std::sync::LazyLock;

use agent_gate::decide::Request;
use agent_gate::deploy::request::{DeployRequest, command_line};
use agent_gate::docker::{parse, spec, template};
use agent_gate::policy::{MAX_RULES_BYTES, Policy};
use agent_gate::tokenize::{MAX_COMMAND_BYTES, is_control, is_invisible};
use rmcp::transport::Transport;

/// The corpus's rules, as the corpus tests and the benchmark use them.
static POLICY: LazyLock<Policy> = LazyLock::new(|| {
    agent_gate::rules::parse(include_str!("../tests/corpus/rules.yaml"))
        .unwrap_or_else(|e| panic!("tests/corpus/rules.yaml: {e}"))
});

/// The id an approval record is read under; the seeds are records filed with it.
pub const RECORD_ID: &str = "0a1b2c3d";

/// What `docker inspect` hides from `--format` (docker/mod.rs).
const INSPECT_HIDDEN: &[&[&str]] = &[&["Config", "Env"], &["ContainerConfig", "Env"]];

/// `SSH_ORIGINAL_COMMAND` as the edge reads it (invocation.rs: lossy UTF-8).
fn command(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// The tokenizer: what it splits has no control or invisible character and at least one
/// word, and the line a person is shown for those words (`command_line`, as in an approval
/// prompt) splits back into the same words. A word with a single quote is shown as `'\''`,
/// which has a backslash this tokenizer refuses, so those are left out of the round trip.
pub fn tokenize(data: &[u8]) -> bool {
    let raw = command(data);
    let Ok(words) = agent_gate::tokenize::tokenize(&raw) else {
        return false;
    };
    assert!(!words.is_empty(), "{raw:?}");
    assert!(
        words
            .iter()
            .flat_map(|w| w.chars())
            .all(|c| !is_control(c) && !is_invisible(c)),
        "{raw:?} -> {words:?}"
    );
    let shown = command_line(&words);
    if !words.iter().any(|w| w.contains('\'')) && shown.len() <= MAX_COMMAND_BYTES {
        assert_eq!(
            agent_gate::tokenize::tokenize(&shown).as_ref(),
            Ok(&words),
            "{raw:?} shown as {shown:?}"
        );
    }
    true
}

/// The rules file as the loader reads it (at most 1 MiB, UTF-8), compiled and its examples run.
pub fn rules(data: &[u8]) -> bool {
    if data.len() > MAX_RULES_BYTES {
        return false;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    agent_gate::rules::parse(text).is_ok()
}

/// `decide` over the corpus rules for the key `hermes`: total; nothing that does not
/// tokenize gets a plan, and what a plan runs is an absolute program.
pub fn decide(data: &[u8]) -> bool {
    let raw = command(data);
    let decision = agent_gate::decide::decide(
        &POLICY,
        &Request {
            raw: &raw,
            key: Some("hermes"),
            by_key: false,
            client: None,
            fingerprint: None,
        },
    );
    let Some(plan) = decision.plan() else {
        return false;
    };
    assert!(agent_gate::tokenize::tokenize(&raw).is_ok(), "{raw:?}");
    assert!(plan.program().starts_with('/'), "{raw:?} runs {plan:?}");
    true
}

/// docker's option parser, with the tables and mode of each of its callers: words separated
/// by NUL, the first naming the table (`run`, `volume inspect`, `compose`, `compose up`).
/// Every operand is one of the words, and every value the end of one.
pub fn docker_options(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let mut words = text.split('\0');
    let name = words.next().unwrap_or_default();
    let args: Vec<String> = words.map(String::from).collect();
    let verb = name.strip_prefix("compose ");
    let (tables, interspersed) = if name == "compose" {
        (vec![spec::COMPOSE_GLOBAL], false)
    } else if let Some((_, table, _)) = spec::COMPOSE_VERBS.iter().find(|v| Some(v.0) == verb) {
        (vec![*table, spec::COMPOSE_GLOBAL], true)
    } else if let Some(sub) = spec::subcommand(name) {
        (vec![sub.options], sub.interspersed)
    } else {
        return false;
    };
    let Ok(parsed) = parse::parse(name, &tables, interspersed, &args) else {
        return false;
    };
    for operand in &parsed.operands {
        assert!(
            args.iter().any(|a| std::ptr::eq(a.as_str(), *operand)),
            "{args:?}: operand {operand:?}"
        );
    }
    for value in parsed.options.iter().filter_map(|g| g.value) {
        assert!(
            args.iter().any(|a| a.ends_with(value)),
            "{args:?}: value {value:?}"
        );
    }
    true
}

/// The `--format` grammar: hiding fields only ever refuses more.
pub fn template(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let plain = template::check(text);
    if template::check_hiding(text, INSPECT_HIDDEN).is_ok() {
        assert_eq!(plain, Ok(()), "{text:?}");
    }
    plain.is_ok()
}

/// A stored approval record as the store reads it (UTF-8, then `from_json` under its file's
/// id): a record it accepts is accepted again, the same, after it is written back.
pub fn approval_record(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    let Ok(record) = DeployRequest::from_json(text, RECORD_ID) else {
        return false;
    };
    assert_eq!(
        DeployRequest::from_json(&record.to_json(), RECORD_ID).as_ref(),
        Ok(&record)
    );
    true
}

/// The compiled policy record as the loader reads it (`policy::record::decode`, under the
/// corpus rules' digest): a record it accepts is the same record when written again.
pub fn policy_record(data: &[u8]) -> bool {
    use agent_gate::policy::record;
    let Ok(policy) = record::decode(data, &POLICY.digest) else {
        return false;
    };
    let written = record::encode(&policy).unwrap_or_else(|e| panic!("encode: {e}"));
    let again = record::decode(&written, &POLICY.digest).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(record::encode(&again).ok().as_ref(), Some(&written));
    true
}

/// A seed for `policy_record`: the corpus rules' own record.
pub fn policy_record_seed() -> Vec<u8> {
    agent_gate::policy::record::encode(&POLICY).unwrap_or_else(|e| panic!("encode: {e}"))
}

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"))
});

/// The MCP session's reader (`cmd::mcp::transport`) over a client that sends `data` and goes
/// away: it ends, and reads no more messages than there are whole lines.
pub fn mcp_messages(data: &[u8]) -> bool {
    let lines = data.iter().filter(|b| **b == b'\n').count();
    let mut transport = agent_gate::cmd::mcp::transport(data, tokio::io::sink());
    let read = RUNTIME.block_on(async {
        let mut read = 0usize;
        while transport.receive().await.is_some() {
            read += 1;
        }
        read
    });
    assert!(read <= lines, "{read} messages from {lines} lines");
    read > 0
}
