//! The rules file as written: plain serde structs, every one closed to unknown fields.
//! Values that a later check may reject are `Spanned`, so the error can say FILE:LINE:COL.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::parse::Spanned;

pub type S = Spanned<String>;

/// A mapping key that remembers where it was written.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct Key(pub S);

impl Key {
    pub fn as_str(&self) -> &str {
        &self.0.value
    }
}
impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}
impl Eq for Key {}
impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Key {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesModel {
    pub version: Spanned<u32>,
    #[serde(default)]
    pub defaults: DefaultsModel,
    #[serde(default)]
    pub audit: AuditModel,
    /// Absolute path of sudo, needed by any rule with `sudo: true`.
    #[serde(default)]
    pub sudo: Option<S>,
    pub keys: BTreeMap<Key, KeyModel>,
    #[serde(default)]
    pub docker: Option<DockerModel>,
    #[serde(default)]
    pub programs: Vec<ProgramModel>,
    #[serde(default)]
    pub deploy: Option<DeployModel>,
    #[serde(default)]
    pub mcp: McpModel,
}

/// The MCP sessions' limits (the SSH command `mcp`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpModel {
    /// A session ends after this many seconds without a call (default 3600).
    #[serde(default)]
    pub idle_seconds: Option<Spanned<u64>>,
    /// A session ends after this many seconds in all (default 28800).
    #[serde(default)]
    pub session_seconds: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultsModel {
    /// Seconds a command may run before it is killed.
    #[serde(default)]
    pub timeout: Option<Spanned<u64>>,
    /// PATH given to every command the gateway runs.
    #[serde(default)]
    pub path: Option<S>,
    /// RLIMIT_NOFILE for every command the gateway runs (core dumps are always off).
    #[serde(default)]
    pub open_files: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditModel {
    #[serde(default)]
    pub socket: Option<S>,
    /// `kv` (default) or `json`.
    #[serde(default)]
    pub format: Option<S>,
    /// How long one record may wait for the receiver (milliseconds, default 2000).
    #[serde(default)]
    pub timeout_ms: Option<Spanned<u64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyModel {
    /// Rule ids this key may use: `docker`, `deploy`, or a program rule's id.
    pub may: Vec<S>,
    /// Client networks (CIDR) this key may connect from, checked against SSH_CONNECTION.
    #[serde(default)]
    pub from: Vec<S>,
    /// The OpenSSH public key of this label (`ssh-ed25519 AAAA... comment`). With sshd's
    /// `ExposeAuthInfo yes`, a connection under this label must have authenticated with it.
    #[serde(default)]
    pub public_key: Option<S>,
    #[serde(default)]
    pub description: Option<String>,
    /// May this key open an MCP session (the SSH command `mcp`)? Default: yes.
    #[serde(default)]
    pub mcp: Option<bool>,
    /// How many of this label's sessions may run at once (default 32).
    #[serde(default)]
    pub max_sessions: Option<Spanned<u64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExamplesModel {
    #[serde(default)]
    pub allow: Vec<S>,
    #[serde(default)]
    pub refuse: Vec<S>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerModel {
    pub program: S,
    /// A root-owned, empty directory given to docker as DOCKER_CONFIG.
    pub config: S,
    /// Subcommand (`ps`, `system df`, `compose`, ...) -> the long names of its allowed options.
    pub subcommands: BTreeMap<Key, Vec<S>>,
    /// Subcommands also allowed as `sudo docker ...`.
    #[serde(default)]
    pub sudo_subcommands: Vec<S>,
    #[serde(default)]
    pub run: RunModel,
    #[serde(default)]
    pub build: BuildModel,
    #[serde(default)]
    pub compose: ComposeModel,
    #[serde(default)]
    pub timeout: Option<Spanned<u64>>,
    /// Pass the agent's stdin through to docker (closed otherwise).
    #[serde(default)]
    pub stdin: bool,
    /// Let `docker inspect` show containers' environment values (redacted otherwise).
    #[serde(default)]
    pub inspect_shows_env: bool,
    #[serde(default)]
    pub examples: ExamplesModel,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunModel {
    #[serde(default)]
    pub networks: Vec<S>,
    #[serde(default)]
    pub publish_addresses: Vec<S>,
    /// Image allow-list (`library/*`, `ghcr.io/org/*`, `org/name`); absent: any image.
    #[serde(default)]
    pub images: Option<Vec<S>>,
    /// Variables that software outside the container acts on (`NVIDIA_VISIBLE_DEVICES`),
    /// allowed anyway: names, or `PREFIX*`.
    #[serde(default)]
    pub allow_env: Vec<S>,
    /// Label keys other software acts on (`traefik.*`), allowed anyway: keys, or `PREFIX*`.
    #[serde(default)]
    pub allow_labels: Vec<S>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildModel {
    #[serde(default)]
    pub contexts: Vec<S>,
    /// The names `docker build -t` may give (`namespace/*` or a repository); unset: any name
    /// the run allow-list does not cover.
    #[serde(default)]
    pub tags: Option<Vec<S>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeModel {
    #[serde(default)]
    pub files: Vec<S>,
    #[serde(default)]
    pub projects: Vec<S>,
    /// Verb -> the long names of its allowed options.
    #[serde(default)]
    pub verbs: BTreeMap<Key, Vec<S>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramModel {
    pub id: S,
    /// The word the agent types (`iptables`).
    pub command: S,
    /// Absolute path on the host. Not used with `container`.
    #[serde(default)]
    pub path: Option<S>,
    /// Run as root through `sudo -n --`; the agent writes `sudo` in front.
    #[serde(default)]
    pub sudo: bool,
    /// Run inside this container, reached as `docker exec CONTAINER COMMAND ...`.
    #[serde(default)]
    pub container: Option<S>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub words: Vec<S>,
    #[serde(default)]
    pub options: Vec<OptionModel>,
    #[serde(default)]
    pub args: Vec<ArgModel>,
    #[serde(default)]
    pub exactly_one_of: Vec<Vec<S>>,
    /// Through sudo, write `words` and `args` right after the `exactly_one_of` member
    /// (`iptables --list INPUT --numeric`), for a program that reads them only there.
    #[serde(default)]
    pub args_after_choice: Option<Spanned<bool>>,
    #[serde(default)]
    pub forced_args: Vec<S>,
    #[serde(default)]
    pub env: BTreeMap<Key, S>,
    #[serde(default)]
    pub timeout: Option<Spanned<u64>>,
    /// Pass the agent's stdin through to the program (closed otherwise).
    #[serde(default)]
    pub stdin: bool,
    #[serde(default)]
    pub examples: ExamplesModel,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionModel {
    #[serde(default)]
    pub short: Option<S>,
    #[serde(default)]
    pub long: Option<S>,
    #[serde(default)]
    pub value: Option<ValueModel>,
    /// The value may be left out: `attached` (getopt's `::`: only `-bVALUE`, `--boot=VALUE`)
    /// or `lookahead` (as journalctl reads `-b`: attached, or else the next word when it is
    /// of the value's type).
    #[serde(default)]
    pub optional_value: Option<S>,
    #[serde(default)]
    pub repeat: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub enum ValueModel {
    Enum(Vec<S>),
    Int(Spanned<Vec<i64>>),
    Pattern(S),
    Exact(S),
    Text,
    /// A timestamp as systemd reads it (`journalctl --since`): see `grammar::systemd_time`.
    #[serde(rename = "systemd_time")]
    SystemdTime,
    /// Comma-separated `KEY=VALUE` pairs: each key listed here, at most once, with a value of
    /// its type (`sshd -C user=alice,addr=192.0.2.1`).
    #[serde(rename = "key_values")]
    KeyValues(BTreeMap<Key, ValueModel>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgModel {
    pub name: S,
    pub value: ValueModel,
    #[serde(default)]
    pub optional: bool,
    #[serde(default)]
    pub repeat: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployModel {
    /// The flake every deploy builds; the only one accepted.
    pub flake: S,
    #[serde(default)]
    pub nh: Option<S>,
    #[serde(default)]
    pub nixos_rebuild: Option<S>,
    #[serde(default)]
    pub timeout: Option<Spanned<u64>>,
    /// How a human approves each deploy.
    #[serde(default)]
    pub approval: ApprovalModel,
    #[serde(default)]
    pub examples: ExamplesModel,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalModel {
    /// The root-owned directory of requests and approvals (default /var/lib/agent-gate/approvals).
    #[serde(default)]
    pub store: Option<S>,
    /// Seconds a request waits for approval, and an approval waits to be used (default 1800).
    #[serde(default)]
    pub expire_seconds: Option<Spanned<u64>>,
    /// Seconds the agent's session waits for the decision; 0 returns at once with exit 75.
    #[serde(default)]
    pub wait_seconds: Option<Spanned<u64>>,
    /// A program (absolute path, then its arguments) run when a request is filed, with the
    /// request as JSON on its stdin. No shell.
    #[serde(default)]
    pub notify: Vec<S>,
}
