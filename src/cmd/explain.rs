//! `explain`, `check` and `list`: read the rules as the operator names them and run nothing.

use std::io::{BufRead, Write};
use std::path::Path;

use super::exit::EXIT_CONFIG;
use super::{FactsUsed, decide_with_engine, load_for_operator};
use crate::cli::{Compile, Explain};
use crate::decide::{Request, decide};
use crate::deploy::request::shell_word;
use crate::escape::for_terminal;
use crate::facts::Needs;
use crate::policy::record;
use crate::sys::load;
use crate::sys::walk::WalkError;
use crate::verdict::{Decision, Outcome};

/// `check`: the rules compiled and every example run, always from the text (a compiled
/// record is what `check` vouches for, never what it reads); then whether the compiled
/// record beside them is current.
pub fn check(path: &Path, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let Some((policy, text)) = load_in_full(path, err) else {
        return EXIT_CONFIG;
    };
    let _ = writeln!(
        out,
        "{}: ok ({} keys, {} rules, {})",
        path.display(),
        policy.keys.len(),
        policy.rule_ids().len(),
        policy.digest
    );
    let record = record::path_for(path);
    let state = match load::compiled(path, &text) {
        Ok(_) => "current".to_string(),
        Err(load::RecordError::Walk(WalkError::Missing { .. })) => format!(
            "none; `agent-gate compile --rules {}` as root makes loading faster",
            shell_word(&path.display().to_string())
        ),
        Err(e) => format!(
            "not used ({e}); `agent-gate compile --rules {}` as root writes a current one",
            shell_word(&path.display().to_string())
        ),
    };
    let _ = writeln!(
        out,
        "compiled record {}: {}",
        for_terminal(&record.display().to_string()),
        for_terminal(&state)
    );
    0
}

/// `compile`: `check`, then the compiled record written (a new file renamed into place, mode
/// 0444), where the gateway looks for it unless `--out` says otherwise.
pub fn compile(args: &Compile, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let Some((policy, _)) = load_in_full(&args.rules, err) else {
        return EXIT_CONFIG;
    };
    let target = args
        .out
        .clone()
        .unwrap_or_else(|| record::path_for(&args.rules));
    let written = record::encode(&policy)
        .map_err(|e| format!("cannot encode the compiled policy: {e}"))
        .and_then(|bytes| write_record(&target, &bytes).map(|()| bytes.len()));
    match written {
        Ok(len) => {
            let _ = writeln!(
                out,
                "{}: compiled {} ({len} bytes) to {}",
                args.rules.display(),
                policy.digest,
                for_terminal(&target.display().to_string())
            );
            if !nix::unistd::Uid::effective().is_root() {
                let _ = writeln!(
                    err,
                    "note: written as uid {}; the gateway uses a record only when root owns it and everything on its path",
                    nix::unistd::Uid::effective()
                );
            }
            0
        }
        Err(e) => {
            let _ = writeln!(err, "{}: {}", target.display(), for_terminal(&e));
            EXIT_CONFIG
        }
    }
}

/// Read the rules file as the operator names it and compile it in full: the policy and the
/// text, or the error printed.
fn load_in_full(path: &Path, err: &mut dyn Write) -> Option<(crate::policy::Policy, String)> {
    match load::in_full(path, false) {
        Ok(pair) => Some(pair),
        Err(e) => {
            let _ = writeln!(err, "{e}");
            None
        }
    }
}

/// Write `bytes` to `target` whole or not at all: a new file beside it (mode 0444), synced,
/// renamed.
fn write_record(target: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut name = target.as_os_str().to_owned();
    name.push(format!(".new.{}", std::process::id()));
    let temporary = std::path::PathBuf::from(name);
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(&temporary)
        .and_then(|mut file| {
            // The gateway reads it as the agent's account: 0444 whatever the umask.
            file.set_permissions(std::fs::Permissions::from_mode(0o444))?;
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temporary, target));
    result.map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        e.to_string()
    })
}

pub fn list(rules: &Path, key: &str, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match load_for_operator(rules, err) {
        Some(policy) => {
            let _ = out.write_all(crate::list::render(&policy, key).as_bytes());
            0
        }
        None => EXIT_CONFIG,
    }
}

pub fn explain(
    args: &Explain,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let Some(policy) = load_for_operator(&args.rules, err) else {
        return EXIT_CONFIG;
    };
    // Without --fingerprint, explain assumes the agent used the key registered for the label.
    let pinned = policy
        .keys
        .get(&args.key)
        .and_then(|k| k.public_key.as_ref())
        .map(|(_, fp)| fp.as_str());
    let fingerprint = args.fingerprint.as_deref().or(pinned);
    let one = |raw: &str| {
        let request = Request {
            raw,
            key: Some(&args.key),
            by_key: false,
            client: args.client,
            fingerprint,
        };
        if args.offline {
            let d = decide(&policy, &request);
            let used = if d.needs.is_empty() {
                FactsUsed::NotNeeded
            } else {
                FactsUsed::Lacked(d.needs.clone(), "--offline".to_string())
            };
            (d, used)
        } else {
            decide_with_engine(&policy, &request, false)
        }
    };
    if !args.batch {
        let raw = args.command.clone().unwrap_or_default();
        let (decision, facts) = one(&raw);
        let text = if args.json {
            to_json(&decision, &facts).to_string()
        } else {
            human(&decision, &facts)
        };
        let _ = writeln!(out, "{text}");
        return 0;
    }
    let mut line = String::new();
    loop {
        line.clear();
        match input.read_line(&mut line) {
            Ok(0) => return 0,
            Ok(_) => {}
            Err(e) => {
                let _ = writeln!(err, "reading stdin: {e}");
                return EXIT_CONFIG;
            }
        }
        let answer = match serde_json::from_str::<String>(line.trim_end_matches(['\n', '\r'])) {
            Ok(raw) => {
                let (decision, facts) = one(&raw);
                to_json(&decision, &facts)
            }
            Err(e) => serde_json::json!({
                "decision": "refuse",
                "rule": "batch",
                "reason": format!("this input line is not a JSON string: {e}"),
            }),
        };
        if writeln!(out, "{answer}").is_err() {
            return 0;
        }
    }
}

pub(super) fn to_json(d: &Decision, facts: &FactsUsed) -> serde_json::Value {
    use serde_json::Value;
    let mut v = serde_json::Map::new();
    v.insert("decision".into(), d.decision_word().into());
    v.insert("rule".into(), d.rule.clone().into());
    v.insert("reason".into(), d.reason.clone().into());
    v.insert("argv".into(), d.argv.clone().into());
    if let Some(hint) = &d.hint {
        v.insert("hint".into(), hint.clone().into());
    }
    if let Some(plan) = d.plan() {
        v.insert("exec".into(), plan.argv().to_vec().into());
        let env: serde_json::Map<String, Value> = plan
            .env()
            .iter()
            .map(|(k, val)| (k.clone(), val.clone().into()))
            .collect();
        v.insert("env".into(), env.into());
    }
    if d.outcome == Outcome::Help {
        v.insert("builtin".into(), "list".into());
    }
    if d.outcome == Outcome::Mcp {
        v.insert("builtin".into(), "mcp".into());
    }
    let asked = |n: &Needs| serde_json::json!({"images": n.images, "volumes": n.volumes});
    match facts {
        FactsUsed::NotNeeded => {}
        FactsUsed::Engine(needs) => {
            v.insert(
                "facts".into(),
                serde_json::json!({"engine": true, "asked": asked(needs)}),
            );
        }
        FactsUsed::Lacked(needs, why) => {
            v.insert(
                "facts".into(),
                serde_json::json!({"engine": false, "lacked": asked(needs), "why": why}),
            );
        }
    }
    Value::Object(v)
}

fn human(d: &Decision, facts: &FactsUsed) -> String {
    let mut text = format!(
        "decision: {}\nrule: {}\nreason: {}",
        d.decision_word(),
        d.rule,
        d.reason
    );
    if let Some(hint) = &d.hint {
        text.push_str(&format!("\ninstead: {hint}"));
    }
    match &d.outcome {
        Outcome::Ask(plan) => text.push_str(&format!(
            "\nexec (as root, once a human approves it): {}",
            plan.argv().join(" ")
        )),
        Outcome::Allow(plan) => text.push_str(&format!("\nexec: {}", plan.argv().join(" "))),
        _ => {}
    }
    let what = |n: &Needs| {
        let mut all: Vec<String> = n.images.iter().map(|i| format!("image {i}")).collect();
        all.extend(n.volumes.iter().map(|v| format!("volume {v}")));
        all.join(", ")
    };
    match facts {
        FactsUsed::NotNeeded => {}
        FactsUsed::Engine(needs) => {
            text.push_str(&format!(
                "\nfacts: the engine was asked about {}",
                what(needs)
            ));
        }
        FactsUsed::Lacked(needs, why) => text.push_str(&format!(
            "\nfacts: decided on the string alone; the engine could not be asked about {} ({why})",
            what(needs)
        )),
    }
    for_terminal(&text)
}
