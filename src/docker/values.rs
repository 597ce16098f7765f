//! Checks for docker option values and operands. Each returns why a value is refused.
//!
//! Security-relevant values (mounts, ports, networks, paths) must be plain ASCII: docker
//! lower-cases some of them with Go's Unicode rules (`type=BİND` becomes `bind`), so a
//! non-ASCII spelling is refused rather than compared.

pub type Verdict = Result<(), String>;

fn refuse<T>(why: impl Into<String>) -> Result<T, String> {
    Err(why.into())
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// Container, volume and network names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 128 characters.
pub fn name(value: &str) -> Verdict {
    let mut chars = value.chars();
    match chars.next() {
        Some(first) if first.is_ascii_alphanumeric() => {}
        _ => return refuse("a name starts with a letter or digit"),
    }
    if value.len() > 128 || !chars.all(is_name_char) {
        return refuse("a name has only letters, digits, `_`, `.` and `-` (at most 128)");
    }
    Ok(())
}

/// A name, an ID, or an image reference: what `inspect` and `rm` accept.
pub fn object(value: &str) -> Verdict {
    if name(value).is_ok() || image(value).is_ok() {
        Ok(())
    } else {
        refuse("expected a container, image, volume or network name or ID")
    }
}

fn lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// One path component of a repository: lowercase alphanumerics joined by `.`, `_`, `__` or `-`s.
fn path_component(part: &str) -> bool {
    let bytes = part.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !lower_alnum(char::from(*first)) || !lower_alnum(char::from(*last)) {
        return false;
    }
    if !part
        .chars()
        .all(|c| lower_alnum(c) || matches!(c, '.' | '_' | '-'))
    {
        return false;
    }
    // Separators: a single `.`, one or two `_`, or any run of `-`.
    !part.contains("..")
        && !part.contains("___")
        && !part.contains("._")
        && !part.contains("_.")
        && !part.contains(".-")
        && !part.contains("-.")
        && !part.contains("_-")
        && !part.contains("-_")
}

fn domain(part: &str) -> bool {
    let (host, port) = match part.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (part, None),
    };
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

/// A parsed image reference: `[domain/]path[:tag][@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry domain; `docker.io` when none was given.
    pub domain: String,
    /// Repository path; Docker Hub's official images get `library/`.
    pub path: String,
}

/// Whether the first component of a name is a registry (docker's rule: it has a `.` or a
/// `:`, or is `localhost`), not the first part of a Docker Hub path.
fn names_a_registry(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost"
}

/// Docker Hub's legacy name, which docker's reference parser (distribution/reference,
/// `splitDockerDomain`) rewrites to `docker.io` before anything else reads the name: so
/// `index.docker.io/alpine:3.20` is the local image `alpine:3.20`, and must be judged as it.
/// It is the one alias; any other spelling (`Docker.io`, `registry-1.docker.io`) names a
/// registry of its own and an image of its own.
fn hub_alias(domain: &str) -> &str {
    if domain == "index.docker.io" {
        "docker.io"
    } else {
        domain
    }
}

pub fn parse_image(value: &str) -> Result<ImageRef, String> {
    const WHY: &str = "expected an image reference such as `alpine:3.20` or `ghcr.io/org/app:1.0`";
    if value.is_empty() || value.len() > 255 || !value.is_ascii() {
        return refuse(WHY);
    }
    let (rest, digest) = match value.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (value, None),
    };
    if let Some(digest) = digest {
        let hex = digest.strip_prefix("sha256:").unwrap_or_default();
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return refuse("an image digest is `sha256:` and 64 lowercase hex digits");
        }
    }
    // A tag follows the last `:` that comes after the last `/`.
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest.get(last_slash..).and_then(|tail| tail.rfind(':')) {
        Some(colon) => {
            let at = last_slash + colon;
            (rest.get(..at).unwrap_or_default(), rest.get(at + 1..))
        }
        None => (rest, None),
    };
    if let Some(tag) = tag {
        let mut chars = tag.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if !first_ok
            || tag.len() > 128
            || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return refuse("an image tag has letters, digits, `_`, `.` and `-` (at most 128)");
        }
    }
    let parts: Vec<&str> = name.split('/').collect();
    let (dom, path_parts) = match parts.split_first() {
        Some((first, rest)) if !rest.is_empty() && names_a_registry(first) => {
            if !domain(first) {
                return refuse(WHY);
            }
            (hub_alias(first).to_string(), rest.to_vec())
        }
        _ => ("docker.io".to_string(), parts),
    };
    if path_parts.is_empty() || !path_parts.iter().all(|p| path_component(p)) {
        return refuse(WHY);
    }
    let mut path = path_parts.join("/");
    if dom == "docker.io" && path_parts.len() == 1 {
        path = format!("library/{path}");
    }
    Ok(ImageRef { domain: dom, path })
}

pub fn image(value: &str) -> Verdict {
    parse_image(value).map(|_| ())
}

/// Does an allow-list entry (`library/*`, `ghcr.io/example/*`, `ollama/ollama`) cover `image`?
pub fn image_allowed(entry: &str, image: &ImageRef) -> bool {
    let full = format!("{}/{}", image.domain, image.path);
    let (pattern, wildcard) = match entry.strip_suffix("/*") {
        Some(prefix) => (prefix, true),
        None => (entry, false),
    };
    let (first, rest) = pattern.split_once('/').unwrap_or((pattern, ""));
    let qualified = if names_a_registry(first) {
        format!("{}/{rest}", hub_alias(first))
    } else {
        format!("docker.io/{pattern}")
    };
    if wildcard {
        full.strip_prefix(&qualified)
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
    } else {
        full == qualified
    }
}

fn digits(value: &str) -> bool {
    !value.is_empty() && value.len() <= 12 && value.bytes().all(|b| b.is_ascii_digit())
}

pub fn count(value: &str) -> Verdict {
    if digits(value) {
        Ok(())
    } else {
        refuse("expected a whole number")
    }
}

pub fn positive(value: &str) -> Verdict {
    if digits(value) && value.bytes().any(|b| b != b'0') {
        Ok(())
    } else {
        refuse("expected a whole number of at least 1")
    }
}

pub fn tail(value: &str) -> Verdict {
    if value == "all" || digits(value) {
        Ok(())
    } else {
        refuse("expected a number of lines or `all`")
    }
}

/// `10m`, `1h30m`, `2024-05-01`, `2024-05-01T10:00:00Z`, a Unix timestamp.
pub fn time(value: &str) -> Verdict {
    let ok = !value.is_empty()
        && value.len() <= 40
        && value.starts_with(|c: char| c.is_ascii_digit())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '-' | '+'));
    if ok {
        Ok(())
    } else {
        refuse("expected a duration such as `10m` or a timestamp such as `2024-05-01T10:00:00`")
    }
}

pub fn text(value: &str) -> Verdict {
    if value.len() <= 1024 {
        Ok(())
    } else {
        refuse("at most 1024 characters")
    }
}

pub fn filter(value: &str) -> Verdict {
    match value.split_once('=') {
        Some((key, _))
            if !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) =>
        {
            text(value)
        }
        _ => refuse("a filter is `key=value`"),
    }
}

/// An absolute path with no `.`/`..` components, no empty components and no trailing `/`.
pub fn clean_absolute(value: &str) -> bool {
    value == "/"
        || (value.starts_with('/')
            && value.is_ascii()
            && !value.ends_with('/')
            && value
                .split('/')
                .skip(1)
                .all(|c| !c.is_empty() && c != "." && c != "..")
            && value.chars().all(|c| c.is_ascii_graphic()))
}

/// Is `path` equal to `dir` or below it? Both must be clean absolute paths.
pub fn is_within(path: &str, dir: &str) -> bool {
    path == dir
        || dir == "/"
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Directories of the container that are views of the kernel's state, not of the image.
const HOST_STATE: [&str; 3] = ["/proc", "/sys", "/dev"];

fn container_path(value: &str, what: &str) -> Verdict {
    if !clean_absolute(value) {
        return refuse(format!(
            "{what} must be an absolute path without `.`, `..` or `//`"
        ));
    }
    // -w /proc/self/fd/N: runc CVE-2024-21626 leaks a host directory descriptor. /dev holds
    // the other spellings of the same descriptors (/dev/fd -> /proc/self/fd, /dev/stdin,
    // /dev/stdout, /dev/stderr), and `.`, `..` and `//` are refused above, so `//proc` and
    // `/x/../proc` cannot spell them either.
    if let Some(dir) = HOST_STATE.iter().find(|dir| is_within(value, dir)) {
        return refuse(format!(
            "{what} `{value}` is under {dir}, which aliases the host's process and device state; use a plain directory such as /app or /data"
        ));
    }
    Ok(())
}

pub fn workdir(value: &str) -> Verdict {
    container_path(value, "the working directory")
}

/// `-v`: `/container/path` (anonymous) or `NAME:/container/path[:ro|rw|nocopy]`.
pub fn volume(value: &str) -> Verdict {
    let parts: Vec<&str> = value.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [target] => (None, *target, None),
        [source, target] => (Some(*source), *target, None),
        [source, target, mode] => (Some(*source), *target, Some(*mode)),
        _ => return refuse("a volume is `NAME:/path[:ro]`"),
    };
    if let Some(source) = source
        && name(source).is_err()
    {
        return refuse(format!(
            "`{source}` is a host path; only named volumes are allowed (`-v NAME:/path`)"
        ));
    }
    container_path(target, "the mount point")?;
    if let Some(mode) = mode
        && !mode.split(',').all(|m| matches!(m, "ro" | "rw" | "nocopy"))
    {
        return refuse("volume options are `ro`, `rw` and `nocopy`");
    }
    Ok(())
}

/// `--mount`: only `type=volume` with a named source, or `type=tmpfs`.
pub fn mount(value: &str) -> Verdict {
    if !value.is_ascii() || value.contains('"') || value.contains('\'') {
        return refuse("a mount is plain ASCII `key=value` pairs, without quotes");
    }
    let mut kind = None;
    let mut source = None;
    for field in value.split(',') {
        let (key, val) = field.split_once('=').unwrap_or((field, ""));
        match key.to_ascii_lowercase().as_str() {
            "type" => kind = Some(val.to_ascii_lowercase()),
            "source" | "src" => source = Some(val),
            "target" | "destination" | "dst" => container_path(val, "the mount point")?,
            "readonly" | "ro" | "volume-nocopy" | "tmpfs-size" | "tmpfs-mode" => {}
            other => return refuse(format!("mount option `{other}` is not allowed")),
        }
    }
    match (kind.as_deref(), source) {
        (Some("volume"), Some(src)) => {
            name(src).map_err(|_| format!("`{src}` is a host path; only named volumes are allowed"))
        }
        (Some("volume"), None) | (Some("tmpfs"), None) => Ok(()),
        (Some("tmpfs"), Some(_)) => refuse("a tmpfs mount has no source"),
        _ => refuse(
            "only `type=volume` and `type=tmpfs` mounts are allowed; bind mounts reach the host",
        ),
    }
}

/// `-p [IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]`: only on the allowed addresses.
pub fn publish(value: &str, addresses: &[String]) -> Verdict {
    let (spec, proto) = match value.split_once('/') {
        Some((spec, proto)) => (spec, Some(proto)),
        None => (value, None),
    };
    if proto.is_some_and(|p| !matches!(p, "tcp" | "udp" | "sctp")) {
        return refuse("the protocol is tcp, udp or sctp");
    }
    let (ip, ports): (Option<&str>, Vec<&str>) = if let Some(rest) = spec.strip_prefix('[') {
        match rest.split_once("]:") {
            Some((ip, ports)) => (Some(ip), ports.split(':').collect()),
            None => return refuse("an IPv6 publish is `[ADDR]:HOST_PORT:CONTAINER_PORT`"),
        }
    } else {
        let mut pieces: Vec<&str> = spec.split(':').collect();
        if pieces.len() == 3 {
            let ip = pieces.remove(0);
            (Some(ip), pieces)
        } else {
            (None, pieces)
        }
    };
    let Some(ip) = ip else {
        return refuse(format!(
            "a port without an address is published on every interface, past the firewall; write `-p {}:HOST:CONTAINER`",
            addresses.first().map_or("127.0.0.1", String::as_str)
        ));
    };
    if !addresses.iter().any(|a| a == ip) {
        return refuse(format!(
            "ports may be published only on {}",
            addresses.join(", ")
        ));
    }
    // A range is one root docker-proxy per port, and `1-65535` takes every free port on the
    // address: at most 16 ports. A host port below 1024 is a privileged service's.
    let number = |p: &str| {
        (!p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && !p.starts_with('0'))
        .then(|| p.parse::<u32>().ok())
        .flatten()
        .filter(|n| (1..=65_535).contains(n))
    };
    let range = |p: &str| match p.split_once('-') {
        None => number(p).map(|n| (n, n)),
        Some((a, b)) => number(a).zip(number(b)).filter(|(a, b)| a <= b),
    };
    let Some((host, container)) = (match ports.as_slice() {
        [host, container] => Some((*host, *container)),
        _ => None,
    }) else {
        return refuse("a publish is `ADDR:HOST_PORT:CONTAINER_PORT`");
    };
    let Some((low, high)) = range(container) else {
        return refuse("a container port is a number from 1 to 65535, or a range of them");
    };
    if high - low >= MAX_PUBLISHED {
        return refuse(format!(
            "a published range is at most {MAX_PUBLISHED} ports"
        ));
    }
    if host.is_empty() {
        return Ok(());
    }
    match range(host) {
        None => refuse("a host port is a number from 1 to 65535, or a range of them"),
        Some((a, b)) if b - a >= MAX_PUBLISHED => refuse(format!(
            "a published range is at most {MAX_PUBLISHED} ports"
        )),
        Some((a, _)) if a < 1024 => refuse(
            "a host port below 1024 belongs to a privileged service: publish on 1024 or above",
        ),
        Some(_) => Ok(()),
    }
}

/// The most ports one `-p` may publish.
const MAX_PUBLISHED: u32 = 16;

pub fn network(value: &str, networks: &[String]) -> Verdict {
    if networks.iter().any(|n| n == value) {
        Ok(())
    } else {
        refuse(format!(
            "network `{value}` is not allowed (never `host` or `container:...`); allowed: {}",
            networks.join(", ")
        ))
    }
}

/// `--tmpfs /path[:opts]`.
pub fn tmpfs(value: &str) -> Verdict {
    let (path, opts) = value.split_once(':').unwrap_or((value, ""));
    container_path(path, "the tmpfs mount point")?;
    for opt in opts.split(',').filter(|o| !o.is_empty()) {
        let (key, val) = opt.split_once('=').unwrap_or((opt, ""));
        let ok = match key {
            "rw" | "ro" | "noexec" | "exec" | "nosuid" | "nodev" => val.is_empty(),
            "size" => size(val).is_ok(),
            "mode" | "uid" | "gid" => digits(val),
            _ => false,
        };
        if !ok {
            return refuse(format!("tmpfs option `{opt}` is not allowed"));
        }
    }
    Ok(())
}

pub fn restart(value: &str) -> Verdict {
    let ok = match value.split_once(':') {
        Some(("on-failure", n)) => digits(n),
        Some(_) => false,
        None => matches!(value, "no" | "always" | "unless-stopped" | "on-failure"),
    };
    if ok {
        Ok(())
    } else {
        refuse("restart policy is no, always, unless-stopped or on-failure[:N]")
    }
}

pub fn pull_policy(value: &str) -> Verdict {
    if matches!(value, "always" | "missing" | "never" | "build") {
        Ok(())
    } else {
        refuse("pull policy is always, missing or never")
    }
}

pub fn platform(value: &str) -> Verdict {
    let parts: Vec<&str> = value.split('/').collect();
    let ok = (2..=3).contains(&parts.len())
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        });
    if ok {
        Ok(())
    } else {
        refuse("a platform is `os/arch[/variant]`, such as linux/amd64")
    }
}

fn env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Environment variables that software outside the container acts on: the NVIDIA, AMD and
/// Habana container runtimes inject GPUs and drivers for them (`--gpus` by another name), and
/// reverse proxies and certificate companions publish the container for them.
const ACTED_ON_ENV: &[&str] = &[
    "NVIDIA_*",
    "AMD_VISIBLE_DEVICES",
    "HABANA_VISIBLE_DEVICES",
    "HABANA_*",
    "VIRTUAL_HOST",
    "VIRTUAL_PORT",
    "VIRTUAL_PATH",
    "LETSENCRYPT_*",
];

/// Label namespaces that other software reads: compose treats a container with its labels
/// as one of its services, swarm and stack likewise; traefik and caddy publish it; watchtower
/// updates it; `agent-gate.*` is the gateway's own.
const ACTED_ON_LABELS: &[&str] = &[
    "com.docker.compose.*",
    "com.docker.stack.*",
    "com.docker.swarm.*",
    "com.docker.*",
    "traefik.*",
    "traefik",
    "caddy*",
    "com.centurylinklabs.watchtower*",
    // Schedulers that run commands in or beside the container from its labels.
    "ofelia*",
    "chadburn*",
    "swarm.cronjob*",
    // Watchers that restart, update or report on it.
    "autoheal*",
    "diun*",
    "io.containers.*",
    "prometheus*",
    "agent-gate.*",
];

/// The gateway's own labels (`plan::SESSION_LABEL`), refused whatever the rules allow.
const GATEWAY_LABELS: &str = "agent-gate.*";

/// Does `name` fall under `entry` (`NAME`, or `PREFIX*`), ignoring case?
fn covers(entry: &str, name: &str) -> bool {
    let (name, entry) = (name.to_ascii_lowercase(), entry.to_ascii_lowercase());
    match entry.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => name == entry,
    }
}

/// Refused by default, unless the rules list the name (or a pattern covering it).
fn acted_on(name: &str, built_in: &[&str], allowed: &[String], what: &str) -> Verdict {
    match built_in.iter().find(|entry| covers(entry, name)) {
        Some(entry) if !allowed.iter().any(|a| covers(a, name)) => refuse(format!(
            "{what} `{name}` ({entry}) is read by software outside the container, which acts on it; the rules do not allow it"
        )),
        _ => Ok(()),
    }
}

pub fn env(value: &str) -> Verdict {
    let name = value.split_once('=').map_or(value, |(n, _)| n);
    if env_name(name) {
        text(value)
    } else {
        refuse("an environment variable is `NAME=value`")
    }
}

/// `docker run -e`: a variable, and not one that software outside the container acts on.
pub fn run_env(value: &str, allowed: &[String]) -> Verdict {
    env(value)?;
    let name = value.split_once('=').map_or(value, |(n, _)| n);
    acted_on(name, ACTED_ON_ENV, allowed, "the variable")
}

/// `--label KEY[=VALUE]`.
pub fn label(value: &str, allowed: &[String]) -> Verdict {
    let key = value.split_once('=').map_or(value, |(k, _)| k);
    if key.is_empty() || key.chars().any(|c| c.is_whitespace()) {
        return refuse("a label is `KEY=value`");
    }
    // The gateway finds the containers it must remove by these labels: no rules can lift it.
    if covers(GATEWAY_LABELS, key) {
        return refuse(format!(
            "the label `{key}` is in the gateway's own namespace ({GATEWAY_LABELS}): only the gateway sets it"
        ));
    }
    acted_on(key, ACTED_ON_LABELS, allowed, "the label")?;
    text(value)
}

/// Build arguments docker predefines: they reach every `RUN` without an `ARG` line (docker's
/// "Predefined ARGs"), so they set a proxy for everything the build fetches.
const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "FTP_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
];

pub fn build_arg(value: &str) -> Verdict {
    env(value)?;
    let name = value.split_once('=').map_or(value, |(n, _)| n);
    let upper = name.to_ascii_uppercase();
    if upper.starts_with("BUILDKIT_") {
        return refuse("BUILDKIT_* build arguments change how BuildKit runs the build");
    }
    if PROXY_ARGS.contains(&upper.as_str()) {
        return refuse(format!(
            "`{name}` is one of docker's predefined proxy arguments: it reaches every RUN of the build without an ARG line"
        ));
    }
    Ok(())
}

pub fn user(value: &str) -> Verdict {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value.split(':').count() <= 2
        && value
            .split(':')
            .all(|p| !p.is_empty() && p.chars().all(is_name_char));
    if ok {
        Ok(())
    } else {
        refuse("a user is `name[:group]` or `uid[:gid]`")
    }
}

pub fn size(value: &str) -> Verdict {
    let number = value.trim_end_matches(['b', 'k', 'm', 'g', 'B', 'K', 'M', 'G']);
    if digits(number) && value.len() - number.len() <= 1 {
        Ok(())
    } else {
        refuse("a size is a number with an optional unit: 512m, 2g")
    }
}

pub fn cpus(value: &str) -> Verdict {
    let (whole, frac) = value.split_once('.').unwrap_or((value, "0"));
    if digits(whole) && digits(frac) {
        Ok(())
    } else {
        refuse("CPUs are a decimal number such as 1.5")
    }
}

pub fn hostname(value: &str) -> Verdict {
    let ok = !value.is_empty()
        && value.len() <= 253
        && value
            .split('.')
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if ok {
        Ok(())
    } else {
        refuse("expected a hostname")
    }
}

pub fn signal(value: &str) -> Verdict {
    let ok = !value.is_empty()
        && value.len() <= 16
        && value
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '+');
    if ok {
        Ok(())
    } else {
        refuse("a signal is a name such as SIGTERM or a number")
    }
}

pub fn one_of(value: &str, words: &[&str]) -> Verdict {
    if words.contains(&value) {
        Ok(())
    } else {
        refuse(format!("expected one of: {}", words.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_are_named_only() {
        for ok in [
            "app-cache:/cache",
            "/data",
            "pgdata:/var/lib/postgresql/data:ro",
            "v1:/x:ro,nocopy",
        ] {
            assert_eq!(volume(ok), Ok(()), "{ok}");
        }
        for bad in [
            "/:/h",
            "//:/h",
            "/./:/h",
            "/etc/../:/h",
            "/proc/1/root:/h",
            "./:/w",
            ".:/w",
            "..:/w",
            "/run/secrets:/s",
            "/var/run/docker.sock:/var/run/docker.sock",
            "a:/h:z",
            "a:b",
            "a:/proc/x",
            "/:/host:ro",
            "a:/h:ro:x",
            "~/x:/h",
        ] {
            assert!(volume(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mounts_are_volume_or_tmpfs() {
        for ok in [
            "type=volume,src=data,dst=/data",
            "type=tmpfs,dst=/t,tmpfs-size=64m",
            "type=volume,dst=/anon",
        ] {
            assert_eq!(mount(ok), Ok(()), "{ok}");
        }
        for bad in [
            "type=bind,src=/,dst=/h",
            "type=BIND,src=/,dst=/h",
            "type=bİnd,src=/,dst=/h",
            "type=bind,\"src=/\",dst=/h",
            "type=volume,src=/,dst=/h",
            "type=volume,src=x,dst=/h,volume-opt=device=/",
            "type=volume,src=x,dst=/h,bind-propagation=rshared",
            "src=/,dst=/h",
            "type=tmpfs,src=x,dst=/t",
            "type=npipe,src=x,dst=/h",
        ] {
            assert!(mount(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn publish_only_on_allowed_addresses() {
        let lo = vec!["127.0.0.1".to_string()];
        for ok in [
            "127.0.0.1:8080:80",
            "127.0.0.1::80",
            "127.0.0.1:8000-8010:80/udp",
        ] {
            assert_eq!(publish(ok, &lo), Ok(()), "{ok}");
        }
        for bad in [
            "8080:80",
            "80",
            "0.0.0.0:8080:80",
            "127.0.0.2:80:80",
            "[::]:80:80",
            "127.0.0.1:80",
            "127.0.0.1:a:80",
            "127.0.0.1:1:2/icmp",
        ] {
            assert!(publish(bad, &lo).is_err(), "{bad}");
        }
    }

    #[test]
    fn image_references() {
        for ok in [
            "alpine",
            "alpine:3.20",
            "ghcr.io/example/api:1.4.2",
            "localhost:5000/x",
            "3f57d9401f8d",
            "nginx@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "a/b/c:t",
        ] {
            assert_eq!(image(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "-x",
            "Alpine",
            "a//b",
            "a:",
            "a@sha256:xyz",
            "a..b",
            "https://x/y",
            "a b",
            "/x",
            "x/",
        ] {
            assert!(image(bad).is_err(), "{bad}");
        }
        let official = parse_image("alpine:3.20").unwrap();
        assert!(image_allowed("library/*", &official));
        assert!(!image_allowed(
            "library/*",
            &parse_image("attacker/runc").unwrap()
        ));
        assert!(image_allowed(
            "ghcr.io/example/*",
            &parse_image("ghcr.io/example/worker:2").unwrap()
        ));
        assert!(!image_allowed(
            "ghcr.io/example/*",
            &parse_image("ghcr.io/example/a/b").unwrap()
        ));
        assert!(image_allowed(
            "ollama/ollama",
            &parse_image("ollama/ollama:latest").unwrap()
        ));
        assert!(!image_allowed(
            "ollama/ollama",
            &parse_image("ollama/ollama2").unwrap()
        ));
        // Docker Hub's legacy domain is Docker Hub, in a reference and in an entry alike.
        for same in [
            "index.docker.io/alpine:3.20",
            "index.docker.io/library/alpine:3.20",
            "docker.io/alpine:3.20",
        ] {
            assert_eq!(parse_image(same).unwrap(), official, "{same}");
        }
        let ollama = parse_image("index.docker.io/ollama/ollama:latest").unwrap();
        assert!(image_allowed("ollama/ollama", &ollama));
        assert!(image_allowed("index.docker.io/ollama/ollama", &ollama));
        assert!(image_allowed("index.docker.io/library/*", &official));
        for other in [
            "registry-1.docker.io/library/alpine",
            "index.docker.io.evil/alpine",
        ] {
            assert!(
                !image_allowed("library/*", &parse_image(other).unwrap()),
                "{other}"
            );
        }
    }

    #[test]
    fn paths_and_small_values() {
        assert!(clean_absolute("/srv/api") && clean_absolute("/"));
        for bad in [
            "srv",
            "/srv/",
            "//srv",
            "/srv/./a",
            "/srv/../etc",
            "/srv//a",
            "",
        ] {
            assert!(!clean_absolute(bad), "{bad}");
        }
        assert!(is_within("/srv/api/Dockerfile", "/srv/api"));
        assert!(!is_within("/srv/api2", "/srv/api"));
        assert!(workdir("/proc/self/fd/7").is_err());
        assert!(workdir("/app").is_ok());
        // Every spelling of the runc CVE-2024-21626 class, and the mount points alike.
        for bad in [
            "/proc",
            "/proc/self/fd/7",
            "/proc/thread-self/fd/7",
            "/proc/1/cwd",
            "/dev/fd/7",
            "/dev/stdin",
            "/dev/stderr",
            "/dev",
            "/sys/fs/cgroup",
            "//proc/self/fd/7",
            "/x/../proc/self/fd/7",
            "/./proc",
            "/proc/",
            "proc/self/fd/7",
        ] {
            assert!(workdir(bad).is_err(), "{bad}");
            assert!(volume(&format!("data:{bad}")).is_err(), "{bad}");
            assert!(tmpfs(bad).is_err(), "{bad}");
        }
        for good in ["/app", "/procs", "/devices", "/srv/proc", "/data/dev"] {
            assert!(workdir(good).is_ok(), "{good}");
        }
        assert!(restart("on-failure:3").is_ok() && restart("sometimes").is_err());
        assert!(build_arg("BUILDKIT_SYNTAX=x").is_err() && build_arg("VERSION=1").is_ok());
        assert!(env("TZ=UTC").is_ok() && env("=x").is_err());
        // GPU injection by another name, and proxies that publish the container.
        for name in [
            "NVIDIA_VISIBLE_DEVICES=all",
            "nvidia_driver_capabilities=all",
            "NVIDIA_REQUIRE_CUDA=cuda>=12",
            "AMD_VISIBLE_DEVICES=0",
            "HABANA_VISIBLE_DEVICES=all",
            "VIRTUAL_HOST=agent.example.com",
            "LETSENCRYPT_HOST=x",
        ] {
            assert!(run_env(name, &[]).is_err(), "{name}");
        }
        assert!(
            run_env(
                "NVIDIA_VISIBLE_DEVICES=0",
                &["NVIDIA_VISIBLE_DEVICES".into()]
            )
            .is_ok()
        );
        assert!(run_env("CUDA_VISIBLE_DEVICES=0", &[]).is_ok());
        for key in [
            "com.docker.compose.project=app",
            "com.docker.compose.service",
            "COM.DOCKER.COMPOSE.project=x",
            "traefik.enable=true",
            "traefik.http.routers.x.rule=Host(`a`)",
            "caddy=agent.example.com",
            "caddy_0.reverse_proxy={{upstreams 80}}",
            "com.centurylinklabs.watchtower.enable=true",
            "agent-gate.session=x",
            "ofelia.job-local.x.command=sh",
            "ofelia.enabled=true",
            "autoheal=true",
            "io.containers.autoupdate=registry",
        ] {
            assert!(label(key, &[]).is_err(), "{key}");
        }
        assert!(label("traefik.enable=true", &["traefik.*".into()]).is_ok());
        // The gateway's own labels stay refused whatever the rules allow: they choose which
        // containers a session's cleanup removes.
        for allowed in ["agent-gate.*", "*", "agent-gate.session"] {
            for key in [
                "agent-gate.session=0123456789abcdef",
                "agent-gate.call=1",
                "Agent-Gate.Session=x",
                "agent-gate.session",
            ] {
                let verdict = label(key, &[allowed.into()]);
                assert!(
                    verdict
                        .as_ref()
                        .is_err_and(|w| w.contains("only the gateway")),
                    "{key} with {allowed}: {verdict:?}"
                );
            }
        }
        assert!(label("agent-gate-e2e=1", &[]).is_ok());
        for key in ["app=web", "org.opencontainers.image.title=x", "e2e=1"] {
            assert!(label(key, &[]).is_ok(), "{key}");
        }
        // docker's predefined proxy args, in both cases, like BUILDKIT_*.
        for arg in [
            "HTTP_PROXY=http://x",
            "https_proxy=x",
            "NO_PROXY=*",
            "all_proxy=socks5://x",
            "FTP_PROXY",
        ] {
            assert!(build_arg(arg).is_err(), "{arg}");
        }
        assert!(tmpfs("/tmp:rw,size=64m").is_ok() && tmpfs("/tmp:dev").is_err());
    }
}
