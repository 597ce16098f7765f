//! The red-team and legitimate corpus (tests/corpus/attack.tsv and legit.tsv, copied from the
//! project's shared corpus; attack-classes.tsv, the project's own rows for each class of
//! bypass it closed; legit-classes.tsv and attack-classes-programs.tsv, the project's own rows
//! for the declared programs' forms it allows and their neighbours that stay refused) against
//! tests/corpus/rules.yaml, key `hermes`: through `decide` directly, and through the binary's
//! `explain --json --batch`, as an operator's script would.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Write;
use std::process::{Command, Stdio};

use agent_gate::decide::{Request, decide};

const RULES: &str = "tests/corpus/rules.yaml";

#[path = "support/corpus.rs"]
mod support;
use support::{Row, decode, rows};

fn all_rows() -> Vec<Row> {
    let mut all = rows("attack.tsv");
    all.extend(rows("attack-classes.tsv"));
    all.extend(rows("attack-classes-programs.tsv"));
    all.extend(rows("legit.tsv"));
    all.extend(rows("legit-classes.tsv"));
    all
}

#[test]
fn the_decoder_follows_the_readme() {
    assert_eq!(
        decode(r"a\\b\tc\nd\re\0f\x7fg\u202eh"),
        "a\\b\tc\nd\re\0f\u{7f}g\u{202e}h"
    );
    let attack = rows("attack.tsv");
    let a002 = attack.iter().find(|r| r.id == "A002").unwrap();
    assert_eq!(a002.command, "   ");
    assert_eq!(attack.len(), 371);
    assert_eq!(rows("legit.tsv").len(), 78);
    assert_eq!(rows("legit-classes.tsv").len(), 72);
    assert_eq!(rows("attack-classes-programs.tsv").len(), 68);
    // The project's own files use ids of their own, so a row is never two rows.
    let mut ids: Vec<String> = all_rows().into_iter().map(|r| r.id).collect();
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "an id is used twice");
}

#[test]
fn every_row_through_decide() {
    let text = std::fs::read_to_string(RULES).unwrap();
    let policy = agent_gate::rules::parse(&text).unwrap();
    let mut wrong = Vec::new();
    for row in all_rows() {
        let d = decide(
            &policy,
            &Request {
                raw: &row.command,
                key: Some("hermes"),
                by_key: false,
                client: None,
                fingerprint: None,
            },
        );
        if d.decision_word() != row.expected {
            wrong.push(format!(
                "{} {:?}: {} ({})",
                row.id,
                row.command,
                d.decision_word(),
                d.reason
            ));
        }
        // An allowed or asked command always names an absolute program.
        if let Some(plan) = d.plan() {
            assert!(
                plan.program().starts_with('/'),
                "{}: {:?}",
                row.id,
                plan.argv()
            );
        }
    }
    assert!(
        wrong.is_empty(),
        "{} rows decided wrongly:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn every_row_through_the_binary_batch_mode() {
    let rows = all_rows();
    let mut child = Command::new(env!("CARGO_BIN_EXE_agent-gate"))
        .args([
            "explain", "--rules", RULES, "--key", "hermes", "--json", "--batch",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = String::new();
    for row in &rows {
        input.push_str(&serde_json::to_string(&row.command).unwrap());
        input.push('\n');
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(output.status.success());
    let lines: Vec<&str> = std::str::from_utf8(&output.stdout)
        .unwrap()
        .lines()
        .collect();
    assert_eq!(
        lines.len(),
        rows.len(),
        "one answer per input line, in order"
    );
    let (mut refused, mut allowed, mut asked) = (0, 0, 0);
    for (row, line) in rows.iter().zip(lines) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            v["decision"], row.expected,
            "{} {:?}: {line}",
            row.id, row.command
        );
        match row.expected {
            "refuse" => {
                refused += 1;
                assert!(
                    v.get("exec").is_none(),
                    "{}: a refusal carries no exec",
                    row.id
                );
                assert!(!v["reason"].as_str().unwrap().is_empty());
            }
            _ => {
                if row.expected == "allow" {
                    allowed += 1
                } else {
                    asked += 1
                }
                let exec = v["exec"].as_array().unwrap();
                assert!(
                    exec[0].as_str().unwrap().starts_with('/'),
                    "{}: {line}",
                    row.id
                );
            }
        }
    }
    // The shipped sample: 371 attack rows (two of them canonical deploys) and 78 legitimate
    // rows; and the project's own attack rows and legitimate rows.
    let own = support::rows("attack-classes.tsv").len();
    let own_programs = support::rows("attack-classes-programs.tsv").len();
    let own_legit = support::rows("legit-classes.tsv").len();
    assert_eq!(
        (refused, allowed, asked),
        (369 + own + own_programs, 78 + own_legit, 2)
    );
    println!("corpus via --batch: {refused} refused, {allowed} allowed, {asked} need approval");
}
