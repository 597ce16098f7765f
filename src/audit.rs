//! The audit record: a value, rendered to one bounded line in which every byte the agent sent
//! is escaped once, so no record can forge, end or hide another.
//!
//! Both formats put what happens first (`event`, `decision`, `key`, `rule`, `exec`), so a
//! receiver that cuts a line still keeps them, and the whole line is held to `MAX_RECORD`
//! bytes: where values must give way, the longest are cut first, each marked where it was
//! cut, and the `cut` field names each one with the SHA-256 of its whole value.

use crate::digest::sha256_hex;

use crate::escape::{CUT, escape_within};
use crate::policy::AuditFormat;
use crate::verdict::{Decision, Outcome};

/// The longest rendered record, well inside rsyslog's default 8 KiB message (the syslog
/// header adds about 60 bytes).
pub const MAX_RECORD: usize = 4000;

/// The fields every format puts first, in this order.
const FIRST: [&str; 5] = ["event", "decision", "key", "rule", "exec"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Notice,
}

/// Who is asking, as the edge read it.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub time: String,
    pub host: String,
    pub key: String,
    pub fingerprint: Option<String>,
    pub client: Option<String>,
    pub pid: u32,
    pub rules_digest: String,
    /// The session: one SSH command, or one MCP session (then `call` numbers its calls).
    pub session: Option<String>,
    pub call: Option<u64>,
}

/// One field's value, typed: JSON writes it as its type, `kv` as a quoted string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(String),
    Number(u64),
    List(Vec<String>),
    /// Not known or not given: `-` in `kv`, `null` in JSON.
    Absent,
}

impl From<String> for Value {
    fn from(text: String) -> Self {
        Value::Text(text)
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::Text(text.to_string())
    }
}

impl From<Option<String>> for Value {
    fn from(text: Option<String>) -> Self {
        text.map_or(Value::Absent, Value::Text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub severity: Severity,
    fields: Vec<(&'static str, Value)>,
}

fn json_list(words: &[String]) -> String {
    serde_json::to_string(words).unwrap_or_else(|_| "[]".to_string())
}

fn texts<'a>(
    pairs: &'a [(&'static str, String)],
) -> impl Iterator<Item = (&'static str, Value)> + 'a {
    pairs.iter().map(|(n, v)| (*n, Value::Text(v.clone())))
}

impl AuditRecord {
    fn base(event: &'static str, origin: &Origin, raw: &str) -> Vec<(&'static str, Value)> {
        vec![
            ("event", event.into()),
            ("key", origin.key.as_str().into()),
            ("time", origin.time.as_str().into()),
            ("host", origin.host.as_str().into()),
            ("pid", Value::Number(u64::from(origin.pid))),
            ("session", origin.session.clone().into()),
            ("call", origin.call.map_or(Value::Absent, Value::Number)),
            ("fingerprint", origin.fingerprint.clone().into()),
            ("client", origin.client.clone().into()),
            ("cmd", raw.into()),
            ("cmd_sha256", sha256_hex(raw.as_bytes()).into()),
            (
                "cmd_bytes",
                Value::Number(u64::try_from(raw.len()).unwrap_or(u64::MAX)),
            ),
        ]
    }

    /// The record written before anything runs: what the command will do (the decision, the
    /// rule, the exact argv, the details the checker named), then what the agent wrote.
    pub fn decision(origin: &Origin, raw: &str, decision: &Decision) -> Self {
        let mut fields = vec![
            ("decision", decision.decision_word().into()),
            ("rule", decision.rule.as_str().into()),
        ];
        if let Some(plan) = decision.plan() {
            fields.push(("exec", Value::List(plan.argv().to_vec())));
        }
        fields.extend(texts(&decision.details));
        fields.push(("reason", decision.reason.as_str().into()));
        fields.extend(Self::base("decision", origin, raw));
        fields.push(("argv", Value::List(decision.argv.clone())));
        fields.push(("rules", origin.rules_digest.as_str().into()));
        let severity = match decision.outcome {
            Outcome::Allow(_) | Outcome::Help | Outcome::Mcp => Severity::Info,
            Outcome::Ask(_) | Outcome::Refuse(_) => Severity::Notice,
        };
        Self { severity, fields }
    }

    /// The record written when the command has finished.
    pub fn finish(origin: &Origin, raw: &str, rule: &str, status: &str, duration_ms: u128) -> Self {
        let mut fields = Self::base("finish", origin, raw);
        fields.push(("rule", rule.into()));
        fields.push(("status", status.into()));
        fields.push((
            "duration_ms",
            Value::Number(u64::try_from(duration_ms).unwrap_or(u64::MAX)),
        ));
        fields.push(("rules", origin.rules_digest.as_str().into()));
        Self {
            severity: Severity::Info,
            fields,
        }
    }

    /// A deploy request's life: `requested`, `approved`, `denied`, `expired`, `executed`,
    /// `finished` (and `notify-failed`), each with the request id and its digest. `origin`
    /// is the process writing the record; who asked is the request's own.
    pub fn approval(
        event: &'static str,
        origin: &Origin,
        request: &crate::deploy::request::DeployRequest,
        extra: &[(&'static str, String)],
    ) -> Self {
        let mut fields: Vec<(&'static str, Value)> = vec![
            ("event", event.into()),
            ("key", request.key.as_str().into()),
            ("exec", Value::List(request.argv.clone())),
            ("time", origin.time.as_str().into()),
            ("host", origin.host.as_str().into()),
            ("pid", Value::Number(u64::from(origin.pid))),
            ("session", origin.session.clone().into()),
            ("fingerprint", request.fingerprint.clone().into()),
            ("client", request.client.clone().into()),
            ("request", request.id.as_str().into()),
            ("state", request.state.word().into()),
            ("digest", request.digest.as_str().into()),
            ("flake", request.binding.flake.as_str().into()),
            ("flake_lock", request.binding.flake_lock.as_str().into()),
            ("git_rev", request.binding.git_rev.clone().into()),
            ("tree", request.binding.tree.as_str().into()),
            ("expires", rfc3339(request.expires_at, 0).into()),
        ];
        fields.extend(texts(extra));
        fields.push(("rules", origin.rules_digest.as_str().into()));
        let severity = match event {
            "executed" | "finished" => Severity::Info,
            _ => Severity::Notice,
        };
        Self { severity, fields }
    }

    /// An MCP session's start or end (`session-start`, `session-end` with how it ended).
    pub fn session(event: &'static str, origin: &Origin, detail: &str) -> Self {
        let mut fields = Self::base(event, origin, "mcp");
        fields.push(("status", detail.into()));
        fields.push(("rules", origin.rules_digest.as_str().into()));
        Self {
            severity: Severity::Info,
            fields,
        }
    }

    /// A refusal decided before any rule was consulted (`rule` says by what).
    pub fn refused(origin: &Origin, raw: &str, rule: &str, reason: &str) -> Self {
        let mut fields = vec![
            ("decision", "refuse".into()),
            ("rule", rule.into()),
            ("reason", reason.into()),
        ];
        fields.extend(Self::base("decision", origin, raw));
        fields.push(("rules", origin.rules_digest.as_str().into()));
        Self {
            severity: Severity::Notice,
            fields,
        }
    }

    /// The rules could not be loaded: everything is refused.
    pub fn config_error(origin: &Origin, raw: &str, error: &str) -> Self {
        let mut fields = Self::base("config-error", origin, raw);
        fields.push(("decision", "refuse".into()));
        fields.push(("reason", error.into()));
        Self {
            severity: Severity::Notice,
            fields,
        }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The fields in rendering order: `FIRST`, then the rest as they were added.
    fn ordered(&self) -> Vec<&(&'static str, Value)> {
        let mut out: Vec<_> = FIRST
            .iter()
            .filter_map(|name| self.fields.iter().find(|(n, _)| n == name))
            .collect();
        out.extend(self.fields.iter().filter(|(n, _)| !FIRST.contains(n)));
        out
    }

    /// One line of at most `MAX_RECORD` bytes: `key="value" ...` or a JSON object.
    pub fn render(&self, format: AuditFormat) -> String {
        let fields = self.ordered();
        let whole: Vec<String> = fields
            .iter()
            .map(|(_, v)| encode(format, v, usize::MAX))
            .collect();
        let overhead = |name: &str| name.len() + 4;
        let names: usize = fields.iter().map(|(n, _)| overhead(n)).sum();
        let total: usize = names + whole.iter().map(String::len).sum::<usize>();
        if total <= MAX_RECORD {
            let pairs = fields.iter().map(|(n, _)| *n).zip(whole);
            return assemble(format, pairs);
        }
        // Cut the longest values to one cap, leaving room for the `cut` field that names them
        // (about 90 bytes each: the name and a SHA-256).
        let lens: Vec<usize> = whole.iter().map(String::len).collect();
        let mut cuts = 1;
        let mut limit = 0;
        for _ in 0..4 {
            let budget = MAX_RECORD.saturating_sub(names + overhead("cut") + 2 + 90 * cuts);
            limit = cap(&lens, budget).max(CUT.len() + 24);
            let now = lens.iter().filter(|l| **l > limit).count();
            if now <= cuts {
                break;
            }
            cuts = now;
        }
        let mut cut = Vec::new();
        let mut pairs = Vec::with_capacity(fields.len() + 1);
        for ((name, value), full) in fields.iter().zip(whole) {
            if full.len() <= limit {
                pairs.push((*name, full));
                continue;
            }
            let raw = match value {
                Value::Text(t) => t.clone(),
                Value::List(items) => json_list(items),
                Value::Number(_) | Value::Absent => {
                    pairs.push((*name, full));
                    continue;
                }
            };
            cut.push(format!("{name}:{}", sha256_hex(raw.as_bytes())));
            pairs.push((*name, encode(format, value, limit)));
        }
        pairs.push(("cut", encode(format, &Value::List(cut), usize::MAX)));
        assemble(format, pairs.into_iter())
    }
}

/// The largest cap such that the values, each held to it, fit `budget` together.
fn cap(lens: &[usize], budget: usize) -> usize {
    let mut sorted = lens.to_vec();
    sorted.sort_unstable();
    let mut used = 0;
    for (i, len) in sorted.iter().enumerate() {
        let rest = sorted.len() - i;
        if used + len * rest > budget {
            return budget.saturating_sub(used) / rest;
        }
        used += len;
    }
    usize::MAX
}

fn assemble(format: AuditFormat, pairs: impl Iterator<Item = (&'static str, String)>) -> String {
    let parts: Vec<String> = match format {
        AuditFormat::Kv => pairs.map(|(n, v)| format!("{n}={v}")).collect(),
        AuditFormat::Json => pairs.map(|(n, v)| format!("\"{n}\":{v}")).collect(),
    };
    match format {
        AuditFormat::Kv => parts.join(" "),
        AuditFormat::Json => format!("{{{}}}", parts.join(",")),
    }
}

/// One value as the format writes it, in at most `max` bytes (cut between two escapes and
/// marked; a list that must be cut is written as its cut JSON text).
fn encode(format: AuditFormat, value: &Value, max: usize) -> String {
    let room = max.saturating_sub(2);
    match (format, value) {
        (AuditFormat::Kv, Value::Text(t)) => format!("\"{}\"", escape_within(t, kept(room))),
        (AuditFormat::Kv, Value::Number(n)) => format!("\"{n}\""),
        (AuditFormat::Kv, Value::Absent) => "\"-\"".to_string(),
        (AuditFormat::Kv, Value::List(items)) => {
            let text = json_list(items);
            format!("\"{}\"", escape_within(&text, kept(room)))
        }
        (AuditFormat::Json, Value::Text(t)) => format!("\"{}\"", json_within(t, room)),
        (AuditFormat::Json, Value::Number(n)) => n.to_string(),
        (AuditFormat::Json, Value::Absent) => "null".to_string(),
        (AuditFormat::Json, Value::List(items)) => {
            // Still a list when cut: the items that fit, the first that does not cut short.
            let mut out = String::from("[");
            for item in items {
                let sep = usize::from(out.len() > 1);
                let whole = json_within(item, usize::MAX);
                let left = max.saturating_sub(out.len() + sep + 3);
                if sep == 1 {
                    out.push(',');
                }
                out.push('"');
                if whole.len() <= left {
                    out.push_str(&whole);
                    out.push('"');
                } else {
                    out.push_str(&json_within(item, left));
                    out.push('"');
                    break;
                }
            }
            out.push(']');
            out
        }
    }
}

/// The escaped bytes to keep so that, with the cut mark, they fit `room` (unbounded stays so).
fn kept(room: usize) -> usize {
    if room >= usize::MAX - 2 {
        usize::MAX
    } else {
        room.saturating_sub(CUT.len())
    }
}

/// A JSON string's inside, ASCII only: printable ASCII but `"` and `\` as itself, the rest
/// as `\uXXXX` (pairs beyond the BMP), so the line holds no byte that could end a record or
/// move a terminal, and decodes to exactly what the agent sent. At most `max` bytes, cut
/// between two escapes and marked.
fn json_within(text: &str, max: usize) -> String {
    use std::fmt::Write;
    let budget = if max == usize::MAX {
        usize::MAX
    } else {
        max.saturating_sub(CUT.len())
    };
    crate::escape::within(text, budget, |out, ch| match ch {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        ' '..='~' => out.push(ch),
        _ => {
            let mut units = [0u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        }
    })
}

/// RFC 3339 UTC time from seconds and milliseconds since the epoch (no clock read here).
pub fn rfc3339(secs: u64, millis: u32) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(1_795_996_800, 999), "2026-11-30T00:00:00.999Z");
    }

    #[test]
    fn a_hostile_command_cannot_forge_a_field_or_a_line() {
        let origin = Origin {
            key: "hermes".into(),
            ..Origin::default()
        };
        let raw = "docker ps\" decision=\"allow\nevent=\"decision\u{1b}[2K\u{202e}\u{1f600}";
        let line = AuditRecord::finish(&origin, raw, "-", "0", 1).render(AuditFormat::Kv);
        assert!(!line.contains('\n') && !line.contains('\u{1b}') && !line.contains('\u{202e}'));
        assert!(
            line.contains(
                r#"cmd="docker ps\" decision=\"allow\x0aevent=\"decision\x1b[2K\xe2\x80\xae\xf0\x9f\x98\x80""#
            ),
            "{line}"
        );
        assert_eq!(line.matches(" decision=\"").count(), 0);
        let json = AuditRecord::finish(&origin, raw, "-", "0", 1).render(AuditFormat::Json);
        assert!(json.bytes().all(|b| (0x20..0x7f).contains(&b)), "{json}");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["event"], "finish");
        // Escaped once: the JSON decodes to exactly what the agent sent.
        assert_eq!(v["cmd"], raw);
        assert!(json.contains(r"\u001b[2K\u202e\ud83d\ude00"), "{json}");
    }

    #[test]
    fn json_values_have_their_types() {
        let origin = Origin {
            key: "hermes".into(),
            pid: 42,
            session: Some("ab12".into()),
            call: Some(3),
            ..Origin::default()
        };
        let json = AuditRecord::finish(&origin, "docker ps", "docker ps", "exited 0", 17)
            .render(AuditFormat::Json);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["pid"], 42);
        assert_eq!(v["call"], 3);
        assert_eq!(v["session"], "ab12");
        assert_eq!(v["duration_ms"], 17);
        assert_eq!(v["cmd_bytes"], 9);
        assert!(
            v["fingerprint"].is_null() && v["client"].is_null(),
            "{json}"
        );
        let kv = AuditRecord::finish(&origin, "docker ps", "-", "0", 1).render(AuditFormat::Kv);
        assert!(
            kv.contains(r#"pid="42""#) && kv.contains(r#"call="3""#),
            "{kv}"
        );
        assert!(kv.contains(r#"fingerprint="-""#), "{kv}");
    }

    fn refused_and_allowed(raw: &str) -> [Decision; 2] {
        let policy = crate::rules::parse(
            "version: 1\nkeys: {hermes: {may: [docker]}}\ndocker:\n  program: /usr/bin/docker\n  config: /etc/agent-gate/docker-config\n  subcommands:\n    run: [rm, label, volume, env]\n",
        )
        .unwrap();
        let decide = |raw: &str| {
            crate::decide::decide(
                &policy,
                &crate::decide::Request {
                    raw,
                    key: Some("hermes"),
                    by_key: false,
                    client: None,
                    fingerprint: None,
                },
            )
        };
        [decide(&format!("{raw} --privileged")), decide(raw)]
    }

    #[test]
    fn a_long_record_is_bounded_whole_with_the_hashes_of_what_was_cut() {
        let pad = "é".repeat(600);
        let raw =
            format!("docker run --rm -e 'A={pad}' --label 'b={pad}' -v data:/d busybox:1 true");
        for decision in refused_and_allowed(&raw) {
            for format in [AuditFormat::Kv, AuditFormat::Json] {
                let line =
                    AuditRecord::decision(&Origin::default(), &raw, &decision).render(format);
                assert!(line.len() <= MAX_RECORD, "{format:?}: {}", line.len());
                assert!(line.contains(CUT), "{line}");
                assert!(line.contains(&format!("cmd:{}", sha256_hex(raw.as_bytes()))));
                if format == AuditFormat::Json {
                    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                    assert_eq!(v["rule"], "docker run", "{line}");
                    assert_eq!(v["decision"], decision.decision_word());
                    assert!(v["cut"].as_array().is_some_and(|c| c.len() >= 2), "{line}");
                    assert!(v["cmd"].as_str().unwrap().ends_with(CUT));
                    assert!(v["argv"].as_array().is_some(), "{line}");
                }
            }
        }
        // A short record is not touched.
        let [_, allowed] = refused_and_allowed("docker run --rm busybox:1 true");
        let line = AuditRecord::decision(&Origin::default(), "x", &allowed).render(AuditFormat::Kv);
        assert!(!line.contains("cut=") && !line.contains(CUT), "{line}");
    }

    #[test]
    fn the_escape_cut_keeps_an_escape_whole() {
        // The cut falls between two escapes, whatever their widths: `\\\x01` is 6 bytes, so
        // 2048 (= 6 * 341 + 2) falls just after a `\\`, which must be kept whole.
        for text in ["\u{1}".repeat(3000), "\\\u{1}".repeat(1000)] {
            let cut = crate::escape::escape_within(&text, 2048);
            let kept = cut.strip_suffix(crate::escape::CUT).unwrap();
            assert!(kept.len() <= 2048);
            assert!(
                crate::escape::escape(&text).starts_with(kept),
                "{}",
                &kept[kept.len() - 30..]
            );
            assert!(kept.ends_with("\\x01") || kept.ends_with("\\\\"), "{kept}");
        }
        let json = json_within(&"\u{1}".repeat(100), 40);
        assert!(json.len() <= 40 && json.ends_with(CUT), "{json}");
        assert!(
            json.strip_suffix(CUT).unwrap().ends_with("\\u0001"),
            "{json}"
        );
    }

    #[test]
    fn what_runs_comes_before_what_the_agent_padded() {
        let policy = crate::rules::parse(
            "version: 1\nkeys: {hermes: {may: [docker]}}\ndocker:\n  program: /usr/bin/docker\n  config: /etc/agent-gate/docker-config\n  subcommands:\n    run: [rm, label, volume]\n",
        )
        .unwrap();
        let pad = "x".repeat(1000);
        let raw = format!(
            "docker run --rm --label a={pad} --label b={pad} --label c={pad} -v data:/d evil/image:1 true"
        );
        let decision = crate::decide::decide(
            &policy,
            &crate::decide::Request {
                raw: &raw,
                key: Some("hermes"),
                by_key: false,
                client: None,
                fingerprint: None,
            },
        );
        assert_eq!(decision.decision_word(), "allow", "{}", decision.reason);
        let line =
            AuditRecord::decision(&Origin::default(), &raw, &decision).render(AuditFormat::Kv);
        assert!(
            line.starts_with(
                r#"event="decision" decision="allow" key="" rule="docker run" exec="["#
            ),
            "{line}"
        );
        let json =
            AuditRecord::decision(&Origin::default(), &raw, &decision).render(AuditFormat::Json);
        assert!(
            json.starts_with(
                r#"{"event":"decision","decision":"allow","key":"","rule":"docker run","exec":["#
            ),
            "{json}"
        );
        // What the checker named comes before what the agent wrote.
        let cmd = line.find(" cmd=").unwrap();
        for field in ["image=\"evil/image:1\"", "mounts=\"-v data:/d\""] {
            let at = line.find(field).unwrap_or(usize::MAX);
            assert!(at < cmd, "{field} at {at}, cmd at {cmd}: {line}");
        }
    }
}
