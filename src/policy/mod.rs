//! The policy: parsed from text (`parse`), compiled into the types `decide` reads, and
//! checked against every rule's own examples. Loading from disk lives in `sys::load`.

mod compile;
pub mod model;
mod parse;
pub mod record;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::grammar::Grammar;
pub use crate::plan::Defaults;
use crate::sudoers::SudoersArgs;

pub use compile::AUDIT_TIMEOUT;

/// Where the rules are read from when no `--rules` says otherwise.
pub const DEFAULT_RULES: &str = "/etc/agent-gate/rules.yaml";
pub use parse::MAX_RULES_BYTES;

/// A rules-file error with the place it was found (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct PolicyError {
    pub line: u64,
    pub column: u64,
    pub message: String,
}

impl PolicyError {
    pub fn at(line: u64, column: u64, message: impl Into<String>) -> Self {
        Self {
            line,
            column,
            message: message.into(),
        }
    }
}

/// Parse and compile a rules file. `text` is the file's content; the digest of exactly these
/// bytes goes into every audit record. The rules' own examples are not run here: that is
/// `rules::parse`, the only way a policy reaches `decide` outside tests.
pub fn compile(text: &str) -> Result<Policy, PolicyError> {
    let model: model::RulesModel = parse::from_yaml(text)?;
    compile::compile(&model, text)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Policy {
    /// `sha256:` and the hex digest of the rules file.
    pub digest: String,
    pub sudo: Option<String>,
    pub defaults: Defaults,
    pub audit: AuditSettings,
    pub mcp: McpLimits,
    pub keys: BTreeMap<String, KeyPolicy>,
    pub docker: Option<DockerPolicy>,
    pub programs: Vec<ProgramRule>,
    pub deploy: Option<DeployPolicy>,
    /// Every rule's `examples`, in file order, for `rules::parse` to run.
    pub examples: Vec<Example>,
}

/// One of a rule's examples: a command it must allow (or that must be refused).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Example {
    /// The rule id (`docker`, `deploy`, a program rule's id).
    pub rule: String,
    pub command: String,
    /// Listed under `allow:` (else under `refuse:`).
    pub allow: bool,
    pub line: u64,
    pub column: u64,
}

/// How long an MCP session may last: without a call, and in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpLimits {
    pub idle: Duration,
    pub session: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuditFormat {
    Kv,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditSettings {
    pub socket: String,
    pub format: AuditFormat,
    /// The longest a record may wait for the receiver: a receiver that stops reading makes
    /// the gateway refuse, never hang.
    pub timeout: std::time::Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyPolicy {
    pub may: BTreeSet<String>,
    pub from: Vec<Cidr>,
    /// The public key pinned to this label, and its SHA256 fingerprint.
    pub public_key: Option<(String, String)>,
    pub description: Option<String>,
    /// The key may open an MCP session (the SSH command `mcp`).
    pub mcp: bool,
    /// How many of this label's sessions may run at once (an MCP session is one).
    pub max_sessions: u32,
}

/// An IPv4 or IPv6 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse().ok()?
            }
            Some(_) => return None,
            None => max,
        };
        (prefix <= max).then_some(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let (a, b, bits) = match (self.addr, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                (u128::from(a.to_bits()), u128::from(b.to_bits()), 32)
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => (a.to_bits(), b.to_bits(), 128),
            _ => return false,
        };
        let prefix = u32::from(self.prefix);
        if prefix == 0 {
            return true;
        }
        let shift = bits - prefix;
        a.checked_shr(shift) == b.checked_shr(shift)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DockerPolicy {
    pub program: String,
    pub config: String,
    /// Subcommand -> allowed option (canonical long name).
    pub subcommands: BTreeMap<String, BTreeSet<String>>,
    /// Subcommands allowed as `sudo docker ...`, each with the sudoers expressions for its
    /// arguments (`sudoers::docker_regexes`), built once here.
    pub sudo_subcommands: BTreeMap<String, Vec<SudoersArgs>>,
    pub networks: Vec<String>,
    pub publish_addresses: Vec<String>,
    /// Variables and label keys other software acts on, allowed anyway (`NAME`, `PREFIX*`).
    pub allow_env: Vec<String>,
    pub allow_labels: Vec<String>,
    /// `docker inspect` shows environment values (the gateway redacts them otherwise).
    pub inspect_shows_env: bool,
    /// `None`: any image may run.
    pub images: Option<Vec<String>>,
    pub build_contexts: Vec<String>,
    /// The names `build -t` may give; `None`: any the run allow-list does not cover.
    pub build_tags: Option<Vec<String>>,
    pub compose_files: Vec<String>,
    pub compose_projects: Vec<String>,
    pub compose_verbs: BTreeMap<String, BTreeSet<String>>,
    pub timeout: Duration,
    /// Docker reads the agent's stdin.
    pub stdin: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProgramRule {
    pub id: String,
    pub command: String,
    /// Absolute path on the host; for a container program, its name inside the container.
    pub path: String,
    pub sudo: bool,
    pub container: Option<String>,
    pub description: Option<String>,
    pub grammar: Grammar,
    pub forced_args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub timeout: Duration,
    /// The program reads the agent's stdin.
    pub stdin: bool,
    /// For a sudo rule, the sudoers lines for its arguments (`sudoers::program_lines`), as
    /// `render sudoers` prints them.
    pub sudoers_args: Vec<SudoersArgs>,
    /// The same lines unsplit (`sudoers::program_check`): what the gateway matches a sudo
    /// command against, admitting exactly what `sudoers_args` admit.
    pub sudoers_check: Vec<SudoersArgs>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployPolicy {
    pub flake: String,
    pub nh: Option<String>,
    pub nixos_rebuild: Option<String>,
    pub timeout: Duration,
    pub approval: ApprovalPolicy,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApprovalPolicy {
    /// Root-owned, mode 0700: the requests and their approvals.
    pub store: std::path::PathBuf,
    /// How long a request stays pending, and an approval stays usable.
    pub expire: Duration,
    /// How long the agent's session waits for the decision (zero: not at all).
    pub wait: Duration,
    /// argv of the notify program, absolute path first; empty: none.
    pub notify: Vec<String>,
}

impl Policy {
    /// The label whose pinned public key has this fingerprint (at most one: `compile`
    /// refuses a key pinned twice).
    pub fn label_pinning(&self, fingerprint: &str) -> Option<(&str, &KeyPolicy)> {
        self.keys
            .iter()
            .find(|(_, k)| {
                k.public_key
                    .as_ref()
                    .is_some_and(|(_, fp)| fp == fingerprint)
            })
            .map(|(label, k)| (label.as_str(), k))
    }

    /// Every rule id a key may name in `may`.
    pub fn rule_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = Vec::new();
        if self.docker.is_some() {
            ids.push("docker");
        }
        if self.deploy.is_some() {
            ids.push("deploy");
        }
        ids.extend(self.programs.iter().map(|p| p.id.as_str()));
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_membership() {
        let net = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()));
        let one = Cidr::parse("127.0.0.1").unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(
            Cidr::parse("fd00::/8")
                .unwrap()
                .contains("fd12::1".parse().unwrap())
        );
        for bad in [
            "10.0.0.0/33",
            "10.0.0/8",
            "x",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "::/129",
        ] {
            assert_eq!(Cidr::parse(bad), None, "{bad}");
        }
    }
}
