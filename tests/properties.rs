//! Bounded property tests, run in CI on stable: the tokenizer and `decide` are total, the
//! tokenizer never lets a control or invisible character through, and no spelling of a host
//! path in `docker run` is ever allowed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::LazyLock;

use agent_gate::decide::{Request, decide};
use agent_gate::policy::Policy;
use agent_gate::tokenize::{is_control, is_invisible, tokenize};
use agent_gate::verdict::Outcome;
use proptest::prelude::*;

static POLICY: LazyLock<Policy> = LazyLock::new(|| {
    agent_gate::rules::parse(&std::fs::read_to_string("tests/corpus/rules.yaml").unwrap()).unwrap()
});

fn decide_raw(raw: &str) -> agent_gate::verdict::Decision {
    decide(
        &POLICY,
        &Request {
            raw,
            key: Some("hermes"),
            by_key: false,
            client: None,
            fingerprint: None,
        },
    )
}

/// Characters an attacker would reach for: shell syntax, quotes, controls, bidi, homoglyphs.
fn nasty_char() -> impl Strategy<Value = char> {
    prop_oneof![
        prop::sample::select(vec![
            ' ', '\'', '"', '\\', ';', '|', '&', '$', '`', '#', '~', '*', '\n', '\r', '\t', '\0',
            '\u{1b}', '\u{7f}', '\u{85}', '\u{a0}', '\u{ad}', '\u{200b}', '\u{202e}', '\u{2066}',
            '\u{feff}', '\u{3000}', '\u{2013}', '\u{ff0d}', '\u{430}', '\u{131}', '\u{fffd}',
        ]),
        any::<char>(),
        prop::char::range('a', 'z'),
        prop::char::range(' ', '~'),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn tokenize_never_panics_and_never_passes_a_control_or_invisible_char(
        chars in prop::collection::vec(nasty_char(), 0..200)
    ) {
        let raw: String = chars.into_iter().collect();
        if let Ok(words) = tokenize(&raw) {
            for word in &words {
                prop_assert!(!word.chars().any(|c| is_control(c) || is_invisible(c)), "{raw:?} -> {words:?}");
            }
            prop_assert!(!words.is_empty());
        }
    }

    #[test]
    fn decide_is_total(chars in prop::collection::vec(nasty_char(), 0..120)) {
        let raw: String = chars.into_iter().collect();
        let d = decide_raw(&raw);
        if let Some(plan) = d.plan() {
            prop_assert!(plan.program().starts_with('/'));
        }
    }

    #[test]
    fn decide_is_total_on_docker_like_words(
        words in prop::collection::vec(prop::sample::select(vec![
            "docker", "run", "ps", "-v", "--volume", "/:/h", "-d", "--rm", "-dv/:/h", "alpine", "--",
            "--privileged", "--mount", "type=bind,src=/,dst=/h", "-p", "8080:80", "compose", "-f",
            "/srv/app/compose.yaml", "up", "exec", "sudo", "-n", "=", "-", "''", "'a b'", "--net=host",
            "-e", "X=1", "build", "/srv/api", "logs", "--tail", "5", "web", "nh", "os", "switch",
        ]), 0..14)
    ) {
        let raw = words.join(" ");
        let _ = decide_raw(&raw);
    }

    #[test]
    fn docker_run_never_allows_a_host_path(
        source in prop_oneof![
            Just("/".to_string()),
            "/[a-z./]{0,20}",
            "\\./[a-z]{0,8}",
            "\\.\\.?",
            "[a-z]{1,8}/[a-z]{0,8}",
            "/(proc|run|var|etc|nix|home)(/[a-z.]{1,8}){0,3}",
        ],
        target in "/[a-z]{1,8}",
        mode in prop::sample::select(vec!["", ":ro", ":rw", ":z"]),
        spelling in 0usize..6,
        image in prop::sample::select(vec!["alpine", "alpine:3.20", "busybox", "nginx:1.27"]),
        before in prop::sample::select(vec!["", "--rm ", "-d ", "--rm --name x ", "-e A=1 "]),
    ) {
        let spec = format!("{source}:{target}{mode}");
        let option = match spelling {
            0 => format!("-v {spec}"),
            1 => format!("-v{spec}"),
            2 => format!("-v={spec}"),
            3 => format!("--volume={spec}"),
            4 => format!("-dv {spec}"),
            _ => format!("--mount type=bind,src={source},dst={target}"),
        };
        for quoted in [false, true] {
            let option = if quoted { format!("'{option}'") } else { option.clone() };
            let raw = format!("docker run {before}{option} {image} true");
            let d = decide_raw(&raw);
            prop_assert!(!matches!(d.outcome, Outcome::Allow(_) | Outcome::Ask(_)), "{raw} was allowed");
        }
    }
}

#[test]
fn named_volumes_stay_allowed() {
    // The property above would pass trivially if `docker run -v` were refused altogether.
    for raw in [
        "docker run --rm -v cache:/cache alpine true",
        "docker run -v/data alpine true",
    ] {
        assert_eq!(decide_raw(raw).decision_word(), "allow", "{raw}");
    }
}
