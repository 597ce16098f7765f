//! A deploy request and its approval: one record, one file in the root-owned store. Pure: the
//! clock comes in as `now` (seconds since the epoch), the disk is `sys::store`'s business.
//!
//! A request is bound to a digest of exactly what will run as root: the argv, the environment
//! and the state of the flake (its `flake.lock`, its git revision when it is a repository, and
//! every file under it). An approval counts only for a run whose digest, computed afresh just
//! before the run, is the same. Each record also carries a checksum of all its fields, so a
//! half-written or hand-edited file is refused rather than half trusted.

use serde::{Deserialize, Serialize};

/// The record layout; a file with another is refused.
pub const FORMAT: u32 = 1;

/// Where a request is in its life. `Pending` and `Approved` expire; the others are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Pending,
    Approved,
    Denied,
    Expired,
    /// The approval was consumed and the deploy started.
    Executed,
    /// The deploy ended; `status` says how.
    Finished,
}

impl State {
    pub fn word(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Approved => "approved",
            State::Denied => "denied",
            State::Expired => "expired",
            State::Executed => "executed",
            State::Finished => "finished",
        }
    }

    /// Still waiting for something: a human's decision, or its use.
    pub fn is_open(self) -> bool {
        matches!(self, State::Pending | State::Approved)
    }
}

/// The flake as it was when the digest was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    pub flake: String,
    /// SHA-256 of `flake.lock`.
    pub flake_lock: String,
    /// The commit checked out, when the flake is a git repository.
    pub git_rev: Option<String>,
    /// SHA-256 over every path, type, mode and content under the flake (`.git` aside).
    pub tree: String,
    pub files: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    pub format: u32,
    pub id: String,
    pub state: State,
    pub filed_at: u64,
    /// Pending: until a human decides. Approved: until the approval is used.
    pub expires_at: u64,
    /// Who asked, as the gateway reported it (label, client address, key fingerprint).
    pub key: String,
    pub client: Option<String>,
    pub fingerprint: Option<String>,
    /// The uid that started the approval step (sudo's SUDO_UID).
    pub filed_by_uid: Option<u32>,
    /// `nh` or `nixos-rebuild`.
    pub form: String,
    /// Exactly what runs as root, and its whole environment.
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub binding: Binding,
    /// `sha256:` over argv, env and binding.
    pub digest: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<u64>,
    pub reason: Option<String>,
    pub executed_at: Option<u64>,
    pub status: Option<String>,
    /// `sha256:` over the record with this field empty.
    pub checksum: String,
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", crate::digest::sha256_hex(bytes))
}

/// The digest that binds an approval to what will run.
pub fn digest(argv: &[String], env: &[(String, String)], binding: &Binding) -> String {
    let canonical = serde_json::to_vec(&(argv, env, binding)).unwrap_or_default();
    sha256(&canonical)
}

/// Request ids: eight lowercase hex digits, short enough to type, checked before any use
/// as a file name.
pub fn valid_id(id: &str) -> bool {
    id.len() == 8
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Why a stored record is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Damage {
    #[error("it is not a request record ({0})")]
    Unreadable(String),
    #[error("it has record format {0}, this gateway reads {FORMAT}")]
    Format(u32),
    #[error("its id does not match its file name")]
    Id,
    #[error("its checksum does not match its content: it was altered or half written")]
    Checksum,
    #[error("its digest does not match what it says will run")]
    Digest,
}

impl DeployRequest {
    /// A new pending request, expiring `expire` seconds from `now`.
    #[allow(clippy::too_many_arguments)]
    pub fn file(
        id: String,
        now: u64,
        expire: u64,
        asker: &super::Asker,
        filed_by_uid: Option<u32>,
        form: &str,
        plan: &crate::plan::ExecPlan,
        binding: Binding,
    ) -> Self {
        let argv = plan.argv().to_vec();
        let env = plan.env().to_vec();
        let digest = digest(&argv, &env, &binding);
        let mut request = Self {
            format: FORMAT,
            id,
            state: State::Pending,
            filed_at: now,
            expires_at: now.saturating_add(expire),
            key: asker.key.clone(),
            client: asker.client.map(|c| c.to_string()),
            fingerprint: asker.fingerprint.clone(),
            filed_by_uid,
            form: form.to_string(),
            argv,
            env,
            binding,
            digest,
            decided_by: None,
            decided_at: None,
            reason: None,
            executed_at: None,
            status: None,
            checksum: String::new(),
        };
        request.seal();
        request
    }

    fn computed_checksum(&self) -> String {
        let mut unsealed = self.clone();
        unsealed.checksum.clear();
        sha256(&serde_json::to_vec(&unsealed).unwrap_or_default())
    }

    /// Set the checksum after a change; every transition below ends with it.
    fn seal(&mut self) {
        self.checksum = self.computed_checksum();
    }

    /// The record as stored: pretty JSON, one field a line, so an operator can read it.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Read a stored record and refuse it unless it is whole and consistent.
    pub fn from_json(text: &str, id: &str) -> Result<Self, Damage> {
        let request: DeployRequest =
            serde_json::from_str(text).map_err(|e| Damage::Unreadable(e.to_string()))?;
        if request.format != FORMAT {
            return Err(Damage::Format(request.format));
        }
        if request.id != id {
            return Err(Damage::Id);
        }
        if request.checksum != request.computed_checksum() {
            return Err(Damage::Checksum);
        }
        if request.digest != digest(&request.argv, &request.env, &request.binding) {
            return Err(Damage::Digest);
        }
        Ok(request)
    }

    /// Has an open request run out of time?
    pub fn is_expired(&self, now: u64) -> bool {
        self.state.is_open() && now >= self.expires_at
    }

    pub fn expire(&mut self) {
        self.state = State::Expired;
        self.seal();
    }

    /// A human approved it: usable once, for `expire` seconds from now.
    pub fn approve(&mut self, by: &str, now: u64, expire: u64) {
        self.state = State::Approved;
        self.decided_by = Some(by.to_string());
        self.decided_at = Some(now);
        self.expires_at = now.saturating_add(expire);
        self.seal();
    }

    pub fn deny(&mut self, by: &str, now: u64, reason: &str) {
        self.state = State::Denied;
        self.decided_by = Some(by.to_string());
        self.decided_at = Some(now);
        self.reason = Some(reason.to_string());
        self.seal();
    }

    /// The approval is used up: the deploy starts.
    pub fn consume(&mut self, now: u64) {
        self.state = State::Executed;
        self.executed_at = Some(now);
        self.seal();
    }

    pub fn finish(&mut self, status: &str) {
        self.state = State::Finished;
        self.status = Some(status.to_string());
        self.seal();
    }

    /// Would this approved request run exactly `digest` for this key now?
    pub fn runs(&self, digest: &str, key: &str, now: u64) -> bool {
        self.state == State::Approved
            && !self.is_expired(now)
            && self.digest == digest
            && self.key == key
    }

    /// The request's fields for a notify program: JSON on its stdin, with the operator's
    /// commands as they work on this host (`rules`: the rules path the step read).
    pub fn notice(&self, host: &str, rules: &std::path::Path) -> serde_json::Value {
        serde_json::json!({
            "event": "requested",
            "host": host,
            "id": self.id,
            "key": self.key,
            "client": self.client,
            "fingerprint": self.fingerprint,
            "argv": self.argv,
            "flake": self.binding.flake,
            "flake_lock": self.binding.flake_lock,
            "git_rev": self.binding.git_rev,
            "tree": self.binding.tree,
            "digest": self.digest,
            "filed_at": self.filed_at,
            "expires_at": self.expires_at,
            "approve": super::operator_command(rules, &["approve", &self.id], ""),
            "deny": super::operator_command(rules, &["deny", &self.id], "--reason TEXT"),
        })
    }
}

/// A word on a command line shown to a person: bare when it is plain, otherwise in single
/// quotes, so a space inside a word cannot pass for two words. Escaping of what is not
/// printable ASCII happens where the line is printed.
pub fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:@,%".contains(&b));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

pub fn command_line(argv: &[String]) -> String {
    argv.iter()
        .map(|w| shell_word(w))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::Asker;

    fn binding() -> Binding {
        Binding {
            flake: "/etc/nixos".into(),
            flake_lock: "sha256:aa".into(),
            git_rev: Some("0123456789abcdef0123456789abcdef01234567".into()),
            tree: "sha256:bb".into(),
            files: 3,
        }
    }

    fn request() -> DeployRequest {
        let policy = crate::rules::parse(
            "version: 1\nsudo: /usr/bin/sudo\nkeys: {hermes: {may: [deploy]}}\ndeploy: {flake: /etc/nixos, nh: /bin/nh}\n",
        )
        .unwrap();
        let plan = crate::deploy::root_plan(&policy, crate::deploy::Form::Nh).unwrap();
        let asker = Asker {
            key: "hermes".into(),
            client: "10.0.0.2".parse().ok(),
            fingerprint: None,
        };
        DeployRequest::file(
            "0a1b2c3d".into(),
            1000,
            1800,
            &asker,
            Some(1001),
            "nh",
            &plan,
            binding(),
        )
    }

    #[test]
    fn a_record_survives_the_round_trip_and_nothing_else_does() {
        let r = request();
        assert_eq!(
            DeployRequest::from_json(&r.to_json(), "0a1b2c3d"),
            Ok(r.clone())
        );
        assert_eq!(
            DeployRequest::from_json(&r.to_json(), "ffffffff"),
            Err(Damage::Id)
        );
        let text = r.to_json();
        let half = &text[..text.len() / 2];
        assert!(matches!(
            DeployRequest::from_json(half, "0a1b2c3d"),
            Err(Damage::Unreadable(_))
        ));
        let approved = text.replace("\"pending\"", "\"approved\"");
        assert_eq!(
            DeployRequest::from_json(&approved, "0a1b2c3d"),
            Err(Damage::Checksum)
        );
        let extra = text.replacen('{', "{\"note\": 1,", 1);
        assert!(matches!(
            DeployRequest::from_json(&extra, "0a1b2c3d"),
            Err(Damage::Unreadable(_))
        ));
    }

    #[test]
    fn an_argv_changed_with_its_checksum_still_fails_the_digest() {
        let mut r = request();
        r.argv.push("--impure".into());
        r.seal();
        assert_eq!(
            DeployRequest::from_json(&r.to_json(), "0a1b2c3d"),
            Err(Damage::Digest)
        );
    }

    #[test]
    fn the_digest_covers_argv_env_and_every_part_of_the_flake() {
        let r = request();
        let base = digest(&r.argv, &r.env, &r.binding);
        assert_eq!(base, r.digest);
        let mut argv = r.argv.clone();
        argv.push("x".into());
        assert_ne!(digest(&argv, &r.env, &r.binding), base);
        let env = vec![("PATH".to_string(), "/tmp".to_string())];
        assert_ne!(digest(&r.argv, &env, &r.binding), base);
        let changes: [fn(&mut Binding); 4] = [
            |b| b.flake_lock.push('0'),
            |b| b.git_rev = None,
            |b| b.tree.push('0'),
            |b| b.flake = "/etc/nixos2".into(),
        ];
        for change in changes {
            let mut b = binding();
            change(&mut b);
            assert_ne!(digest(&r.argv, &r.env, &b), base);
        }
    }

    #[test]
    fn lifecycle_one_time_and_expiring() {
        let mut r = request();
        assert!(
            !r.runs(&r.digest.clone(), "hermes", 1001),
            "pending does not run"
        );
        assert!(!r.is_expired(2799) && r.is_expired(2800));
        r.approve("alice", 2000, 1800);
        assert_eq!(r.expires_at, 3800);
        let d = r.digest.clone();
        assert!(r.runs(&d, "hermes", 3799));
        assert!(!r.runs(&d, "hermes", 3800), "expired approval");
        assert!(!r.runs(&d, "other", 2001), "another key");
        assert!(!r.runs("sha256:00", "hermes", 2001), "another digest");
        r.consume(2100);
        assert!(!r.runs(&d, "hermes", 2101), "used once");
        assert!(!r.is_expired(9999), "final states do not expire");
        r.finish("exited 0");
        assert_eq!(DeployRequest::from_json(&r.to_json(), "0a1b2c3d"), Ok(r));
    }

    #[test]
    fn ids_and_words() {
        assert!(valid_id("0a1b2c3d"));
        for bad in [
            "0A1B2C3D",
            "../../x",
            "0a1b2c3",
            "0a1b2c3d0",
            "",
            "0a1b2c3g",
        ] {
            assert!(!valid_id(bad), "{bad}");
        }
        assert_eq!(
            command_line(&["/bin/nh".into(), "os".into(), "a b".into(), "it's".into()]),
            r"/bin/nh os 'a b' 'it'\''s'"
        );
    }
}
