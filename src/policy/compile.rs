//! Model to policy: every value is checked here, once, with the place it was written.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::model::{
    ApprovalModel, DeployModel, DockerModel, ExamplesModel, OptionModel, ProgramModel, RulesModel,
    S, ValueModel,
};
use super::parse::{Spanned, location};
use super::{
    ApprovalPolicy, AuditFormat, AuditSettings, Cidr, Defaults, DeployPolicy, DockerPolicy,
    Example, KeyPolicy, McpLimits, Policy, PolicyError, ProgramRule,
};
use crate::docker::{spec, values};
use crate::grammar::{ArgSpec, Grammar, OptSpec, Optional, Pattern, ValueType};
use crate::sudoers::ere;

pub const DEFAULT_PATH: &str = "/run/wrappers/bin:/run/current-system/sw/bin:/usr/bin:/bin";
const DEFAULT_TIMEOUT: u64 = 600;
const MAX_TIMEOUT: u64 = 86_400;
const DEFAULT_OPEN_FILES: u64 = 1024;
/// How many sessions of one label may run at once, unless the rules say otherwise.
pub const DEFAULT_MAX_SESSIONS: u32 = 32;
/// How long one audit record may wait for a receiver that is not reading.
pub const AUDIT_TIMEOUT: Duration = Duration::from_secs(2);
const OPEN_FILES: std::ops::RangeInclusive<u64> = 16..=1_048_576;

/// Programs that are a shell, run any other program, or deploy (a deploy is the `deploy`
/// section's, approved by a human): never a declared program, under any command name. The
/// message says "runs other programs or is a shell", which a deploy tool also is.
const NEVER_PROGRAMS: &[&str] = &[
    "nh",
    "nixos-rebuild",
    "agent-gate",
    "tmux",
    "screen",
    "run0",
    "sudoedit",
    "runuser",
    "setpriv",
    "ssh",
    "strace",
    "ltrace",
    "gdb",
    "watch",
    "flock",
    "sh",
    "bash",
    "dash",
    "zsh",
    "ksh",
    "fish",
    "csh",
    "tcsh",
    "busybox",
    "env",
    "sudo",
    "su",
    "doas",
    "pkexec",
    "nsenter",
    "unshare",
    "chroot",
    "setsid",
    "nohup",
    "timeout",
    "nice",
    "stdbuf",
    "script",
    "xargs",
    "find",
    "python",
    "python3",
    "perl",
    "ruby",
    "node",
    "awk",
    "gawk",
    "vim",
    "vi",
    "less",
    "more",
    "systemd-run",
    "machinectl",
    "nix",
    "docker",
];

/// `sudo docker` may only read.
const READ_ONLY_SUBCOMMANDS: &[&str] = &[
    "ps",
    "images",
    "inspect",
    "logs",
    "system df",
    "system info",
    "network ls",
    "volume ls",
];

/// Names the gateway itself answers to; a program rule may not take them.
const RESERVED_COMMANDS: &[&str] = &["docker", "sudo", "nh", "nixos-rebuild", "help"];

fn error_at(at: &Spanned<impl Sized>, message: impl Into<String>) -> PolicyError {
    let (line, column) = location(at);
    PolicyError::at(line, column, message)
}

fn err<T>(at: &Spanned<impl Sized>, message: impl Into<String>) -> Result<T, PolicyError> {
    Err(error_at(at, message))
}

fn timeout(value: Option<&Spanned<u64>>, default: Duration) -> Result<Duration, PolicyError> {
    match value {
        None => Ok(default),
        Some(t) if (1..=MAX_TIMEOUT).contains(&t.value) => Ok(Duration::from_secs(t.value)),
        Some(t) => err(t, format!("a timeout is from 1 to {MAX_TIMEOUT} seconds")),
    }
}

fn absolute(s: &S, what: &str) -> Result<String, PolicyError> {
    if values::clean_absolute(&s.value) && s.value != "/" {
        Ok(s.value.clone())
    } else {
        err(
            s,
            format!("{what} must be a clean absolute path, not `{}`", s.value),
        )
    }
}

fn is_word(text: &str, extra: &[char]) -> bool {
    let mut chars = text.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || extra.contains(&c))
}

pub fn compile(model: &RulesModel, text: &str) -> Result<Policy, PolicyError> {
    if model.version.value != 1 {
        return err(&model.version, "this agent-gate reads rules `version: 1`");
    }
    let default_timeout = timeout(
        model.defaults.timeout.as_ref(),
        Duration::from_secs(DEFAULT_TIMEOUT),
    )?;
    let path = match &model.defaults.path {
        None => DEFAULT_PATH.to_string(),
        Some(p) => {
            if !p.value.split(':').all(values::clean_absolute) {
                return err(
                    p,
                    "PATH is a `:`-separated list of clean absolute directories",
                );
            }
            p.value.clone()
        }
    };
    let open_files = match &model.defaults.open_files {
        None => DEFAULT_OPEN_FILES,
        Some(n) if OPEN_FILES.contains(&n.value) => n.value,
        Some(n) => {
            return err(
                n,
                format!(
                    "open_files is from {} to {}",
                    OPEN_FILES.start(),
                    OPEN_FILES.end()
                ),
            );
        }
    };
    let audit = AuditSettings {
        socket: match &model.audit.socket {
            None => "/dev/log".to_string(),
            Some(s) => absolute(s, "the audit socket")?,
        },
        format: match &model.audit.format {
            None => AuditFormat::Kv,
            Some(f) if f.value == "kv" => AuditFormat::Kv,
            Some(f) if f.value == "json" => AuditFormat::Json,
            Some(f) => return err(f, "the audit format is `kv` or `json`"),
        },
        timeout: match &model.audit.timeout_ms {
            None => AUDIT_TIMEOUT,
            Some(t) if (100..=10_000).contains(&t.value) => Duration::from_millis(t.value),
            Some(t) => {
                return err(
                    t,
                    "audit.timeout_ms is from 100 to 10000 (milliseconds one record may wait for the receiver)",
                );
            }
        },
    };
    let sudo = model
        .sudo
        .as_ref()
        .map(|s| absolute(s, "sudo"))
        .transpose()?;
    let docker = model
        .docker
        .as_ref()
        .map(|d| docker(d, default_timeout))
        .transpose()?;
    let mut programs = Vec::new();
    let mut ids = BTreeSet::new();
    for p in &model.programs {
        let rule = program(p, sudo.is_some(), docker.is_some(), default_timeout)?;
        if !ids.insert(rule.id.clone()) {
            return err(&p.id, format!("rule id `{}` is used twice", rule.id));
        }
        programs.push(rule);
    }
    let deploy = model
        .deploy
        .as_ref()
        .map(|d| deploy(d, sudo.is_some(), default_timeout))
        .transpose()?;

    let mut policy = Policy {
        digest: format!("sha256:{}", crate::digest::sha256_hex(text.as_bytes())),
        sudo,
        defaults: Defaults {
            timeout: default_timeout,
            path,
            open_files,
        },
        audit,
        mcp: mcp_limits(&model.mcp)?,
        keys: BTreeMap::new(),
        docker,
        programs,
        deploy,
        examples: examples(model),
    };
    let known: BTreeSet<String> = policy.rule_ids().into_iter().map(String::from).collect();
    for (label, key) in &model.keys {
        if !is_word(label.as_str(), &['_', '.']) {
            return err(
                &label.0,
                format!(
                    "key label `{}` is not lowercase letters, digits, `-`, `_`, `.`",
                    label.as_str()
                ),
            );
        }
        let mut may = BTreeSet::new();
        for id in &key.may {
            if !known.contains(&id.value) {
                let list: Vec<&str> = known.iter().map(String::as_str).collect();
                return err(
                    id,
                    format!("no rule `{}` (rules: {})", id.value, list.join(", ")),
                );
            }
            may.insert(id.value.clone());
        }
        let mut from = Vec::new();
        for net in &key.from {
            match Cidr::parse(&net.value) {
                Some(cidr) => from.push(cidr),
                None => {
                    return err(
                        net,
                        format!("`{}` is not an address or network (10.0.0.0/8)", net.value),
                    );
                }
            }
        }
        let public_key = match &key.public_key {
            None => None,
            Some(text) => match crate::sshkey::fingerprint_of(&text.value) {
                Some(fp) => {
                    if let Some((other, _)) = policy.label_pinning(&fp) {
                        return err(
                            text,
                            format!(
                                "this public key is already pinned to label `{other}`; a key belongs to one label"
                            ),
                        );
                    }
                    Some((text.value.clone(), fp))
                }
                None => {
                    return err(
                        text,
                        "not an OpenSSH public key (`ssh-ed25519 AAAA... comment`)",
                    );
                }
            },
        };
        policy.keys.insert(
            label.as_str().to_string(),
            KeyPolicy {
                may,
                from,
                public_key,
                description: key.description.clone(),
                mcp: key.mcp.unwrap_or(true),
                max_sessions: match &key.max_sessions {
                    None => DEFAULT_MAX_SESSIONS,
                    Some(n) => match u32::try_from(n.value) {
                        Ok(v @ 1..=1000) => v,
                        _ => {
                            return err(
                                n,
                                format!("keys.{}.max_sessions is from 1 to 1000", label.as_str()),
                            );
                        }
                    },
                },
            },
        );
    }
    Ok(policy)
}

fn docker(model: &DockerModel, default_timeout: Duration) -> Result<DockerPolicy, PolicyError> {
    let mut subcommands = BTreeMap::new();
    for (sub, options) in &model.subcommands {
        let table: &[spec::Opt] = match sub.as_str() {
            "compose" => spec::COMPOSE_GLOBAL,
            "exec" => {
                return err(
                    &sub.0,
                    "`docker exec` is allowed only through a program rule with `container:`",
                );
            }
            name => match spec::subcommand(name) {
                Some(s) => s.options,
                None => {
                    let why =
                        spec::never_subcommand(name).unwrap_or("the grammar does not know it");
                    return err(
                        &sub.0,
                        format!("docker subcommand `{name}` cannot be allowed: {why}"),
                    );
                }
            },
        };
        let allowed = option_names(sub.as_str(), table, options)?;
        subcommands.insert(sub.as_str().to_string(), allowed);
    }
    let mut sudo_subcommands = BTreeMap::new();
    for s in &model.sudo_subcommands {
        if !READ_ONLY_SUBCOMMANDS.contains(&s.value.as_str()) {
            return err(
                s,
                format!(
                    "`sudo docker` may only read: {}",
                    READ_ONLY_SUBCOMMANDS.join(", ")
                ),
            );
        }
        if !subcommands.contains_key(&s.value) {
            return err(
                s,
                format!("`{}` must also be listed under `subcommands`", s.value),
            );
        }
        let allowed = subcommands.get(&s.value).cloned().unwrap_or_default();
        let regexes = crate::sudoers::docker_regexes(&allowed, &s.value).map_err(|e| {
            error_at(
                s,
                format!("sudoers cannot express `sudo docker {}`: {e}", s.value),
            )
        })?;
        sudo_subcommands.insert(s.value.clone(), regexes);
    }
    let mut networks = Vec::new();
    for n in &model.run.networks {
        let lower = n.value.to_ascii_lowercase();
        if lower == "host" || lower.starts_with("container:") || values::name(&n.value).is_err() {
            return err(
                n,
                format!(
                    "network `{}` can never be allowed: it shares the host's or another container's network",
                    n.value
                ),
            );
        }
        networks.push(n.value.clone());
    }
    let mut publish_addresses = Vec::new();
    for a in &model.run.publish_addresses {
        match a.value.parse::<std::net::IpAddr>() {
            Ok(ip) if !ip.is_unspecified() => publish_addresses.push(a.value.clone()),
            _ => return err(a, format!("`{}` is not a specific IP address", a.value)),
        }
    }
    let images = model
        .run
        .images
        .as_deref()
        .map(image_patterns)
        .transpose()?;
    let build_tags = model
        .build
        .tags
        .as_deref()
        .map(image_patterns)
        .transpose()?;
    let mut build_contexts = Vec::new();
    for c in &model.build.contexts {
        build_contexts.push(absolute(c, "a build context")?);
    }
    let mut compose_files = Vec::new();
    for f in &model.compose.files {
        compose_files.push(absolute(f, "a compose file")?);
    }
    let mut compose_projects = Vec::new();
    for p in &model.compose.projects {
        if values::name(&p.value).is_err() {
            return err(p, format!("`{}` is not a compose project name", p.value));
        }
        compose_projects.push(p.value.clone());
    }
    let mut compose_verbs = BTreeMap::new();
    for (verb, options) in &model.compose.verbs {
        let Some((_, table, _)) = spec::COMPOSE_VERBS
            .iter()
            .find(|(v, _, _)| *v == verb.as_str())
        else {
            let why =
                spec::never_compose_verb(verb.as_str()).unwrap_or("the grammar does not know it");
            return err(
                &verb.0,
                format!("compose verb `{}` cannot be allowed: {why}", verb.as_str()),
            );
        };
        let allowed = option_names(&format!("compose {}", verb.as_str()), table, options)?;
        compose_verbs.insert(verb.as_str().to_string(), allowed);
    }
    Ok(DockerPolicy {
        program: absolute(&model.program, "docker")?,
        config: absolute(&model.config, "the docker config directory")?,
        subcommands,
        sudo_subcommands,
        networks,
        publish_addresses,
        allow_env: names_or_prefixes(&model.run.allow_env, "a variable name")?,
        allow_labels: names_or_prefixes(&model.run.allow_labels, "a label key")?,
        inspect_shows_env: model.inspect_shows_env,
        images,
        build_contexts,
        build_tags,
        compose_files,
        compose_projects,
        compose_verbs,
        timeout: timeout(model.timeout.as_ref(), default_timeout)?,
        stdin: model.stdin,
    })
}

/// Resolve option names (canonical or alias) against a table; `Never` options are errors.
fn option_names(
    sub: &str,
    table: &[spec::Opt],
    names: &[S],
) -> Result<BTreeSet<String>, PolicyError> {
    let mut allowed = BTreeSet::new();
    for n in names {
        let Some(opt) = table.iter().find(|o| o.names.contains(&n.value.as_str())) else {
            return err(
                n,
                format!(
                    "docker {sub} has no option `--{}` (write long names without dashes)",
                    n.value
                ),
            );
        };
        if let spec::Kind::Never(why) = opt.kind {
            return err(
                n,
                format!("docker {sub} --{} can never be allowed: {why}", n.value),
            );
        }
        allowed.insert(opt.name().to_string());
    }
    Ok(allowed)
}

fn program(
    p: &ProgramModel,
    have_sudo: bool,
    have_docker: bool,
    default_timeout: Duration,
) -> Result<ProgramRule, PolicyError> {
    if !is_word(&p.id.value, &[])
        || RESERVED_COMMANDS.contains(&p.id.value.as_str())
        || p.id.value == "deploy"
    {
        return err(
            &p.id,
            format!(
                "rule id `{}` must be lowercase letters, digits and `-`, and not a reserved name",
                p.id.value
            ),
        );
    }
    if !is_word(&p.command.value, &['.', '_', '+'])
        || RESERVED_COMMANDS.contains(&p.command.value.as_str())
    {
        return err(
            &p.command,
            format!("`{}` cannot be a declared command", p.command.value),
        );
    }
    let path = match (&p.container, &p.path) {
        (Some(c), None) => {
            if !have_docker {
                return err(c, "a container program needs the `docker` section");
            }
            if p.sudo {
                return err(c, "a container program cannot use sudo");
            }
            if values::name(&c.value).is_err() {
                return err(c, format!("`{}` is not a container name", c.value));
            }
            p.command.value.clone()
        }
        (Some(c), Some(_)) => return err(c, "a container program has no host `path`"),
        (None, Some(path)) => absolute(path, "a program")?,
        (None, None) => return err(&p.command, "a program needs an absolute `path`"),
    };
    let base = path.rsplit('/').next().unwrap_or_default();
    if NEVER_PROGRAMS.contains(&base) || NEVER_PROGRAMS.contains(&p.command.value.as_str()) {
        return err(
            &p.command,
            format!(
                "`{}` runs other programs or is a shell; it can never be a declared program",
                p.command.value
            ),
        );
    }
    if p.sudo && !have_sudo {
        return err(&p.command, "`sudo: true` needs the top-level `sudo:` path");
    }
    let mut options: Vec<OptSpec> = Vec::new();
    for o in &p.options {
        let spec = option(o, &p.command)?;
        let clash = options.iter().any(|e| {
            (e.short.is_some() && e.short == spec.short)
                || (e.long.is_some() && e.long == spec.long)
        });
        if clash {
            return err(
                o.long.as_ref().or(o.short.as_ref()).unwrap_or(&p.command),
                "this option is declared twice",
            );
        }
        options.push(spec);
    }
    let mut exactly_one_of = Vec::new();
    for group in &p.exactly_one_of {
        let mut indexes = Vec::new();
        for name in group {
            match options.iter().position(|o| o.is_named(&name.value)) {
                Some(i) => indexes.push(i),
                None => return err(name, format!("no declared option `{}`", name.value)),
            }
        }
        exactly_one_of.push(indexes);
    }
    let mut words = Vec::new();
    for w in &p.words {
        if w.value.is_empty() || w.value.starts_with('-') {
            return err(w, "a fixed word is a plain word");
        }
        words.push(w.value.clone());
    }
    let mut args = Vec::new();
    for a in &p.args {
        if !is_word(&a.name.value, &['_']) {
            return err(&a.name, "an argument name is a lowercase word");
        }
        args.push(ArgSpec {
            name: a.name.value.clone(),
            value: value_type(&a.value, &a.name)?,
            optional: a.optional,
            repeat: a.repeat,
        });
    }
    if p.sudo {
        let values = p
            .options
            .iter()
            .filter_map(|o| o.value.as_ref())
            .chain(p.args.iter().map(|a| &a.value));
        for v in values {
            sudo_expressible(v)?;
        }
        for word in p.words.iter().chain(&p.forced_args) {
            ere::plain_word(&word.value).map_err(|e| error_at(word, e))?;
        }
    }
    let mut env = Vec::new();
    for (name, value) in &p.env {
        if values::env(name.as_str()).is_err() || name.as_str().contains('=') {
            return err(
                &name.0,
                format!("`{}` is not an environment variable name", name.as_str()),
            );
        }
        env.push((name.as_str().to_string(), value.value.clone()));
    }
    let forced_args: Vec<String> = p.forced_args.iter().map(|a| a.value.clone()).collect();
    let args_after_choice = p.args_after_choice.as_ref().filter(|flag| flag.value);
    if let Some(flag) = args_after_choice
        && exactly_one_of.len() != 1
    {
        return err(
            flag,
            "`args_after_choice` needs exactly one `exactly_one_of` group: the option its arguments follow",
        );
    }
    let grammar = Grammar {
        words,
        options,
        args,
        exactly_one_of,
        args_after_choice: args_after_choice.is_some(),
    };
    let unexpressible = |e: String| {
        error_at(
            &p.id,
            format!("sudoers cannot express rule `{}`: {e}", p.id.value),
        )
    };
    let (sudoers_args, sudoers_check) = if p.sudo {
        (
            crate::sudoers::program_lines(&grammar, &forced_args).map_err(unexpressible)?,
            crate::sudoers::program_check(&grammar, &forced_args).map_err(unexpressible)?,
        )
    } else {
        (Vec::new(), Vec::new())
    };
    Ok(ProgramRule {
        id: p.id.value.clone(),
        command: p.command.value.clone(),
        path,
        sudo: p.sudo,
        container: p.container.as_ref().map(|c| c.value.clone()),
        description: p.description.clone(),
        grammar,
        forced_args,
        env,
        timeout: timeout(p.timeout.as_ref(), default_timeout)?,
        stdin: p.stdin,
        sudoers_args,
        sudoers_check,
    })
}

fn option(o: &OptionModel, at: &S) -> Result<OptSpec, PolicyError> {
    let short = match &o.short {
        None => None,
        Some(s) => {
            let mut chars = s.value.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii_alphanumeric() => Some(c),
                _ => return err(s, "a short option is one letter or digit, without the dash"),
            }
        }
    };
    let long = match &o.long {
        None => None,
        Some(l) if is_word(&l.value, &[]) => Some(l.value.clone()),
        Some(l) => {
            return err(
                l,
                "a long option is lowercase letters, digits and `-`, without the dashes",
            );
        }
    };
    if short.is_none() && long.is_none() {
        return err(at, "an option needs `short`, `long` or both");
    }
    let value = match &o.value {
        None => None,
        Some(v) => Some(value_type(
            v,
            o.long.as_ref().or(o.short.as_ref()).unwrap_or(at),
        )?),
    };
    let optional = match &o.optional_value {
        None => None,
        Some(how) => {
            let how_value = match how.value.as_str() {
                "attached" => Optional::Attached,
                "lookahead" => Optional::Lookahead,
                _ => {
                    return err(
                        how,
                        "optional_value is `attached` (getopt's `::`: -bVALUE, --boot=VALUE) or `lookahead` (also the next word when it is of the value's type)",
                    );
                }
            };
            match &value {
                None => return err(how, "optional_value needs a `value`"),
                // The next word is the value exactly when the type says so: `text` would take
                // any word, where the tool takes only what it can parse.
                Some(ValueType::Text) if how_value == Optional::Lookahead => {
                    return err(
                        how,
                        "a `lookahead` value must be typed (enum, int, pattern, exact, systemd_time): the next word is the value only when the tool would parse it as one",
                    );
                }
                Some(_) => Some(how_value),
            }
        }
    };
    Ok(OptSpec {
        short,
        long,
        value,
        optional,
        repeat: o.repeat,
    })
}

/// A sudo rule's values must have a form sudoers can match (see `sudoers::ere`).
fn sudo_expressible(v: &ValueModel) -> Result<(), PolicyError> {
    match v {
        ValueModel::Enum(words) => {
            for w in words {
                ere::plain_word(&w.value).map_err(|e| error_at(w, e))?;
            }
        }
        ValueModel::Exact(word) => ere::plain_word(&word.value).map_err(|e| error_at(word, e))?,
        ValueModel::Pattern(source) => {
            ere::pattern(&source.value).map_err(|e| error_at(source, e))?;
        }
        ValueModel::KeyValues(keys) => {
            for (key, v) in keys {
                ere::plain_word(key.as_str()).map_err(|e| error_at(&key.0, e))?;
                sudo_expressible(v)?;
            }
        }
        ValueModel::Int(_) | ValueModel::Text | ValueModel::SystemdTime => {}
    }
    Ok(())
}

fn value_type(v: &ValueModel, at: &S) -> Result<ValueType, PolicyError> {
    Ok(match v {
        ValueModel::Enum(words) => {
            if words.is_empty() {
                return err(at, "an enum needs at least one word");
            }
            for w in words {
                if w.value.is_empty() || w.value.starts_with('-') || !w.value.is_ascii() {
                    return err(w, "an enum word is plain ASCII and does not start with `-`");
                }
            }
            ValueType::Enum(words.iter().map(|w| w.value.clone()).collect())
        }
        ValueModel::Int(bounds) => match bounds.value.as_slice() {
            [min, max] if min <= max => ValueType::Int {
                min: *min,
                max: *max,
            },
            _ => return err(bounds, "an int is `[MIN, MAX]` with MIN <= MAX"),
        },
        ValueModel::Pattern(source) => match Pattern::new(&source.value) {
            Ok(pattern) => ValueType::Pattern(pattern),
            Err(e) => {
                let first = e
                    .to_string()
                    .lines()
                    .last()
                    .unwrap_or("invalid")
                    .to_string();
                return err(source, format!("invalid pattern: {first}"));
            }
        },
        ValueModel::Exact(s) => {
            if s.value.is_empty() {
                return err(s, "an exact value is not empty");
            }
            ValueType::Exact(s.value.clone())
        }
        ValueModel::Text => ValueType::Text,
        ValueModel::SystemdTime => ValueType::SystemdTime,
        ValueModel::KeyValues(keys) => {
            if keys.is_empty() {
                return err(at, "key_values needs at least one key");
            }
            let mut out = Vec::new();
            for (key, v) in keys {
                if !is_word(key.as_str(), &['_']) {
                    return err(
                        &key.0,
                        format!(
                            "key `{}` is not lowercase letters, digits, `-` and `_`",
                            key.as_str()
                        ),
                    );
                }
                if matches!(v, ValueModel::KeyValues(_)) {
                    return err(&key.0, "key_values do not nest");
                }
                // The pairs are split at commas first: a value with one would never match.
                let words: Vec<&S> = match v {
                    ValueModel::Enum(words) => words.iter().collect(),
                    ValueModel::Exact(word) => vec![word],
                    _ => Vec::new(),
                };
                if let Some(w) = words.iter().find(|w| w.value.contains(',')) {
                    return err(
                        w,
                        "a key_values value cannot contain `,`, which separates the pairs",
                    );
                }
                out.push((key.as_str().to_string(), value_type(v, &key.0)?));
            }
            ValueType::KeyValues(out)
        }
    })
}

fn deploy(
    d: &DeployModel,
    have_sudo: bool,
    default_timeout: Duration,
) -> Result<DeployPolicy, PolicyError> {
    let flake = absolute(&d.flake, "the flake")?;
    let nh = d.nh.as_ref().map(|p| absolute(p, "nh")).transpose()?;
    let nixos_rebuild = d
        .nixos_rebuild
        .as_ref()
        .map(|p| absolute(p, "nixos-rebuild"))
        .transpose()?;
    if nh.is_none() && nixos_rebuild.is_none() {
        return err(&d.flake, "a deploy needs `nh`, `nixos_rebuild` or both");
    }
    if !have_sudo {
        return err(
            &d.flake,
            "a deploy runs as root through the gateway's approval step, which sudo starts: set the top-level `sudo:` path",
        );
    }
    Ok(DeployPolicy {
        flake,
        nh,
        nixos_rebuild,
        timeout: timeout(d.timeout.as_ref(), default_timeout)?,
        approval: approval(&d.approval)?,
    })
}

pub const DEFAULT_STORE: &str = "/var/lib/agent-gate/approvals";
const DEFAULT_EXPIRE: u64 = 1800;
/// A waiting session answers before agents' own command timeouts (Hermes: 180 s) cut it,
/// so the agent sees the request id and how to go on, not a timeout.
const DEFAULT_WAIT: u64 = 120;
const MAX_EXPIRE: u64 = 7 * 86_400;

fn approval(a: &ApprovalModel) -> Result<ApprovalPolicy, PolicyError> {
    let store = match &a.store {
        Some(s) => absolute(s, "the approval store")?,
        None => DEFAULT_STORE.to_string(),
    };
    let expire = match &a.expire_seconds {
        None => DEFAULT_EXPIRE,
        Some(e) if (1..=MAX_EXPIRE).contains(&e.value) => e.value,
        Some(e) => return err(e, format!("expire_seconds is from 1 to {MAX_EXPIRE}")),
    };
    let wait = match &a.wait_seconds {
        None => DEFAULT_WAIT.min(expire),
        Some(w) if w.value <= expire => w.value,
        Some(w) => {
            return err(
                w,
                format!(
                    "wait_seconds is at most expire_seconds ({expire}): a request expires before a longer wait ends"
                ),
            );
        }
    };
    let mut notify = Vec::new();
    if let Some((program, args)) = a.notify.split_first() {
        notify.push(absolute(program, "the notify program")?);
        for arg in args {
            if arg.value.chars().any(char::is_control) {
                return err(arg, "a notify argument cannot hold control characters");
            }
            notify.push(arg.value.clone());
        }
    }
    Ok(ApprovalPolicy {
        store: store.into(),
        expire: Duration::from_secs(expire),
        wait: Duration::from_secs(wait),
        notify,
    })
}

fn mcp_limits(m: &super::model::McpModel) -> Result<McpLimits, PolicyError> {
    let seconds = |v: &Option<Spanned<u64>>, default: u64, what: &str| match v {
        None => Ok(Duration::from_secs(default)),
        Some(s) if (10..=7 * 86_400).contains(&s.value) => Ok(Duration::from_secs(s.value)),
        Some(s) => err(s, format!("{what} is from 10 seconds to a week")),
    };
    let idle = seconds(&m.idle_seconds, 3600, "mcp.idle_seconds")?;
    let session = seconds(&m.session_seconds, 8 * 3600, "mcp.session_seconds")?;
    Ok(McpLimits { idle, session })
}

/// Names or `PREFIX*` patterns of plain characters (for `allow_env`, `allow_labels`).
fn names_or_prefixes(list: &[S], what: &str) -> Result<Vec<String>, PolicyError> {
    let mut out = Vec::new();
    for item in list {
        let name = item.value.strip_suffix('*').unwrap_or(&item.value);
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-/".contains(&b))
        {
            return err(item, format!("`{}` is not {what} or `PREFIX*`", item.value));
        }
        out.push(item.value.clone());
    }
    Ok(out)
}

/// A list of repositories and `namespace/*` patterns (the run allow-list, the build tags).
fn image_patterns(list: &[S]) -> Result<Vec<String>, PolicyError> {
    let mut out = Vec::new();
    for i in list {
        let base = i.value.strip_suffix("/*").unwrap_or(&i.value);
        let probe = if i.value.ends_with("/*") {
            format!("{base}/x")
        } else {
            base.to_string()
        };
        if values::image(&probe).is_err() || probe.contains(':') && !probe.contains('/') {
            return err(
                i,
                format!("`{}` is not a repository or `namespace/*`", i.value),
            );
        }
        out.push(i.value.clone());
    }
    Ok(out)
}

/// Every rule's examples, with where each is written, for the self-check.
fn examples(model: &RulesModel) -> Vec<Example> {
    let mut rules: Vec<(&str, &ExamplesModel)> = Vec::new();
    if let Some(d) = &model.docker {
        rules.push(("docker", &d.examples));
    }
    if let Some(d) = &model.deploy {
        rules.push(("deploy", &d.examples));
    }
    for p in &model.programs {
        rules.push((p.id.value.as_str(), &p.examples));
    }
    let mut out = Vec::new();
    for (rule, ex) in rules {
        for (list, allow) in [(&ex.allow, true), (&ex.refuse, false)] {
            for raw in list {
                let (line, column) = location(raw);
                out.push(Example {
                    rule: rule.to_string(),
                    command: raw.value.clone(),
                    allow,
                    line,
                    column,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::DEFAULT_PATH;
    use crate::policy::{AuditFormat, PolicyError, compile};

    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBnhR3kRTRLTegHjS85xsaF59JzZ6iIFhCZphnjIGICs a@x";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILvtejmUGKHE2n6HmmoN+jGRtIVi4F38xHifoz1jxxeh b@x";
    const FP_A: &str = "SHA256:n1ThldcEJ5O0cPbS4NSbo838Eg5eN8wK+D8UDIzKNF4";

    /// One key that may use rule `p`, then `rest` (a top-level section or more).
    fn with(rest: &str) -> String {
        format!("version: 1\nkeys:\n  k:\n    may: [p]\n{rest}")
    }

    /// With `sudo:` and a docker section, one program rule `p` whose fields follow `- id: p`.
    fn program(fields: &str) -> String {
        format!(
            "version: 1\nsudo: /usr/bin/sudo\nkeys:\n  k:\n    may: [p]\n\
             docker:\n  program: /usr/bin/docker\n  config: /etc/dc\n  subcommands:\n    ps: []\n\
             programs:\n  - id: p\n{fields}"
        )
    }

    /// A plain host program `p` with these extra fields.
    fn host(fields: &str) -> String {
        program(&format!("    command: p\n    path: /usr/bin/p\n{fields}"))
    }

    /// Key `k` may use `docker`; the docker section has these subcommands and more fields.
    fn docker(subcommands: &str, more: &str) -> String {
        format!(
            "version: 1\nkeys:\n  k:\n    may: [docker]\n\
             docker:\n  program: /usr/bin/docker\n  config: /etc/dc\n  subcommands:\n{subcommands}{more}"
        )
    }

    /// Where the error must point.
    enum At {
        /// Just after the first occurrence of this text: where the value written after it starts.
        After(&'static str),
        /// At the `n`th (0-based) occurrence of this text.
        Nth(&'static str, usize),
    }

    /// The 1-based line and column `at` names in `text`; panics when
    /// the text named is not there, so that no row goes unchecked by mistake.
    fn position(text: &str, at: &At) -> (u64, u64) {
        let offset = match at {
            At::After(needle) => text.find(needle).map(|i| i + needle.len()),
            At::Nth(needle, n) => text.match_indices(needle).nth(*n).map(|(i, _)| i),
        };
        let before = offset
            .and_then(|o| text.get(..o))
            .unwrap_or_else(|| panic!("the place named is not in:\n{text}"));
        let line = before.matches('\n').count() + 1;
        let column = before
            .rsplit('\n')
            .next()
            .unwrap_or_default()
            .chars()
            .count()
            + 1;
        (line as u64, column as u64)
    }

    /// Why the compiled `text` does not fail with `message` at `at`, if it does not.
    fn wrong_error(text: &str, message: &str, at: &At) -> Option<String> {
        let e: PolicyError = match compile(text) {
            Ok(_) => return Some(format!("compiled, but should fail with {message:?}")),
            Err(e) => e,
        };
        if !e.message.contains(message) {
            return Some(format!("{e}\nshould contain {message:?}"));
        }
        let place = position(text, at);
        if (e.line, e.column) != place {
            return Some(format!("{e}\nshould be at {place:?}"));
        }
        let shown = format!("{}:{}: {}", e.line, e.column, e.message);
        (e.to_string() != shown).then(|| format!("{e} is not shown as {shown}"))
    }

    #[test]
    fn valid_rules_compile() {
        let rows = [
            with("programs:\n  - id: p\n    command: p\n    path: /usr/bin/p\n"),
            host(""),
            host("    options:\n      - {short: n, long: lines, value: {int: [1, 1]}}\n"),
            host("    options:\n      - {long: unit, value: {enum: [a, b.service]}}\n"),
            host("    args:\n      - {name: chain, value: {pattern: '[A-Z]+'}, optional: true}\n"),
            host("    args:\n      - {name: file, value: {exact: /proc/net/tcp}}\n"),
            host("    args:\n      - {name: prompt, value: text}\n"),
            host("    sudo: true\n    options:\n      - {short: T}\n    exactly_one_of: [[T]]\n"),
            host(
                "    sudo: true\n    options:\n      - {short: b, long: boot, value: {int: [-9, 9]}, optional_value: lookahead}\n      - {long: color, value: {enum: [always]}, optional_value: attached}\n      - {short: S, value: systemd_time}\n",
            ),
            host(
                "    sudo: true\n    options:\n      - short: C\n        value:\n          key_values:\n            user: {pattern: '[a-z]+'}\n            lport: {int: [1, 65535]}\n            l_addr: {exact: x}\n",
            ),
            host(
                "    sudo: true\n    args:\n      - {name: when, value: {pattern: '[0-9]+( [a-z]+)?'}}\n",
            ),
            program("    command: ollama\n    container: ollama\n    words: [list]\n"),
            docker("    ps: [all, quiet]\n", "  sudo_subcommands: [ps]\n"),
            docker(
                "    run: [rm, network]\n",
                "  run:\n    networks: [none, appnet]\n    publish_addresses: [127.0.0.1, '::1']\n    images: [library/*, ollama/ollama]\n",
            ),
            format!(
                "version: 1\nsudo: /usr/bin/sudo\nkeys:\n  a:\n    may: [deploy]\n    from: [10.0.0.0/8, 'fd00::/8', 192.0.2.1]\n    public_key: {KEY_A}\n  b:\n    may: []\n    public_key: {KEY_B}\n\
                 deploy:\n  flake: /etc/nixos\n  nh: /usr/bin/nh\n"
            ),
        ];
        for text in rows {
            if let Err(e) = compile(&text) {
                panic!("{e} in:\n{text}");
            }
        }
    }

    #[test]
    fn errors_say_what_and_where() {
        let deploy_without_sudo = with(
            "deploy:\n  flake: /etc/nixos\n  nh: /usr/bin/nh\nprograms:\n  - id: p\n    command: p\n    path: /usr/bin/p\n",
        );
        let pinned_twice = format!(
            "version: 1\nkeys:\n  zeta:\n    may: []\n    public_key: {KEY_A}\n  alpha:\n    may: []\n    public_key: {KEY_A}\n"
        );
        let rows: Vec<(String, &str, At)> = vec![
            // The file and its defaults.
            (
                with("").replace("version: 1", "version: 2"),
                "this agent-gate reads rules `version: 1`",
                At::After("version: "),
            ),
            (
                with("defaults:\n  timeout: 0\n"),
                "a timeout is from 1 to 86400 seconds",
                At::After("timeout: "),
            ),
            (
                with("defaults:\n  timeout: 86401\n"),
                "a timeout is from 1 to 86400 seconds",
                At::After("timeout: "),
            ),
            (
                with("defaults:\n  path: /bin:usr/bin\n"),
                "PATH is a `:`-separated list of clean absolute directories",
                At::After("path: "),
            ),
            (
                with("defaults:\n  path: /bin::/usr/bin\n"),
                "PATH is a `:`-separated list",
                At::After("path: "),
            ),
            (
                with("defaults:\n  open_files: 15\n"),
                "open_files is from 16 to 1048576",
                At::After("open_files: "),
            ),
            (
                with("audit:\n  format: xml\n"),
                "the audit format is `kv` or `json`",
                At::After("format: "),
            ),
            (
                with("audit:\n  socket: dev/log\n"),
                "the audit socket must be a clean absolute path, not `dev/log`",
                At::After("socket: "),
            ),
            (
                with("sudo: /usr/bin/../bin/sudo\n"),
                "sudo must be a clean absolute path",
                At::After("sudo: "),
            ),
            // The YAML itself.
            (
                with("colour: red\n"),
                "unknown field `colour`",
                At::Nth("colour", 0),
            ),
            (
                with("").replace("    may: [p]\n", "    may: [p]\n    may: [q]\n"),
                "duplicate mapping key: may",
                At::Nth("may", 1),
            ),
            // Keys.
            (
                with("").replace("may: [p]", "may: [nope]"),
                "no rule `nope` (rules: )",
                At::After("may: ["),
            ),
            (
                host("").replace("may: [p]", "may: [p, docker, deploy]"),
                "no rule `deploy` (rules: docker, p)",
                At::Nth("deploy", 0),
            ),
            (
                with("").replace("  k:", "  Hermes:").replace("may: [p]", "may: []"),
                "key label `Hermes` is not lowercase letters",
                At::Nth("Hermes", 0),
            ),
            (
                with("").replace("may: [p]", "may: []\n    from: [10.0.0.0/33]"),
                "`10.0.0.0/33` is not an address or network",
                At::After("from: ["),
            ),
            (
                with("").replace("may: [p]", "may: []\n    from: [10.0.0.1, example.org]"),
                "`example.org` is not an address or network",
                At::Nth("example.org", 0),
            ),
            (
                with("").replace("may: [p]", "may: []\n    public_key: ssh-ed25519 AAAA"),
                "not an OpenSSH public key",
                At::After("public_key: "),
            ),
            (
                with("").replace(
                    "may: [p]",
                    "may: []\n    public_key: ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIBnhR3kRTRLTegHjS85xsaF59JzZ6iIFhCZphnjIGICs",
                ),
                "not an OpenSSH public key",
                At::After("public_key: "),
            ),
            // Keys are compiled in label order: the error is at `zeta`, written first.
            (
                pinned_twice,
                "this public key is already pinned to label `alpha`",
                At::Nth("ssh-ed25519", 0),
            ),
            // Program rules.
            (
                format!("{}  - id: p\n    command: q\n    path: /usr/bin/q\n", host("")),
                "rule id `p` is used twice",
                At::Nth("p\n    command: q", 0),
            ),
            (
                program("    command: p\n    path: bin/p\n"),
                "a program must be a clean absolute path, not `bin/p`",
                At::After("path: "),
            ),
            (
                program("    command: p\n    path: /usr/bin/\n"),
                "a program must be a clean absolute path",
                At::After("path: "),
            ),
            (
                program("    command: p\n"),
                "a program needs an absolute `path`",
                At::After("command: "),
            ),
            (
                host("").replace("id: p", "id: Uptime"),
                "rule id `Uptime` must be lowercase letters",
                At::After("id: "),
            ),
            (
                host("").replace("id: p", "id: deploy").replace("may: [p]", "may: []"),
                "rule id `deploy` must be lowercase letters, digits and `-`, and not a reserved name",
                At::After("id: "),
            ),
            (
                program("    command: nh\n    path: /usr/bin/nh\n"),
                "`nh` cannot be a declared command",
                At::After("command: "),
            ),
            (
                program("    command: bash\n    path: /usr/bin/bash\n"),
                "`bash` runs other programs or is a shell; it can never be a declared program",
                At::After("command: "),
            ),
            (
                program("    command: friendly\n    path: /usr/bin/python3\n"),
                "`friendly` runs other programs or is a shell",
                At::After("command: "),
            ),
            // A deploy under another name would skip the human's approval.
            (
                program("    command: rebuild\n    path: /run/current-system/sw/bin/nixos-rebuild\n"),
                "`rebuild` runs other programs or is a shell",
                At::After("command: "),
            ),
            (
                host("    sudo: true\n").replace("sudo: /usr/bin/sudo\n", ""),
                "`sudo: true` needs the top-level `sudo:` path",
                At::After("command: "),
            ),
            (
                with("programs:\n  - id: p\n    command: p\n    container: c\n"),
                "a container program needs the `docker` section",
                At::After("container: "),
            ),
            (
                program("    command: p\n    container: c\n    sudo: true\n"),
                "a container program cannot use sudo",
                At::After("container: "),
            ),
            (
                program("    command: p\n    container: c\n    path: /usr/bin/p\n"),
                "a container program has no host `path`",
                At::After("container: "),
            ),
            (
                program("    command: p\n    container: -c\n"),
                "`-c` is not a container name",
                At::After("container: "),
            ),
            // Options, words, arguments and their value types.
            (
                host("    options:\n      - {short: nn}\n"),
                "a short option is one letter or digit",
                At::After("short: "),
            ),
            (
                host("    options:\n      - {long: --all}\n"),
                "a long option is lowercase letters, digits and `-`, without the dashes",
                At::After("long: "),
            ),
            (
                host("    options:\n      - {repeat: true}\n"),
                "an option needs `short`, `long` or both",
                At::After("command: "),
            ),
            (
                host("    options:\n      - {short: a, long: all}\n      - {long: all}\n"),
                "this option is declared twice",
                At::Nth("all", 1),
            ),
            (
                host("    options:\n      - {short: a}\n    exactly_one_of: [[a, b]]\n"),
                "no declared option `b`",
                At::After("[[a, "),
            ),
            (
                host("    options:\n      - {short: a}\n    args_after_choice: true\n"),
                "`args_after_choice` needs exactly one `exactly_one_of` group",
                At::After("args_after_choice: "),
            ),
            (
                host("    words: [-rf]\n"),
                "a fixed word is a plain word",
                At::After("words: ["),
            ),
            (
                host("    args:\n      - {name: Chain, value: text}\n"),
                "an argument name is a lowercase word",
                At::After("name: "),
            ),
            (
                host("    options:\n      - {long: unit, value: {enum: []}}\n"),
                "an enum needs at least one word",
                At::After("long: "),
            ),
            (
                host("    options:\n      - {long: unit, value: {enum: [a, -b]}}\n"),
                "an enum word is plain ASCII and does not start with `-`",
                At::After("[a, "),
            ),
            (
                host("    options:\n      - {long: n, value: {int: [10, 1]}}\n"),
                "an int is `[MIN, MAX]` with MIN <= MAX",
                At::After("int: "),
            ),
            (
                host("    options:\n      - {long: n, value: {int: [1]}}\n"),
                "an int is `[MIN, MAX]`",
                At::After("int: "),
            ),
            (
                host("    args:\n      - {name: chain, value: {pattern: '[a-z'}}\n"),
                "invalid pattern",
                At::After("pattern: "),
            ),
            (
                host("    args:\n      - {name: file, value: {exact: ''}}\n"),
                "an exact value is not empty",
                At::After("exact: "),
            ),
            (
                host("    env:\n      'A B': x\n"),
                "`A B` is not an environment variable name",
                At::Nth("'A B'", 0),
            ),
            (
                host("    timeout: 0\n"),
                "a timeout is from 1 to 86400 seconds",
                At::After("timeout: "),
            ),
            // Optional values and the new types.
            (
                host("    options:\n      - {short: b, value: {int: [0, 9]}, optional_value: maybe}\n"),
                "optional_value is `attached`",
                At::After("optional_value: "),
            ),
            (
                host("    options:\n      - {short: b, optional_value: attached}\n"),
                "optional_value needs a `value`",
                At::After("optional_value: "),
            ),
            (
                host("    options:\n      - {short: b, value: text, optional_value: lookahead}\n"),
                "a `lookahead` value must be typed",
                At::After("optional_value: "),
            ),
            (
                host("    options:\n      - {short: b, value: systemd_time, optional_value: true}\n"),
                "optional_value is `attached`",
                At::After("optional_value: "),
            ),
            (
                host("    options:\n      - {short: C, value: {key_values: {}}}\n"),
                "key_values needs at least one key",
                At::After("- {short: "),
            ),
            (
                host("    options:\n      - {short: C, value: {key_values: {User: text}}}\n"),
                "key `User` is not lowercase letters",
                At::Nth("User", 0),
            ),
            (
                host(
                    "    options:\n      - {short: C, value: {key_values: {a: {key_values: {b: text}}}}}\n",
                ),
                "key_values do not nest",
                At::After("key_values: {"),
            ),
            (
                host("    options:\n      - {short: C, value: {key_values: {a: {enum: [x, 'y,z']}}}}\n"),
                "a key_values value cannot contain `,`",
                At::After("x, "),
            ),
            (
                host("    options:\n      - {short: C, value: {key_values: {a: {int: [2, 1]}}}}\n"),
                "an int is `[MIN, MAX]` with MIN <= MAX",
                At::After("int: "),
            ),
            // A sudo rule must be expressible in sudoers.
            (
                host("    sudo: true\n    args:\n      - {name: x, value: {pattern: 'a( -[a-z]+)?'}}\n"),
                "a space in a sudo rule's pattern must be followed by a letter, digit",
                At::After("pattern: "),
            ),
            (
                host(
                    "    sudo: true\n    options:\n      - short: C\n        value:\n          key_values:\n            user: {pattern: 'a b?'}\n",
                ),
                "a space in a sudo rule's pattern must be followed by a letter, digit",
                At::After("user: {pattern: "),
            ),
            (
                host("    sudo: true\n    args:\n      - {name: x, value: {pattern: '^a$'}}\n"),
                "has no POSIX form for sudoers",
                At::After("pattern: "),
            ),
            (
                host("    sudo: true\n    forced_args: ['a b']\n"),
                "cannot be one argument of a sudo command",
                At::After("forced_args: ["),
            ),
            // docker.
            (
                docker("    exec: []\n", ""),
                "`docker exec` is allowed only through a program rule with `container:`",
                At::Nth("exec", 0),
            ),
            (
                docker("    cp: []\n", ""),
                "docker subcommand `cp` cannot be allowed: it copies files",
                At::Nth("cp", 0),
            ),
            (
                docker("    frobnicate: []\n", ""),
                "docker subcommand `frobnicate` cannot be allowed: the grammar does not know it",
                At::Nth("frobnicate", 0),
            ),
            (
                docker("    run: [rm, privileged]\n", ""),
                "docker run --privileged can never be allowed",
                At::Nth("privileged", 0),
            ),
            (
                docker("    ps: [colour]\n", ""),
                "docker ps has no option `--colour`",
                At::Nth("colour", 0),
            ),
            (
                docker("    run: []\n", "  sudo_subcommands: [run]\n"),
                "`sudo docker` may only read",
                At::After("sudo_subcommands: ["),
            ),
            (
                docker("    ps: []\n", "  sudo_subcommands: [inspect]\n"),
                "`inspect` must also be listed under `subcommands`",
                At::After("sudo_subcommands: ["),
            ),
            (
                docker("    run: []\n", "  run:\n    networks: [none, host]\n"),
                "network `host` can never be allowed",
                At::After("none, "),
            ),
            (
                docker("    run: []\n", "  run:\n    networks: ['container:db']\n"),
                "network `container:db` can never be allowed",
                At::After("networks: ["),
            ),
            (
                docker("    run: []\n", "  run:\n    publish_addresses: [0.0.0.0]\n"),
                "`0.0.0.0` is not a specific IP address",
                At::After("publish_addresses: ["),
            ),
            (
                docker("    run: []\n", "  run:\n    images: ['Bad Image']\n"),
                "`Bad Image` is not a repository or `namespace/*`",
                At::After("images: ["),
            ),
            (
                docker("    build: []\n", "  build:\n    contexts: [srv]\n"),
                "a build context must be a clean absolute path",
                At::After("contexts: ["),
            ),
            (
                docker("    compose: []\n", "  compose:\n    projects: [-x]\n"),
                "`-x` is not a compose project name",
                At::After("projects: ["),
            ),
            (
                docker("    compose: []\n", "  compose:\n    verbs:\n      exec: []\n"),
                "compose verb `exec` cannot be allowed: it runs a program",
                At::Nth("exec", 0),
            ),
            (
                docker("    ps: []\n", "").replace("program: /usr/bin/docker", "program: docker"),
                "docker must be a clean absolute path, not `docker`",
                At::After("program: "),
            ),
            // deploy.
            (
                deploy_without_sudo,
                "a deploy runs as root through the gateway's approval step, which sudo starts",
                At::After("flake: "),
            ),
            (
                with("sudo: /usr/bin/sudo\ndeploy:\n  flake: /etc/nixos\n"),
                "a deploy needs `nh`, `nixos_rebuild` or both",
                At::After("flake: "),
            ),
            (
                with("sudo: /usr/bin/sudo\ndeploy:\n  flake: etc/nixos\n  nh: /usr/bin/nh\n"),
                "the flake must be a clean absolute path",
                At::After("flake: "),
            ),
            (
                with(
                    "sudo: /usr/bin/sudo\ndeploy:\n  flake: /etc/nixos\n  nh: /usr/bin/nh\n  approval:\n    expire_seconds: 0\n",
                ),
                "expire_seconds is from 1 to 604800",
                At::After("expire_seconds: "),
            ),
            (
                with(
                    "sudo: /usr/bin/sudo\ndeploy:\n  flake: /etc/nixos\n  nh: /usr/bin/nh\n  approval:\n    expire_seconds: 60\n    wait_seconds: 61\n",
                ),
                "wait_seconds is at most expire_seconds (60)",
                At::After("wait_seconds: "),
            ),
            (
                with(
                    "sudo: /usr/bin/sudo\ndeploy:\n  flake: /etc/nixos\n  nh: /usr/bin/nh\n  approval:\n    notify: [notify-send, x]\n",
                ),
                "the notify program must be a clean absolute path",
                At::After("notify: ["),
            ),
            (
                with(
                    "sudo: /usr/bin/sudo\ndeploy:\n  flake: /etc/nixos\n  nh: /usr/bin/nh\n  approval:\n    notify: [/bin/n, \"a\\tb\"]\n",
                ),
                "a notify argument cannot hold control characters",
                At::After("/bin/n, "),
            ),
        ];
        let wrong: Vec<String> = rows
            .iter()
            .filter_map(|(text, message, at)| {
                wrong_error(text, message, at).map(|why| format!("{why}\nin:\n{text}"))
            })
            .collect();
        assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    }

    #[test]
    fn defaults_land_in_the_policy() {
        // (defaults section, timeout, path, open_files)
        let rows = [
            ("", 600, DEFAULT_PATH, 1024),
            ("defaults:\n  timeout: 30\n", 30, DEFAULT_PATH, 1024),
            (
                "defaults:\n  path: /run/wrappers/bin:/bin\n",
                600,
                "/run/wrappers/bin:/bin",
                1024,
            ),
            ("defaults:\n  open_files: 16\n", 600, DEFAULT_PATH, 16),
            (
                "defaults:\n  timeout: 86400\n  path: /bin\n  open_files: 1048576\n",
                86_400,
                "/bin",
                1_048_576,
            ),
        ];
        for (defaults, timeout, path, open_files) in rows {
            let text = host(&format!(
                "    timeout: 7\n  - id: q\n    command: q\n    path: /usr/bin/q\n{defaults}"
            ));
            let policy = compile(&text).unwrap();
            let d = &policy.defaults;
            assert_eq!(
                (d.timeout, d.path.as_str(), d.open_files),
                (Duration::from_secs(timeout), path, open_files),
                "{defaults}"
            );
            // A rule's own timeout wins; the others take the default, docker included.
            let timeouts: Vec<(&str, Duration)> = policy
                .programs
                .iter()
                .map(|p| (p.id.as_str(), p.timeout))
                .collect();
            assert_eq!(
                timeouts,
                [
                    ("p", Duration::from_secs(7)),
                    ("q", Duration::from_secs(timeout))
                ]
            );
            assert_eq!(
                policy.docker.as_ref().unwrap().timeout,
                Duration::from_secs(timeout)
            );
        }
    }

    #[test]
    fn compiled_values() {
        let text = format!(
            "version: 1\nsudo: /usr/bin/sudo\naudit:\n  socket: /run/log\n  format: json\nkeys:\n  hermes:\n    may: [deploy, p]\n    from: [10.1.0.0/16]\n    public_key: {KEY_A}\n    description: the agent\n\
             programs:\n  - id: p\n    command: p\n    path: /usr/bin/p\n    sudo: true\n    forced_args: [--no-pager]\n    env:\n      PAGER: cat\n    stdin: true\n\
             deploy:\n  flake: /etc/nixos\n  nixos_rebuild: /usr/bin/nixos-rebuild\n  timeout: 3600\n  approval:\n    expire_seconds: 300\n"
        );
        let policy = compile(&text).unwrap();
        assert_eq!(policy.sudo.as_deref(), Some("/usr/bin/sudo"));
        assert_eq!(policy.audit.socket, "/run/log");
        assert_eq!(policy.audit.format, AuditFormat::Json);
        assert!(policy.digest.starts_with("sha256:") && policy.digest.len() == 7 + 64);
        let key = policy.keys.get("hermes").unwrap();
        assert_eq!(key.may.iter().collect::<Vec<_>>(), ["deploy", "p"]);
        assert_eq!(key.from.len(), 1);
        assert!(key.from[0].contains("10.1.2.3".parse().unwrap()));
        assert_eq!(key.public_key.as_ref().unwrap().1, FP_A);
        assert_eq!(key.description.as_deref(), Some("the agent"));
        assert_eq!(policy.label_pinning(FP_A).unwrap().0, "hermes");
        let p = &policy.programs[0];
        assert_eq!(
            (p.path.as_str(), p.sudo, p.stdin),
            ("/usr/bin/p", true, true)
        );
        assert_eq!(p.forced_args, ["--no-pager"]);
        assert_eq!(p.env, [("PAGER".to_string(), "cat".to_string())]);
        assert!(!p.sudoers_args.is_empty());
        let deploy = policy.deploy.as_ref().unwrap();
        assert_eq!(deploy.nh, None);
        assert_eq!(
            deploy.nixos_rebuild.as_deref(),
            Some("/usr/bin/nixos-rebuild")
        );
        assert_eq!(deploy.timeout, Duration::from_secs(3600));
        // The wait defaults to 120 s, but never beyond the expiry.
        assert_eq!(deploy.approval.expire, Duration::from_secs(300));
        assert_eq!(deploy.approval.wait, Duration::from_secs(120));
        let short = crate::policy::compile(
            "version: 1\nsudo: /usr/bin/sudo\nkeys: {h: {may: [deploy]}}\ndeploy:\n  flake: /etc/nixos\n  nh: /usr/bin/nh\n  approval:\n    expire_seconds: 60\n",
        )
        .unwrap();
        let approval = &short.deploy.as_ref().unwrap().approval;
        assert_eq!(approval.wait, Duration::from_secs(60));
        assert_eq!(
            deploy.approval.store,
            std::path::Path::new(super::DEFAULT_STORE)
        );
        assert!(deploy.approval.notify.is_empty());

        // Without the optional sections: the built-in defaults.
        let policy = compile(&with(
            "programs:\n  - id: p\n    command: p\n    path: /usr/bin/p\n",
        ))
        .unwrap();
        assert_eq!(policy.audit.socket, "/dev/log");
        assert_eq!(policy.audit.format, AuditFormat::Kv);
        assert!(policy.sudo.is_none() && policy.docker.is_none() && policy.deploy.is_none());
        assert!(policy.programs[0].sudoers_args.is_empty());
        assert_eq!(policy.rule_ids(), ["p"]);
    }

    #[test]
    fn examples_are_collected_in_file_order() {
        let text = "version: 1
sudo: /usr/bin/sudo
keys:
  k:
    may: [p, docker, deploy]
docker:
  program: /usr/bin/docker
  config: /etc/dc
  subcommands:
    ps: [all]
  examples:
    allow: [docker ps -a]
    refuse: [docker run alpine]
programs:
  - id: p
    command: p
    path: /usr/bin/p
    examples:
      allow:
        - p
      refuse: [p -x, sudo p]
deploy:
  flake: /etc/nixos
  nh: /usr/bin/nh
  examples:
    allow: [nh os switch]
";
        let policy = compile(text).unwrap();
        let got: Vec<(&str, &str, bool, u64, u64)> = policy
            .examples
            .iter()
            .map(|e| {
                (
                    e.rule.as_str(),
                    e.command.as_str(),
                    e.allow,
                    e.line,
                    e.column,
                )
            })
            .collect();
        // docker first, then deploy, then the programs (not quite file order).
        assert_eq!(
            got,
            [
                ("docker", "docker ps -a", true, 12, 13),
                ("docker", "docker run alpine", false, 13, 14),
                ("deploy", "nh os switch", true, 26, 13),
                ("p", "p", true, 20, 11),
                ("p", "p -x", false, 21, 16),
                ("p", "sudo p", false, 21, 22),
            ]
        );
        crate::rules::parse(text).unwrap();
    }

    #[test]
    fn examples_are_checked_by_rules_parse() {
        let base = |examples: &str| {
            format!(
                "version: 1\nsudo: /usr/bin/sudo\nkeys:\n  k:\n    may: [p, q]\nprograms:\n  - id: p\n    command: p\n    path: /usr/bin/p\n    options:\n      - {{short: a}}\n\
                 \x20 - id: q\n    command: p\n    path: /usr/bin/p\n    options:\n      - {{short: b}}\n{examples}"
            )
        };
        // (examples of rule `q`, Ok or the error's message, the example's text to point at)
        let rows: [(&str, Result<(), &str>, &str); 6] = [
            (
                "    examples:\n      allow: [p -b]\n      refuse: [p -c]\n",
                Ok(()),
                "",
            ),
            (
                "    examples:\n      allow: [p -c]\n",
                Err("example `p -c` should be allowed by rule `q` but is refused: p: "),
                "p -c",
            ),
            (
                "    examples:\n      allow: [p]\n",
                Err("example `p` of rule `q` is decided by rule `p`"),
                "[p]",
            ),
            (
                "    examples:\n      refuse: [p -b]\n",
                Err("example `p -b` should be refused but rule `q` allows it"),
                "p -b",
            ),
            (
                "    examples:\n      allow: ['p -b; id']\n",
                Err("should be allowed by rule `q` but is refused: shell syntax `;`"),
                "'p -b",
            ),
            (
                "    examples:\n      refuse: ['p -b; id', '', sudo p -b, /usr/bin/p -b]\n",
                Ok(()),
                "",
            ),
        ];
        for (examples, want, at) in rows {
            let text = base(examples);
            assert!(compile(&text).is_ok(), "{text}");
            match (want, crate::rules::parse(&text)) {
                (Ok(()), Ok(_)) => {}
                (Err(message), Err(e)) => {
                    assert!(
                        e.message.contains(message),
                        "{e}\nshould contain {message:?}"
                    );
                    let place = position(&text, &At::Nth(at, 0));
                    let place = if at.starts_with('[') {
                        (place.0, place.1 + 1)
                    } else {
                        place
                    };
                    assert_eq!((e.line, e.column), place, "{e}");
                }
                (want, got) => panic!("{examples}: want {want:?}, got {:?}", got.map(|_| ())),
            }
        }
    }

    #[test]
    fn mcp_limits_come_from_the_rules() {
        let rules = |mcp: &str| {
            crate::policy::compile(&format!("version: 1\nkeys: {{h: {{may: []}}}}\n{mcp}"))
        };
        let default = rules("").unwrap().mcp;
        assert_eq!(default.idle, Duration::from_secs(3600));
        assert_eq!(default.session, Duration::from_secs(8 * 3600));
        let set = rules("mcp:\n  idle_seconds: 60\n  session_seconds: 600\n")
            .unwrap()
            .mcp;
        assert_eq!(
            (set.idle, set.session),
            (Duration::from_secs(60), Duration::from_secs(600))
        );
        let short = rules("mcp:\n  idle_seconds: 5\n").unwrap_err();
        assert!(short.message.contains("mcp.idle_seconds"), "{short}");
        assert_eq!(short.line, 4, "{short}");
        assert!(rules("mcp:\n  idle: 60\n").is_err());
    }

    #[test]
    fn the_audit_timeout_is_bounded() {
        let rules = |audit: &str| {
            crate::policy::compile(&format!("version: 1\nkeys: {{h: {{may: []}}}}\n{audit}"))
        };
        assert_eq!(rules("").unwrap().audit.timeout, super::AUDIT_TIMEOUT);
        let set = rules("audit:\n  timeout_ms: 500\n").unwrap();
        assert_eq!(set.audit.timeout, Duration::from_millis(500));
        for bad in ["0", "50", "60000"] {
            let e = rules(&format!("audit:\n  timeout_ms: {bad}\n")).unwrap_err();
            assert!(e.message.contains("audit.timeout_ms"), "{e}");
        }
    }
}
