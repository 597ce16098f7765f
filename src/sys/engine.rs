//! Facts from the docker engine, asked through the docker CLI as the agent's account, with the
//! same fixed environment docker runs with, each query bounded: what an image reference
//! resolves to and what a named volume is. An answer that cannot be read is `Failed`, which
//! refuses where it matters; nothing is guessed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::exec;
use crate::docker::docker_env;
use crate::facts::{Engine, Image, Lookup, Needs, Volume};
use crate::plan::Defaults;
use crate::policy::DockerPolicy;

/// All the queries of one decision together get at most this long.
pub const BUDGET: Duration = Duration::from_secs(5);
/// An answer is one short line; more is not an answer.
const MAX_ANSWER: u64 = 64 * 1024;

pub fn gather(docker: &DockerPolicy, defaults: &Defaults, needs: &Needs) -> Engine {
    let mut env = vec![
        ("PATH".to_string(), defaults.path.clone()),
        ("HOME".to_string(), "/var/empty".to_string()),
        ("LANG".to_string(), "C.UTF-8".to_string()),
    ];
    env.extend(docker_env(docker, &[]));
    let deadline = Instant::now() + BUDGET;
    let ask = |args: &[&str]| {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("the engine's time was used up".to_string());
        }
        exec::capture(&docker.program, args, &env, left, MAX_ANSWER)
    };
    let mut engine = Engine::default();
    for reference in &needs.images {
        let answer = ask(&[
            "image",
            "inspect",
            "--format",
            "{{.Id}}|{{json .RepoTags}}|{{json .RepoDigests}}",
            "--",
            reference,
        ]);
        engine
            .images
            .insert(reference.clone(), read(answer, "no such image", image));
    }
    for name in &needs.volumes {
        let answer = ask(&[
            "volume",
            "inspect",
            "--format",
            "{{.Driver}}|{{json .Options}}",
            "--",
            name,
        ]);
        engine
            .volumes
            .insert(name.clone(), read(answer, "no such volume", volume));
    }
    engine
}

fn read<T>(
    answer: Result<exec::Captured, String>,
    absent: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Lookup<T> {
    match answer {
        Err(why) => Lookup::Failed(why),
        Ok(c) if c.success => match parse(c.stdout.trim_end_matches('\n')) {
            Some(found) => Lookup::Found(found),
            None => Lookup::Failed("the engine's answer could not be read".to_string()),
        },
        Ok(c) if c.stderr.to_ascii_lowercase().contains(absent) => Lookup::Absent,
        Ok(c) => Lookup::Failed(first_line(&c.stderr)),
    }
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("no answer").trim();
    line.chars().take(200).collect()
}

/// `ID|["alpine:3.20"]|["alpine@sha256:..."]`
fn image(line: &str) -> Option<Image> {
    let mut parts = line.splitn(3, '|');
    let id = parts.next()?.to_string();
    let list = |text: Option<&str>| -> Option<Vec<String>> {
        match serde_json::from_str::<Option<Vec<String>>>(text?) {
            Ok(names) => Some(names.unwrap_or_default()),
            Err(_) => None,
        }
    };
    let mut names = list(parts.next())?;
    names.extend(list(parts.next())?);
    Some(Image { id, names })
}

/// `local|{"type":"none","o":"bind","device":"/"}` (or `null` without options)
fn volume(line: &str) -> Option<Volume> {
    let (driver, options) = line.split_once('|')?;
    let options: Option<BTreeMap<String, String>> = serde_json::from_str(options).ok()?;
    Some(Volume {
        driver: driver.to_string(),
        options: options.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_strictly() {
        let id = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            image(&format!(
                "{id}|[\"alpine:3.20\"]|[\"alpine@sha256:{}\"]",
                "b".repeat(64)
            )),
            Some(Image {
                id: id.clone(),
                names: vec![
                    "alpine:3.20".into(),
                    format!("alpine@sha256:{}", "b".repeat(64))
                ],
            })
        );
        assert_eq!(
            image(&format!("{id}|null|[]")).map(|i| i.names),
            Some(vec![])
        );
        assert_eq!(image(&format!("{id}|[\"a\"")), None);
        assert_eq!(image("garbage"), None);
        let v = volume("local|{\"device\":\"/\",\"o\":\"bind\",\"type\":\"none\"}").unwrap();
        assert_eq!(v.options.get("device").map(String::as_str), Some("/"));
        assert_eq!(volume("local|null").map(|v| v.options.len()), Some(0));
        assert_eq!(volume("local"), None);
    }
}
