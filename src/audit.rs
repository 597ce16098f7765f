//! The audit record: a value, rendered to one bounded line in which every byte the agent sent
//! is escaped, so no record can forge, end or hide another.

use crate::digest::sha256_hex;

use crate::escape::escape_within;
use crate::policy::AuditFormat;
use crate::verdict::{Decision, Outcome};

/// Longest escaped value kept for one field; the raw command's SHA-256 is always logged too.
pub const MAX_FIELD: usize = 2048;

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
    /// The MCP session and the call in it, when the command came through one.
    pub session: Option<String>,
    pub call: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub severity: Severity,
    fields: Vec<(&'static str, String)>,
}

fn json_list(words: &[String]) -> String {
    serde_json::to_string(words).unwrap_or_else(|_| "[]".to_string())
}

impl AuditRecord {
    fn base(event: &'static str, origin: &Origin, raw: &str) -> Vec<(&'static str, String)> {
        vec![
            ("event", event.to_string()),
            ("time", origin.time.clone()),
            ("host", origin.host.clone()),
            ("pid", origin.pid.to_string()),
            ("key", origin.key.clone()),
            (
                "fingerprint",
                origin
                    .fingerprint
                    .clone()
                    .unwrap_or_else(|| "-".to_string()),
            ),
            (
                "client",
                origin.client.clone().unwrap_or_else(|| "-".to_string()),
            ),
            (
                "session",
                origin.session.clone().unwrap_or_else(|| "-".to_string()),
            ),
            (
                "call",
                origin
                    .call
                    .map_or_else(|| "-".to_string(), |c| c.to_string()),
            ),
            ("cmd", raw.to_string()),
            ("cmd_sha256", sha256_hex(raw.as_bytes())),
            ("cmd_bytes", raw.len().to_string()),
        ]
    }

    /// The record written before anything runs. What the command will do comes first (the
    /// decision, the rule, the details the checker named, the exact argv), then what the
    /// agent wrote: a long command cannot push what runs past a receiver's cut.
    pub fn decision(origin: &Origin, raw: &str, decision: &Decision) -> Self {
        let mut fields = vec![
            ("event", "decision".to_string()),
            ("decision", decision.decision_word().to_string()),
            ("key", origin.key.clone()),
            ("rule", decision.rule.clone()),
        ];
        fields.extend(decision.details.iter().cloned());
        if let Some(plan) = decision.plan() {
            fields.push(("exec", json_list(plan.argv())));
        }
        fields.push(("reason", decision.reason.clone()));
        let base = Self::base("decision", origin, raw);
        fields.extend(
            base.into_iter()
                .filter(|(name, _)| !matches!(*name, "event" | "key")),
        );
        fields.push(("argv", json_list(&decision.argv)));
        fields.push(("rules", origin.rules_digest.clone()));
        let severity = match decision.outcome {
            Outcome::Allow(_) | Outcome::Help | Outcome::Mcp => Severity::Info,
            Outcome::Ask(_) | Outcome::Refuse(_) => Severity::Notice,
        };
        Self { severity, fields }
    }

    /// The record written when the command has finished.
    pub fn finish(origin: &Origin, raw: &str, rule: &str, status: &str, duration_ms: u128) -> Self {
        let mut fields = Self::base("finish", origin, raw);
        fields.push(("rule", rule.to_string()));
        fields.push(("status", status.to_string()));
        fields.push(("duration_ms", duration_ms.to_string()));
        fields.push(("rules", origin.rules_digest.clone()));
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
        let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_string());
        let mut fields = vec![
            ("event", event.to_string()),
            ("time", origin.time.clone()),
            ("host", origin.host.clone()),
            ("pid", origin.pid.to_string()),
            ("key", request.key.clone()),
            ("fingerprint", or_dash(&request.fingerprint)),
            ("client", or_dash(&request.client)),
            ("request", request.id.clone()),
            ("state", request.state.word().to_string()),
            ("digest", request.digest.clone()),
            ("exec", json_list(&request.argv)),
            ("flake", request.binding.flake.clone()),
            ("flake_lock", request.binding.flake_lock.clone()),
            ("git_rev", or_dash(&request.binding.git_rev)),
            ("tree", request.binding.tree.clone()),
            ("expires", rfc3339(request.expires_at, 0)),
        ];
        fields.extend(extra.iter().cloned());
        fields.push(("rules", origin.rules_digest.clone()));
        let severity = match event {
            "executed" | "finished" => Severity::Info,
            _ => Severity::Notice,
        };
        Self { severity, fields }
    }

    /// An MCP session's start or end (`session-start`, `session-end` with how it ended).
    pub fn session(event: &'static str, origin: &Origin, detail: &str) -> Self {
        let mut fields = Self::base(event, origin, "mcp");
        fields.push(("status", detail.to_string()));
        fields.push(("rules", origin.rules_digest.clone()));
        Self {
            severity: Severity::Info,
            fields,
        }
    }

    /// The rules could not be loaded: everything is refused.
    pub fn config_error(origin: &Origin, raw: &str, error: &str) -> Self {
        let mut fields = Self::base("config-error", origin, raw);
        fields.push(("decision", "refuse".to_string()));
        fields.push(("reason", error.to_string()));
        Self {
            severity: Severity::Notice,
            fields,
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// One line: `key="value" ...` or a JSON object. Each value is escaped, and cut between
    /// two escapes at `MAX_FIELD` bytes.
    pub fn render(&self, format: AuditFormat) -> String {
        let values = self
            .fields
            .iter()
            .map(|(name, value)| (*name, escape_within(value, MAX_FIELD)));
        match format {
            AuditFormat::Kv => values
                .map(|(n, v)| format!("{n}=\"{v}\""))
                .collect::<Vec<_>>()
                .join(" "),
            AuditFormat::Json => {
                let map: serde_json::Map<String, serde_json::Value> = values
                    .map(|(n, v)| (n.to_string(), serde_json::Value::String(v)))
                    .collect();
                serde_json::Value::Object(map).to_string()
            }
        }
    }
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
        let raw = "docker ps\" decision=\"allow\nevent=\"decision\u{1b}[2K\u{202e}";
        let line = AuditRecord::finish(&origin, raw, "-", "0", 1).render(AuditFormat::Kv);
        assert!(!line.contains('\n') && !line.contains('\u{1b}') && !line.contains('\u{202e}'));
        assert!(
            line.contains(
                r#"cmd="docker ps\" decision=\"allow\x0aevent=\"decision\x1b[2K\xe2\x80\xae""#
            ),
            "{line}"
        );
        assert_eq!(line.matches(" decision=\"").count(), 0);
        let json = AuditRecord::finish(&origin, raw, "-", "0", 1).render(AuditFormat::Json);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["event"], "finish");
    }

    #[test]
    fn long_values_are_cut_but_the_digest_stays() {
        let raw = "a".repeat(10_000);
        let rec = AuditRecord::finish(&Origin::default(), &raw, "-", "0", 1);
        let line = rec.render(AuditFormat::Kv);
        assert!(line.len() < 4 * MAX_FIELD, "{}", line.len());
        assert!(line.contains("[truncated]"));
        assert!(line.contains(&sha256_hex(raw.as_bytes())));
        // The cut falls between two escapes, whatever their widths: `\\\x01` is 6 bytes, so
        // MAX_FIELD (2048 = 6 * 341 + 2) falls just after a `\\`, which must be kept whole.
        for text in ["\u{1}".repeat(3000), "\\\u{1}".repeat(1000)] {
            let cut = crate::escape::escape_within(&text, MAX_FIELD);
            let kept = cut.strip_suffix(crate::escape::CUT).unwrap();
            assert!(kept.len() <= MAX_FIELD);
            assert!(
                crate::escape::escape(&text).starts_with(kept),
                "{}",
                &kept[kept.len() - 30..]
            );
            assert!(kept.ends_with("\\x01") || kept.ends_with("\\\\"), "{kept}");
        }
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
        for field in [
            "decision=\"allow\"",
            "rule=\"docker run\"",
            "image=\"evil/image:1\"",
            "mounts=\"-v data:/d\"",
        ] {
            let at = line.find(field).unwrap_or(usize::MAX);
            assert!(at < 200, "{field} at {at}: {}", &line[..300]);
        }
    }
}
