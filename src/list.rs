//! What a key may run, in words an LLM agent reads easily (`agent-gate list`, and the answer
//! to the command `help` or to an empty command).

use std::fmt::Write;

use crate::docker::spec;
use crate::policy::{KeyPolicy, Policy};

pub fn render(policy: &Policy, label: &str) -> String {
    let mut out = String::new();
    let Some(key) = policy.keys.get(label) else {
        return format!("agent-gate: key `{label}` is not in the rules; nothing is allowed.\n");
    };
    let _ = writeln!(out, "agent-gate: what key `{label}` may run on this host.");
    let _ = writeln!(
        out,
        "One command per SSH connection, no shell: no pipes, `;`, `&&`, redirections, `$VAR` or globs."
    );
    let _ = writeln!(
        out,
        "Single-quote arguments with spaces or braces: docker ps --format '{{{{.Names}}}}'."
    );
    if key.mcp {
        let _ = writeln!(
            out,
            "Or as an MCP server: have your MCP client run `ssh -T USER@HOST mcp` (tools: run, explain, help, deploy_status)."
        );
    }
    docker_section(&mut out, policy, key);
    programs_section(&mut out, policy, key);
    if key.may.contains("deploy") {
        let forms = crate::deploy::gateway::accepted_forms(policy);
        if !forms.is_empty() {
            let _ = writeln!(
                out,
                "\nDeploys (a human must approve each one; nothing runs until then):"
            );
            for form in forms {
                let _ = writeln!(out, "  {form}          (or with `sudo` in front)");
            }
            if let Some(deploy) = &policy.deploy {
                let wait = deploy.approval.wait.as_secs();
                let how = if wait == 0 {
                    "you get a request id and exit 75 at once".to_string()
                } else {
                    format!("your session waits up to {wait}s for the decision, else exit 75")
                };
                let _ = writeln!(
                    out,
                    "  Sending one files a request for exactly that deploy on the flake as it is now;\n  {how}. Once approved, the same command runs it, once."
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "\nEverything else is refused, with the reason. Send `help` to see this again."
    );
    out
}

fn docker_section(out: &mut String, policy: &Policy, key: &KeyPolicy) {
    let Some(docker) = policy
        .docker
        .as_ref()
        .filter(|_| key.may.contains("docker"))
    else {
        return;
    };
    let _ = writeln!(out, "\nDocker (runs as this account):");
    for (name, allowed) in &docker.subcommands {
        if name == "compose" {
            continue;
        }
        let opts = options_text(allowed);
        let operands = match spec::subcommand(name).map(|s| s.operands) {
            Some(spec::Operands::ImageAndCommand) => " IMAGE [COMMAND ARGS...]",
            Some(spec::Operands::Objects) => " NAME...",
            Some(spec::Operands::OneObject) => " CONTAINER",
            Some(spec::Operands::Images) => " IMAGE...",
            Some(spec::Operands::OneImage) => " IMAGE",
            Some(spec::Operands::OptionalImage) => " [IMAGE]",
            Some(spec::Operands::Context) => " CONTEXT_DIR",
            Some(spec::Operands::OptionalObjects) => " [NAME...]",
            _ => "",
        };
        let _ = writeln!(out, "  docker {name}{opts}{operands}");
    }
    if docker.subcommands.contains_key("system info") {
        let _ = writeln!(out, "  docker info  (same as docker system info)");
    }
    if docker.subcommands.contains_key("run") {
        let _ = writeln!(
            out,
            "  run limits: named volumes only (-v NAME:/path), never host paths; -p only as {}:HOST:CONTAINER; networks: {}",
            docker
                .publish_addresses
                .first()
                .map_or("(none)", String::as_str),
            if docker.networks.is_empty() {
                "(default only)".to_string()
            } else {
                docker.networks.join(", ")
            }
        );
        if let Some(images) = &docker.images {
            let _ = writeln!(out, "  images that may run: {}", images.join(", "));
        }
        let _ = writeln!(
            out,
            "  never: --privileged, --cap-add, --device, --security-opt, --pid/--ipc/--uts host, --volumes-from, -P"
        );
    }
    if docker.subcommands.contains_key("build") {
        let _ = writeln!(
            out,
            "  build contexts: {} (a -f Dockerfile inside the same context)",
            docker.build_contexts.join(", ")
        );
    }
    if let Some(global) = docker.subcommands.get("compose") {
        let _ = writeln!(
            out,
            "  docker compose{} VERB [SERVICE...]   files: {}",
            options_text(global),
            docker.compose_files.join(", ")
        );
        for (verb, allowed) in &docker.compose_verbs {
            let _ = writeln!(out, "    {verb}{}", options_text(allowed));
        }
    }
    if !docker.sudo_subcommands.is_empty() {
        let list: Vec<&str> = docker.sudo_subcommands.keys().map(String::as_str).collect();
        let _ = writeln!(
            out,
            "  as root: sudo docker {}",
            list.join(" | sudo docker ")
        );
    }
    let _ = writeln!(out, "  logs never follow (-f): use --tail N or --since 10m");
    if docker.subcommands.contains_key("stats") {
        let _ = writeln!(
            out,
            "  stats only with --no-stream: it never ends otherwise"
        );
    }
}

fn options_text(allowed: &std::collections::BTreeSet<String>) -> String {
    if allowed.is_empty() {
        return String::new();
    }
    let list: Vec<String> = allowed.iter().map(|o| format!("--{o}")).collect();
    format!(" [{}]", list.join(" "))
}

fn programs_section(out: &mut String, policy: &Policy, key: &KeyPolicy) {
    let mine: Vec<_> = policy
        .programs
        .iter()
        .filter(|p| key.may.contains(&p.id))
        .collect();
    if mine.iter().any(|p| p.sudo) {
        let _ = writeln!(out, "\nAs root, read-only (write `sudo` in front):");
        for p in mine.iter().filter(|p| p.sudo) {
            let _ = writeln!(
                out,
                "  sudo {} {}{}",
                p.command,
                p.grammar.usage(),
                describe(p.description.as_deref())
            );
        }
    }
    if mine.iter().any(|p| !p.sudo && p.container.is_none()) {
        let _ = writeln!(out, "\nOther commands:");
        for p in mine.iter().filter(|p| !p.sudo && p.container.is_none()) {
            let _ = writeln!(
                out,
                "  {} {}{}",
                p.command,
                p.grammar.usage(),
                describe(p.description.as_deref())
            );
        }
    }
    if mine.iter().any(|p| p.container.is_some()) {
        let _ = writeln!(out, "\nInside containers:");
        for p in &mine {
            if let Some(c) = &p.container {
                let _ = writeln!(
                    out,
                    "  docker exec {c} {} {}{}",
                    p.command,
                    p.grammar.usage(),
                    describe(p.description.as_deref())
                );
            }
        }
    }
}

fn describe(text: Option<&str>) -> String {
    text.map(|t| format!("   # {t}")).unwrap_or_default()
}
