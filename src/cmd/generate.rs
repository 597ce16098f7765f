//! `agent-gate generate`: the man page and shell completions, made from the same clap
//! definition that parses the command line.
//!
//! The man page is one page, agent-gate(1): clap_mangen's title, synopsis, description and
//! forced-mode options, then every visible subcommand in COMMANDS (clap_mangen would name an
//! agent-gate-SUBCOMMAND(1) page for each, which nothing makes), then the sections written
//! here: EXIT STATUS from the table in `exit.rs`, FILES, THE RULES FILE, EXAMPLES, SEE ALSO.

use std::io::Write;

use super::exit::{EXIT_CONFIG, EXIT_SIGNALLED, STATUSES, Status};
use crate::cli::{DEFAULT_RULES, Generated};

/// The man page or a completion script, made from the same clap definition that parses.
pub fn run(what: Generated, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    use clap::CommandFactory;
    use clap_complete::Shell;
    let mut command = crate::cli::Cli::command();
    let shell = match what {
        Generated::Man => {
            return match man_page(command) {
                Ok(page) => {
                    let _ = out.write_all(page.as_bytes());
                    0
                }
                Err(e) => {
                    let _ = writeln!(err, "generate: {e}");
                    EXIT_CONFIG
                }
            };
        }
        Generated::Bash => Shell::Bash,
        Generated::Zsh => Shell::Zsh,
        Generated::Fish => Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "agent-gate", &mut script);
    let _ = out.write_all(&script);
    0
}

/// The approval store when the rules name none (held to the policy's default by a test).
const DEFAULT_STORE: &str = "/var/lib/agent-gate/approvals";

/// Pages the man page may refer to: the system's own, none of this project's but agent-gate(1).
pub const SEE_ALSO: &[&str] = &[
    "sshd(8)",
    "sshd_config(5)",
    "ssh-keygen(1)",
    "sudo(8)",
    "sudoers(5)",
    "visudo(8)",
    "rsyslog.conf(5)",
    "journalctl(1)",
    "docker(1)",
];

/// One piece rendered by clap_mangen, without the preamble each piece repeats.
fn piece(
    render: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>,
    preamble: &str,
) -> std::io::Result<String> {
    let mut bytes = Vec::new();
    render(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Ok(text
        .strip_prefix(preamble)
        .map_or(text.clone(), String::from))
}

fn man_page(command: clap::Command) -> std::io::Result<String> {
    let mut command = command;
    command.build();
    let man = clap_mangen::Man::new(command.clone());
    let mut title = Vec::new();
    man.render_title(&mut title)?;
    let title = String::from_utf8_lossy(&title).into_owned();
    // clap_mangen's preamble (the apostrophe string) comes before `.TH` in every piece.
    let preamble = title.find(".TH").map_or("", |at| &title[..at]).to_string();
    let mut page = title.clone();
    page.push_str(&piece(|w| man.render_name_section(w), &preamble)?);
    page.push_str(&piece(|w| man.render_synopsis_section(w), &preamble)?);
    page.push_str(&piece(|w| man.render_description_section(w), &preamble)?);
    page.push_str(&forced_mode());
    page.push_str(&piece(|w| man.render_options_section(w), &preamble)?);
    page.push_str(".SH COMMANDS\n");
    for sub in command.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        page.push_str(&subcommand(sub, &preamble)?);
    }
    page.push_str(&exit_status());
    page.push_str(&files());
    page.push_str(&rules_format());
    page.push_str(&examples());
    page.push_str(&see_also());
    page.push_str(&piece(|w| man.render_version_section(w), &preamble)?);
    Ok(page)
}

/// Text for a roff line: backslashes and dashes escaped, a leading `.` or `'` made literal.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// One subcommand: a subsection with its synopsis and options, as clap_mangen renders them.
fn subcommand(sub: &clap::Command, preamble: &str) -> std::io::Result<String> {
    let sub = sub.clone().mut_arg("help", |a| a.hide(true));
    let name = sub.get_name().to_string();
    let man = clap_mangen::Man::new(sub.clone());
    let mut text = format!(".SS \"{}\"\n", roff(&format!("agent-gate {name}")));
    let about = sub
        .get_long_about()
        .or_else(|| sub.get_about())
        .map(|a| a.to_string())
        .unwrap_or_default();
    text.push_str(&format!("{}\n", roff(&about)));
    let synopsis = piece(|w| man.render_synopsis_section(w), preamble)?;
    text.push_str(".PP\n");
    text.push_str(synopsis.trim_start_matches(".SH SYNOPSIS\n"));
    let options = piece(|w| man.render_options_section(w), preamble)?;
    text.push_str(options.trim_start_matches(".SH OPTIONS\n"));
    Ok(text)
}

fn forced_mode() -> String {
    [
        ".PP",
        "With no subcommand this is forced mode: sshd runs it for the agent's key, from the",
        "\\fIcommand=\\fR of its authorized_keys line, and the agent's command is in",
        "SSH_ORIGINAL_COMMAND. As the account's login shell it runs as \\fBagent\\-gate \\-c\\fR",
        "\\fICOMMAND\\fR. The command is split without a shell, decided by the rules file, written",
        "to syslog (facility authpriv) before anything runs, and then run as exactly the argv",
        "that was decided, with a fixed environment, a timeout and bounded output; a second",
        "record gives its end. The SSH command \\fBmcp\\fR starts an MCP session (tools run,",
        "explain, help, deploy_status) and \\fBhelp\\fR prints what the key may run.",
        "",
    ]
    .join("\n")
}

fn exit_status() -> String {
    let mut text = String::from(".SH \"EXIT STATUS\"\n");
    for (status, meaning) in STATUSES {
        let code = match status {
            Status::Child => "the command's own".to_string(),
            Status::Code(code) => code.to_string(),
            Status::Signalled => format!("{EXIT_SIGNALLED}+N"),
        };
        text.push_str(&format!(
            ".TP\n\\fB{}\\fR\n{}\n",
            roff(&code),
            roff(meaning)
        ));
    }
    text
}

fn files() -> String {
    let rows = [
        (
            DEFAULT_RULES.to_string(),
            "The rules file, unless --rules names another. Forced mode reads it only if it and \
             every directory above it are owned by root and not group- or world-writable.",
        ),
        (
            format!("{DEFAULT_RULES}.compiled"),
            "The compiled record of the rules, from agent-gate compile: loaded instead of the \
             YAML while it is root's on a root-only path, written by this build and for exactly \
             the bytes of the rules file; otherwise the rules are compiled and their examples \
             run at every load.",
        ),
        (
            "/etc/agent-gate/docker-config".to_string(),
            "The empty, root-owned DOCKER_CONFIG directory the shipped rules name (docker.config): \
             docker finds no plugins, contexts or credential helpers of the agent's.",
        ),
        (
            DEFAULT_STORE.to_string(),
            "The approval store (deploy.approval.store): one file per deploy request; root-owned, \
             mode 0700.",
        ),
        (
            "/dev/log".to_string(),
            "The syslog socket audit records are sent to (audit.socket, --audit-socket); the \
             account must be able to write to it.",
        ),
        (
            "~/.ssh/authorized_keys".to_string(),
            "The agent account's keys, one restrict,command=... line per key, from render \
             authorized-keys; owned by root or the account, not writable by the account's group \
             or others (sshd's StrictModes).",
        ),
        (
            "/etc/ssh/sshd_config.d/agent-gate.conf".to_string(),
            "The Match User block from render sshd (Debian and Ubuntu; NixOS: the module).",
        ),
        (
            "/etc/sudoers.d/agent-gate".to_string(),
            "The sudoers lines from render sudoers: the declared diagnostics and the deploy's \
             approval step, nothing else; mode 0440.",
        ),
    ];
    let mut text = String::from(".SH FILES\n");
    for (path, what) in rows {
        text.push_str(&format!(".TP\n\\fI{}\\fR\n{}\n", roff(&path), roff(what)));
    }
    text
}

fn rules_format() -> String {
    let paragraphs = [
        "A YAML file, version: 1, read strictly: unknown fields, duplicate keys, anchors, aliases \
         and merge keys are errors; at most 1 MiB. Default deny: nothing runs unless a rule \
         accepts the whole command. Among the rules for the program the agent named, the first \
         in file order whose grammar accepts every word decides; if none does, the command is \
         refused with the reason of the rule that got furthest. The built-in limits (shells, \
         sudo flags, docker's never-allowed options and subcommands, host paths in mounts) come \
         first, and no rule can lift them.",
        "keys.LABEL: may (the rule ids the key may use), from (client networks), public_key (the \
         key that must have authenticated, with sshd's ExposeAuthInfo yes), mcp.",
        "docker: program, config, subcommands (each with its allowed long options), \
         sudo_subcommands, run (networks, publish_addresses, images, allow_env, allow_labels), \
         build (contexts, tags), compose (files, projects, verbs).",
        "programs: one rule per form of a command: id, command, path (absolute) or container, \
         sudo, words, options (short, long, value: enum, int, pattern, exact, text, \
         systemd_time, key_values), args, exactly_one_of, args_after_choice, forced_args, env, \
         timeout, stdin.",
        "deploy: flake, nh, nixos_rebuild, timeout, approval (store, expire_seconds, \
         wait_seconds, notify). sudo: the sudo program. defaults: timeout, path, open_files. \
         audit: socket, format (kv or json). mcp: idle_seconds, session_seconds.",
        "examples: allow and refuse lists of commands on docker, deploy and every program rule, \
         run by check and compile, and at every load that finds no current compiled record. \
         The full format is in README.md, \"The rules file\"; rules.yaml (NixOS) and \
         contrib/debian/rules.yaml (Debian, Ubuntu) are the shipped policies.",
    ];
    let mut text = String::from(".SH \"THE RULES FILE\"\n");
    for paragraph in paragraphs {
        text.push_str(&format!(".PP\n{}\n", roff(paragraph)));
    }
    text
}

fn examples() -> String {
    let rows = [
        (
            "Validate the rules after every edit (exit 0, or FILE:LINE:COL: message and exit 78):",
            "agent-gate check --rules /etc/agent-gate/rules.yaml",
        ),
        (
            "Then write the compiled record the gateway loads (as root, after every change and \
             every upgrade):",
            "agent-gate compile --rules /etc/agent-gate/rules.yaml",
        ),
        (
            "The decision on a command, without running it:",
            "agent-gate explain --rules /etc/agent-gate/rules.yaml --key hermes -- 'docker run --privileged alpine'",
        ),
        (
            "What key hermes may run (the agent sends help for the same text):",
            "agent-gate list --rules /etc/agent-gate/rules.yaml --key hermes",
        ),
        (
            "Install the sudoers lines, checked by visudo first:",
            "agent-gate render sudoers --rules /etc/agent-gate/rules.yaml > /tmp/agent-gate.sudoers && visudo -cf /tmp/agent-gate.sudoers && install -m 0440 /tmp/agent-gate.sudoers /etc/sudoers.d/agent-gate",
        ),
        (
            "The authorized_keys line render authorized-keys writes for a key:",
            "restrict,command=\"/usr/local/bin/agent-gate --rules /etc/agent-gate/rules.yaml --key hermes\" ssh-ed25519 AAAA... hermes",
        ),
        (
            "The agent's side, one command per connection:",
            "ssh -T ai-worker@host 'docker ps -a'",
        ),
        (
            "As root, the deploy requests waiting, and a decision on one:",
            "agent-gate pending; agent-gate approve 3fa9c2d1; agent-gate deny 3fa9c2d1 --reason 'not now'",
        ),
    ];
    let mut text = String::from(".SH EXAMPLES\n");
    for (what, command) in rows {
        text.push_str(&format!(
            ".PP\n{}\n.PP\n.RS 4\n.nf\n{}\n.fi\n.RE\n",
            roff(what),
            roff(command)
        ));
    }
    text
}

fn see_also() -> String {
    let pages: Vec<String> = SEE_ALSO
        .iter()
        .map(|page| match page.split_once('(') {
            Some((name, section)) => format!("\\fB{}\\fR({section}", roff(name)),
            None => roff(page),
        })
        .collect();
    format!(
        ".SH \"SEE ALSO\"\n{}\n.PP\nREADME.md and SECURITY.md in the source.\n",
        pages.join(",\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_files_section_names_the_policys_default_store() {
        let rules = "version: 1\nsudo: /usr/bin/sudo\nkeys: {hermes: {may: [deploy]}}\n\
                     deploy: {flake: /etc/nixos, nh: /usr/bin/nh}\n";
        let policy = crate::policy::compile(rules).map_err(|e| e.to_string());
        let store = policy.map(|p| p.deploy.map(|d| d.approval.store));
        assert_eq!(
            store,
            Ok(Some(std::path::PathBuf::from(DEFAULT_STORE))),
            "the man page's FILES"
        );
    }

    #[test]
    fn roff_text_cannot_start_a_request_or_an_escape() {
        assert_eq!(roff(".SH x"), "\\&.SH x");
        assert_eq!(roff("'x"), "\\&'x");
        assert_eq!(roff("a\\b-c"), "a\\eb\\-c");
    }
}
