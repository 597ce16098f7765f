//! The host facts the shell reads: the clock, the host name, the process id, who started a
//! root command through sudo, and who is logged in. One place, so the pure core never reads
//! them and every record gets them the same way.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::audit::{Origin, rfc3339};

/// Seconds since the epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    since_epoch().as_secs()
}

/// The time now, as records write it.
pub fn now() -> String {
    let since = since_epoch();
    rfc3339(since.as_secs(), since.subsec_millis())
}

fn since_epoch() -> std::time::Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "-".to_string())
}

/// Who is writing records: this process, now, on this host; the rest is the caller's.
pub fn origin(
    key: &str,
    fingerprint: Option<String>,
    client: Option<std::net::IpAddr>,
    rules_digest: &str,
) -> Origin {
    Origin {
        time: now(),
        host: hostname(),
        key: key.to_string(),
        fingerprint,
        client: client.map(|ip| ip.to_string()),
        pid: std::process::id(),
        rules_digest: rules_digest.to_string(),
        session: None,
        call: None,
    }
}

/// A new session id: 16 hex digits from the kernel's random source (the pid and the time
/// when it cannot be read).
pub fn session_id() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        let mixed = u64::from(std::process::id()) << 32 ^ since_epoch().as_nanos() as u64;
        bytes = mixed.to_be_bytes();
    }
    crate::digest::hex(&bytes)
}

pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// The uid sudo says started this process; root itself has none.
pub fn sudo_uid() -> Option<u32> {
    std::env::var("SUDO_UID").ok().and_then(|u| u.parse().ok())
}

/// Who decides: the sudo user when there is one, else the login user, else the account.
pub fn operator_name() -> String {
    let plain = |name: &str| {
        !name.is_empty()
            && name.len() <= 32
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
    };
    if let Ok(user) = std::env::var("SUDO_USER")
        && plain(&user)
    {
        return user;
    }
    let login = std::fs::read_to_string("/proc/self/loginuid")
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        .filter(|uid| *uid != u32::MAX);
    let uid = login.unwrap_or_else(|| nix::unistd::getuid().as_raw());
    nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map(|u| u.name)
        .filter(|n| plain(n))
        .unwrap_or_else(|| format!("uid {uid}"))
}
