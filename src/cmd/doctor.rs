//! `agent-gate doctor`, as root on the host: what is installed against what the rules
//! render, and the host pieces the gateway relies on. The comparisons are pure
//! (`render::installed`); this file asks the tools (`sshd -T`, `sudo -l`, through
//! `sys::exec::capture`, bounded), reads the files, and prints one line per finding.
//!
//! The sudoers check asks sudo (`sudo -l -U USER`) instead of reading a file: sudo's listing
//! is what sudo enforces, whichever file (or group grant, or `#include`) a line comes from,
//! so a grant the rules do not know of shows up as well as a missing one; a file read alone
//! would miss both. The listing keeps the file's own escapes, so each entry is compared
//! with the rendered line as text.
//!
//! Doctor writes no audit record: it is the operator's tool and runs nothing for the agent.

use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use super::exit::EXIT_CONFIG;
use crate::cli::Doctor;
use crate::escape::{for_terminal, one_line};
use crate::policy::Policy;
use crate::render::installed::{self, Finding, Shell, SshdSettings};
use crate::render::{self, Install};
use crate::sys::{exec, host, load};

/// How long `sshd -T` or `sudo -l` may take.
const TOOL_TIMEOUT: Duration = Duration::from_secs(15);
/// The most of a tool's output kept.
const TOOL_OUTPUT: u64 = 1 << 20;
/// The most of an authorized_keys file or a login-shell script read.
const FILE_MAX: u64 = 1 << 20;

pub fn run(args: &Doctor, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    if !host::is_root() {
        super::say(
            err,
            "doctor must run as root: it asks sudo and sshd what the account gets, and reads root's files. Run: sudo agent-gate doctor",
        );
        return EXIT_CONFIG;
    }
    let findings = examine(args);
    report(&findings, args.json, out);
    if findings.iter().all(|f| f.ok) {
        0
    } else {
        EXIT_CONFIG
    }
}

fn report(findings: &[Finding], json: bool, out: &mut dyn Write) {
    if json {
        let list: Vec<serde_json::Value> = findings
            .iter()
            .map(|f| {
                // Escaped as the text is: details quote files (authorized_keys lines) whose
                // bytes could move a terminal's cursor.
                serde_json::json!({
                    "check": one_line(&f.check),
                    "ok": f.ok,
                    "detail": one_line(&f.detail),
                    "fix": f.fix.as_deref().map(one_line),
                })
            })
            .collect();
        let _ = writeln!(out, "{}", serde_json::Value::Array(list));
        return;
    }
    for f in findings {
        let line = match &f.fix {
            Some(fix) if !f.ok => format!("FAIL {}: {} -- fix: {fix}", f.check, f.detail),
            _ if f.ok => format!("ok   {}: {}", f.check, f.detail),
            _ => format!("FAIL {}: {}", f.check, f.detail),
        };
        let _ = writeln!(out, "{}", one_line(&line));
    }
    let failed = findings.iter().filter(|f| !f.ok).count();
    let _ = writeln!(
        out,
        "{}",
        for_terminal(&if failed == 0 {
            format!("all {} checks hold", findings.len())
        } else {
            format!("{failed} of {} checks fail", findings.len())
        })
    );
}

/// The account as the system knows it.
struct Account {
    name: String,
    uid: u32,
    home: String,
    shell: String,
    /// Its primary group and every supplementary one.
    gids: Vec<u32>,
}

fn account(name: &str) -> Result<Account, String> {
    let user = nix::unistd::User::from_name(name)
        .map_err(|e| format!("cannot look up `{name}`: {e}"))?
        .ok_or_else(|| format!("there is no account `{name}`"))?;
    let cname = std::ffi::CString::new(name).map_err(|e| e.to_string())?;
    let gids = nix::unistd::getgrouplist(&cname, user.gid)
        .map_err(|e| format!("cannot list the groups of `{name}`: {e}"))?
        .into_iter()
        .map(|g| g.as_raw())
        .collect();
    Ok(Account {
        name: name.to_string(),
        uid: user.uid.as_raw(),
        home: user.dir.to_string_lossy().into_owned(),
        shell: user.shell.to_string_lossy().into_owned(),
        gids,
    })
}

/// Every check, in the order an operator fixes them: the rules first (nothing else can be
/// compared without them), then sshd, the keys, sudo, the programs and the host pieces.
fn examine(args: &Doctor) -> Vec<Finding> {
    let mut found = Vec::new();
    let rules = std::path::absolute(&args.rules).unwrap_or_else(|_| args.rules.clone());
    let rules_shown = rules.display().to_string();
    // The gateway's own walk (sys::walk), so doctor passes exactly what forced mode accepts.
    found.push(
        match crate::sys::walk::check(&rules, crate::sys::walk::Expect::File) {
            Ok(_) => Finding::ok(
                "rules path",
                format!("{rules_shown}: every component root-owned, writable by root only"),
            ),
            Err(e) => Finding::fail(
                "rules path",
                e.to_string(),
                format!("ls -ld {rules_shown}  # then fix what the line above names"),
            ),
        },
    );
    // In full, examples run, whatever record is there: the record is what doctor checks next.
    let policy = match load::in_full(&args.rules, true) {
        Ok((policy, text)) => {
            found.push(Finding::ok(
                "rules",
                format!(
                    "{rules_shown} loads and its {} example(s) pass ({})",
                    policy.examples.len(),
                    policy.digest
                ),
            ));
            found.push(compiled_record(&args.rules, &text, &rules_shown));
            policy
        }
        Err(e) => {
            found.push(Finding::fail(
                "rules",
                e,
                format!("agent-gate check --rules {rules_shown}  # fix what it names"),
            ));
            return found;
        }
    };
    let install = match super::render::install(&args.rules, args.gate.as_deref(), None, &args.user)
        .and_then(|i| i.validate().map(|()| i))
    {
        Ok(install) => install,
        Err(e) => {
            found.push(Finding::fail(
                "paths",
                e,
                "agent-gate doctor --gate /ABSOLUTE/PATH/agent-gate  # a plain absolute path",
            ));
            return found;
        }
    };
    let account = match account(&args.user) {
        Ok(a) => {
            found.push(Finding::ok(
                "account",
                format!("{} (uid {}, shell {})", a.name, a.uid, a.shell),
            ));
            Some(a)
        }
        Err(e) => {
            found.push(Finding::fail(
                "account",
                e,
                format!("useradd --create-home --shell /bin/sh {}", args.user),
            ));
            None
        }
    };
    let fixes = Fixes::new(&install, args);
    let sshd = sshd_settings(args, &mut found);
    if let Some(effective) = &sshd {
        match render::sshd(&policy, &install, false, render::DEFAULT_SESSIONS) {
            Ok(block) => found.extend(installed::check_sshd(
                &block,
                effective,
                &fixes.sshd_config,
                &fixes.render("sshd"),
            )),
            Err(e) => found.push(Finding::fail("sshd", e, fixes.check.clone())),
        }
        found.extend(installed::check_globals(
            effective,
            args.sessions,
            &fixes.render("sshd"),
        ));
    }
    if let (Some(effective), Some(account)) = (&sshd, &account) {
        keys(&policy, &install, effective, account, &fixes, &mut found);
    }
    if account.is_some() {
        sudoers(&policy, &install, &fixes, &mut found);
    }
    for (what, path) in programs(&policy, &install) {
        found.push(program(&what, &path, &fixes));
    }
    if let Some(account) = &account {
        found.push(audit_socket(&policy.audit.socket, account));
    }
    store_and_config(&policy, &mut found);
    found
}

/// The compiled record beside the rules: current, or what every invocation pays without it.
fn compiled_record(rules: &Path, text: &str, rules_shown: &str) -> Finding {
    let record = crate::policy::record::path_for(rules).display().to_string();
    let readable = std::fs::metadata(&record).map(|m| m.mode() & 0o004 != 0);
    match load::compiled(rules, text) {
        // doctor reads as root; the gateway reads as the account, which needs the other bits.
        Ok(_) if readable.is_ok_and(|r| !r) => Finding::fail(
            "compiled record",
            format!(
                "{record} is current but the account cannot read it, so every command compiles the YAML"
            ),
            format!("chmod 0444 {record}"),
        ),
        Ok(_) => Finding::ok(
            "compiled record",
            format!("{record} is this build's record of these rules"),
        ),
        Err(e) => Finding::fail(
            "compiled record",
            format!(
                "{e}: so every command parses the YAML, compiles the rules and runs their examples again"
            ),
            format!("agent-gate compile --rules {rules_shown}"),
        ),
    }
}

/// The commands the findings print, with this host's paths.
struct Fixes {
    gate: String,
    args: String,
    rules: String,
    sshd_config: String,
    check: String,
}

impl Fixes {
    fn new(install: &Install, args: &Doctor) -> Self {
        Self {
            gate: install.gate.clone(),
            args: format!(
                "--rules {} --user {} --gate {}",
                install.rules, install.user, install.gate
            ),
            rules: install.rules.clone(),
            sshd_config: args.sshd_config.as_ref().map_or_else(
                || "/etc/ssh/sshd_config".to_string(),
                |p| p.display().to_string(),
            ),
            check: format!("{} check --rules {}", install.gate, install.rules),
        }
    }

    fn render(&self, piece: &str) -> String {
        format!("{} render {piece} {}", self.gate, self.args)
    }
}

/// The first of these that exists: where sshd and sudo live on Debian, NixOS and others.
fn find_tool(candidates: &[&str]) -> Option<String> {
    candidates
        .iter()
        .find(|p| Path::new(p).is_file())
        .map(|p| (*p).to_string())
}

fn tool_env() -> Vec<(String, String)> {
    vec![
        ("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into()),
        ("LANG".into(), "C".into()),
        // sudo wraps its listing at the terminal's width (80 without one).
        ("COLUMNS".into(), "4096".into()),
    ]
}

/// `sshd -T -C user=...` for the account: the settings sshd would give it, Match blocks
/// applied. The global limits come from the same listing: MaxStartups is global only, and
/// MaxSessions may be set in a Match, so the account's value is the one that counts.
fn sshd_settings(args: &Doctor, found: &mut Vec<Finding>) -> Option<SshdSettings> {
    let Some(sshd) = find_tool(&[
        "/usr/sbin/sshd",
        "/usr/bin/sshd",
        "/run/current-system/sw/bin/sshd",
        "/usr/local/sbin/sshd",
    ]) else {
        found.push(Finding::fail(
            "sshd",
            "no sshd in /usr/sbin, /usr/bin, /run/current-system/sw/bin or /usr/local/sbin",
            "apt-get install openssh-server  # or your distribution's package",
        ));
        return None;
    };
    let config = args.sshd_config.as_ref().map(|p| p.display().to_string());
    let (shown, ran) = sshd_for(&sshd, args, &args.client.to_string());
    let settings = match ran {
        Ok(c) if c.success => SshdSettings::parse(&c.stdout),
        Ok(c) => {
            found.push(Finding::fail(
                "sshd",
                format!("`{shown}` failed: {}", c.stderr.trim()),
                format!(
                    "sshd -t{}  # fix what it names",
                    config.map_or(String::new(), |c| format!(" -f {c}"))
                ),
            ));
            return None;
        }
        Err(e) => {
            found.push(Finding::fail("sshd", e, format!("{shown}  # must answer")));
            return None;
        }
    };
    if !settings.looks_complete() {
        found.push(Finding::fail(
            "sshd",
            format!("`{shown}` printed no settings listing"),
            format!("{shown}  # must list sshd's settings"),
        ));
        return None;
    }
    found.push(Finding::ok(
        "sshd",
        format!("the settings for {} from `{shown}`", args.client),
    ));
    found.push(same_from_elsewhere(args, &sshd, &settings));
    Some(settings)
}

/// `sshd -T -C user=USER,host=ADDR,addr=ADDR [-f CONFIG]`: the command line as shown, and
/// what it printed (bounded).
fn sshd_for(sshd: &str, args: &Doctor, addr: &str) -> (String, Result<exec::Captured, String>) {
    let connection = format!("user={},host={addr},addr={addr}", args.user);
    let config = args.sshd_config.as_ref().map(|p| p.display().to_string());
    let mut argv = vec!["-T", "-C", connection.as_str()];
    if let Some(config) = &config {
        argv.extend(["-f", config.as_str()]);
    }
    let shown = format!("{sshd} {}", argv.join(" "));
    let ran = exec::capture(sshd, &argv, &tool_env(), TOOL_TIMEOUT, TOOL_OUTPUT);
    (shown, ran)
}

/// The settings that close the account's channels, as sshd gives them from two addresses
/// that are not `--client` (documentation ranges): a block matched on `Address` or `Host` as
/// well as `User` leaves every other client the defaults, TTYs and forwarding included.
fn same_from_elsewhere(args: &Doctor, sshd: &str, settings: &SshdSettings) -> Finding {
    const CLOSING: &[&str] = &[
        "permittty",
        "disableforwarding",
        "allowtcpforwarding",
        "allowagentforwarding",
        "allowstreamlocalforwarding",
        "x11forwarding",
        "permittunnel",
        "exposeauthinfo",
        "acceptenv",
        "forcecommand",
        "passwordauthentication",
        "authenticationmethods",
    ];
    let check = "sshd from other addresses";
    let config = args.sshd_config.as_ref().map(|p| p.display().to_string());
    for addr in ["192.0.2.1", "2001:db8::1"] {
        let other = match sshd_for(sshd, args, addr) {
            (_, Ok(c)) if c.success => SshdSettings::parse(&c.stdout),
            (shown, Ok(c)) => {
                return Finding::fail(
                    check,
                    format!("`{shown}` failed: {}", c.stderr.trim()),
                    "sshd -t  # fix what it names",
                );
            }
            (_, Err(e)) => return Finding::fail(check, e, "sshd -T  # must answer"),
        };
        if let Some(key) = CLOSING.iter().find(|k| other.all(k) != settings.all(k)) {
            return Finding::fail(
                check,
                format!(
                    "from {addr} the account gets `{key} {}` where {} gets `{key} {}`: the block must match on User alone, or other clients get sshd's defaults",
                    other.all(key).join(" "),
                    args.client,
                    settings.all(key).join(" ")
                ),
                format!(
                    "grep -n '^[[:space:]]*Match' {}  # make the agent's block `Match User {}`",
                    config.as_deref().unwrap_or("/etc/ssh/sshd_config"),
                    args.user
                ),
            );
        }
    }
    Finding::ok(
        check,
        "the same closing settings from 192.0.2.1 and 2001:db8::1",
    )
}

/// The account's authorized_keys where sshd looks, against the rendering; and the forced
/// command: sshd's ForceCommand, the shell, or every key's `command=`.
fn keys(
    policy: &Policy,
    install: &Install,
    effective: &SshdSettings,
    account: &Account,
    fixes: &Fixes,
    found: &mut Vec<Finding>,
) {
    let files = installed::authorized_keys_files(
        effective.one("authorizedkeysfile").unwrap_or("none"),
        &account.name,
        account.uid,
        &account.home,
    );
    let command = effective.one("authorizedkeyscommand").unwrap_or("none");
    if command != "none" {
        found.push(Finding::fail(
            "authorized_keys",
            format!(
                "sshd also takes keys from AuthorizedKeysCommand `{command}`, which doctor cannot compare"
            ),
            format!(
                "sed -i 's/^[[:space:]]*AuthorizedKeysCommand /#&/I' {}  # or check its keys by hand",
                fixes.sshd_config
            ),
        ));
    }
    let mut lines = Vec::new();
    let mut existing = Vec::new();
    for file in &files {
        let path = Path::new(file);
        if std::fs::symlink_metadata(path).is_err() {
            continue;
        }
        existing.push(file.clone());
        // The agent must not be able to add a key: its own home's file would let it.
        match walk(path) {
            Ok(meta) if meta.uid() == 0 && meta.mode() & 0o022 == 0 && meta.is_file() => {}
            Ok(meta) => found.push(Finding::fail(
                format!("authorized_keys {file}"),
                format!(
                    "owned by uid {}, mode {:o}: the account could add a key of its own",
                    meta.uid(),
                    meta.mode() & 0o7777
                ),
                format!("chown root:root {file} && chmod 0644 {file}"),
            )),
            Err(e) => found.push(walk_failure(&format!("authorized_keys {file}"), &e)),
        }
        match read_bounded(path) {
            Ok(text) => lines.extend(installed::lines(&text)),
            Err(e) => found.push(Finding::fail(
                format!("authorized_keys {file}"),
                e,
                format!("ls -l {file}"),
            )),
        }
    }
    let target = existing
        .first()
        .or(files.first())
        .cloned()
        .unwrap_or_else(|| "/etc/ssh/authorized_keys/ai-worker".to_string());
    let fix = format!("{} > {target}", fixes.render("authorized-keys"));
    match render::authorized_keys(policy, install) {
        Ok(rendered) => {
            if files.is_empty() {
                found.push(Finding::fail(
                    "authorized_keys",
                    "sshd reads no authorized_keys file for the account (AuthorizedKeysFile none)",
                    format!(
                        "echo 'AuthorizedKeysFile /etc/ssh/authorized_keys/%u' >> {}  # before any Match",
                        fixes.sshd_config
                    ),
                ));
            } else {
                found.extend(installed::check_authorized_keys(&rendered, &lines, &fix));
            }
        }
        Err(e) => found.push(Finding::fail("authorized_keys", e, fixes.check.clone())),
    }
    let shell = if account.shell == install.gate
        || read_bounded(Path::new(&account.shell))
            .is_ok_and(|s| installed::is_gateway_wrapper(&s, &install.gate))
    {
        Shell::Gateway(account.shell.clone())
    } else {
        Shell::Other(account.shell.clone())
    };
    found.push(installed::check_forced(
        effective.one("forcecommand"),
        &shell,
        &install.gate,
        &lines,
        &fix,
    ));
}

/// What sudo lets the account run, against `render sudoers`.
fn sudoers(policy: &Policy, install: &Install, fixes: &Fixes, found: &mut Vec<Finding>) {
    let sudo = policy.sudo.clone().or_else(|| {
        find_tool(&[
            "/run/wrappers/bin/sudo",
            "/usr/bin/sudo",
            "/usr/local/bin/sudo",
        ])
    });
    let needed = render::sudoers(policy, install).is_ok_and(|t| !installed::lines(&t).is_empty());
    let Some(sudo) = sudo else {
        if !needed {
            found.push(Finding::ok(
                "sudoers",
                "the rules run nothing through sudo, and there is no sudo",
            ));
            return;
        }
        found.push(Finding::fail(
            "sudoers",
            "no sudo in the rules (`sudo:`) or in /run/wrappers/bin, /usr/bin, /usr/local/bin",
            "apt-get install sudo  # or your distribution's package",
        ));
        return;
    };
    let rendered = match render::sudoers(policy, install) {
        Ok(text) => text,
        Err(e) => {
            found.push(Finding::fail("sudoers", e, fixes.check.clone()));
            return;
        }
    };
    let user = install.user.as_str();
    let argv = ["-n", "-l", "-U", user];
    let shown = format!("{sudo} {}", argv.join(" "));
    let listing = match exec::capture(&sudo, &argv, &tool_env(), TOOL_TIMEOUT, TOOL_OUTPUT) {
        Ok(c) => {
            installed::parse_sudo_list(&format!("{}{}", c.stdout, c.stderr)).ok_or_else(|| {
                format!(
                    "`{shown}` gave no listing: {}",
                    c.stderr.trim().lines().next().unwrap_or("no output")
                )
            })
        }
        Err(e) => Err(e),
    };
    let listed = match listing {
        Ok(listed) => listed,
        Err(e) => {
            found.push(Finding::fail(
                "sudoers",
                e,
                format!("{shown}  # must answer"),
            ));
            return;
        }
    };
    let file = installed_sudoers_file(user);
    let tmp = "/tmp/agent-gate.sudoers";
    let fix = format!(
        "{} > {tmp} && visudo -c -f {tmp} && install -m 0440 {tmp} {file}",
        fixes.render("sudoers")
    );
    let elsewhere = format!(
        "grep -rn '{user}' /etc/sudoers /etc/sudoers.d; id {user}  # remove that grant (a line or a group), then: visudo -c"
    );
    found.extend(installed::check_sudoers(
        &rendered, user, &listed, &fix, &elsewhere,
    ));
}

/// The file under /etc/sudoers.d that holds the account's lines, for the fix to name;
/// `/etc/sudoers.d/agent-gate` when none does.
fn installed_sudoers_file(user: &str) -> String {
    let prefix = format!("{user} ALL=");
    let mut names: Vec<PathBuf> = std::fs::read_dir("/etc/sudoers.d")
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    names.sort();
    names
        .into_iter()
        .find(|p| read_bounded(p).is_ok_and(|t| t.lines().any(|l| l.starts_with(&prefix))))
        .map_or_else(
            || "/etc/sudoers.d/agent-gate".to_string(),
            |p| p.display().to_string(),
        )
}

/// Every program the rules run on the host, with what it is for.
fn programs(policy: &Policy, install: &Install) -> Vec<(String, String)> {
    let mut list: Vec<(String, String)> = vec![("the gateway".into(), install.gate.clone())];
    if let Some(sudo) = &policy.sudo {
        list.push(("sudo".into(), sudo.clone()));
    }
    if let Some(docker) = &policy.docker {
        list.push(("docker".into(), docker.program.clone()));
    }
    for rule in policy.programs.iter().filter(|p| p.container.is_none()) {
        list.push((format!("rule {}", rule.id), rule.path.clone()));
    }
    if let Some(deploy) = &policy.deploy {
        for (what, path) in [("nh", &deploy.nh), ("nixos-rebuild", &deploy.nixos_rebuild)] {
            if let Some(path) = path {
                list.push((format!("deploy {what}"), path.clone()));
            }
        }
        if let Some(notify) = deploy.approval.notify.first() {
            list.push(("deploy notify".into(), notify.clone()));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    list.retain(|(_, path)| seen.insert(path.clone()));
    list
}

fn program(what: &str, path: &str, fixes: &Fixes) -> Finding {
    let check = format!("program {path}");
    match walk(Path::new(path)) {
        Ok(meta) if !meta.is_file() => Finding::fail(
            check,
            format!("{what}: not a regular file"),
            format!(
                "ls -l {path}  # install the program there, or change its path in {}",
                fixes.rules
            ),
        ),
        Ok(meta) if meta.uid() != 0 || meta.mode() & 0o022 != 0 => Finding::fail(
            check,
            format!(
                "{what}: owned by uid {}, mode {:o}: someone other than root can change what runs",
                meta.uid(),
                meta.mode() & 0o7777
            ),
            format!("chown root:root {path} && chmod go-w {path}"),
        ),
        Ok(meta) if meta.mode() & 0o111 == 0 => Finding::fail(
            check,
            format!("{what}: not executable (mode {:o})", meta.mode() & 0o7777),
            format!("chmod 0755 {path}"),
        ),
        Ok(_) => Finding::ok(
            check,
            format!("{what}: a root-owned executable, every directory root's"),
        ),
        Err(Walk::Missing(at)) => Finding::fail(
            check,
            format!("{what}: {at} does not exist"),
            format!(
                "ls -l {path}  # install it, or change its path in {}; then: {}",
                fixes.rules, fixes.check
            ),
        ),
        Err(e) => walk_failure(&check, &e),
    }
}

/// The audit socket: there, a socket, writable by the account (by mode and owner against its
/// uid and groups, every directory searchable), and a receiver bound to it. The test
/// datagram is sent as root, so it proves only that something receives; it goes at
/// user.debug, outside the authpriv audit trail, and says what it is.
fn audit_socket(socket: &str, account: &Account) -> Finding {
    let check = format!("audit socket {socket}");
    let path = Path::new(socket);
    let meta = match walk(path) {
        Ok(meta) => meta,
        Err(Walk::Missing(at)) => {
            return Finding::fail(
                check,
                format!("{at} does not exist: every command would be refused (no audit, no run)"),
                "systemctl status rsyslog systemd-journald  # start the syslog receiver",
            );
        }
        Err(e) => return walk_failure(&check, &e),
    };
    if !meta.file_type().is_socket() {
        return Finding::fail(
            check,
            "not a socket",
            "systemctl restart rsyslog  # the receiver creates it",
        );
    }
    if !account_may(&meta, account, 0o2) {
        return Finding::fail(
            check,
            format!(
                "owner {}:{} mode {:o}: {} cannot write to it, so every command is refused",
                meta.uid(),
                meta.gid(),
                meta.mode() & 0o7777,
                account.name
            ),
            format!("chmod 0666 {socket}  # or set the receiver's socket mode"),
        );
    }
    let resolved = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    for dir in resolved.ancestors().skip(1) {
        let Ok(meta) = std::fs::metadata(dir) else {
            continue;
        };
        if !account_may(&meta, account, 0o1) {
            return Finding::fail(
                check,
                format!(
                    "{} cannot search the directory {}",
                    account.name,
                    dir.display()
                ),
                format!("chmod o+x {}", dir.display()),
            );
        }
    }
    match test_datagram(path) {
        Ok(()) => Finding::ok(
            check,
            format!(
                "a socket {} may write (owner {}:{}, mode {:o}); a test datagram was received (sent as root, at user.debug)",
                account.name,
                meta.uid(),
                meta.gid(),
                meta.mode() & 0o7777
            ),
        ),
        Err(e) => Finding::fail(
            check,
            format!("no receiver took a test datagram: {e}"),
            "systemctl restart rsyslog  # or whichever receiver owns the socket",
        ),
    }
}

fn test_datagram(path: &Path) -> std::io::Result<()> {
    let socket = std::os::unix::net::UnixDatagram::unbound()?;
    socket.set_write_timeout(Some(Duration::from_secs(2)))?;
    socket.connect(path)?;
    socket.send(
        b"<15>agent-gate-doctor: a test datagram from agent-gate doctor, not an audit record",
    )?;
    Ok(())
}

/// May the account read (4), write (2) or search (1) this, by its mode?
fn account_may(meta: &std::fs::Metadata, account: &Account, bit: u32) -> bool {
    let mode = meta.mode();
    if meta.uid() == account.uid {
        mode & (bit << 6) != 0
    } else if account.gids.contains(&meta.gid()) {
        mode & (bit << 3) != 0
    } else {
        mode & bit != 0
    }
}

/// The approval store (root's, 0700) and the docker config directory (root's, writable by
/// root only, no credentials in it).
fn store_and_config(policy: &Policy, found: &mut Vec<Finding>) {
    if let Some(deploy) = &policy.deploy {
        let store = &deploy.approval.store;
        let shown = store.display().to_string();
        let check = format!("approval store {shown}");
        found.push(match walk(store) {
            Ok(meta) if meta.is_dir() && meta.uid() == 0 && meta.mode() & 0o077 == 0 => {
                Finding::ok(check, "root-owned, mode 0700")
            }
            Ok(meta) => Finding::fail(
                check,
                format!(
                    "owned by uid {}, mode {:o}: another user could forge or read approvals",
                    meta.uid(),
                    meta.mode() & 0o7777
                ),
                format!("chown root:root {shown} && chmod 0700 {shown}"),
            ),
            Err(Walk::Missing(at)) if at == shown => Finding::ok(
                check,
                "not created yet: the approval step creates it, root-owned 0700; the directories above are root's",
            ),
            Err(Walk::Missing(at)) => Finding::fail(
                check,
                format!("{at} does not exist: no deploy can be filed"),
                format!("install -d -o root -g root -m 0700 {shown}"),
            ),
            Err(e) => walk_failure(&check, &e),
        });
    }
    if let Some(docker) = &policy.docker {
        let dir = &docker.config;
        let check = format!("docker config {dir}");
        found.push(match walk(Path::new(dir)) {
            Ok(meta) if meta.is_dir() && meta.uid() == 0 && meta.mode() & 0o022 == 0 => {
                match docker_credentials(Path::new(dir)) {
                    Ok(()) => Finding::ok(check, "root-owned, writable by root only, no credentials, helpers or context"),
                    Err(e) => Finding::fail(
                        check,
                        e,
                        format!("rm {dir}/config.json  # the gateway's docker needs none"),
                    ),
                }
            }
            Ok(meta) => Finding::fail(
                check,
                format!(
                    "owned by uid {}, mode {:o}: docker reads plugins and credential helpers from it",
                    meta.uid(),
                    meta.mode() & 0o7777
                ),
                format!("chown root:root {dir} && chmod 0755 {dir}"),
            ),
            Err(Walk::Missing(at)) => Finding::fail(
                check,
                format!("{at} does not exist"),
                format!("install -d -o root -g root -m 0755 {dir}"),
            ),
            Err(e) => walk_failure(&check, &e),
        });
    }
}

/// The docker config directory holds no credentials, credential helpers or context.
fn docker_credentials(dir: &Path) -> Result<(), String> {
    let file = dir.join("config.json");
    let Ok(text) = read_bounded(&file) else {
        return Ok(());
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON ({e})", file.display()))?;
    let present: Vec<&str> = ["auths", "credsStore", "credHelpers", "currentContext"]
        .into_iter()
        .filter(|k| {
            value.get(k).is_some_and(|v| match v {
                serde_json::Value::Object(m) => !m.is_empty(),
                serde_json::Value::String(s) => !s.is_empty(),
                serde_json::Value::Null => false,
                _ => true,
            })
        })
        .collect();
    if present.is_empty() {
        Ok(())
    } else {
        Err(format!("{} sets {}", file.display(), present.join(", ")))
    }
}

fn read_bounded(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(FILE_MAX)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Why a path walk stopped.
#[derive(Debug, thiserror::Error)]
enum Walk {
    #[error("{0} does not exist")]
    Missing(String),
    #[error(
        "the directory {dir} is owned by uid {uid}, mode {mode:o}: someone other than root can swap what is in it"
    )]
    Unsafe { dir: String, uid: u32, mode: u32 },
    #[error(
        "{entry} is owned by uid {uid} in the shared (sticky) directory {dir}: its owner can swap it"
    )]
    NotRoots {
        entry: String,
        uid: u32,
        dir: String,
    },
    /// Another reason, at this path.
    #[error("{why}")]
    Other { path: String, why: String },
}

fn walk_failure(check: &str, why: &Walk) -> Finding {
    let fix = match why {
        Walk::Missing(at) => format!("ls -ld {at}"),
        Walk::Unsafe { dir, .. } => format!("chown root:root {dir} && chmod go-w {dir}"),
        Walk::NotRoots { entry, .. } => format!("chown root:root {entry}"),
        Walk::Other { path, .. } => format!("ls -ld {path}"),
    };
    Finding::fail(check, why.to_string(), fix)
}

/// Walk `path` from `/` as sshd's StrictModes and sudo do: every directory root-owned and
/// writable by root only; a symlink followed (at most 40), its target walked the same way.
/// One exception, for the Nix store (root:nixbld 1775) and the like: a root-owned sticky
/// directory others may write, whose entry on the path is root's, since in a sticky
/// directory only an entry's owner (or root) can rename or remove it.
/// The final component's own metadata (not followed further) for the caller to judge.
// Not sys::walk: programs live in the Nix store (root:nixbld 1775), which the gateway's walk
// refuses for what it trusts (rules, store, docker config, flake) and doctor must pass here.
fn walk(path: &Path) -> Result<std::fs::Metadata, Walk> {
    if !path.is_absolute() {
        return Err(other(path, "not an absolute path"));
    }
    let mut pending = path.to_path_buf();
    let mut hops = 0;
    'again: loop {
        let components: Vec<Component<'_>> = pending.components().collect();
        let mut walked = PathBuf::from("/");
        let mut last =
            std::fs::symlink_metadata(&walked).map_err(|e| other(&walked, &e.to_string()))?;
        for (i, component) in components.iter().enumerate() {
            let name = match component {
                Component::RootDir | Component::CurDir => continue,
                Component::ParentDir => {
                    walked.pop();
                    continue;
                }
                Component::Prefix(_) => return Err(other(path, "a path prefix")),
                Component::Normal(name) => name,
            };
            let shared = holder(&walked)?;
            let next = walked.join(name);
            let meta = std::fs::symlink_metadata(&next).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Walk::Missing(next.display().to_string()),
                _ => other(&next, &e.to_string()),
            })?;
            if shared && meta.uid() != 0 {
                return Err(Walk::NotRoots {
                    entry: next.display().to_string(),
                    uid: meta.uid(),
                    dir: walked.display().to_string(),
                });
            }
            if meta.file_type().is_symlink() {
                hops += 1;
                if hops > 40 {
                    return Err(other(path, "too many symlinks"));
                }
                let target = std::fs::read_link(&next).map_err(|e| other(&next, &e.to_string()))?;
                let rest: PathBuf = components.iter().skip(i + 1).collect();
                pending = walked.join(target).join(rest);
                continue 'again;
            }
            if i + 1 < components.len() && !meta.is_dir() {
                return Err(other(&next, "not a directory"));
            }
            walked = next;
            last = meta;
        }
        return Ok(last);
    }
}

fn other(path: &Path, why: &str) -> Walk {
    Walk::Other {
        path: path.display().to_string(),
        why: format!("{}: {why}", path.display()),
    }
}

/// May `dir` hold what the walk passes through? Root's and writable by root alone: yes
/// (`false`); root's, sticky and writable by others: only a root-owned entry (`true`).
fn holder(dir: &Path) -> Result<bool, Walk> {
    let meta = std::fs::symlink_metadata(dir).map_err(|e| other(dir, &e.to_string()))?;
    let writable = meta.mode() & 0o022 != 0;
    let sticky = meta.mode() & 0o1000 != 0;
    if meta.uid() != 0 || (writable && !sticky) {
        return Err(Walk::Unsafe {
            dir: dir.display().to_string(),
            uid: meta.uid(),
            mode: meta.mode() & 0o7777,
        });
    }
    Ok(writable)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn a_compiled_record_is_current_only_when_the_account_can_read_it() {
        use std::os::unix::fs::PermissionsExt;
        if !nix::unistd::Uid::effective().is_root() {
            let required = std::env::var("AGENT_GATE_ROOT").is_ok_and(|v| v == "required");
            assert!(!required, "the record must be root's: this test needs root");
            return;
        }
        let dir = crate::sys::walk::trusted_test_dir();
        let rules = dir.path().join("rules.yaml");
        let text = "version: 1\nkeys: {h: {may: []}}\n";
        std::fs::write(&rules, text).unwrap();
        let verdict = || compiled_record(&rules, text, "R");
        assert!(!verdict().ok, "no record yet");
        let policy = crate::rules::parse(text).unwrap();
        let record = crate::policy::record::path_for(&rules);
        std::fs::write(&record, crate::policy::record::encode(&policy).unwrap()).unwrap();
        std::fs::set_permissions(&record, std::fs::Permissions::from_mode(0o444)).unwrap();
        assert!(verdict().ok, "{}", verdict().detail);
        std::fs::set_permissions(&record, std::fs::Permissions::from_mode(0o400)).unwrap();
        let unreadable = verdict();
        assert!(!unreadable.ok && unreadable.detail.contains("cannot read it"));
        std::fs::write(&rules, format!("{text}# changed\n")).unwrap();
        assert!(!compiled_record(&rules, &format!("{text}# changed\n"), "R").ok);
    }

    #[test]
    fn the_walk_follows_symlinks_and_stops_at_a_directory_others_may_write() {
        // `/bin/sh` on Debian goes through `/bin -> usr/bin` and `sh -> dash`.
        let meta = walk(Path::new("/bin/sh")).unwrap();
        assert!(meta.is_file());
        assert!(
            matches!(walk(Path::new("/nonexistent/x")), Err(Walk::Missing(at)) if at == "/nonexistent")
        );
        assert!(matches!(
            walk(Path::new("relative")),
            Err(Walk::Other { .. })
        ));
        if !nix::unistd::Uid::effective().is_root() {
            return;
        }
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        };
        let dir = tempfile::Builder::new().tempdir_in("/run").unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        mode(dir.path(), 0o755);
        assert!(walk(&file).is_ok());
        // World-writable, not sticky: anyone can swap the file.
        mode(dir.path(), 0o777);
        let shown = dir.path().display().to_string();
        assert!(matches!(walk(&file), Err(Walk::Unsafe { dir, .. }) if dir == shown));
        // Sticky (/tmp, the Nix store): a root-owned entry stays root's, another's does not.
        mode(dir.path(), 0o1777);
        assert!(walk(&file).is_ok());
        nix::unistd::chown(&file, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        assert!(
            matches!(walk(&file), Err(Walk::NotRoots { entry, uid: 65534, .. }) if entry == file.display().to_string())
        );
    }

    #[test]
    fn a_docker_config_with_credentials_helpers_or_a_context_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(docker_credentials(dir.path()).is_ok(), "no config.json");
        let config = dir.path().join("config.json");
        for (text, ok) in [
            ("{}", true),
            (r#"{"auths": {}, "psFormat": "table"}"#, true),
            (
                r#"{"auths": {"registry.example": {"auth": "eDp5"}}}"#,
                false,
            ),
            (r#"{"credsStore": "pass"}"#, false),
            (r#"{"credHelpers": {"gcr.io": "gcloud"}}"#, false),
            (r#"{"currentContext": "remote"}"#, false),
            ("not json", false),
        ] {
            std::fs::write(&config, text).unwrap();
            assert_eq!(docker_credentials(dir.path()).is_ok(), ok, "{text}");
        }
    }
}
