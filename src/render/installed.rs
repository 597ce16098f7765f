//! What is installed, compared with what the rules render: the parsing of `sshd -T` and
//! `sudo -l` listings and of authorized_keys files, and the findings `agent-gate doctor`
//! prints. Pure: the command layer runs the tools and reads the files, and hands their text
//! here, so every comparison is tested with listings captured from the real tools.

use std::collections::BTreeMap;

/// One thing `doctor` checked: whether it holds, what was found, and the command that fixes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// A short name of the check (`sudoers`, `sshd PermitTTY`, `program /usr/bin/ss`).
    pub check: String,
    pub ok: bool,
    pub detail: String,
    /// A command that works as printed; `None` when nothing needs fixing.
    pub fix: Option<String>,
}

impl Finding {
    pub fn ok(check: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            ok: true,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn fail(
        check: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            check: check.into(),
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// `sshd -T` output: each keyword (lowercase, as sshd prints it) with its values, one per
/// line sshd printed (AcceptEnv, for one, is printed once per pattern).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshdSettings {
    values: BTreeMap<String, Vec<String>>,
}

impl SshdSettings {
    pub fn parse(text: &str) -> Self {
        let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            values
                .entry(key.to_ascii_lowercase())
                .or_default()
                .push(value.trim().to_string());
        }
        Self { values }
    }

    /// Every value printed for `key` (lowercase); empty when sshd printed none.
    pub fn all(&self, key: &str) -> &[String] {
        self.values.get(key).map_or(&[], Vec::as_slice)
    }

    /// The value of a keyword sshd prints once.
    pub fn one(&self, key: &str) -> Option<&str> {
        self.all(key).first().map(String::as_str)
    }

    /// `sshd -T` always prints these; without them the text was no `sshd -T` listing.
    pub fn looks_complete(&self) -> bool {
        [
            "permittty",
            "forcecommand",
            "authorizedkeysfile",
            "maxstartups",
        ]
        .iter()
        .all(|k| self.values.contains_key(*k))
    }
}

/// The `Name value` settings of a rendered `Match` block (the indented lines), in order.
pub fn block_settings(rendered: &str) -> Vec<(String, String)> {
    rendered
        .lines()
        .filter(|l| l.starts_with(char::is_whitespace))
        .filter_map(|l| {
            let l = l.trim();
            let (name, value) = l.split_once(' ')?;
            Some((name.to_string(), value.trim().to_string()))
        })
        .collect()
}

/// The account's effective sshd settings against the rendered block, and the settings the
/// block cannot set (AcceptEnv is additive outside a Match; PermitUserEnvironment is global).
/// `fix_file` is the sshd_config to edit, `render` the command that prints the block.
pub fn check_sshd(
    rendered: &str,
    effective: &SshdSettings,
    fix_file: &str,
    render: &str,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for (name, want) in block_settings(rendered) {
        // ForceCommand has its own check, with the shell and the keys' command=.
        if name == "ForceCommand" {
            continue;
        }
        let check = format!("sshd {name}");
        let have = effective.all(&name.to_ascii_lowercase());
        if have.len() == 1 && have.iter().all(|h| h.eq_ignore_ascii_case(&want)) {
            out.push(Finding::ok(check, format!("{want}, as rendered")));
        } else {
            let shown = if have.is_empty() {
                "not reported".to_string()
            } else {
                have.join(", ")
            };
            out.push(Finding::fail(
                check,
                format!("the account gets `{shown}`, the rendered block says `{want}`"),
                format!(
                    "{render}  # put it at the end of {fix_file} in place of the old block; sshd -t -f {fix_file}; reload sshd"
                ),
            ));
        }
    }
    let accept = effective.all("acceptenv");
    // LANG and LC_* are what Debian accepts by default; the gateway reads neither and builds
    // every command's environment, so they reach no program. Any other name could: refuse.
    let harmless = |p: &String| p == "LANG" || p == "LC_*" || p == super::ACCEPT_NO_ENV;
    if accept.is_empty() {
        out.push(Finding::ok(
            "sshd AcceptEnv",
            "none: the client sets no variable",
        ));
    } else if accept.iter().all(harmless) {
        out.push(Finding::ok(
            "sshd AcceptEnv",
            format!(
                "{}: locale only, which the gateway does not read and passes to no command",
                accept.join(" ")
            ),
        ));
    } else {
        out.push(Finding::fail(
            "sshd AcceptEnv",
            format!(
                "the account accepts `{}` from the client: the rendered block's AcceptEnv must be the last one that applies to the account (a later Match, or an Include after it, adds to it), so remove the others or move the block to the end",
                accept.join(" ")
            ),
            format!(
                "sed -i 's/^[[:space:]]*AcceptEnv/#&/I' {fix_file} && sshd -t -f {fix_file}  # then reload sshd (check Include'd files too)"
            ),
        ));
    }
    match effective.one("permituserenvironment") {
        Some("no") => out.push(Finding::ok("sshd PermitUserEnvironment", "no")),
        other => out.push(Finding::fail(
            "sshd PermitUserEnvironment",
            format!(
                "`{}`: ~/.ssh/environment would set the gateway's environment",
                other.unwrap_or("not reported")
            ),
            format!(
                "sed -i 's/^[[:space:]]*PermitUserEnvironment.*/PermitUserEnvironment no/I' {fix_file} && sshd -t -f {fix_file}  # then reload sshd"
            ),
        )),
    }
    out
}

/// How the account's sessions reach the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shell {
    /// The shell is the gateway, or a wrapper that execs it.
    Gateway(String),
    /// Some other program: a session without a forced command gets it.
    Other(String),
}

/// A login-shell wrapper: a short `#!` script whose last command is `exec GATE ...`.
pub fn is_gateway_wrapper(script: &str, gate: &str) -> bool {
    script.starts_with("#!")
        && script.lines().any(|l| {
            l.trim()
                .strip_prefix("exec ")
                .is_some_and(|rest| rest.trim_start().split(' ').next() == Some(gate))
        })
}

/// sshd's ForceCommand, the account's shell and the keys' `command=`: every way in must end
/// in the gateway. `keys` are the installed authorized_keys lines (comments left out).
pub fn check_forced(
    force_command: Option<&str>,
    shell: &Shell,
    gate: &str,
    keys: &[String],
    render_force: &str,
) -> Finding {
    const CHECK: &str = "forced command";
    match force_command {
        Some("none") | None => {}
        Some(command) if command.split(' ').next() == Some(gate) => {
            return Finding::ok(
                CHECK,
                format!("sshd's ForceCommand runs the gateway: {command}"),
            );
        }
        Some(command) => {
            return Finding::fail(
                CHECK,
                format!("sshd's ForceCommand runs `{command}`, not the gateway {gate}"),
                render_force.to_string(),
            );
        }
    }
    let shell = match shell {
        Shell::Gateway(shell) => {
            return Finding::ok(
                CHECK,
                format!("no ForceCommand; the account's shell {shell} is the gateway"),
            );
        }
        Shell::Other(shell) => shell,
    };
    let bare: Vec<&String> = keys
        .iter()
        .filter(|line| key_command(line).is_none_or(|c| c.split(' ').next() != Some(gate)))
        .collect();
    if bare.is_empty() {
        Finding::ok(
            CHECK,
            format!(
                "no ForceCommand and the shell is {shell}, but every authorized_keys line forces the gateway (command=)"
            ),
        )
    } else {
        let keys: Vec<String> = bare.iter().map(|l| key_blob_short(l)).collect();
        Finding::fail(
            CHECK,
            format!(
                "no ForceCommand, the account's shell is {shell}, and these authorized_keys lines run no gateway: {}; such a key gets a shell",
                keys.join(", ")
            ),
            render_force.to_string(),
        )
    }
}

/// The `command="..."` option of an authorized_keys line, if it has one.
pub fn key_command(line: &str) -> Option<String> {
    let start = line.find("command=\"")? + "command=\"".len();
    let rest = line.get(start..)?;
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return Some(out),
            c => out.push(c),
        }
    }
    None
}

/// The key type and blob of an authorized_keys line (its options and comment left out).
fn key_blob(line: &str) -> Option<String> {
    let words: Vec<&str> = line.split_ascii_whitespace().collect();
    let at = words
        .iter()
        .position(|w| w.starts_with("ssh-") || w.starts_with("ecdsa-") || w.starts_with("sk-"))?;
    let kind = words.get(at)?;
    let blob = words.get(at + 1)?;
    Some(format!("{kind} {blob}"))
}

/// A key, short enough for one line: its type and the blob's last characters.
fn key_blob_short(line: &str) -> String {
    match key_blob(line) {
        Some(key) => {
            let tail: String = key
                .chars()
                .rev()
                .take(12)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let kind = key.split(' ').next().unwrap_or_default();
            format!("{kind} ...{tail}")
        }
        None => "a line with no key".to_string(),
    }
}

/// The lines of a rendered piece or an installed file that are not comments or blank.
pub fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// sshd's AuthorizedKeysFile for one account: `%h`, `%u`, `%U`, `%%` expanded and relative
/// paths taken from the home directory, as sshd does; `none` gives no file.
pub fn authorized_keys_files(spec: &str, user: &str, uid: u32, home: &str) -> Vec<String> {
    spec.split_ascii_whitespace()
        .filter(|f| *f != "none")
        .map(|f| {
            let mut out = String::new();
            let mut chars = f.chars();
            while let Some(c) = chars.next() {
                if c != '%' {
                    out.push(c);
                    continue;
                }
                match chars.next() {
                    Some('h') => out.push_str(home),
                    Some('u') => out.push_str(user),
                    Some('U') => out.push_str(&uid.to_string()),
                    Some('%') => out.push('%'),
                    Some(other) => {
                        out.push('%');
                        out.push(other);
                    }
                    None => out.push('%'),
                }
            }
            if out.starts_with('/') {
                out
            } else {
                format!("{}/{out}", home.trim_end_matches('/'))
            }
        })
        .collect()
}

/// The rendered authorized_keys lines against the installed ones (all files sshd reads for
/// the account, together): missing, stale (the same key with other options) and extra.
pub fn check_authorized_keys(rendered: &str, installed: &[String], fix: &str) -> Vec<Finding> {
    let want = lines(rendered);
    let mut out = Vec::new();
    let blob_of = |l: &String| key_blob(l);
    // The keys of rendered lines that are not installed as rendered: an installed line with
    // one of them is that line gone stale, and reported once, as such.
    let mut stale_keys = Vec::new();
    for line in &want {
        if installed.contains(line) {
            continue;
        }
        let blob = blob_of(line);
        let stale = installed
            .iter()
            .find(|have| blob.is_some() && blob_of(have) == blob);
        if stale.is_some() {
            stale_keys.push(blob.clone());
        }
        let detail = match stale {
            Some(have) => format!(
                "stale: the key {} is installed as `{have}`, the rules render `{line}`",
                key_blob_short(line)
            ),
            None => format!("missing: `{line}`"),
        };
        out.push(Finding::fail("authorized_keys", detail, fix));
    }
    for line in installed {
        if want.contains(line) {
            continue;
        }
        let blob = blob_of(line);
        if blob.is_some() && stale_keys.contains(&blob) {
            continue;
        }
        out.push(Finding::fail(
            "authorized_keys",
            format!("extra: `{line}` is installed but not rendered from the rules"),
            fix,
        ));
    }
    if out.is_empty() {
        out.push(Finding::ok(
            "authorized_keys",
            format!("{} line(s), exactly as rendered", want.len()),
        ));
    }
    out
}

/// `sudo -l -U USER` output: the commands the account may run, one entry per privilege line
/// (`(root) NOPASSWD: /usr/bin/ss ...`), as sudo prints them: with the file's own escapes.
/// sudo wraps long entries at the terminal width, continuing them on a line indented deeper;
/// the caller sets COLUMNS wide, and a wrapped entry is joined again here (sudo breaks only
/// at a space). `None`: the text is neither a listing nor sudo's "not allowed" line.
pub fn parse_sudo_list(text: &str) -> Option<Vec<String>> {
    if text
        .lines()
        .any(|l| l.contains("is not allowed to run sudo"))
    {
        return Some(Vec::new());
    }
    let mut lines = text.lines();
    lines.find(|l| l.contains("may run the following commands on"))?;
    let mut entries: Vec<String> = Vec::new();
    for line in lines {
        if line.trim().is_empty() {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if indent >= 8
            && let Some(last) = entries.last_mut()
        {
            last.push(' ');
            last.push_str(line.trim());
        } else if indent > 0 {
            entries.push(line.trim().to_string());
        } else {
            // A header of another section (sudo -ll, or a second source): not an entry.
            continue;
        }
    }
    Some(entries)
}

/// A rendered sudoers line as `sudo -l` lists it: `USER ALL=(root) NOPASSWD: CMD` becomes
/// `(root) NOPASSWD: CMD`.
fn as_listed(line: &str, user: &str) -> String {
    line.strip_prefix(&format!("{user} ALL="))
        .unwrap_or(line)
        .to_string()
}

/// The path a sudo entry runs (`(root) NOPASSWD: /usr/bin/ss ARGS` gives `/usr/bin/ss`).
fn entry_program(entry: &str) -> Option<&str> {
    let after = entry.split_once(": ").map_or(entry, |(_, c)| c);
    after.split(' ').find(|w| w.starts_with('/'))
}

/// What sudo lets the account run against what the rules render: a missing line means the
/// agent meets `sudo: a password is required` for a command the gateway allowed; an extra
/// one is a grant the rules do not know of; a stale one, the same program with other
/// arguments (an older rendering).
/// `fix` reinstalls the rendering; `elsewhere` finds a grant that did not come from it.
pub fn check_sudoers(
    rendered: &str,
    user: &str,
    listed: &[String],
    fix: &str,
    elsewhere: &str,
) -> Vec<Finding> {
    let want: Vec<String> = lines(rendered).iter().map(|l| as_listed(l, user)).collect();
    let mut out = Vec::new();
    let missing: Vec<&String> = want.iter().filter(|w| !listed.contains(w)).collect();
    let extra: Vec<&String> = listed.iter().filter(|l| !want.contains(l)).collect();
    for entry in &missing {
        let program = entry_program(entry);
        let stale = extra
            .iter()
            .any(|e| program.is_some() && entry_program(e) == program);
        let what = if stale { "stale" } else { "missing" };
        out.push(Finding::fail(
            "sudoers",
            format!("{what}: sudo does not grant `{user} ALL={entry}`"),
            fix,
        ));
    }
    for entry in &extra {
        let program = entry_program(entry);
        let stale = missing
            .iter()
            .any(|m| program.is_some() && entry_program(m) == program);
        let (what, fix) = if stale {
            ("stale (another rendering)", fix)
        } else {
            ("extra", elsewhere)
        };
        out.push(Finding::fail(
            "sudoers",
            format!("{what}: sudo grants `{entry}`, which the rules do not render"),
            fix,
        ));
    }
    if out.is_empty() {
        out.push(Finding::ok(
            "sudoers",
            format!(
                "sudo grants {user} exactly the {} rendered line(s)",
                want.len()
            ),
        ));
    }
    out
}

/// sshd's global limits against the sessions the operator expects at once (`sessions`), or
/// as information only when no number was given.
/// `render` is the command that prints the block (`GATE render sshd --rules ...`).
pub fn check_globals(
    effective: &SshdSettings,
    sessions: Option<u32>,
    render: &str,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let startups = effective.one("maxstartups").unwrap_or("not reported");
    // `start:rate:full`, or one number: sshd begins dropping unauthenticated connections at
    // `start`.
    let start: Option<u32> = startups.split(':').next().and_then(|s| s.parse().ok());
    let per_source = effective.one("persourcemaxstartups").unwrap_or("none");
    let max_sessions = effective.one("maxsessions").unwrap_or("not reported");
    let per_source_n: Option<u32> = per_source.parse().ok();
    let sessions_n: Option<u32> = max_sessions.parse().ok();
    let fix = |n: u32| {
        format!(
            "{render} --global --sessions {n}  # put the lines before any Match in sshd_config; reload sshd"
        )
    };
    match sessions {
        None => {
            out.push(Finding::ok(
                "sshd MaxStartups",
                format!(
                    "{startups} (PerSourceMaxStartups {per_source}): sshd drops connections still authenticating beyond the first number; information only, give --sessions N to check it"
                ),
            ));
            out.push(Finding::ok(
                "sshd MaxSessions",
                format!(
                    "{max_sessions}: the sessions one multiplexed connection carries; information only"
                ),
            ));
        }
        Some(n) => {
            let short = start.is_none_or(|s| s < n) || per_source_n.is_some_and(|p| p < n);
            let detail = format!(
                "{startups} (PerSourceMaxStartups {per_source}) for {n} sessions starting at once"
            );
            out.push(if short {
                Finding::fail(
                    "sshd MaxStartups",
                    format!("{detail}: sshd would drop some of them before they authenticate"),
                    fix(n),
                )
            } else {
                Finding::ok("sshd MaxStartups", detail)
            });
            let detail = format!("{max_sessions} for {n} sessions");
            out.push(if sessions_n.is_none_or(|s| s < n) {
                Finding::fail(
                    "sshd MaxSessions",
                    format!(
                        "{detail}: an agent that multiplexes them over one connection (ControlMaster) is refused past {max_sessions}"
                    ),
                    fix(n),
                )
            } else {
                Finding::ok("sshd MaxSessions", detail)
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    /// `sudo -l -U ai-worker` (sudo 1.9.13p3, Debian 12), with COLUMNS=4096, for the
    /// sudoers `render sudoers` makes from tests/fixtures/render.yaml.
    const SUDO_L: &str = include_str!("testdata/sudo-l.txt");
    /// The same, as sudo prints it at its default width of 80 columns: wrapped.
    const SUDO_L_WRAPPED: &str = include_str!("testdata/sudo-l-wrapped.txt");
    /// That sudoers, as rendered.
    const SUDOERS: &str = include_str!("testdata/sudoers");
    /// `sshd -T -f CONFIG -C user=ai-worker,host=localhost,addr=127.0.0.1` (OpenSSH 9.2p1,
    /// Debian 12), CONFIG being a host key, `UsePAM no`, an AuthorizedKeysFile and the
    /// rendered block.
    const SSHD_T: &str = include_str!("testdata/sshd-T-user.txt");
    /// The same config without -C: the global values, which the block does not change.
    const SSHD_T_GLOBAL: &str = include_str!("testdata/sshd-T-global.txt");
    /// That block, as rendered.
    const BLOCK: &str = include_str!("testdata/sshd-block");

    #[test]
    fn sudo_listing_matches_its_rendering_wrapped_or_not() {
        for text in [SUDO_L, SUDO_L_WRAPPED] {
            let listed = parse_sudo_list(text).unwrap();
            assert_eq!(listed.len(), 8, "{listed:#?}");
            let found = check_sudoers(SUDOERS, "ai-worker", &listed, "FIX", "GREP");
            assert_eq!(found.len(), 1, "{found:#?}");
            assert!(found[0].ok, "{found:#?}");
        }
        assert_eq!(
            parse_sudo_list("User ai-worker is not allowed to run sudo on vm.\n"),
            Some(Vec::new())
        );
        assert_eq!(parse_sudo_list("sudo: unknown user nosuchuser\n"), None);
    }

    #[test]
    fn a_missing_stale_or_extra_sudoers_line_is_named() {
        let listed = parse_sudo_list(SUDO_L).unwrap();
        // One line removed: the agent would meet "a password is required".
        let fewer: Vec<String> = listed
            .iter()
            .filter(|e| !e.contains("/usr/sbin/sshd"))
            .cloned()
            .collect();
        let found = check_sudoers(SUDOERS, "ai-worker", &fewer, "FIX", "GREP");
        assert_eq!(found.len(), 1);
        assert!(!found[0].ok);
        assert!(
            found[0].detail.starts_with("missing:"),
            "{}",
            found[0].detail
        );
        assert!(found[0].detail.contains("/usr/sbin/sshd"));
        assert_eq!(found[0].fix.as_deref(), Some("FIX"));
        // An older rendering of one line: the same program, other arguments.
        let mut older = listed.clone();
        older[3] = "(root) NOPASSWD: /usr/sbin/sshd ^-T$".to_string();
        let found = check_sudoers(SUDOERS, "ai-worker", &older, "FIX", "GREP");
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found.iter().all(|f| !f.ok && f.detail.starts_with("stale")));
        // A grant from elsewhere (the sudo group, another file).
        let mut more = listed.clone();
        more.push("(ALL : ALL) ALL".to_string());
        let found = check_sudoers(SUDOERS, "ai-worker", &more, "FIX", "GREP");
        assert_eq!(found.len(), 1);
        assert!(
            found[0].detail.starts_with("extra:") && found[0].detail.contains("(ALL : ALL) ALL")
        );
        assert_eq!(found[0].fix.as_deref(), Some("GREP"));
        // Nothing granted at all.
        let found = check_sudoers(SUDOERS, "ai-worker", &[], "FIX", "GREP");
        assert_eq!(found.len(), 8);
    }

    #[test]
    fn the_rendered_block_is_what_sshd_reports_for_the_account() {
        let effective = SshdSettings::parse(SSHD_T);
        assert!(effective.looks_complete());
        let found = check_sshd(BLOCK, &effective, "/etc/ssh/sshd_config", "RENDER");
        let failed: Vec<&Finding> = found.iter().filter(|f| !f.ok).collect();
        assert!(failed.is_empty(), "{failed:#?}");
        assert_eq!(found.len(), block_settings(BLOCK).len() + 2);
        // Without the Match block (-T with no -C, or a Match that does not apply): every
        // channel the block closes is open.
        let global = SshdSettings::parse(SSHD_T_GLOBAL);
        let found = check_sshd(BLOCK, &global, "/etc/ssh/sshd_config", "RENDER");
        let failed: Vec<&str> = found
            .iter()
            .filter(|f| !f.ok)
            .map(|f| f.check.as_str())
            .collect();
        for name in [
            "sshd PermitTTY",
            "sshd AllowTcpForwarding",
            "sshd AllowAgentForwarding",
            "sshd AllowStreamLocalForwarding",
            "sshd DisableForwarding",
            "sshd ExposeAuthInfo",
            "sshd PermitOpen",
            "sshd PermitListen",
        ] {
            assert!(failed.contains(&name), "{name} not reported: {failed:?}");
        }
    }

    #[test]
    fn an_accept_env_the_block_cannot_undo_fails() {
        // `AcceptEnv LANG LC_*` and `AcceptEnv *` outside the Match: sshd -T prints one line
        // per pattern.
        let text = SSHD_T.replace(
            "permituserenvironment no\n",
            "permituserenvironment no\nacceptenv LANG\nacceptenv LC_*\nacceptenv *\n",
        );
        let effective = SshdSettings::parse(&text);
        assert_eq!(effective.all("acceptenv"), ["LANG", "LC_*", "*"]);
        let found = check_sshd(BLOCK, &effective, "/etc/ssh/sshd_config", "RENDER");
        let accept = found.iter().find(|f| f.check == "sshd AcceptEnv").unwrap();
        assert!(!accept.ok);
        assert!(accept.detail.contains("LANG LC_* *"), "{}", accept.detail);
        // Debian's default alone passes.
        let text = SSHD_T.replace(
            "permituserenvironment no\n",
            "permituserenvironment no\nacceptenv LANG\nacceptenv LC_*\n",
        );
        let found = check_sshd(BLOCK, &SshdSettings::parse(&text), "F", "R");
        assert!(found.iter().all(|f| f.ok));
        let text = SSHD_T.replace("permituserenvironment no", "permituserenvironment yes");
        let found = check_sshd(BLOCK, &SshdSettings::parse(&text), "F", "R");
        let env = found
            .iter()
            .find(|f| f.check == "sshd PermitUserEnvironment")
            .unwrap();
        assert!(!env.ok);
    }

    #[test]
    fn every_way_in_must_end_in_the_gateway() {
        let gate = "/usr/local/bin/agent-gate";
        let forced = format!(
            "restrict,from=\"10.0.0.0/8\",command=\"{gate} --rules /etc/agent-gate/rules.yaml --key hermes\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBnhR3kRTRLTegHjS85xsaF59JzZ6iIFhCZphnjIGICs hermes@agent"
        );
        let bare = "restrict ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILvtejmUGKHE2n6HmmoN+jGRtIVi4F38xHifoz1jxxeh".to_string();
        let sh = Shell::Other("/bin/sh".into());
        assert!(check_forced(Some("none"), &sh, gate, std::slice::from_ref(&forced), "F").ok);
        let found = check_forced(
            Some("none"),
            &sh,
            gate,
            &[forced.clone(), bare.clone()],
            "F",
        );
        assert!(!found.ok);
        assert!(
            found.detail.contains("ssh-ed25519 ...xHifoz1jxxeh"),
            "{}",
            found.detail
        );
        let wrapper = Shell::Gateway("/usr/local/bin/agent-gate-shell".into());
        assert!(
            check_forced(
                Some("none"),
                &wrapper,
                gate,
                std::slice::from_ref(&bare),
                "F"
            )
            .ok
        );
        let own = format!("{gate} --rules /etc/agent-gate/rules.yaml");
        assert!(check_forced(Some(&own), &sh, gate, std::slice::from_ref(&bare), "F").ok);
        assert!(!check_forced(Some("/bin/bash"), &wrapper, gate, &[], "F").ok);
        assert!(is_gateway_wrapper(
            &format!("#!/bin/sh\nexec {gate} --rules /etc/agent-gate/rules.yaml \"$@\"\n"),
            gate
        ));
        assert!(!is_gateway_wrapper(
            "#!/bin/sh\nexec /bin/sh \"$@\"\n",
            gate
        ));
        assert_eq!(
            key_command("restrict,command=\"a \\\"b\\\" c\" ssh-ed25519 AAAA").as_deref(),
            Some("a \"b\" c")
        );
    }

    #[test]
    fn authorized_keys_are_compared_key_by_key() {
        let effective = SshdSettings::parse(SSHD_T);
        assert_eq!(
            authorized_keys_files(
                effective.one("authorizedkeysfile").unwrap(),
                "ai-worker",
                1001,
                "/home/ai-worker"
            ),
            [
                "/home/ai-worker/.ssh/authorized_keys",
                "/etc/ssh/keys/ai-worker"
            ]
        );
        assert_eq!(
            authorized_keys_files("/k/%U/%%h none", "u", 7, "/h"),
            ["/k/7/%h"]
        );
        let rendered = "# header\nrestrict,command=\"/g --key a\" ssh-ed25519 AAAA a\nrestrict,command=\"/g --key b\" ssh-ed25519 BBBB b\n";
        let same = lines(rendered);
        assert!(check_authorized_keys(rendered, &same, "F")[0].ok);
        let installed = vec![
            "restrict,command=\"/g --key a\" ssh-ed25519 AAAA a".to_string(),
            "restrict,command=\"/g --key old\" ssh-ed25519 BBBB b".to_string(),
            "ssh-rsa CCCC intruder".to_string(),
        ];
        let found = check_authorized_keys(rendered, &installed, "F");
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[0].detail.starts_with("stale:"), "{}", found[0].detail);
        assert!(found[1].detail.starts_with("extra:") && found[1].detail.contains("CCCC"));
        // A second line for a key that is installed as rendered: sshd takes the first that
        // matches, but the extra one is still no rendering.
        let mut twice = same.clone();
        twice.push("restrict ssh-ed25519 AAAA a".to_string());
        let found = check_authorized_keys(rendered, &twice, "F");
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].detail.starts_with("extra:"), "{}", found[0].detail);
        let found = check_authorized_keys(rendered, &installed[..1], "F");
        assert!(found[0].detail.starts_with("missing:") && found[0].detail.contains("BBBB"));
    }

    #[test]
    fn global_limits_are_information_unless_a_number_is_given() {
        let effective = SshdSettings::parse(SSHD_T);
        let found = check_globals(&effective, None, "R");
        assert!(found.iter().all(|f| f.ok));
        assert!(
            found[0].detail.starts_with("10:30:100"),
            "{}",
            found[0].detail
        );
        let found = check_globals(&effective, Some(200), "G render sshd");
        assert!(found.iter().all(|f| !f.ok), "{found:#?}");
        let fix = found[0].fix.as_deref().unwrap();
        assert!(
            fix.starts_with("G render sshd --global --sessions 200"),
            "{fix}"
        );
        let roomy = SSHD_T
            .replace("maxstartups 10:30:100", "maxstartups 200:30:400")
            .replace("maxsessions 10", "maxsessions 200");
        assert!(
            check_globals(&SshdSettings::parse(&roomy), Some(200), "R")
                .iter()
                .all(|f| f.ok)
        );
        let per_source = roomy.replace("persourcemaxstartups none", "persourcemaxstartups 10");
        assert!(!check_globals(&SshdSettings::parse(&per_source), Some(200), "R")[0].ok);
    }
}
