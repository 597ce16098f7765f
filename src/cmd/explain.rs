//! `explain`, `check` and `list`: read the rules as the operator names them and run nothing.

use std::io::{BufRead, Write};
use std::path::Path;

use super::exit::EXIT_CONFIG;
use super::{FactsUsed, decide_with_engine, load_for_operator};
use crate::cli::Explain;
use crate::decide::{Request, decide};
use crate::escape::for_terminal;
use crate::facts::Needs;
use crate::verdict::{Decision, Outcome};

pub fn check(path: &Path, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match load_for_operator(path, err) {
        Some(policy) => {
            let _ = writeln!(
                out,
                "{}: ok ({} keys, {} rules, {})",
                path.display(),
                policy.keys.len(),
                policy.rule_ids().len(),
                policy.digest
            );
            0
        }
        None => EXIT_CONFIG,
    }
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
