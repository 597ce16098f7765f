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
use std::path::{Path, PathBuf};

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
    /// In login-shell mode, the `-c` string when it ran this gateway again (a forced
    /// command seen through the shell, or the agent's imitation of one): what the records
    /// show as the command when there is no other.
    pub shell: Option<String>,
    /// The client address from SSH_CONNECTION.
    pub client: Option<IpAddr>,
    /// SHA256 fingerprint of the public key that authenticated, from the file named by
    /// SSH_USER_AUTH (sshd's `ExposeAuthInfo yes`).
    pub fingerprint: Option<String>,
    /// SSH_CONNECTION and SSH_USER_AUTH as sshd set them, for the MCP server to pass on to
    /// the gateway it starts for each call.
    pub ssh_env: Vec<(OsString, OsString)>,
}

/// sshd's ExposeAuthInfo file is a few lines; anything larger is not one.
const MAX_USER_AUTH_BYTES: u64 = 64 * 1024;

/// Whether `path` is a name sshd gives its ExposeAuthInfo file: `mkstemp` on
/// `/tmp/sshauth.XXXXXXXXXXXXXXX` (OpenSSH session.c, `prepare_auth_info_file`).
fn is_auth_info_name(path: &Path) -> bool {
    path.to_str()
        .and_then(|p| p.strip_prefix("/tmp/sshauth."))
        .is_some_and(|tail| tail.len() == 15 && tail.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// sshd's auth-info file, trusted only as sshd writes it: its name, a regular file owned by
/// this account with mode 0600 and one link, opened without following a link and without
/// blocking (a FIFO would hold the gateway before any record). Anything else: no
/// fingerprint, so a label that pins a key refuses. A client can send SSH_USER_AUTH itself
/// where an `AcceptEnv` lets it through and sshd did not write its own (a full /tmp).
fn read_auth_info(path: &Path) -> Option<String> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    if !is_auth_info_name(path) {
        return None;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    let ours = meta.uid() == nix::unistd::geteuid().as_raw();
    if !meta.is_file() || !ours || meta.mode() & 0o7777 != 0o600 || meta.nlink() != 1 {
        return None;
    }
    let mut text = String::new();
    file.take(MAX_USER_AUTH_BYTES)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

impl Invocation {
    pub fn from_env() -> Result<Self, clap::Error> {
        let mut inv = Self::from_parts(
            std::env::args_os(),
            std::env::var_os("SSH_ORIGINAL_COMMAND"),
            std::env::var_os("SSH_CONNECTION"),
        )?;
        for name in ["SSH_CONNECTION", "SSH_USER_AUTH"] {
            if let Some(value) = std::env::var_os(name) {
                inv.ssh_env.push((name.into(), value));
            }
        }
        inv.fingerprint = std::env::var_os("SSH_USER_AUTH")
            .and_then(|path| read_auth_info(Path::new(&path)))
            .and_then(|text| crate::sshkey::authenticated_fingerprint(&text));
        Ok(inv)
    }

    pub fn from_parts(
        args: impl IntoIterator<Item = OsString>,
        original: Option<OsString>,
        connection: Option<OsString>,
    ) -> Result<Self, clap::Error> {
        let args: Vec<OsString> = args.into_iter().collect();
        let cli = match Cli::forced_form(&args) {
            Some(cli) => cli,
            None => Cli::try_parse_from(args)?,
        };
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
            shell: None,
            client,
            fingerprint: None,
            ssh_env: Vec::new(),
            cli,
        };
        if let Some(shell) = inv.cli.forced.shell_command.clone() {
            inv.entry = Entry::LoginShell;
            match self_invocation(&shell) {
                None => inv.command = Some(shell),
                Some(words) => {
                    inv.command = original;
                    inv.shell = Some(shell.clone());
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

/// What can still be told of an invocation whose command line did not parse, for its record.
pub struct Unparsed {
    /// The agent's command: `-c`'s string in login-shell mode, else SSH_ORIGINAL_COMMAND.
    pub command: String,
    pub client: Option<IpAddr>,
    /// The forced command's own `--audit-socket`, if it names one.
    pub audit_socket: Option<String>,
    /// The rules file it names (`--rules`), else the default: where the socket is read from.
    pub rules: PathBuf,
}

/// The agent's side of an invocation clap refused, when sshd started it (SSH_CONNECTION is
/// set); `None` at an operator's terminal, where the usage message is the whole answer.
pub fn unparsed() -> Option<Unparsed> {
    let connection = std::env::var("SSH_CONNECTION").ok()?;
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let c_at = args.iter().position(|a| a == "-c");
    let shell = c_at.and_then(|at| args.get(at + 1).cloned());
    // Only the words before `-c` are the installation's; what follows is the agent's.
    let ours = args.get(..c_at.unwrap_or(args.len())).unwrap_or_default();
    let flag = |name: &str| {
        ours.iter()
            .enumerate()
            .find_map(|(i, a)| match a.strip_prefix(name) {
                Some("") => ours.get(i + 1).cloned(),
                Some(rest) => rest.strip_prefix('=').map(String::from),
                None => None,
            })
    };
    let audit_socket = flag("--audit-socket").filter(|s| s.starts_with('/'));
    let rules =
        flag("--rules").map_or_else(|| PathBuf::from(crate::cli::DEFAULT_RULES), PathBuf::from);
    let command = shell
        .or_else(|| {
            std::env::var_os("SSH_ORIGINAL_COMMAND").map(|c| c.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    Some(Unparsed {
        command,
        client: connection.split(' ').next().and_then(|ip| ip.parse().ok()),
        audit_socket,
        rules,
    })
}

/// How the MCP server runs one call: this gateway again, in forced mode on the same rules
/// (and label, when one was given), with the call's command as SSH_ORIGINAL_COMMAND and
/// sshd's connection and auth-info variables, marked with the session and call. Without a
/// label the child takes it from the key that authenticated, as this process did.
#[derive(Debug, Clone)]
pub struct CallTemplate {
    rules: PathBuf,
    key: Option<String>,
    audit_socket: Option<String>,
    ssh_env: Vec<(OsString, OsString)>,
}

impl Invocation {
    /// The command as the records show it: the agent's, else the `-c` string.
    pub fn recorded_command(&self) -> String {
        self.command
            .clone()
            .or_else(|| self.shell.clone())
            .unwrap_or_default()
    }

    /// The label as the records show it before identity holds: a forced command's own
    /// `--key` is the operator's word; in login-shell mode a `--key` may be the agent's, so
    /// it is unknown (`-`) until the key that authenticated says which label it is.
    pub fn claimed_label(&self) -> &str {
        match (self.entry, self.key.as_deref()) {
            (Entry::Forced, Some(key)) => key,
            _ => "-",
        }
    }

    pub fn call_template(&self) -> CallTemplate {
        CallTemplate {
            rules: self.rules.clone(),
            key: self.key.clone(),
            audit_socket: self.cli.forced.audit_socket.clone(),
            ssh_env: self.ssh_env.clone(),
        }
    }
}

impl CallTemplate {
    #[cfg(test)]
    pub fn for_tests() -> Self {
        Self {
            rules: PathBuf::from("/nonexistent/rules.yaml"),
            key: Some("hermes".into()),
            audit_socket: None,
            ssh_env: Vec::new(),
        }
    }

    pub fn argv(
        &self,
        command: &str,
        session: &str,
        call: u64,
    ) -> (Vec<OsString>, Vec<(OsString, OsString)>) {
        let mut args: Vec<OsString> = vec!["--rules".into(), self.rules.clone().into()];
        if let Some(key) = &self.key {
            args.extend(["--key".into(), key.into()]);
        }
        if let Some(socket) = &self.audit_socket {
            args.extend(["--audit-socket".into(), socket.into()]);
        }
        args.extend([
            "--session".into(),
            session.into(),
            "--call".into(),
            call.to_string().into(),
        ]);
        let mut env = self.ssh_env.clone();
        env.push(("SSH_ORIGINAL_COMMAND".into(), command.into()));
        (args, env)
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

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStringExt;

    use super::*;
    use crate::cli::DEFAULT_RULES;

    const GATE: &str = "/nix/store/x/bin/agent-gate";

    fn os(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    fn parts(args: &[&str], original: Option<&str>, connection: Option<&str>) -> Invocation {
        Invocation::from_parts(
            os(args),
            original.map(OsString::from),
            connection.map(OsString::from),
        )
        .unwrap()
    }

    /// What a test row expects of an invocation.
    #[derive(Debug, PartialEq, Eq)]
    struct Seen {
        entry: Entry,
        command: Option<String>,
        rules: PathBuf,
        key: Option<String>,
        /// A fragment of the error, if one is expected.
        error: Option<&'static str>,
    }

    fn seen(
        entry: Entry,
        command: Option<&str>,
        rules: &str,
        key: Option<&str>,
        error: Option<&'static str>,
    ) -> Seen {
        Seen {
            entry,
            command: command.map(String::from),
            rules: PathBuf::from(rules),
            key: key.map(String::from),
            error,
        }
    }

    #[test]
    fn entries_commands_rules_and_keys() {
        use Entry::{Forced, LoginShell};
        let forced_c = format!("{GATE} --rules /etc/agent-gate/rules.yaml --key hermes");
        let forced_other = format!("{GATE} --rules /tmp/mine.yaml --key hermes");
        let forced_socket = format!("{GATE} --audit-socket /tmp/log");
        let forced_attached = format!("{GATE} --key=hermes --rules=/etc/agent-gate/rules.yaml");
        let forced_dangling = format!("{GATE} --rules /etc/agent-gate/rules.yaml --key");
        let forced_own = format!("{GATE} --rules /srv/r.yaml");
        let forced_bare = GATE.to_string();
        // (args, SSH_ORIGINAL_COMMAND, expected)
        let rows: Vec<(Vec<&str>, Option<&str>, Seen)> = vec![
            // Forced mode, as sshd runs `command=`.
            (
                vec!["agent-gate", "--rules", "/srv/r.yaml", "--key", "hermes"],
                Some("docker ps"),
                seen(
                    Forced,
                    Some("docker ps"),
                    "/srv/r.yaml",
                    Some("hermes"),
                    None,
                ),
            ),
            (
                vec!["agent-gate", "--key", "hermes"],
                None,
                seen(Forced, None, DEFAULT_RULES, Some("hermes"), None),
            ),
            (
                vec!["agent-gate", "--key=backup"],
                Some(""),
                seen(Forced, Some(""), DEFAULT_RULES, Some("backup"), None),
            ),
            (
                vec!["agent-gate"],
                Some("uptime"),
                seen(Forced, Some("uptime"), DEFAULT_RULES, None, None),
            ),
            // Login shell with the agent's own command.
            (
                vec!["agent-gate", "-c", "docker ps -a"],
                None,
                seen(LoginShell, Some("docker ps -a"), DEFAULT_RULES, None, None),
            ),
            (
                vec!["agent-gate", "-c", "uptime"],
                Some("ignored"),
                seen(LoginShell, Some("uptime"), DEFAULT_RULES, None, None),
            ),
            (
                vec!["agent-gate", "-c", "agent-gates --key hermes"],
                Some("docker ps"),
                seen(
                    LoginShell,
                    Some("agent-gates --key hermes"),
                    DEFAULT_RULES,
                    None,
                    None,
                ),
            ),
            // Login shell running the forced command: the agent's command is the original.
            (
                vec!["agent-gate", "-c", &forced_c],
                Some("docker ps"),
                seen(
                    LoginShell,
                    Some("docker ps"),
                    DEFAULT_RULES,
                    Some("hermes"),
                    None,
                ),
            ),
            (
                vec!["agent-gate", "-c", &forced_c],
                None,
                seen(LoginShell, None, DEFAULT_RULES, Some("hermes"), None),
            ),
            (
                vec!["agent-gate", "-c", &forced_attached],
                Some("uptime"),
                seen(
                    LoginShell,
                    Some("uptime"),
                    DEFAULT_RULES,
                    Some("hermes"),
                    None,
                ),
            ),
            (
                vec!["agent-gate", "-c", &forced_bare],
                Some("uptime"),
                seen(LoginShell, Some("uptime"), DEFAULT_RULES, None, None),
            ),
            (
                vec!["agent-gate", "--rules", "/srv/r.yaml", "-c", &forced_own],
                Some("uptime"),
                seen(LoginShell, Some("uptime"), "/srv/r.yaml", None, None),
            ),
            // ... which may change nothing.
            (
                vec!["agent-gate", "-c", &forced_other],
                Some("docker ps"),
                seen(
                    LoginShell,
                    Some("docker ps"),
                    DEFAULT_RULES,
                    None,
                    Some("names the rules file `/tmp/mine.yaml`"),
                ),
            ),
            (
                vec!["agent-gate", "-c", &forced_own],
                Some("uptime"),
                seen(
                    LoginShell,
                    Some("uptime"),
                    DEFAULT_RULES,
                    None,
                    Some("the rules are `/etc/agent-gate/rules.yaml`"),
                ),
            ),
            (
                vec!["agent-gate", "-c", &forced_socket],
                Some("uptime"),
                seen(
                    LoginShell,
                    Some("uptime"),
                    DEFAULT_RULES,
                    None,
                    Some(
                        "passes `--audit-socket`; in login-shell mode it may pass only --rules and --key",
                    ),
                ),
            ),
            (
                vec!["agent-gate", "-c", &forced_dangling],
                Some("uptime"),
                seen(
                    LoginShell,
                    Some("uptime"),
                    DEFAULT_RULES,
                    None,
                    Some("`--key` needs a value in the forced command"),
                ),
            ),
        ];
        for (args, original, want) in rows {
            let inv = parts(&args, original, Some("203.0.113.9 50000 192.0.2.1 22"));
            if let (Some(fragment), Some(error)) = (want.error, inv.error.as_deref()) {
                assert!(error.contains(fragment), "{args:?}: {error}");
            }
            let got = Seen {
                entry: inv.entry,
                command: inv.command.clone(),
                rules: inv.rules.clone(),
                key: inv.key.clone(),
                // A fragment checked above stands for the error; any other error shows.
                error: inv.error.as_ref().map(|_| want.error.unwrap_or("an error")),
            };
            assert_eq!(got, want, "{args:?} with {original:?}: {inv:?}");
            assert_eq!(inv.client, Some("203.0.113.9".parse().unwrap()));
            assert_eq!(inv.fingerprint, None);
            assert!(inv.cli.command.is_none());
        }
    }

    #[test]
    fn the_client_address_comes_from_ssh_connection() {
        let rows: [(Option<&str>, Option<&str>); 8] = [
            (Some("203.0.113.9 50000 192.0.2.1 22"), Some("203.0.113.9")),
            (
                Some("2001:db8::7 50000 2001:db8::1 22"),
                Some("2001:db8::7"),
            ),
            (Some("::ffff:10.0.0.1 1 ::1 22"), Some("::ffff:10.0.0.1")),
            (Some("10.0.0.1"), Some("10.0.0.1")),
            (Some("garbage 1 2 3"), None),
            (Some(" 203.0.113.9 50000 192.0.2.1 22"), None),
            (Some(""), None),
            (None, None),
        ];
        for (connection, want) in rows {
            let inv = parts(
                &["agent-gate", "--key", "hermes"],
                Some("uptime"),
                connection,
            );
            let want: Option<IpAddr> = want.map(|w| w.parse().unwrap());
            assert_eq!(inv.client, want, "{connection:?}");
        }
        let bytes = OsString::from_vec(b"10.0.0.\xff 1 2 3".to_vec());
        let inv = Invocation::from_parts(os(&["agent-gate"]), None, Some(bytes)).unwrap();
        assert_eq!(inv.client, None);
    }

    #[test]
    fn a_command_that_is_not_utf8_gets_replacement_characters() {
        let original = OsString::from_vec(b"docker ps \xff\xfe".to_vec());
        let inv = Invocation::from_parts(
            os(&["agent-gate", "--key", "hermes"]),
            Some(original.clone()),
            None,
        )
        .unwrap();
        assert_eq!(inv.command.as_deref(), Some("docker ps \u{FFFD}\u{FFFD}"));
        let forced_c = format!("{GATE} --key hermes");
        let inv =
            Invocation::from_parts(os(&["agent-gate", "-c", &forced_c]), Some(original), None)
                .unwrap();
        assert_eq!(inv.command.as_deref(), Some("docker ps \u{FFFD}\u{FFFD}"));
        assert_eq!(inv.entry, Entry::LoginShell);
    }

    #[test]
    fn clap_refuses_what_it_cannot_read() {
        let rows: [&[&str]; 4] = [
            &["agent-gate", "-c", "uptime", "--key", "hermes"],
            &["agent-gate", "--key", "hermes", "-c", "uptime"],
            &["agent-gate", "--key"],
            &["agent-gate", "--frobnicate"],
        ];
        for args in rows {
            let e = Invocation::from_parts(os(args), Some("uptime".into()), None).unwrap_err();
            assert_ne!(e.kind(), clap::error::ErrorKind::DisplayHelp, "{args:?}");
        }
        let e = Invocation::from_parts(
            os(&["agent-gate", "-c", "uptime", "--key", "hermes"]),
            None,
            None,
        )
        .unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
        let inv = parts(
            &["agent-gate", "--audit-socket", "/run/log", "-c", "uptime"],
            None,
            None,
        );
        assert_eq!(inv.cli.forced.audit_socket.as_deref(), Some("/run/log"));
        assert_eq!(inv.command.as_deref(), Some("uptime"));
    }

    #[test]
    fn self_invocation_recognises_the_gateway_by_name() {
        let rows: [(&str, Option<&[&str]>); 7] = [
            ("agent-gate", Some(&[])),
            ("/nix/store/x/bin/agent-gate --key a", Some(&["--key", "a"])),
            ("agent-gate --rules=/r", Some(&["--rules=/r"])),
            ("agent-gate-old --key a", None),
            ("/usr/bin/agent-gate/ --key a", None),
            ("docker ps", None),
            ("agent-gate $(id)", None),
        ];
        for (command, want) in rows {
            let got = self_invocation(command);
            let want: Option<Vec<String>> =
                want.map(|w| w.iter().map(ToString::to_string).collect());
            assert_eq!(got, want, "{command}");
        }
    }
}
