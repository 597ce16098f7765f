//! The docker CLI grammar and the checks the rules configure.

mod compose;
pub mod engine;
mod exec;
pub mod parse;
pub mod spec;
pub mod template;
pub mod values;

use std::collections::BTreeSet;

use crate::facts::{Facts, Needs};
use crate::plan::ExecPlan;
use crate::policy::{DockerPolicy, Policy};
use crate::verdict::{Classified, Refusal, Tier};
use parse::{Given, Parsed};
use spec::{Check, Operands, Sub};

/// Docker's environment: the rule's additions and a root-owned, empty DOCKER_CONFIG, so no
/// agent-controlled plugins, contexts or credential helpers are found. No DOCKER_HOST,
/// DOCKER_CONTEXT or BUILDKIT_HOST can reach it: the plan's environment is built, not inherited.
pub fn docker_env(docker: &DockerPolicy, extra: &[(String, String)]) -> Vec<(String, String)> {
    let mut env = vec![("DOCKER_CONFIG".to_string(), docker.config.clone())];
    env.extend(extra.iter().cloned());
    env
}

pub fn check(
    policy: &Policy,
    sudo: bool,
    args: &[String],
    facts: &Facts,
) -> Result<Classified, Refusal> {
    let Some(docker) = &policy.docker else {
        return Err(Refusal::new(
            "docker",
            "docker is not configured on this host",
        ));
    };
    let allowed_list = || {
        let names: Vec<&str> = docker.subcommands.keys().map(String::as_str).collect();
        format!("allowed: docker {}", names.join(", docker "))
    };
    let Some(first) = args.first() else {
        return Err(Refusal::new("docker", "docker needs a subcommand").hint(allowed_list()));
    };
    if first.starts_with('-') {
        return Err(Refusal::new(
            "docker",
            format!("docker's global options (`{first}`; also -H, --context, --config, -D, -l, --tls...) are never accepted: they choose another daemon, config or plugin directory"),
        )
        .hint("write the subcommand first: `docker ps -a`"));
    }
    let (name, rest) = subcommand_name(first, args.get(1..).unwrap_or_default())
        .map_err(|r| r.hint(allowed_list()))?;
    if sudo && !docker.sudo_subcommands.contains_key(&name) {
        let list: Vec<&str> = docker.sudo_subcommands.keys().map(String::as_str).collect();
        return Err(Refusal::new(
            format!("sudo docker {name}"),
            format!(
                "`sudo docker {name}` is not allowed; as root docker may only run: {}",
                list.join(", ")
            ),
        )
        .hint("drop `sudo`: docker commands run as the agent's user"));
    }
    let rule = format!("docker {name}");
    if name == "compose" {
        return compose::check(policy, docker, rest);
    }
    if name == "exec" {
        return exec::check(policy, rest);
    }
    let Some(allowed) = docker.subcommands.get(&name) else {
        let why = spec::never_subcommand(&name).unwrap_or("it is not part of this host's policy");
        return Err(
            Refusal::new(rule, format!("`docker {name}` is refused: {why}")).hint(allowed_list()),
        );
    };
    let Some(sub) = spec::subcommand(&name) else {
        return Err(Refusal::new(
            rule,
            format!("`docker {name}` is not known to the gateway's grammar"),
        ));
    };
    let parsed = parse::parse(&rule, &[sub.options], sub.interspersed, rest)?;
    check_allowed(&rule, allowed, &parsed.options)?;
    if name == "stats" && parsed.given("no-stream").is_none() {
        return Err(
            Refusal::new(&rule, "`docker stats` without `--no-stream` never ends")
                .hint("use `docker stats --no-stream`"),
        );
    }
    check_operands(&rule, docker, sub, &parsed)?;
    for given in &parsed.options {
        check_value(&rule, docker, given, &parsed)?;
    }
    let engine = match (sub.operands, parsed.operands.first()) {
        (Operands::ImageAndCommand, Some(image)) => {
            let checked = engine::run(&rule, docker, image, &parsed, facts)?;
            // The image operand's place in `args`, to run the checked ID there instead.
            let at = args.iter().position(|a| std::ptr::eq(a.as_str(), *image));
            Some((checked, at))
        }
        _ => None,
    };
    let sudo_path = if sudo { policy.sudo.as_deref() } else { None };
    if sudo && sudo_path.is_none() {
        return Err(Refusal::new(rule, "sudo is not configured on this host"));
    }
    if sudo {
        let regexes = docker
            .sudo_subcommands
            .get(&name)
            .map_or(&[][..], Vec::as_slice);
        crate::sudoers::fits(&format!("sudo {rule}"), regexes, args)?;
    }
    let env = if sudo {
        Vec::new()
    } else {
        docker_env(docker, &[])
    };
    let (needs, pinned) = match engine {
        Some((checked, Some(at))) => (checked.needs, checked.pinned.map(|id| (at, id))),
        Some((checked, None)) => (checked.needs, None),
        None => (Needs::default(), None),
    };
    let argv = args.iter().enumerate().map(|(i, a)| match &pinned {
        Some((at, id)) if *at == i => id.clone(),
        _ => a.clone(),
    });
    let plan = ExecPlan::new(
        &policy.defaults,
        sudo_path,
        &docker.program,
        argv,
        &env,
        docker.timeout,
    )
    .with_stdin(docker.stdin);
    // A container run in the foreground is the session's: the gateway labels it, and removes
    // it if it has to end the command early (the client gone, a stop signal, the timeout).
    // One run with `-d` (`--detach`, `-dit`, ...) is meant to outlive the session.
    let foreground = name == "run" && parsed.given("detach").is_none();
    // A restart policy makes the engine start a foreground run's container again after its
    // command ends, when the session and its cleanup are gone: only `-d` may ask for one.
    if let Some(restart) = parsed.given("restart").filter(|_| foreground)
        && restart.value.is_some_and(|v| v != "no")
    {
        return Err(Refusal::new(
            rule.clone(),
            format!(
                "{rule}: `{} {}` restarts the container after the session ends: only a run with -d may have a restart policy",
                restart.written,
                restart.value.unwrap_or_default()
            ),
        )
        .hint("add -d for a container meant to outlive the session, or leave out --restart"));
    }
    let plan = if foreground {
        plan.starts_containers(0)
    } else {
        plan
    };
    let mut details = Vec::new();
    if let Some(image) = parsed
        .operands
        .first()
        .filter(|_| sub.operands == Operands::ImageAndCommand)
    {
        details.push(("image", image.to_string()));
        if let Some((_, id)) = &pinned {
            details.push(("image_id", id.clone()));
        }
        details.extend(run_details(&parsed));
    }
    // Without --format, docker inspect prints everything: the gateway redacts the environment.
    let plan = if name == "inspect" && !docker.inspect_shows_env && parsed.given("format").is_none()
    {
        plan.with_filter(crate::plan::Filter::InspectEnv)
    } else {
        plan
    };
    let rule = if sudo { format!("sudo {rule}") } else { rule };
    Ok(Classified::new(rule, "docker", Tier::Allow, plan)
        .with_needs(needs)
        .with_details(details))
}

/// What a `docker run` reaches beyond its image: mounts, published ports, networks.
fn run_details(parsed: &Parsed<'_>) -> Vec<(&'static str, String)> {
    let mut mounts = Vec::new();
    let mut publish = Vec::new();
    let mut network = Vec::new();
    for given in &parsed.options {
        let (spec::Kind::Value(check), Some(value)) = (given.opt.kind, given.value) else {
            continue;
        };
        match check {
            Check::Volume | Check::Mount | Check::Tmpfs => {
                mounts.push(format!("{} {value}", given.written));
            }
            Check::Publish => publish.push(value.to_string()),
            Check::Network => network.push(value.to_string()),
            _ => {}
        }
    }
    [
        ("mounts", mounts),
        ("publish", publish),
        ("network", network),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| (k, v.join(" ")))
    .collect()
}

/// `system df`, `network ls`, `volume ls` are two words; `info` is `system info`.
fn subcommand_name<'a>(first: &str, rest: &'a [String]) -> Result<(String, &'a [String]), Refusal> {
    // A subcommand is a plain word: `'system df'` is one argument docker cannot run, and the
    // agent's text must not become the rule a record names.
    let plain = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
    let verb = rest.first().map(String::as_str);
    let two = matches!(first, "system" | "network" | "volume");
    if !plain(first) || (two && verb.is_some_and(|v| !v.starts_with('-') && !plain(v))) {
        return Err(Refusal::new(
            "docker",
            "a docker subcommand is a plain word of lowercase letters: that one is not",
        ));
    }
    match first {
        "info" => Ok(("system info".to_string(), rest)),
        "system" | "network" | "volume" => match rest.split_first() {
            Some((verb, rest)) if !verb.starts_with('-') => Ok((format!("{first} {verb}"), rest)),
            _ => Err(Refusal::new(format!("docker {first}"), format!("`docker {first}` needs a verb"))
                .hint("allowed: docker system df, docker system info, docker network ls|inspect, docker volume ls|inspect")),
        },
        other => Ok((other.to_string(), rest)),
    }
}

pub(crate) fn check_allowed(
    rule: &str,
    allowed: &BTreeSet<String>,
    options: &[Given<'_>],
) -> Result<(), Refusal> {
    for given in options {
        if !allowed.contains(given.opt.name()) {
            let list: Vec<String> = allowed.iter().map(|o| format!("--{o}")).collect();
            let hint = if list.is_empty() {
                "it takes no options here".to_string()
            } else {
                format!("allowed options: {}", list.join(" "))
            };
            return Err(Refusal::new(
                rule,
                format!(
                    "{rule}: option `{}` is not allowed by the rules",
                    given.written
                ),
            )
            .hint(hint));
        }
    }
    Ok(())
}

fn check_operands(
    rule: &str,
    docker: &DockerPolicy,
    sub: &Sub,
    parsed: &Parsed<'_>,
) -> Result<(), Refusal> {
    let ops = parsed.operands.as_slice();
    let bad = |what: &str, value: &str, why: String| {
        Refusal::new(rule, format!("{rule}: {what} `{value}`: {why}"))
    };
    let count = |ok: bool, want: &str| {
        if ok {
            Ok(())
        } else {
            Err(Refusal::new(rule, format!("{rule} takes {want}")))
        }
    };
    match sub.operands {
        Operands::None => count(ops.is_empty(), "no arguments"),
        Operands::OptionalImage => {
            count(ops.len() <= 1, "at most one image")?;
            ops.iter()
                .try_for_each(|o| values::image(o).map_err(|w| bad("image", o, w)))
        }
        Operands::Objects => {
            count(!ops.is_empty(), "one or more names")?;
            ops.iter()
                .try_for_each(|o| values::object(o).map_err(|w| bad("name", o, w)))
        }
        Operands::OptionalObjects => ops
            .iter()
            .try_for_each(|o| values::object(o).map_err(|w| bad("name", o, w))),
        Operands::OneObject => {
            count(ops.len() == 1, "exactly one container")?;
            ops.iter()
                .try_for_each(|o| values::object(o).map_err(|w| bad("name", o, w)))
        }
        Operands::Images => {
            count(!ops.is_empty(), "one or more images")?;
            ops.iter()
                .try_for_each(|o| values::object(o).map_err(|w| bad("image", o, w)))
        }
        Operands::OneImage => {
            count(ops.len() == 1, "exactly one image")?;
            ops.iter()
                .try_for_each(|o| values::image(o).map_err(|w| bad("image", o, w)))
        }
        Operands::Context => {
            let [context] = ops else {
                return Err(Refusal::new(
                    rule,
                    format!("{rule} takes exactly one build context directory"),
                ));
            };
            build_context(rule, docker, context)
        }
        Operands::ImageAndCommand => {
            let Some(image) = ops.first() else {
                return Err(Refusal::new(rule, format!("{rule} needs an image")));
            };
            engine::not_an_id(rule, image)?;
            let parsed_image = values::parse_image(image).map_err(|w| bad("image", image, w))?;
            if let Some(list) = &docker.images
                && !list
                    .iter()
                    .any(|entry| values::image_allowed(entry, &parsed_image))
            {
                return Err(Refusal::new(
                    rule,
                    format!("{rule}: image `{image}` is not on the rules' image allow-list"),
                )
                .hint(format!("images that may run: {}", list.join(", "))));
            }
            Ok(())
        }
    }
}

fn build_context(rule: &str, docker: &DockerPolicy, context: &str) -> Result<(), Refusal> {
    let hint = || format!("build contexts: {}", docker.build_contexts.join(", "));
    if !values::clean_absolute(context) {
        return Err(Refusal::new(rule, format!("{rule}: context `{context}` must be an absolute directory (no URL, no `-`, no `..`)")).hint(hint()));
    }
    if !docker
        .build_contexts
        .iter()
        .any(|dir| values::is_within(context, dir))
    {
        return Err(Refusal::new(
            rule,
            format!("{rule}: context `{context}` is outside the vetted build directories"),
        )
        .hint(hint()));
    }
    Ok(())
}

pub(crate) fn check_value(
    rule: &str,
    docker: &DockerPolicy,
    given: &Given<'_>,
    parsed: &Parsed<'_>,
) -> Result<(), Refusal> {
    let spec::Kind::Value(check) = given.opt.kind else {
        return Ok(());
    };
    let value = given.value.unwrap_or_default();
    let verdict = match check {
        Check::Text => values::text(value),
        Check::Name => values::name(value),
        Check::Object => values::object(value),
        Check::Count => values::count(value),
        Check::Positive => values::positive(value),
        Check::Tail => values::tail(value),
        Check::Time => values::time(value),
        // `docker inspect` never shows a container's environment (`redact`), whatever the form.
        Check::Template if rule.ends_with("docker inspect") && !docker.inspect_shows_env => {
            template::check_hiding(value, &[&["Config", "Env"], &["ContainerConfig", "Env"]])
        }
        Check::Template => template::check(value),
        Check::Filter => values::filter(value),
        Check::Image => values::image(value),
        Check::BuildTag => build_tag(value, docker),
        Check::Services if value == "*" => Ok(()),
        Check::Services => value.split(',').try_for_each(values::name),
        Check::Volume => values::volume(value),
        Check::Mount => values::mount(value),
        Check::Publish => values::publish(value, &docker.publish_addresses),
        Check::Network => values::network(value, &docker.networks),
        Check::Tmpfs => values::tmpfs(value),
        Check::Restart => values::restart(value),
        Check::PullPolicy => values::pull_policy(value),
        Check::Platform => values::platform(value),
        Check::Env => values::run_env(value, &docker.allow_env),
        Check::Label => values::label(value, &docker.allow_labels),
        Check::Workdir => values::workdir(value),
        Check::User => values::user(value),
        Check::Size => values::size(value),
        Check::Cpus => values::cpus(value),
        Check::Hostname => values::hostname(value),
        Check::Signal => values::signal(value),
        Check::Stream => values::one_of(value, &["stdout", "stderr"]),
        Check::BuildArg => values::build_arg(value),
        Check::Dockerfile => dockerfile(value, parsed.operands.first().copied()),
        Check::BuildNetwork => values::one_of(value, &["default", "none"]),
        Check::Progress => {
            values::one_of(value, &["auto", "plain", "tty", "quiet", "rawjson", "json"])
        }
        Check::ComposeFile => one_of_list(value, &docker.compose_files, "vetted compose files"),
        Check::Project => one_of_list(value, &docker.compose_projects, "compose projects"),
        Check::ObjectType => values::one_of(value, &["container", "image", "network", "volume"]),
    };
    verdict.map_err(|why| Refusal::new(rule, format!("{rule}: `{} {value}`: {why}", given.written)))
}

/// `build -f`: a Dockerfile inside the very context being built, named as one. Any other
/// file of the context would be read as a Dockerfile, and the parse error prints its content.
fn dockerfile(value: &str, context: Option<&str>) -> Result<(), String> {
    if !values::clean_absolute(value) {
        return Err("the Dockerfile must be an absolute path inside the build context".to_string());
    }
    let base = value.rsplit('/').next().unwrap_or_default();
    let word = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    };
    let named = base == "Dockerfile"
        || base == "dockerfile"
        || base
            .strip_prefix("Dockerfile.")
            .or_else(|| base.strip_prefix("dockerfile."))
            .is_some_and(word)
        || base
            .strip_suffix(".Dockerfile")
            .or_else(|| base.strip_suffix(".dockerfile"))
            .is_some_and(word);
    if !named {
        return Err(format!(
            "`{base}` is not named as a Dockerfile (Dockerfile, Dockerfile.NAME or NAME.Dockerfile): any other file would be read as one, and the error would print it"
        ));
    }
    match context {
        Some(ctx) if values::is_within(value, ctx) && value != ctx => Ok(()),
        _ => Err("the Dockerfile must be inside the build context".to_string()),
    }
}

/// `build -t`: a name, never one an image ID could be read as; one of the rules' build tags
/// where they name some, else never one the run allow-list covers: a build must not
/// replace `alpine:3.20` under the agent's feet.
fn build_tag(value: &str, docker: &DockerPolicy) -> Result<(), String> {
    let parsed = values::parse_image(value)?;
    if engine::looks_like_id(value) {
        return Err("a tag that reads as an image ID would hide the image behind it".to_string());
    }
    if let Some(tags) = &docker.build_tags {
        if tags.iter().any(|e| values::image_allowed(e, &parsed)) {
            return Ok(());
        }
        return Err(format!(
            "`{value}` is not among the names builds may give: {}",
            tags.join(", ")
        ));
    }
    if let Some(list) = &docker.images
        && let Some(entry) = list.iter().find(|e| values::image_allowed(e, &parsed))
    {
        return Err(format!(
            "`{value}` is covered by the run allow-list ({entry}): a build may not replace an image that may run; tag it under another name"
        ));
    }
    Ok(())
}

fn one_of_list(value: &str, list: &[String], what: &str) -> Result<(), String> {
    if list.iter().any(|v| v == value) {
        Ok(())
    } else if list.is_empty() {
        Err(format!("no {what} are configured"))
    } else {
        Err(format!("{what}: {}", list.join(", ")))
    }
}
