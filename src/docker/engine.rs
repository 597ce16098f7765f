//! The checks of `docker run` that depend on the engine's state: what the image reference
//! resolves to, and what an existing named volume is. Pure: the answers come in as `Facts`.
//!
//! On the string alone, a reference that the engine could read as an image ID is refused: a
//! bare hex name (`docker run 4f2a`: the daemon searches image IDs by prefix when no tag of
//! that name exists) and `sha256:...` in any length (it parses as the repository `sha256`,
//! then matches as an ID). With facts, the image must carry a name on the allow-list, and the
//! plan runs it by the ID that was checked, so a tag moved between decision and run changes
//! nothing. A named volume that exists must be a plain local one: `docker volume create -o
//! type=none -o o=bind -o device=/ x` makes `-v x:/h` a bind of the host's root.

use super::parse::Parsed;
use super::spec::Check;
use super::values;
use crate::facts::{Facts, Lookup, Needs};
use crate::policy::DockerPolicy;
use crate::verdict::Refusal;

/// What the engine checks found: the facts still needed, and the image ID to run instead of
/// the reference as written (none offline, or when docker must pull by name).
#[derive(Debug, Default)]
pub struct Checked {
    pub needs: Needs,
    pub pinned: Option<String>,
}

/// Could the daemon read this reference as an image ID rather than a name?
pub fn looks_like_id(reference: &str) -> bool {
    let hex = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if let Some(rest) = reference.strip_prefix("sha256:") {
        return hex(rest) || rest.is_empty();
    }
    !reference.contains(['/', ':', '@']) && hex(reference)
}

/// Refuse a reference the daemon could read as an image ID: the allow-list is of names.
pub fn not_an_id(rule: &str, image: &str) -> Result<(), Refusal> {
    if looks_like_id(image) {
        return Err(Refusal::new(
            rule,
            format!("{rule}: `{image}` would be looked up as an image ID, which says nothing about what the image is"),
        )
        .hint("run the image by its name, for example `docker run --rm alpine:3.20 ...`"));
    }
    Ok(())
}

pub fn run(
    rule: &str,
    docker: &DockerPolicy,
    image: &str,
    parsed: &Parsed<'_>,
    facts: &Facts,
) -> Result<Checked, Refusal> {
    let mut checked = Checked::default();
    not_an_id(rule, image)?;
    checked.needs.images.push(image.to_string());
    let what = format!("`{image}`");
    if let Some(found) = answer(rule, &what, facts, facts.image(image))? {
        let allowed = |name: &String| {
            docker.images.as_ref().is_none_or(|list| {
                values::parse_image(name)
                    .is_ok_and(|r| list.iter().any(|entry| values::image_allowed(entry, &r)))
            })
        };
        if !found.names.iter().any(allowed) {
            return Err(Refusal::new(
                rule,
                format!(
                    "{rule}: `{image}` resolves to image {} whose names ({}) are not on the rules' image allow-list",
                    short(&found.id),
                    if found.names.is_empty() { "none".to_string() } else { found.names.join(", ") }
                ),
            )
            .hint(allow_hint(docker)));
        }
        if !id_like(&found.id) {
            return Err(Refusal::new(
                rule,
                format!(
                    "{rule}: the engine gave `{}` as the ID of `{image}`",
                    found.id
                ),
            ));
        }
        // `--pull always` pulls by name first and runs what it pulled: an ID cannot be
        // pulled, so the name stays and the registry's image under it is what runs.
        if !pulls_always(parsed) {
            checked.pinned = Some(found.id.clone());
        }
    }
    for name in named_volumes(parsed) {
        checked.needs.volumes.push(name.to_string());
        let what = format!("volume `{name}`");
        match answer(rule, &what, facts, facts.volume(name))? {
            // Offline, absent (docker creates a plain one), or a plain local volume.
            None => {}
            Some(v) if v.driver == "local" && v.options.is_empty() => {}
            Some(v) => {
                let options: Vec<String> = v
                    .options
                    .iter()
                    .map(|(k, val)| format!("{k}={val}"))
                    .collect();
                return Err(Refusal::new(
                    rule,
                    format!(
                        "{rule}: volume `{name}` exists with driver `{}` and options `{}`: a volume with driver options can be a bind of a host path (type=none,o=bind,device=...)",
                        v.driver,
                        options.join(",")
                    ),
                )
                .hint("use a plain named volume: one that does not exist yet is created without options"));
            }
        }
    }
    Ok(checked)
}

/// What the engine holds of `what`: `None` offline (the string decides) or when it has no
/// such thing (docker pulls or creates it); a refusal when it could not say, or was not asked.
fn answer<'f, T>(
    rule: &str,
    what: &str,
    facts: &Facts,
    lookup: Option<&'f Lookup<T>>,
) -> Result<Option<&'f T>, Refusal> {
    match lookup {
        _ if facts.is_offline() => Ok(None),
        Some(Lookup::Found(found)) => Ok(Some(found)),
        Some(Lookup::Absent) => Ok(None),
        Some(Lookup::Failed(why)) => Err(Refusal::new(
            rule,
            format!(
                "{rule}: the engine could not say what {what} is ({why}); nothing runs unchecked"
            ),
        )),
        None => Err(Refusal::new(
            rule,
            format!("{rule}: the engine was not asked what {what} is"),
        )),
    }
}

fn allow_hint(docker: &DockerPolicy) -> String {
    match &docker.images {
        Some(list) => format!("images that may run: {}", list.join(", ")),
        None => "run an image by its name".to_string(),
    }
}

fn id_like(id: &str) -> bool {
    id.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && looks_like_id(h))
}

fn short(id: &str) -> &str {
    id.get(..19).unwrap_or(id)
}

fn pulls_always(parsed: &Parsed<'_>) -> bool {
    parsed
        .given("pull")
        .is_some_and(|g| g.value == Some("always"))
}

/// The named volumes a `docker run` mounts: `-v NAME:/path[:mode]` and `--mount
/// type=volume,src=NAME,...` (already checked to be names, not host paths).
fn named_volumes<'a>(parsed: &Parsed<'a>) -> Vec<&'a str> {
    let mut names = Vec::new();
    for given in &parsed.options {
        let (super::spec::Kind::Value(check), Some(value)) = (given.opt.kind, given.value) else {
            continue;
        };
        match check {
            Check::Volume => {
                if let Some((source, _)) = value.split_once(':') {
                    names.push(source);
                }
            }
            Check::Mount => {
                let mut volume = false;
                let mut source = None;
                for field in value.split(',') {
                    let (key, val) = field.split_once('=').unwrap_or((field, ""));
                    match key.to_ascii_lowercase().as_str() {
                        "type" => volume = val.eq_ignore_ascii_case("volume"),
                        "source" | "src" => source = Some(val),
                        _ => {}
                    }
                }
                if let (true, Some(source)) = (volume, source) {
                    names.push(source);
                }
            }
            _ => {}
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_the_daemon_reads_as_ids() {
        // moby daemon/images GetImage: a Named reference with no local tag falls back to
        // imageStore.Search(refOrID), a prefix search over IDs; `sha256:` forms parse as the
        // repository `sha256` with a tag and match the same way.
        for id in [
            "4f2a",
            "4f2ab1c9d0e1",
            "deadbeef",
            "cafe",
            &"a".repeat(64),
            "sha256:4f2a",
            "sha256:",
            &format!("sha256:{}", "0".repeat(64)),
        ] {
            assert!(looks_like_id(id), "{id}");
        }
        for name in [
            "alpine",
            "alpine:3.20",
            "cafe:latest",
            "library/cafe",
            "ghcr.io/x/deadbeef",
            "ollama/ollama",
            "4f2a:1",
            "Deadbeef",
        ] {
            assert!(!looks_like_id(name), "{name}");
        }
    }

    use crate::decide::{Request, decide_with};
    use crate::facts::{Engine, Image, Volume};
    use crate::verdict::Outcome;

    const RULES: &str = "version: 1\nkeys: {hermes: {may: [docker]}}\ndocker:\n  program: /usr/bin/docker\n  config: /etc/agent-gate/docker-config\n  subcommands:\n    run: [rm, volume, mount, pull]\n  run:\n    images: [library/*]\n";

    fn id(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    /// The decision for `raw` with these engine answers: the exec argv, or the reason.
    fn with(raw: &str, engine: Engine) -> Result<Vec<String>, String> {
        let policy = crate::rules::parse(RULES).unwrap();
        let request = Request {
            raw,
            key: Some("hermes"),
            by_key: false,
            client: None,
            fingerprint: None,
        };
        let d = decide_with(&policy, &request, &Facts::Engine(engine));
        match d.outcome {
            Outcome::Allow(plan) => Ok(plan.argv().to_vec()),
            _ => Err(d.reason),
        }
    }

    fn image(reference: &str, lookup: Lookup<Image>) -> Engine {
        let mut e = Engine::default();
        e.images.insert(reference.to_string(), lookup);
        e
    }

    fn found(id: &str, names: &[&str]) -> Lookup<Image> {
        Lookup::Found(Image {
            id: id.to_string(),
            names: names.iter().map(|n| n.to_string()).collect(),
        })
    }

    #[test]
    fn the_image_that_runs_is_the_one_checked() {
        let a = id('a');
        // Present under an allowed name: pinned to its ID.
        assert_eq!(
            with(
                "docker run --rm alpine:3.20",
                image("alpine:3.20", found(&a, &["alpine:3.20"]))
            ),
            Ok(vec![
                "/usr/bin/docker".into(),
                "run".into(),
                "--label".into(),
                "agent-gate.session=<session>".into(),
                "--rm".into(),
                a.clone()
            ])
        );
        // `--pull always` pulls by name: the name stays.
        let pulled = with(
            "docker run --pull always alpine:3.20",
            image("alpine:3.20", found(&a, &["alpine:3.20"])),
        )
        .unwrap();
        assert_eq!(pulled.last().map(String::as_str), Some("alpine:3.20"));
        // Absent: docker pulls it by the allowed name.
        assert_eq!(
            with(
                "docker run alpine:3.20",
                image("alpine:3.20", Lookup::Absent)
            )
            .map(|v| v.len()),
            Ok(5)
        );
        // Resolves to an image that carries no allowed name (by digest, say).
        let digest = format!("alpine@{}", id('b'));
        let refused = with(
            &format!("docker run {digest}"),
            image(&digest, found(&id('b'), &["evil/x:1"])),
        )
        .unwrap_err();
        assert!(
            refused.contains("evil/x:1") && refused.contains("allow-list"),
            "{refused}"
        );
        // The engine could not be asked, or gave a malformed ID: refused.
        let down = with(
            "docker run alpine",
            image("alpine", Lookup::Failed("timeout".into())),
        );
        assert!(down.unwrap_err().contains("could not say"));
        let odd = with(
            "docker run alpine",
            image("alpine", found("sha256:zz", &["alpine"])),
        );
        assert!(odd.unwrap_err().contains("as the ID"));
        // Not asked at all: refused, never assumed.
        assert!(
            with("docker run alpine", Engine::default())
                .unwrap_err()
                .contains("not asked")
        );
        // An ID is refused however the engine would answer.
        let by_id = with(&format!("docker run {}", &a[7..19]), Engine::default());
        assert!(by_id.unwrap_err().contains("image ID"));
    }

    #[test]
    fn an_existing_volume_with_driver_options_is_refused() {
        let a = id('a');
        let volume = |driver: &str, options: &[(&str, &str)]| {
            let mut e = image("alpine", found(&a, &["alpine:latest"]));
            e.volumes.insert(
                "data".into(),
                Lookup::Found(Volume {
                    driver: driver.into(),
                    options: options
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                }),
            );
            e
        };
        let bind = [("type", "none"), ("o", "bind"), ("device", "/")];
        for raw in [
            "docker run -v data:/d alpine",
            "docker run --volume=data:/d:ro alpine",
            "docker run --mount type=volume,src=data,dst=/d alpine",
            "docker run --mount dst=/d,source=data,type=VOLUME alpine",
        ] {
            let refused = with(raw, volume("local", &bind)).unwrap_err();
            assert!(refused.contains("device=/"), "{raw}: {refused}");
            assert!(with(raw, volume("nfs-driver", &[])).is_err(), "{raw}");
            assert!(with(raw, volume("local", &[])).is_ok(), "{raw}");
            let mut absent = image("alpine", found(&a, &["alpine:latest"]));
            absent.volumes.insert("data".into(), Lookup::Absent);
            assert!(with(raw, absent).is_ok(), "{raw}");
            let mut failed = image("alpine", found(&a, &["alpine:latest"]));
            failed
                .volumes
                .insert("data".into(), Lookup::Failed("x".into()));
            assert!(with(raw, failed).is_err(), "{raw}");
        }
    }

    #[test]
    fn what_the_rules_allow_of_the_acted_on_and_the_environment() {
        let rules = |extra: &str| {
            crate::rules::parse(&format!(
                "version: 1\nkeys: {{hermes: {{may: [docker]}}}}\ndocker:\n  program: /usr/bin/docker\n  config: /etc/agent-gate/docker-config\n  subcommands:\n    run: [env, label]\n    inspect: [format]\n{extra}"
            ))
            .unwrap()
        };
        let decide = |policy: &crate::policy::Policy, raw: &str| {
            crate::decide::decide(
                policy,
                &Request {
                    raw,
                    key: Some("hermes"),
                    by_key: false,
                    client: None,
                    fingerprint: None,
                },
            )
        };
        let strict = rules("");
        let lifted = rules(
            "  run:\n    allow_env: [NVIDIA_VISIBLE_DEVICES]\n    allow_labels: [traefik.*]\n  inspect_shows_env: true\n",
        );
        for raw in [
            "docker run -e NVIDIA_VISIBLE_DEVICES=0 alpine",
            "docker run -l traefik.enable=true alpine",
        ] {
            assert_eq!(decide(&strict, raw).decision_word(), "refuse", "{raw}");
            assert_eq!(decide(&lifted, raw).decision_word(), "allow", "{raw}");
        }
        // Only what the rules name: other NVIDIA_ variables stay refused.
        let other = decide(
            &lifted,
            "docker run -e NVIDIA_DRIVER_CAPABILITIES=all alpine",
        );
        assert_eq!(other.decision_word(), "refuse");
        let filter = |p: &crate::policy::Policy, raw: &str| {
            decide(p, raw).plan().and_then(|plan| plan.filter())
        };
        assert_eq!(
            filter(&strict, "docker inspect web"),
            Some(crate::plan::Filter::InspectEnv)
        );
        assert_eq!(filter(&lifted, "docker inspect web"), None);
        assert_eq!(
            decide(&strict, "docker inspect --format '{{.Config.Env}}' web").decision_word(),
            "refuse"
        );
        assert_eq!(
            decide(&lifted, "docker inspect --format '{{.Config.Env}}' web").decision_word(),
            "allow"
        );
    }
}
