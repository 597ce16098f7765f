//! The only reader of the process's arguments and of the SSH_* environment.
//!
//! sshd starts the gateway in one of two ways:
//! - forced: `agent-gate --rules FILE [--key LABEL]` from `command=` or `ForceCommand`, with
//!   the agent's command in SSH_ORIGINAL_COMMAND;
//! - login shell: `agent-gate -c COMMAND`, when agent-gate is the account's shell. COMMAND is
//!   then either the agent's command or, when a forced command is configured as well, that
//!   forced command (sshd runs every command through the account's shell), with the agent's
//!   command in SSH_ORIGINAL_COMMAND. Which of the two COMMAND is cannot be known for sure, so
//!   a forced command seen through `-c` may only repeat what the gateway already knows (the
//!   same rules file, the label of the key that authenticated) and can change nothing.

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::cli::Cli;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Forced,
    LoginShell,
}

#[derive(Debug)]
pub struct Invocation {
    pub cli: Cli,
    pub entry: Entry,
    /// The agent's command, or `None` when there is none (an interactive login). Bytes that
    /// are not UTF-8 become U+FFFD, which the tokenizer refuses.
    pub command: Option<String>,
    /// The rules file to load.
    pub rules: PathBuf,
    /// The label named by the forced command, if any.
    pub key: Option<String>,
    /// A forced command seen through `-c` that tried to change the configuration.
    pub error: Option<String>,
    /// The client address from SSH_CONNECTION.
    pub client: Option<IpAddr>,
    /// SHA256 fingerprint of the public key that authenticated, from the file named by
    /// SSH_USER_AUTH (sshd's `ExposeAuthInfo yes`).
    pub fingerprint: Option<String>,
}

/// sshd's ExposeAuthInfo file is a few lines; anything larger is not one.
const MAX_USER_AUTH_BYTES: u64 = 64 * 1024;

impl Invocation {
    pub fn from_env() -> Result<Self, clap::Error> {
        let mut inv = Self::from_parts(
            std::env::args_os(),
            std::env::var_os("SSH_ORIGINAL_COMMAND"),
            std::env::var_os("SSH_CONNECTION"),
        )?;
        inv.fingerprint = std::env::var_os("SSH_USER_AUTH").and_then(|path| {
            use std::io::Read;
            let mut text = String::new();
            std::fs::File::open(path)
                .and_then(|f| f.take(MAX_USER_AUTH_BYTES).read_to_string(&mut text))
                .ok()?;
            crate::sshkey::authenticated_fingerprint(&text)
        });
        Ok(inv)
    }

    pub fn from_parts(
        args: impl IntoIterator<Item = OsString>,
        original: Option<OsString>,
        connection: Option<OsString>,
    ) -> Result<Self, clap::Error> {
        let cli = Cli::try_parse_from(args)?;
        let original = original.map(|c| c.to_string_lossy().into_owned());
        let client = connection.and_then(|c| {
            c.to_str()
                .and_then(|s| s.split(' ').next())
                .and_then(|ip| ip.parse().ok())
        });
        let rules = cli.forced.rules.clone();
        let mut inv = Self {
            entry: Entry::Forced,
            command: original.clone(),
            rules,
            key: cli.forced.key.clone(),
            error: None,
            client,
            fingerprint: None,
            cli,
        };
        if let Some(shell) = inv.cli.forced.shell_command.clone() {
            inv.entry = Entry::LoginShell;
            match self_invocation(&shell) {
                None => inv.command = Some(shell),
                Some(words) => {
                    inv.command = original;
                    if let Err(e) = inv.take_forced_flags(&words) {
                        inv.error = Some(e);
                    }
                }
            }
        }
        Ok(inv)
    }

    /// Read a forced command seen through `-c`: `--rules` must name the rules file this
    /// gateway already uses and `--key` is kept only to be checked against the key that
    /// authenticated; anything else is a configuration error.
    fn take_forced_flags(&mut self, words: &[String]) -> Result<(), String> {
        let mut words = words.iter();
        while let Some(word) = words.next() {
            let (flag, attached) = match word.split_once('=') {
                Some((flag, value)) => (flag, Some(value.to_string())),
                None => (word.as_str(), None),
            };
            let mut value = || {
                attached
                    .clone()
                    .or_else(|| words.next().cloned())
                    .ok_or_else(|| format!("`{flag}` needs a value in the forced command"))
            };
            match flag {
                "--rules" => {
                    let rules = value()?;
                    if std::path::Path::new(&rules) != self.rules {
                        return Err(format!(
                            "the forced command names the rules file `{rules}`, but in login-shell mode the rules are `{}`",
                            self.rules.display()
                        ));
                    }
                }
                "--key" => self.key = Some(value()?),
                other => {
                    return Err(format!(
                        "the forced command passes `{other}`; in login-shell mode it may pass only --rules and --key"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// When `-c` carries a forced command (`/path/agent-gate --rules ... --key ...`), its words
/// after the program; `None` when it is the agent's own command.
fn self_invocation(command: &str) -> Option<Vec<String>> {
    let words = crate::tokenize::tokenize(command).ok()?;
    let (program, rest) = words.split_first()?;
    let name = program.rsplit('/').next().unwrap_or_default();
    (name == "agent-gate").then(|| rest.to_vec())
}
