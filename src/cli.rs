//! The command line. Forced mode is the bare invocation that sshd runs:
//! `agent-gate --rules FILE --key LABEL` with the agent's command in SSH_ORIGINAL_COMMAND.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use crate::policy::DEFAULT_RULES;

#[derive(Debug, Parser)]
#[command(
    name = "agent-gate",
    version,
    about = "Restricted SSH forced-command gateway for AI agents",
    long_about = "Run by sshd as the forced command of an agent's key: reads SSH_ORIGINAL_COMMAND, \
                  allows it only if a rule accepts every word, audits the decision to syslog, then \
                  runs exactly the approved argv. No shell, ever."
)]
pub struct Cli {
    #[command(flatten)]
    pub forced: Forced,
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

#[derive(Debug, Args)]
pub struct Forced {
    /// The rules file (must be root-owned and not group/world-writable in forced mode).
    #[arg(long, value_name = "FILE", default_value = DEFAULT_RULES)]
    pub rules: PathBuf,
    /// The key label this connection authenticated as (set in authorized_keys).
    #[arg(long, value_name = "LABEL")]
    pub key: Option<String>,
    /// Syslog socket for audit records; overrides the rules file (default /dev/log).
    #[arg(long, value_name = "PATH")]
    pub audit_socket: Option<String>,
    /// Login-shell mode: sshd runs the account's shell as `SHELL -c COMMAND`. COMMAND is the
    /// agent's command, or the forced command from authorized_keys (`agent-gate --key L`),
    /// in which case the agent's command is in SSH_ORIGINAL_COMMAND. The label always comes
    /// from the key that authenticated (ExposeAuthInfo), never from COMMAND.
    #[arg(
        short = 'c',
        value_name = "COMMAND",
        conflicts_with = "key",
        allow_hyphen_values = true
    )]
    pub shell_command: Option<String>,
    /// Set by the gateway's MCP server when it runs one tool call: the session it belongs to.
    #[arg(long, value_name = "ID", hide = true)]
    pub session: Option<String>,
    /// Set with --session: the call's number in the session.
    #[arg(long, value_name = "N", hide = true, requires = "session")]
    pub call: Option<u64>,
}

impl Cli {
    /// The command line as sshd runs it for an agent's key, read without building clap's
    /// parser (about a third of a forced-mode decision's instructions): `--rules FILE`,
    /// `--key LABEL`, `--audit-socket PATH`, and from the MCP server `--session ID` and `--call
    /// N`, each at most once, in any order, each name and value a word of its own. `None` for
    /// anything else (another spelling, a value starting with `-`, a subcommand, `-c`), which
    /// clap reads; where both read a line they read it alike (a test compares them).
    pub fn forced_form(args: &[std::ffi::OsString]) -> Option<Cli> {
        let mut forced = Forced {
            rules: PathBuf::from(DEFAULT_RULES),
            key: None,
            audit_socket: None,
            shell_command: None,
            session: None,
            call: None,
        };
        let mut rules = None;
        let mut words = args.get(1..)?.iter();
        while let Some(name) = words.next() {
            let value = words.next()?.to_str()?;
            if value.is_empty() || value.starts_with('-') {
                return None;
            }
            let once = |slot: &mut Option<String>| slot.replace(value.to_string()).is_none();
            let fresh = match name.to_str()? {
                "--rules" => rules.replace(PathBuf::from(value)).is_none(),
                "--key" => once(&mut forced.key),
                "--audit-socket" => once(&mut forced.audit_socket),
                "--session" => once(&mut forced.session),
                "--call" => forced.call.replace(value.parse().ok()?).is_none(),
                _ => return None,
            };
            if !fresh {
                return None;
            }
        }
        if forced.call.is_some() && forced.session.is_none() {
            return None;
        }
        if let Some(rules) = rules {
            forced.rules = rules;
        }
        Some(Cli {
            forced,
            command: None,
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Print the decision for a command without running anything.
    Explain(Explain),
    /// Validate a rules file and run every rule's examples.
    Check(Check),
    /// Check the rules (as `check`) and write their compiled record, which the gateway loads
    /// instead of the YAML while the rules file is exactly the one compiled (run it as root
    /// after every change of the rules, and after every upgrade of the gateway).
    Compile(Compile),
    /// Print what a key may run.
    List(List),
    /// Print an installation piece made from the rules: authorized_keys lines, the sshd
    /// Match block, or the sudoers lines.
    Render(Render),
    /// As root on the host: compare what is installed (sudoers in use, authorized_keys, sshd's
    /// settings for the account) with what the rules render, and check the programs, the
    /// audit socket, the approval store and the docker config. One line per finding, with its
    /// fix; exit 0 only when every check holds, 78 otherwise.
    Doctor(Doctor),
    /// As root: the deploy requests waiting for a human, with what each is bound to.
    Pending(Pending),
    /// As root: approve a deploy request (one run, bound to the flake as it is now).
    Approve(Approve),
    /// As root: deny a deploy request.
    Deny(Deny),
    /// Print the man page (roff) or a shell completion script, for packagers.
    Generate(Generate),
    /// The root-side approval step; the gateway starts it through sudo for a deploy.
    #[command(hide = true)]
    DeployStep(DeployStep),
    /// As root, for the agent's MCP session through sudo: one request's state, as JSON.
    #[command(hide = true)]
    DeployStatus(DeployStatus),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Generated {
    Man,
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct Generate {
    #[arg(value_enum)]
    pub what: Generated,
}

#[derive(Debug, Args)]
pub struct Pending {
    #[arg(long, value_name = "FILE", default_value = DEFAULT_RULES)]
    pub rules: PathBuf,
    /// Also list finished, denied and expired requests (kept a week).
    #[arg(long)]
    pub all: bool,
    /// The records as JSON Lines, one request a line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct Approve {
    /// The request id that `agent-gate pending` shows and the agent was told.
    #[arg(value_name = "ID")]
    pub id: String,
    #[arg(long, value_name = "FILE", default_value = DEFAULT_RULES)]
    pub rules: PathBuf,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct Deny {
    #[arg(value_name = "ID")]
    pub id: String,
    #[arg(long, value_name = "FILE", default_value = DEFAULT_RULES)]
    pub rules: PathBuf,
    /// Why; the agent is told.
    #[arg(long, value_name = "TEXT", default_value = "no reason given")]
    pub reason: String,
}

#[derive(Debug, Args)]
pub struct DeployStep {
    #[arg(long, value_name = "FILE")]
    pub rules: PathBuf,
    /// `nh` or `nixos-rebuild`.
    #[arg(long, value_name = "FORM")]
    pub form: String,
    /// The label the agent's key authenticated as.
    #[arg(long, value_name = "LABEL")]
    pub key: String,
    #[arg(long, value_name = "IP")]
    pub client: Option<std::net::IpAddr>,
    #[arg(long, value_name = "SHA256:...")]
    pub fingerprint: Option<String>,
    /// File or join the request and return at once (an MCP call), whatever `wait_seconds`.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Debug, Args)]
pub struct DeployStatus {
    #[arg(long, value_name = "FILE")]
    pub rules: PathBuf,
    /// The label whose request it is: another label's requests are not shown.
    #[arg(long, value_name = "LABEL")]
    pub key: String,
    #[arg(long, value_name = "ID")]
    pub id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Piece {
    /// One `restrict,from=...,command=...` line per label with a public_key.
    AuthorizedKeys,
    /// A `Match User` block for sshd_config.
    Sshd,
    /// NOPASSWD lines for exactly the sudo commands in the rules (check with `visudo -c -f`).
    Sudoers,
}

#[derive(Debug, Args)]
pub struct Render {
    /// What to render.
    #[arg(value_enum)]
    pub piece: Piece,
    #[arg(long, value_name = "FILE")]
    pub rules: PathBuf,
    /// The account the agent logs in as.
    #[arg(long, value_name = "NAME", default_value = "ai-worker")]
    pub user: String,
    /// The gateway's absolute path on the host (default: this executable).
    #[arg(long, value_name = "PATH")]
    pub gate: Option<String>,
    /// Where the rules file is on the host (default: --rules, made absolute).
    #[arg(long, value_name = "PATH")]
    pub installed_rules: Option<String>,
    /// sshd: add a ForceCommand for the whole account (every label must pin a public_key).
    #[arg(long)]
    pub force_command: bool,
    /// sshd: print sshd's global limits (MaxStartups, MaxSessions) as lines for the top of
    /// sshd_config, instead of the Match block.
    #[arg(long, conflicts_with = "force_command")]
    pub global: bool,
    /// sshd: the agent sessions expected at once, which the global limits are sized for.
    #[arg(long, value_name = "N", default_value_t = crate::render::DEFAULT_SESSIONS,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub sessions: u32,
}

#[derive(Debug, Args)]
pub struct Doctor {
    /// The rules file the gateway reads on this host.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_RULES)]
    pub rules: PathBuf,
    /// The account the agent logs in as.
    #[arg(long, value_name = "NAME", default_value = "ai-worker")]
    pub user: String,
    /// One JSON document: an array of findings, each {check, ok, detail, fix}.
    #[arg(long)]
    pub json: bool,
    /// The sshd configuration to check (passed to `sshd -T` as -f; default sshd's own).
    #[arg(long, value_name = "FILE")]
    pub sshd_config: Option<PathBuf>,
    /// The gateway's absolute path on the host (default: this executable).
    #[arg(long, value_name = "PATH")]
    pub gate: Option<String>,
    /// The client address sshd's Match blocks are evaluated for (`sshd -T -C addr=`).
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    pub client: std::net::IpAddr,
    /// The agent sessions expected at once: sshd's MaxStartups and MaxSessions below it
    /// fail. Without it they are reported as information.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub sessions: Option<u32>,
}

#[derive(Debug, Args)]
pub struct Explain {
    #[arg(long, value_name = "FILE")]
    pub rules: PathBuf,
    #[arg(long, value_name = "LABEL")]
    pub key: String,
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Read JSON Lines from stdin (each a JSON string: one raw command); answer one line each.
    #[arg(long, conflicts_with = "command")]
    pub batch: bool,
    /// Client address to check the key's `from` networks against.
    #[arg(long, value_name = "IP")]
    pub client: Option<std::net::IpAddr>,
    /// SHA256 fingerprint of the authenticating key (default: the key registered for the label).
    #[arg(long, value_name = "SHA256:...")]
    pub fingerprint: Option<String>,
    /// Do not ask the docker engine what images and volumes are: decide on the string alone
    /// (and say which facts were lacked).
    #[arg(long)]
    pub offline: bool,
    /// The raw command, exactly as the agent would send it.
    #[arg(value_name = "RAW COMMAND", required_unless_present = "batch")]
    pub command: Option<String>,
}

#[derive(Debug, Args)]
pub struct Check {
    #[arg(long, value_name = "FILE")]
    pub rules: PathBuf,
}

#[derive(Debug, Args)]
pub struct Compile {
    #[arg(long, value_name = "FILE", default_value = DEFAULT_RULES)]
    pub rules: PathBuf,
    /// Where to write the record (default: FILE.compiled, beside the rules, where the
    /// gateway looks for it).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct List {
    #[arg(long, value_name = "FILE")]
    pub rules: PathBuf,
    #[arg(long, value_name = "LABEL")]
    pub key: String,
}

#[cfg(test)]
mod forced_form_tests {
    use std::ffi::OsString;

    use clap::Parser;

    use super::Cli;

    fn argv(words: &[&str]) -> Vec<OsString> {
        std::iter::once("agent-gate")
            .chain(words.iter().copied())
            .map(OsString::from)
            .collect()
    }

    /// Where the fast path reads a line, clap reads the same; the forms sshd and the MCP
    /// server write are read by the fast path.
    fn agrees(words: &[&str]) -> bool {
        let args = argv(words);
        let fast = Cli::forced_form(&args);
        if let Some(fast) = &fast {
            let clap = Cli::try_parse_from(&args).map(|c| format!("{c:?}"));
            assert_eq!(
                Ok(format!("{fast:?}")),
                clap.map_err(|e| e.to_string()),
                "{words:?}"
            );
        }
        fast.is_some()
    }

    #[test]
    fn the_forced_forms_read_as_clap_reads_them() {
        for words in [
            &["--rules", "/etc/agent-gate/rules.yaml", "--key", "hermes"][..],
            &[
                "--key",
                "hermes",
                "--rules",
                "/r.yaml",
                "--audit-socket",
                "/dev/log",
            ],
            &[
                "--rules",
                "/r",
                "--key",
                "h",
                "--session",
                "s1",
                "--call",
                "3",
            ],
            &["--key", "hermes"],
            &[],
        ] {
            assert!(agrees(words), "{words:?} should take the fast path");
        }
        for words in [
            &["--rules=/r", "--key", "h"][..],
            &["--key", "h", "--key", "i"],
            &["--key", "-c"],
            &["-c", "docker ps"],
            &["--key", "h", "explain"],
            &["check", "--rules", "r"],
            &["--call", "3"],
            &["--call", "x", "--session", "s"],
            &["--key", ""],
            &["--key"],
            &["--", "--key", "h"],
        ] {
            assert!(!agrees(words), "{words:?} is clap's");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        #[test]
        fn the_fast_path_never_reads_a_line_otherwise_than_clap(
            picks in proptest::collection::vec(0usize..16, 0..9)
        ) {
            const WORDS: [&str; 16] = [
                "--rules", "--key", "--audit-socket", "--session", "--call", "-c", "--",
                "hermes", "/r.yaml", "7", "+7", "007", "-1", "explain", "--rules=/x", "x y",
            ];
            let words: Vec<&str> = picks.iter().map(|i| WORDS[*i]).collect();
            agrees(&words);
        }
    }
}
