//! `decide(&Policy, &Request) -> Decision`: pure and total. No I/O, no clock, no environment.
//!
//! Precedence, the one rule: nothing runs unless a rule accepts the whole command. Among the
//! rules for the program the agent named, the first (in file order) whose grammar accepts
//! every word decides; if none does, the command is refused with the reason of the rule that
//! got furthest. The tokenizer and the built-in limits (docker's never-allowed options, shells,
//! sudo flags) come first and no rule can lift them.

use std::net::IpAddr;

use crate::facts::{Facts, Needs};
use crate::policy::{KeyPolicy, Policy};
use crate::tokenize::{TokenizeError, tokenize};
use crate::verdict::{Classified, Decision, HELP_HINT, Outcome, Refusal, RefusalKind, Tier};
use crate::{deploy, docker, programs};

/// What the edge knows about one request: plain data, built once.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `SSH_ORIGINAL_COMMAND` exactly as sshd passed it.
    pub raw: &'a str,
    /// The key label from the forced command (`--key hermes`).
    pub key: Option<&'a str>,
    /// The label is the one whose pinned public key authenticated (login-shell mode, or a
    /// forced command without `--key`); a `key` given as well must agree with it.
    pub by_key: bool,
    /// The client address from `SSH_CONNECTION`, when known.
    pub client: Option<IpAddr>,
    /// SHA256 fingerprint of the key that authenticated (sshd's ExposeAuthInfo), when known.
    pub fingerprint: Option<&'a str>,
}

/// Decide on the string alone, as for a rule's examples or `explain` with no engine: a docker
/// command that rests on the engine's state is decided as far as the string tells, and its
/// `needs` say what the engine would have to confirm.
pub fn decide(policy: &Policy, request: &Request<'_>) -> Decision {
    decide_with(policy, request, &Facts::Offline)
}

/// Decide with what the engine said (`Facts`, gathered at the edge for `needs`).
pub fn decide_with(policy: &Policy, request: &Request<'_>, facts: &Facts) -> Decision {
    let argv = match tokenize(request.raw) {
        Ok(argv) => argv,
        Err(TokenizeError::Empty) => {
            return refused(
                RefusalKind::Login,
                Vec::new(),
                Refusal::new("-", "no login shell: send one command").hint(HELP_HINT),
            );
        }
        Err(e) => {
            return refused(
                RefusalKind::Syntax,
                Vec::new(),
                Refusal::new("tokenize", e.to_string())
                    .hint("send one command, plain words, single-quote anything unusual"),
            );
        }
    };
    let key = match identity(policy, request) {
        Ok((_, key)) => key,
        Err(r) => return refused(RefusalKind::Identity, argv, r),
    };
    if argv.len() == 1 && argv.first().is_some_and(|a| a == "help") {
        return Decision {
            outcome: Outcome::Help,
            rule: "help".to_string(),
            reason: "list what this key may run".to_string(),
            hint: None,
            argv,
            needs: Needs::default(),
            details: Vec::new(),
        };
    }
    if argv.len() == 1 && argv.first().is_some_and(|a| a == "mcp") {
        if !key.mcp {
            return refused(
                RefusalKind::Policy,
                argv,
                Refusal::new("mcp", "this key may not open an MCP session")
                    .hint("send one command per SSH call"),
            );
        }
        return Decision {
            outcome: Outcome::Mcp,
            rule: "mcp".to_string(),
            reason: "an MCP session: each tool call is decided as a command of its own".to_string(),
            hint: None,
            argv,
            needs: Needs::default(),
            details: Vec::new(),
        };
    }
    match classify(policy, &argv, facts) {
        Ok(c) if key.may.contains(&c.permission) => Decision {
            reason: match c.tier {
                Tier::Allow => format!("allowed by rule `{}`", c.rule),
                Tier::Ask => "a deploy: a human must approve it".to_string(),
            },
            outcome: match c.tier {
                Tier::Allow => Outcome::Allow(c.plan),
                Tier::Ask => Outcome::Ask(c.plan),
            },
            rule: c.rule,
            hint: None,
            argv,
            needs: c.needs,
            details: c.details,
        },
        Ok(c) => {
            let reason = format!("this key may not use rule `{}`", c.permission);
            refused(
                RefusalKind::Policy,
                argv,
                Refusal::new(c.rule, reason).hint(HELP_HINT),
            )
        }
        Err(r) => refused(RefusalKind::Policy, argv, r),
    }
}

/// The label this request runs under, and its policy: the label given, or the one whose
/// pinned key authenticated; then the key's client networks and pinned key are checked.
pub fn identity<'p>(
    policy: &'p Policy,
    request: &Request<'_>,
) -> Result<(&'p str, &'p KeyPolicy), Refusal> {
    let refuse = |reason: &str| Err(Refusal::new("identity", reason));
    let found = if request.by_key {
        let Some(fp) = request.fingerprint else {
            return refuse(
                "cannot tell which key authenticated (sshd needs `ExposeAuthInfo yes`), and the label comes from it here",
            );
        };
        let Some((label, key)) = policy.label_pinning(fp) else {
            return refuse("no label in the rules pins the key that authenticated");
        };
        if request.key.is_some_and(|given| given != label) {
            return refuse(
                "the forced command names another label than the one of the key that authenticated",
            );
        }
        (label, key)
    } else {
        match request
            .key
            .and_then(|given| policy.keys.get_key_value(given))
        {
            Some((label, key)) => (label.as_str(), key),
            None => return refuse("this key's label is not in the rules; nothing is allowed"),
        }
    };
    let (_, key) = found;
    if !key.from.is_empty()
        && !request
            .client
            .is_some_and(|ip| key.from.iter().any(|n| n.contains(ip)))
    {
        return refuse("this key may not connect from this address");
    }
    if let Some((_, pinned)) = &key.public_key {
        match request.fingerprint {
            Some(fp) if fp == pinned => {}
            Some(_) => {
                return refuse(
                    "the key that authenticated is not the one registered for this label",
                );
            }
            None => {
                return refuse(
                    "cannot tell which key authenticated (sshd needs `ExposeAuthInfo yes`), and this label pins one",
                );
            }
        }
    }
    Ok(found)
}

fn refused(kind: RefusalKind, argv: Vec<String>, r: Refusal) -> Decision {
    Decision {
        outcome: Outcome::Refuse(kind),
        rule: r.rule,
        reason: r.reason,
        hint: r.hint,
        argv,
        needs: Needs::default(),
        details: Vec::new(),
    }
}

/// Tokenize and classify, for a rule's own examples: which rule, if any, accepts `raw`.
pub fn classify_raw(policy: &Policy, raw: &str) -> Result<Classified, Refusal> {
    let argv = tokenize(raw).map_err(|e| Refusal::new("tokenize", e.to_string()))?;
    classify(policy, &argv, &Facts::Offline)
}

/// Which rule accepts these words, independent of any key.
pub fn classify(policy: &Policy, argv: &[String], facts: &Facts) -> Result<Classified, Refusal> {
    let (sudo, rest) = strip_sudo(argv)?;
    let Some((program, args)) = rest.split_first() else {
        return Err(Refusal::new("sudo", "`sudo` needs a command").hint(HELP_HINT));
    };
    if program.contains('=') {
        return Err(Refusal::new(
            "environment",
            format!("`{program}` sets an environment variable: the environment of every command is fixed by the gateway"),
        )
        .hint("send the command without `NAME=value` in front"));
    }
    if program.contains('/') {
        return Err(Refusal::new(
            "program",
            format!("`{program}` is a path: programs are named, never given by path"),
        )
        .hint(HELP_HINT));
    }
    match program.as_str() {
        "docker" => docker::check(policy, sudo, args, facts),
        "nh" | "nixos-rebuild" => deploy::gateway::check(policy, program, args),
        name => programs::host_program(policy, sudo, name, args),
    }
}

/// `sudo [-n] PROGRAM ...`: the only sudo flag accepted is `-n`, which the gateway sets anyway.
fn strip_sudo(argv: &[String]) -> Result<(bool, &[String]), Refusal> {
    let Some((first, mut rest)) = argv.split_first() else {
        return Err(Refusal::new("-", "empty command"));
    };
    if first != "sudo" {
        return Ok((false, argv));
    }
    if let Some((flag, after)) = rest.split_first()
        && flag == "-n"
    {
        rest = after;
    }
    if let Some(flag) = rest.first().filter(|a| a.starts_with('-')) {
        return Err(Refusal::new(
            "sudo",
            format!("sudo flag `{flag}` is not accepted: the gateway runs sudo itself as `sudo -n --` with a fixed command"),
        )
        .hint("write `sudo PROGRAM ARGS`, for example `sudo iptables -L -n`"));
    }
    Ok((true, rest))
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    // Generated with `ssh-keygen -t ed25519` (the same keys as tests/support/world.rs).
    const PINNED_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBnhR3kRTRLTegHjS85xsaF59JzZ6iIFhCZphnjIGICs test@agent-gate";
    const PINNED_FP: &str = "SHA256:n1ThldcEJ5O0cPbS4NSbo838Eg5eN8wK+D8UDIzKNF4";
    const OTHER_FP: &str = "SHA256:H/5LDx0gVh/wdwubgYP8ICZZPSbYBEEBUBNiUKSA1p4";

    const SUDO: &str = "/run/wrappers/bin/sudo";
    const INSIDE: &str = "10.88.3.4";

    /// `hermes` may do everything from 10.88.0.0/16; `pinned` has a public key and may run
    /// `uptime`; `narrow` may run only `uptime`.
    fn rules() -> String {
        format!(
            r"version: 1
sudo: {SUDO}
keys:
  hermes:
    may: [docker, deploy, iptables-list, uptime]
    from: [10.88.0.0/16]
  pinned:
    may: [uptime]
    public_key: {PINNED_KEY}
  narrow:
    may: [uptime]
docker:
  program: /usr/bin/docker
  config: /etc/agent-gate/docker-config
  subcommands:
    ps: [all]
programs:
  - id: iptables-list
    command: iptables
    path: /usr/bin/iptables
    sudo: true
    options:
      - {{short: L, long: list}}
      - {{short: n, long: numeric}}
    exactly_one_of: [[list]]
    timeout: 30
  - id: uptime
    command: uptime
    path: /usr/bin/uptime
deploy:
  flake: /etc/nixos
  nh: /usr/bin/nh
"
        )
    }

    fn policy() -> Policy {
        crate::rules::parse(&rules()).unwrap()
    }

    /// A request as `hermes` from inside its network: the common case of the table.
    fn hermes(raw: &str) -> Request<'_> {
        Request {
            raw,
            key: Some("hermes"),
            by_key: false,
            client: Some(INSIDE.parse().unwrap()),
            fingerprint: None,
        }
    }

    fn as_key<'a>(raw: &'a str, key: &'a str) -> Request<'a> {
        Request {
            key: Some(key),
            client: None,
            ..hermes(raw)
        }
    }

    struct Row<'a> {
        request: Request<'a>,
        word: &'static str,
        outcome: Expect,
        rule: &'static str,
        reason: &'static str,
    }

    #[derive(Debug)]
    enum Expect {
        /// Allowed, with the plan's argv.
        Allow(&'static [&'static str]),
        /// Ask, with the plan's argv.
        Ask(&'static [&'static str]),
        Help,
        Refuse(RefusalKind),
    }

    fn row<'a>(
        request: Request<'a>,
        word: &'static str,
        outcome: Expect,
        rule: &'static str,
        reason: &'static str,
    ) -> Row<'a> {
        Row {
            request,
            word,
            outcome,
            rule,
            reason,
        }
    }

    fn check(policy: &Policy, rows: &[Row<'_>]) {
        for (i, r) in rows.iter().enumerate() {
            let d = decide(policy, &r.request);
            let at = format!("row {i} `{}` -> {d:?}", r.request.raw);
            assert_eq!(d.decision_word(), r.word, "{at}");
            assert_eq!(d.rule, r.rule, "{at}");
            assert!(
                d.reason.contains(r.reason),
                "{at}: reason should contain {:?}",
                r.reason
            );
            match (&r.outcome, &d.outcome) {
                (Expect::Allow(argv), Outcome::Allow(plan))
                | (Expect::Ask(argv), Outcome::Ask(plan)) => {
                    assert_eq!(plan.argv(), *argv, "{at}");
                    assert_eq!(d.plan(), Some(plan), "{at}");
                    assert_eq!(d.hint, None, "{at}");
                }
                (Expect::Help, Outcome::Help) => assert_eq!(d.plan(), None, "{at}"),
                (Expect::Refuse(want), Outcome::Refuse(got)) => {
                    assert_eq!(want, got, "{at}");
                    assert_eq!(d.plan(), None, "{at}");
                }
                (want, _) => panic!("{at}: expected {want:?}"),
            }
        }
    }

    #[test]
    fn decisions() {
        use Expect::{Allow, Ask, Help, Refuse};
        use RefusalKind::{Identity, Login, Policy as Pol, Syntax};
        let p = policy();
        let pinned = |raw, fingerprint| Request {
            fingerprint,
            ..as_key(raw, "pinned")
        };
        let rows = [
            // The tokenizer and the empty command come first.
            row(hermes(""), "refuse", Refuse(Login), "-", "no login shell"),
            row(
                hermes("   "),
                "refuse",
                Refuse(Login),
                "-",
                "no login shell",
            ),
            row(
                hermes("echo $HOME"),
                "refuse",
                Refuse(Syntax),
                "tokenize",
                "shell syntax `$`",
            ),
            row(
                hermes("uptime; id"),
                "refuse",
                Refuse(Syntax),
                "tokenize",
                "shell syntax `;`",
            ),
            row(
                hermes("uptime 'open"),
                "refuse",
                Refuse(Syntax),
                "tokenize",
                "unterminated single quote",
            ),
            // help is answered for a known label only.
            row(
                hermes("help"),
                "allow",
                Help,
                "help",
                "list what this key may run",
            ),
            row(
                as_key("help", "nobody"),
                "refuse",
                Refuse(Identity),
                "identity",
                "label is not in the rules",
            ),
            row(
                hermes("help me"),
                "refuse",
                Refuse(Pol),
                "-",
                "`help` is refused: it is not a command this gateway runs",
            ),
            // Identity: the label, its networks.
            row(
                as_key("uptime", "nobody"),
                "refuse",
                Refuse(Identity),
                "identity",
                "label is not in the rules",
            ),
            row(
                Request {
                    key: None,
                    ..hermes("uptime")
                },
                "refuse",
                Refuse(Identity),
                "identity",
                "label is not in the rules",
            ),
            row(
                Request {
                    client: Some("192.0.2.7".parse().unwrap()),
                    ..hermes("uptime")
                },
                "refuse",
                Refuse(Identity),
                "identity",
                "may not connect from this address",
            ),
            row(
                Request {
                    client: None,
                    ..hermes("uptime")
                },
                "refuse",
                Refuse(Identity),
                "identity",
                "may not connect from this address",
            ),
            row(
                Request {
                    client: Some("::ffff:10.88.0.1".parse().unwrap()),
                    ..hermes("uptime")
                },
                "allow",
                Allow(&["/usr/bin/uptime"]),
                "uptime",
                "allowed by rule `uptime`",
            ),
            // A label that pins a public key.
            row(
                pinned("uptime", Some(PINNED_FP)),
                "allow",
                Allow(&["/usr/bin/uptime"]),
                "uptime",
                "allowed by rule `uptime`",
            ),
            row(
                pinned("uptime", Some(OTHER_FP)),
                "refuse",
                Refuse(Identity),
                "identity",
                "not the one registered for this label",
            ),
            row(
                pinned("uptime", None),
                "refuse",
                Refuse(Identity),
                "identity",
                "this label pins one",
            ),
            // The label taken from the key that authenticated.
            row(
                Request {
                    key: None,
                    by_key: true,
                    fingerprint: Some(PINNED_FP),
                    ..hermes("uptime")
                },
                "allow",
                Allow(&["/usr/bin/uptime"]),
                "uptime",
                "allowed by rule `uptime`",
            ),
            row(
                Request {
                    key: Some("pinned"),
                    by_key: true,
                    fingerprint: Some(PINNED_FP),
                    ..hermes("uptime")
                },
                "allow",
                Allow(&["/usr/bin/uptime"]),
                "uptime",
                "allowed by rule `uptime`",
            ),
            row(
                Request {
                    key: Some("hermes"),
                    by_key: true,
                    fingerprint: Some(PINNED_FP),
                    ..hermes("uptime")
                },
                "refuse",
                Refuse(Identity),
                "identity",
                "names another label",
            ),
            row(
                Request {
                    key: None,
                    by_key: true,
                    fingerprint: Some(OTHER_FP),
                    ..hermes("uptime")
                },
                "refuse",
                Refuse(Identity),
                "identity",
                "no label in the rules pins the key",
            ),
            row(
                Request {
                    key: Some("hermes"),
                    by_key: true,
                    fingerprint: None,
                    ..hermes("uptime")
                },
                "refuse",
                Refuse(Identity),
                "identity",
                "ExposeAuthInfo yes",
            ),
            // The key's `may`.
            row(
                as_key("sudo iptables -L", "narrow"),
                "refuse",
                Refuse(Pol),
                "iptables-list",
                "this key may not use rule `iptables-list`",
            ),
            row(
                as_key("docker ps -a", "narrow"),
                "refuse",
                Refuse(Pol),
                "docker ps",
                "this key may not use rule `docker`",
            ),
            row(
                as_key("nh os switch", "narrow"),
                "refuse",
                Refuse(Pol),
                "deploy",
                "this key may not use rule `deploy`",
            ),
            row(
                as_key("uptime", "narrow"),
                "allow",
                Allow(&["/usr/bin/uptime"]),
                "uptime",
                "allowed by rule `uptime`",
            ),
            // Words no rule can lift.
            row(
                hermes("PATH=/tmp uptime"),
                "refuse",
                Refuse(Pol),
                "environment",
                "`PATH=/tmp` sets an environment variable",
            ),
            row(
                hermes("sudo LD_PRELOAD=/tmp/x.so iptables -L"),
                "refuse",
                Refuse(Pol),
                "environment",
                "sets an environment variable",
            ),
            row(
                hermes("/usr/bin/uptime"),
                "refuse",
                Refuse(Pol),
                "program",
                "`/usr/bin/uptime` is a path",
            ),
            row(
                hermes("sudo /usr/bin/iptables -L"),
                "refuse",
                Refuse(Pol),
                "program",
                "is a path",
            ),
            row(
                hermes("./uptime"),
                "refuse",
                Refuse(Pol),
                "program",
                "is a path",
            ),
            // sudo.
            row(
                hermes("sudo -u root iptables -L"),
                "refuse",
                Refuse(Pol),
                "sudo",
                "sudo flag `-u` is not accepted",
            ),
            row(
                hermes("sudo -n -s"),
                "refuse",
                Refuse(Pol),
                "sudo",
                "sudo flag `-s` is not accepted",
            ),
            row(
                hermes("sudo -- iptables -L"),
                "refuse",
                Refuse(Pol),
                "sudo",
                "sudo flag `--` is not accepted",
            ),
            row(
                hermes("sudo"),
                "refuse",
                Refuse(Pol),
                "sudo",
                "`sudo` needs a command",
            ),
            row(
                hermes("sudo -n"),
                "refuse",
                Refuse(Pol),
                "sudo",
                "`sudo` needs a command",
            ),
            row(
                hermes("sudo -n iptables -L"),
                "allow",
                Allow(&[SUDO, "-n", "--", "/usr/bin/iptables", "--list"]),
                "iptables-list",
                "allowed by rule `iptables-list`",
            ),
            row(
                hermes("sudo iptables -L -n"),
                "allow",
                Allow(&[SUDO, "-n", "--", "/usr/bin/iptables", "--list", "--numeric"]),
                "iptables-list",
                "allowed by rule `iptables-list`",
            ),
            row(
                hermes("sudo iptables -n"),
                "refuse",
                Refuse(Pol),
                "iptables-list",
                "sudo iptables: ",
            ),
            row(
                hermes("iptables -L"),
                "refuse",
                Refuse(Pol),
                "iptables-list",
                "`iptables` runs as root: write `sudo iptables ...`",
            ),
            row(
                hermes("sudo uptime"),
                "refuse",
                Refuse(Pol),
                "uptime",
                "`uptime` does not run through sudo here",
            ),
            row(
                hermes("uptime -p"),
                "refuse",
                Refuse(Pol),
                "uptime",
                "uptime: ",
            ),
            // Shells, wrappers, unknown programs.
            row(
                hermes("bash -c id"),
                "refuse",
                Refuse(Pol),
                "-",
                "`bash` is refused: no shell is available",
            ),
            row(
                hermes("sudo sh"),
                "refuse",
                Refuse(Pol),
                "-",
                "`sh` is refused: no shell is available",
            ),
            row(
                hermes("env uptime"),
                "refuse",
                Refuse(Pol),
                "-",
                "`env` is refused: wrappers that run other programs are not accepted",
            ),
            row(
                hermes("timeout 5 uptime"),
                "refuse",
                Refuse(Pol),
                "-",
                "`timeout` is refused: wrappers",
            ),
            row(
                hermes("sudo su"),
                "refuse",
                Refuse(Pol),
                "-",
                "the only elevation is `sudo`",
            ),
            row(
                hermes("rsync -a / x:"),
                "refuse",
                Refuse(Pol),
                "-",
                "file transfer is not available",
            ),
            row(
                hermes("sudo frobnicate"),
                "refuse",
                Refuse(Pol),
                "-",
                "it is not a diagnostic declared for sudo",
            ),
            row(
                hermes("frobnicate"),
                "refuse",
                Refuse(Pol),
                "-",
                "it is not a command this gateway runs",
            ),
            // docker, through its own checker.
            row(
                hermes("docker ps -a"),
                "allow",
                Allow(&["/usr/bin/docker", "ps", "-a"]),
                "docker ps",
                "allowed by rule `docker ps`",
            ),
            row(
                hermes("docker -H tcp://10.0.0.5:2375 ps"),
                "refuse",
                Refuse(Pol),
                "docker",
                "global options (`-H`",
            ),
            // Deploys are asked for.
            row(
                hermes("nh os switch"),
                "ask",
                Ask(&[
                    "/usr/bin/nh",
                    "os",
                    "switch",
                    "--bypass-root-check",
                    "/etc/nixos",
                ]),
                "deploy",
                "a human must approve it",
            ),
            row(
                hermes("nh os switch /etc/nixos"),
                "ask",
                Ask(&[
                    "/usr/bin/nh",
                    "os",
                    "switch",
                    "--bypass-root-check",
                    "/etc/nixos",
                ]),
                "deploy",
                "a human must approve it",
            ),
            row(
                hermes("nh os switch /tmp/evil"),
                "refuse",
                Refuse(Pol),
                "deploy",
                "takes no options or other flake",
            ),
            row(
                hermes("nh os boot"),
                "refuse",
                Refuse(Pol),
                "deploy",
                "`nh os boot` is not a deploy",
            ),
            row(
                hermes("nixos-rebuild switch --flake /etc/nixos"),
                "refuse",
                Refuse(Pol),
                "deploy",
                "deploys through nixos-rebuild are not configured",
            ),
        ];
        check(&p, &rows);
    }

    #[test]
    fn refusals_carry_the_words_and_a_hint() {
        let p = policy();
        let d = decide(&p, &hermes("sudo -u root iptables -L"));
        assert_eq!(d.argv, ["sudo", "-u", "root", "iptables", "-L"]);
        assert!(d.hint.as_deref().unwrap().contains("sudo iptables -L -n"));
        let d = decide(&p, &as_key("uptime", "nobody"));
        assert_eq!(d.argv, ["uptime"]);
        let d = decide(&p, &hermes("echo $HOME"));
        assert!(d.argv.is_empty(), "{d:?}");
        assert!(d.hint.as_deref().unwrap().contains("single-quote"));
        let d = decide(&p, &hermes(""));
        assert_eq!(d.hint.as_deref(), Some(HELP_HINT));
        let d = decide(&p, &hermes("sudo iptables -n"));
        assert!(
            d.hint
                .as_deref()
                .unwrap()
                .starts_with("allowed: sudo iptables "),
            "{d:?}"
        );
    }

    #[test]
    fn plans_take_the_rules_defaults_and_timeouts() {
        let p = policy();
        let d = decide(&p, &hermes("uptime"));
        let plan = d.plan().unwrap();
        assert_eq!(plan.timeout(), std::time::Duration::from_secs(600));
        assert!(!plan.stdin());
        assert_eq!(plan.open_files(), 1024);
        let path = plan.env().iter().find(|(n, _)| n == "PATH").unwrap();
        assert_eq!(
            path.1,
            "/run/wrappers/bin:/run/current-system/sw/bin:/usr/bin:/bin"
        );
        let d = decide(&p, &hermes("sudo iptables -L"));
        assert_eq!(
            d.plan().unwrap().timeout(),
            std::time::Duration::from_secs(30)
        );
    }

    #[test]
    fn identity_names_the_label() {
        let p = policy();
        let rows: [(Request<'_>, Option<&str>); 4] = [
            (hermes("x"), Some("hermes")),
            (as_key("x", "narrow"), Some("narrow")),
            (
                Request {
                    key: None,
                    by_key: true,
                    fingerprint: Some(PINNED_FP),
                    ..hermes("x")
                },
                Some("pinned"),
            ),
            (as_key("x", "pinned"), None),
        ];
        for (request, want) in rows {
            let got = identity(&p, &request).ok().map(|(label, _)| label);
            assert_eq!(got, want, "{request:?}");
        }
        let (_, key) = identity(&p, &hermes("x")).unwrap();
        assert!(key.may.contains("iptables-list") && !key.may.contains("ssh"));
        let refusal = identity(&p, &as_key("x", "pinned")).unwrap_err();
        assert_eq!(refusal.rule, "identity");
    }

    #[test]
    fn classify_names_rule_and_permission() {
        let p = policy();
        // (raw, rule, permission, tier)
        let rows = [
            ("docker ps", "docker ps", "docker", Tier::Allow),
            (
                "sudo iptables -L",
                "iptables-list",
                "iptables-list",
                Tier::Allow,
            ),
            ("uptime", "uptime", "uptime", Tier::Allow),
            ("nh os switch", "deploy", "deploy", Tier::Ask),
            ("sudo nh os switch", "deploy", "deploy", Tier::Ask),
        ];
        for (raw, rule, permission, tier) in rows {
            let c = classify_raw(&p, raw).unwrap();
            assert_eq!(
                (c.rule.as_str(), c.permission.as_str(), c.tier),
                (rule, permission, tier),
                "{raw}"
            );
        }
        let r = classify_raw(&p, "echo `id`").unwrap_err();
        assert_eq!(r.rule, "tokenize");
        let r = classify(&p, &[], &Facts::Offline).unwrap_err();
        assert_eq!((r.rule.as_str(), r.reason.as_str()), ("-", "empty command"));
    }

    #[test]
    fn strip_sudo_accepts_only_dash_n() {
        /// `Ok((sudo, rest))`, or `Err(the refused flag)`.
        type Stripped = Result<(bool, &'static [&'static str]), &'static str>;
        let rows: [(&[&str], Stripped); 8] = [
            (&["uptime"], Ok((false, &["uptime"]))),
            (&["uptime", "-n"], Ok((false, &["uptime", "-n"]))),
            (&["sudo", "ss", "-n"], Ok((true, &["ss", "-n"]))),
            (&["sudo", "-n", "ss"], Ok((true, &["ss"]))),
            (&["sudo", "-n"], Ok((true, &[]))),
            (&["sudo", "-i"], Err("-i")),
            (&["sudo", "-n", "-n", "ss"], Err("-n")),
            (&["sudo", "-nu", "root", "ss"], Err("-nu")),
        ];
        for (argv, want) in rows {
            let argv: Vec<String> = argv.iter().map(ToString::to_string).collect();
            let got = strip_sudo(&argv);
            match (want, got) {
                (Ok((sudo, rest)), Ok((got_sudo, got_rest))) => {
                    assert_eq!(sudo, got_sudo, "{argv:?}");
                    assert_eq!(got_rest, rest, "{argv:?}");
                }
                (Err(flag), Err(r)) => {
                    assert_eq!(r.rule, "sudo", "{argv:?}");
                    assert!(r.reason.contains(&format!("`{flag}`")), "{argv:?}: {r:?}");
                }
                (want, got) => panic!("{argv:?}: want {want:?}, got {got:?}"),
            }
        }
        assert!(strip_sudo(&[]).is_err());
    }

    #[test]
    fn without_docker_or_deploy_those_are_refused() {
        let p = crate::rules::parse(
            "version: 1
keys:
  hermes:
    may: [uptime]
programs:
  - id: uptime
    command: uptime
    path: /usr/bin/uptime
",
        )
        .unwrap();
        let rows = [
            row(
                as_key("docker ps", "hermes"),
                "refuse",
                Expect::Refuse(RefusalKind::Policy),
                "docker",
                "docker is not configured",
            ),
            row(
                as_key("nh os switch", "hermes"),
                "refuse",
                Expect::Refuse(RefusalKind::Policy),
                "deploy",
                "deploys are not configured",
            ),
            row(
                as_key("uptime", "hermes"),
                "allow",
                Expect::Allow(&["/usr/bin/uptime"]),
                "uptime",
                "allowed",
            ),
        ];
        check(&p, &rows);
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        let any = Request {
            client: Some(client),
            ..as_key("uptime", "hermes")
        };
        assert_eq!(decide(&p, &any).decision_word(), "allow");
    }
}
