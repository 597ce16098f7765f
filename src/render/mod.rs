//! The installation pieces, rendered from the one rules file: authorized_keys lines, the sshd
//! `Match User` block and the sudoers lines. Pure: each function takes the policy and the
//! installation paths and returns the text, or why it cannot be rendered. `installed`
//! compares what a host has installed with these renderings, for `agent-gate doctor`.

pub mod installed;

use crate::policy::Policy;

/// The sessions `render sshd` sizes sshd's global limits for when not told: the load the
/// gateway is measured at (README, figures).
pub const DEFAULT_SESSIONS: u32 = 200;

/// Where things are on the host, as the rendered files must name them.
#[derive(Debug, Clone)]
pub struct Install {
    /// The gateway's absolute path (in a Nix store path, for one).
    pub gate: String,
    /// The rules file as the gateway will read it on the host.
    pub rules: String,
    /// The account the agent logs in as.
    pub user: String,
}

impl Install {
    /// Paths and the user name go into `command="..."`, which sshd hands to the account's
    /// shell, and into sudoers: only characters that need no quoting anywhere.
    pub fn validate(&self) -> Result<(), String> {
        let path_ok = |p: &str| {
            p.starts_with('/')
                && p.len() > 1
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/._+-".contains(&b))
                && !p.split('/').any(|part| part == "..")
        };
        for (what, path) in [("the gateway", &self.gate), ("the rules file", &self.rules)] {
            if !path_ok(path) {
                return Err(format!(
                    "{what} `{path}` must be an absolute path of letters, digits and /._+-"
                ));
            }
        }
        let mut name = self.user.bytes();
        let user_ok = name
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
            && name.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b))
            && self.user.len() <= 32;
        if !user_ok {
            return Err(format!(
                "`{}` is not a user name (lowercase letters, digits, _ and -)",
                self.user
            ));
        }
        Ok(())
    }
}

fn header(policy: &Policy, comment: &str, what: &str) -> String {
    format!(
        "{comment} {what}, rendered by agent-gate {} from rules {}.\n{comment} Do not edit: change the rules and render again.\n",
        env!("CARGO_PKG_VERSION"),
        policy.digest
    )
}

/// One `restrict,from="...",command="..." KEY` line per label that pins a public key;
/// labels without one are listed as comments, since they cannot be given a line.
pub fn authorized_keys(policy: &Policy, install: &Install) -> Result<String, String> {
    install.validate()?;
    let mut out = header(policy, "#", "authorized_keys for the agent's account");
    for (label, key) in &policy.keys {
        let Some((text, _)) = &key.public_key else {
            out.push_str(&format!(
                "# {label}: no public_key in the rules, so no line; add one to render it\n"
            ));
            continue;
        };
        let mut options = vec!["restrict".to_string()];
        if !key.from.is_empty() {
            let nets: Vec<String> = key
                .from
                .iter()
                .map(|n| format!("{}/{}", n.addr, n.prefix))
                .collect();
            options.push(format!("from=\"{}\"", nets.join(",")));
        }
        options.push(format!(
            "command=\"{} --rules {} --key {label}\"",
            install.gate, install.rules
        ));
        out.push_str(&format!(
            "{} {}\n",
            options.join(","),
            public_key(text, label)
        ));
    }
    Ok(out)
}

/// `TYPE BLOB COMMENT`, with the comment kept only if it is plain printable words: the rules
/// could hold a newline, and a newline in authorized_keys is another key.
fn public_key(text: &str, label: &str) -> String {
    let mut words = text.split_ascii_whitespace();
    let kind = words.next().unwrap_or_default();
    let blob = words.next().unwrap_or_default();
    let comment: Vec<&str> = words.collect();
    let plain = !comment.is_empty()
        && comment
            .iter()
            .all(|w| w.bytes().all(|b| b.is_ascii_graphic()));
    if plain {
        format!("{kind} {blob} {}", comment.join(" "))
    } else {
        format!("{kind} {blob} agent-gate:{label}")
    }
}

/// The sshd `Match User` block: public keys only, no TTY, no forwarding of any kind, no
/// agent, no X11, no tunnel, no user rc, the authenticating key exposed to the gateway, dead
/// clients noticed. With `force`, a ForceCommand without `--key`: the label is then the one
/// whose pinned key authenticated.
/// The one variable name the rendered Match block accepts: nothing reads it.
pub const ACCEPT_NO_ENV: &str = "AGENT_GATE_ACCEPTS_NO_ENVIRONMENT";

pub fn sshd(
    policy: &Policy,
    install: &Install,
    force: bool,
    sessions: u32,
) -> Result<String, String> {
    install.validate()?;
    let mut out = header(policy, "#", "sshd settings for the agent's account");
    out.push_str(
        "# Put this block at the end of sshd_config (a Match block runs to the next Match).\n\
         # Keep, outside any Match: PermitUserEnvironment no (the default). The block's AcceptEnv\n\
         # replaces any global one for the account, unless a later Match adds to it.\n",
    );
    for line in globals_why(sessions).lines() {
        out.push_str(&format!("# {line}\n"));
    }
    for line in globals(sessions).lines() {
        out.push_str(&format!("#     {line}\n"));
    }
    out.push_str(&format!(
        "# (`agent-gate render sshd --global --sessions {sessions}` prints them as lines.)\n"
    ));
    out.push_str(&format!("Match User {}\n", install.user));
    let settings = [
        ("AuthenticationMethods", "publickey"),
        ("PubkeyAuthentication", "yes"),
        ("PasswordAuthentication", "no"),
        ("KbdInteractiveAuthentication", "no"),
        ("HostbasedAuthentication", "no"),
        ("ExposeAuthInfo", "yes"),
        ("PermitTTY", "no"),
        ("DisableForwarding", "yes"),
        ("AllowAgentForwarding", "no"),
        ("AllowTcpForwarding", "no"),
        ("AllowStreamLocalForwarding", "no"),
        ("X11Forwarding", "no"),
        ("PermitTunnel", "no"),
        ("PermitListen", "none"),
        ("PermitOpen", "none"),
        ("GatewayPorts", "no"),
        ("PermitUserRC", "no"),
        // A Match block's AcceptEnv replaces the global list (sshd -T -C shows it), but
        // cannot empty it: one name nothing reads closes what a global `AcceptEnv *` opened
        // (a client's own SSH_USER_AUTH, for one).
        ("AcceptEnv", ACCEPT_NO_ENV),
        ("ClientAliveInterval", "15"),
        ("ClientAliveCountMax", "4"),
    ];
    for (name, value) in settings {
        out.push_str(&format!("    {name} {value}\n"));
    }
    if force {
        let unpinned: Vec<&str> = policy
            .keys
            .iter()
            .filter(|(_, k)| k.public_key.is_none())
            .map(|(label, _)| label.as_str())
            .collect();
        if !unpinned.is_empty() {
            return Err(format!(
                "a ForceCommand picks the label by the key that authenticated, so every label needs a public_key; these have none: {}",
                unpinned.join(", ")
            ));
        }
        out.push_str(&format!(
            "    ForceCommand {} --rules {}\n",
            install.gate, install.rules
        ));
    }
    Ok(out)
}

/// sshd's global limits for `sessions` agent sessions at once, as real lines for the top of
/// sshd_config (outside any Match: MaxStartups is global only). Debian's default MaxStartups
/// 10:30:100 starts dropping connections still authenticating at the 11th, and the default
/// MaxSessions 10 refuses the 11th session multiplexed over one connection (ControlMaster).
pub fn sshd_globals(policy: &Policy, sessions: u32) -> String {
    let mut out = header(policy, "#", "sshd's global limits for the agent's sessions");
    for line in globals_why(sessions).lines() {
        out.push_str(&format!("# {line}\n"));
    }
    out.push_str("# Put these lines before any Match block in sshd_config.\n");
    out.push_str(&globals(sessions));
    out
}

/// Why the global lines, as comment text (each line without the `# `).
fn globals_why(sessions: u32) -> String {
    format!(
        "sshd's global limits for {sessions} agent sessions at once (outside any Match; sshd -T\n\
         shows the values in effect). MaxStartups: connections still authenticating before sshd\n\
         drops some; Debian's default 10:30:100 drops most of {sessions}. PerSourceMaxStartups:\n\
         the agent connects from one address. MaxSessions: sessions over one multiplexed\n\
         connection (ControlMaster); the default is 10.\n"
    )
}

/// The global lines themselves.
fn globals(sessions: u32) -> String {
    let full = sessions.saturating_mul(2);
    format!("MaxStartups {sessions}:30:{full}\nPerSourceMaxStartups none\nMaxSessions {sessions}\n")
}

/// NOPASSWD lines for exactly the commands the gateway runs through sudo: each sudo program
/// rule and `sudo docker` subcommand, with its arguments pinned by a regular expression
/// built from the rule's grammar (sudo 1.9.10 or later), and the deploy's exact command line.
pub fn sudoers(policy: &Policy, install: &Install) -> Result<String, String> {
    install.validate()?;
    let mut out = header(policy, "#", "sudoers for the agent's account");
    out.push_str(
        "# Needs sudo 1.9.10 or later (regular expressions in arguments); sudo-rs reads none.\n",
    );
    let user = &install.user;
    // CWD=/: sudo would run the command in the caller's directory, where a relative
    // operand (`./--`) could name whatever the caller put there.
    let line =
        |path: &str, args: &str| format!("{user} ALL=(root) CWD=/ NOPASSWD: {path} {args}\n");
    for rule in policy.programs.iter().filter(|p| p.sudo) {
        out.push_str(&format!("# {} (sudo {})\n", rule.id, rule.command));
        if rule.forced_args.is_empty() && rule.grammar.check(&[]).is_ok() {
            out.push_str(&line(&rule.path, "\"\""));
        }
        for args in &rule.sudoers_args {
            out.push_str(&line(&rule.path, &escape(&args.source)));
        }
    }
    if let Some(docker) = &policy.docker {
        for (sub, regexes) in &docker.sudo_subcommands {
            out.push_str(&format!("# sudo docker {sub}\n"));
            for args in regexes {
                out.push_str(&line(&docker.program, &escape(&args.source)));
            }
        }
    }
    if policy.deploy.is_some() {
        out.push_str(
            "# deploy: the approval step, as root. It files the request, waits for a human and runs\n\
             # nh or nixos-rebuild only on an approval of exactly that deploy; nothing else deploys.\n",
        );
        out.push_str(&format!(
            "{user} ALL=(root) CWD=/ NOPASSWD: {} {}\n",
            install.gate,
            escape(&deploy_step_regex(policy, install)?)
        ));
        out.push_str("# deploy-status: one request's state, for the label's own MCP session.\n");
        out.push_str(&format!(
            "{user} ALL=(root) CWD=/ NOPASSWD: {} {}\n",
            install.gate,
            escape(&deploy_status_regex(install))
        ));
    }
    Ok(out)
}

/// The approval step's arguments as the gateway passes them (`deploy::step_plan`): the
/// installed rules file, a configured form, a label, and optionally the client address and
/// the key's fingerprint.
pub fn deploy_step_regex(policy: &Policy, install: &Install) -> Result<String, String> {
    let forms: Vec<&str> = crate::deploy::Form::ALL
        .into_iter()
        .filter(|f| crate::deploy::root_plan(policy, *f).is_some())
        .map(|f| f.word())
        .collect();
    Ok(format!(
        "^deploy-step --rules {} --form ({}) --key [a-z0-9._-]+( --client [0-9A-Fa-f.:]+)?( --fingerprint SHA256:[A-Za-z0-9+/]+)?( --no-wait)?$",
        crate::sudoers::ere::literal(&install.rules),
        forms.join("|")
    ))
}

/// `deploy-status` as the agent's MCP session asks it: the installed rules, a label, an id.
pub fn deploy_status_regex(install: &Install) -> String {
    format!(
        "^deploy-status --rules {} --key [a-z0-9._-]+ --id [0-9a-f]{{8}}$",
        crate::sudoers::ere::literal(&install.rules)
    )
}

/// Escape what sudoers reads specially inside a command's arguments.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if ",:=".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
