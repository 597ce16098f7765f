//! `docker compose`: only vetted compose files and projects, only the read and lifecycle verbs.
//! Compose's own options are persistent flags in cobra, so they are accepted (and checked)
//! after the verb as well as before it.

use std::collections::BTreeSet;

use super::parse::{self, Parsed};
use super::spec::{self, Check, Kind};
use super::{check_allowed, check_value, docker_env, values};
use crate::plan::ExecPlan;
use crate::policy::{DockerPolicy, Policy};
use crate::verdict::{Classified, Refusal, Tier};

pub fn check(
    policy: &Policy,
    docker: &DockerPolicy,
    args: &[String],
) -> Result<Classified, Refusal> {
    let rule = "docker compose";
    let Some(global_allowed) = docker.subcommands.get("compose") else {
        return Err(Refusal::new(
            rule,
            "`docker compose` is not allowed by the rules",
        ));
    };
    let verbs_hint = || {
        let verbs: Vec<&str> = docker.compose_verbs.keys().map(String::as_str).collect();
        format!(
            "allowed: docker compose -f FILE {} (files: {})",
            verbs.join("|"),
            docker.compose_files.join(", ")
        )
    };
    // Compose's own options, up to the verb.
    let head = parse::parse(rule, &[spec::COMPOSE_GLOBAL], false, args)?;
    let Some(verb) = head.operands.first().copied() else {
        return Err(Refusal::new(rule, "`docker compose` needs a verb").hint(verbs_hint()));
    };
    // cobra finds the subcommand among the words before a `--` only: `docker compose -f F --
    // up` runs no `up` (compose says "unknown command"), so it must not be recorded as one.
    let at = args.len() - head.operands.len();
    if args
        .get(..at)
        .is_some_and(|before| before.iter().any(|a| a == "--"))
    {
        return Err(Refusal::new(
            rule,
            format!("`--` before the verb: compose would not read `{verb}` as its command"),
        )
        .hint("write the verb right after compose's options: `docker compose -f FILE ps`"));
    }
    let Some(allowed) = docker.compose_verbs.get(verb) else {
        let why = spec::never_compose_verb(verb).unwrap_or("it is not part of this host's policy");
        return Err(Refusal::new(
            format!("{rule} {verb}"),
            format!("`docker compose {verb}` is refused: {why}"),
        )
        .hint(verbs_hint()));
    };
    let Some((_, verb_table, target)) = spec::COMPOSE_VERBS.iter().find(|(v, _, _)| *v == verb)
    else {
        return Err(Refusal::new(
            rule,
            format!("`docker compose {verb}` is not known to the grammar"),
        ));
    };
    let rule = format!("{rule} {verb}");
    check_allowed(&rule, global_allowed, &head.options)?;
    let verb_args: &[String] = args
        .get(args.len() - head.operands.len() + 1..)
        .unwrap_or_default();
    let tail = parse::parse(&rule, &[verb_table, spec::COMPOSE_GLOBAL], true, verb_args)?;
    for given in &tail.options {
        let own = verb_table.iter().any(|o| std::ptr::eq(o, given.opt));
        let allowed: &BTreeSet<String> = if own { allowed } else { global_allowed };
        check_allowed(&rule, allowed, std::slice::from_ref(given))?;
    }
    let (mut has_file, mut has_project) = (false, false);
    for given in head.options.iter().chain(&tail.options) {
        has_file |= given.opt.kind == Kind::Value(Check::ComposeFile);
        has_project |= given.opt.kind == Kind::Value(Check::Project);
        check_value(&rule, docker, given, &tail)?;
    }
    let named = match target {
        spec::Target::File => has_file,
        spec::Target::FileOrProject => has_file || has_project,
        spec::Target::Nothing => true,
    };
    if !named {
        let needs = if *target == spec::Target::File {
            "`-f` with a vetted compose file"
        } else {
            "`-f` with a vetted compose file or `-p` with a vetted project"
        };
        return Err(Refusal::new(&rule, format!("{rule} needs {needs}")).hint(verbs_hint()));
    }
    services(&rule, verb, &tail)?;
    if verb == "config" && !docker.inspect_shows_env {
        config_prints_no_model(&rule, &tail)?;
    }
    let plan = ExecPlan::new(
        &policy.defaults,
        None,
        &docker.program,
        std::iter::once("compose".to_string()).chain(args.iter().cloned()),
        &docker_env(docker, &[]),
        docker.timeout,
    )
    .with_stdin(docker.stdin);
    Ok(Classified::new(rule, "docker", Tier::Allow, plan))
}

/// What makes `compose config` print something other than the whole model: a list
/// (services, volumes, profiles, images), the services' hashes, or nothing (`--quiet`).
/// compose's config command (cmd/compose/config.go) returns after the first of these it
/// finds; without one it prints the resolved model, with every service's environment
/// (`env_file` entries read in, `.env` interpolated): the values `docker inspect` hides,
/// and shows only where the rules say `inspect_shows_env`.
const CONFIG_OUTPUTS: &[&str] = &["services", "volumes", "hash", "profiles", "images", "quiet"];

fn config_prints_no_model(rule: &str, tail: &Parsed<'_>) -> Result<(), Refusal> {
    if CONFIG_OUTPUTS.iter().any(|name| tail.given(name).is_some()) {
        return Ok(());
    }
    Err(Refusal::new(
        rule,
        format!(
            "{rule} without a listing option prints the whole resolved model, with every service's environment (env files and `.env` values), which is not shown to agents"
        ),
    )
    .hint("list what you need: `config --services`, `--volumes`, `--images`, `--profiles`, `--hash SERVICES`, or validate only with `--quiet`"))
}

fn services(rule: &str, verb: &str, tail: &Parsed<'_>) -> Result<(), Refusal> {
    if matches!(verb, "ls" | "version") && !tail.operands.is_empty() {
        return Err(Refusal::new(rule, format!("{rule} takes no arguments")));
    }
    for service in &tail.operands {
        values::name(service)
            .map_err(|why| Refusal::new(rule, format!("{rule}: service `{service}`: {why}")))?;
    }
    Ok(())
}
