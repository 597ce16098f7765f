//! What `docker inspect` prints, with every container's and image's environment values
//! replaced: environments carry secrets (database passwords, API tokens) the agent has no
//! business reading. The names stay, so the agent can still see that a variable is set.

use serde_json::Value;

/// What a value becomes.
pub const REDACTED: &str = "<redacted by agent-gate>";

/// The objects' fields that hold an environment, as `NAME=value` strings.
const ENV_PATHS: [[&str; 2]; 2] = [["Config", "Env"], ["ContainerConfig", "Env"]];

/// `docker inspect`'s JSON (an array of objects) with every environment value redacted,
/// printed as docker prints it (four-space indent). Anything that is not that JSON is an
/// error: output that cannot be redacted is not shown.
pub fn inspect_env(output: &[u8]) -> Result<Vec<u8>, String> {
    let mut value: Value = serde_json::from_slice(output)
        .map_err(|e| format!("docker inspect printed something that is not JSON ({e})"))?;
    let Value::Array(objects) = &mut value else {
        return Err("docker inspect printed JSON that is not a list".to_string());
    };
    for object in objects {
        for [outer, inner] in ENV_PATHS {
            let Some(env) = object.get_mut(outer).and_then(|o| o.get_mut(inner)) else {
                continue;
            };
            match env {
                Value::Array(entries) => {
                    for entry in entries {
                        *entry = match entry {
                            Value::String(text) => {
                                let name = text.split_once('=').map_or(text.as_str(), |(n, _)| n);
                                Value::String(format!("{name}={REDACTED}"))
                            }
                            _ => Value::String(REDACTED.to_string()),
                        };
                    }
                }
                Value::Null => {}
                other => *other = Value::String(REDACTED.to_string()),
            }
        }
    }
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    serde::Serialize::serialize(&value, &mut serializer)
        .map_err(|e| format!("the redacted output could not be written ({e})"))?;
    out.push(b'\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_values_never_show() {
        let raw = br#"[{"Id":"abc","Config":{"Env":["PATH=/usr/bin","DB_PASSWORD=hunter2","EMPTY=","NOEQUALS"],"Labels":{"a":"b"}},"ContainerConfig":{"Env":["TOKEN=s3cret"]}},{"Id":"def","Config":{"Env":null}}]"#;
        let out = String::from_utf8(inspect_env(raw).unwrap()).unwrap();
        for secret in ["hunter2", "s3cret", "/usr/bin"] {
            assert!(!out.contains(secret), "{out}");
        }
        for kept in [
            "DB_PASSWORD=<redacted",
            "PATH=<redacted",
            "NOEQUALS=<redacted",
            "\"a\": \"b\"",
            "\"Id\": \"def\"",
        ] {
            assert!(out.contains(kept), "{kept}: {out}");
        }
        assert!(out.starts_with("[\n    {"), "{out}");
        // Not docker's JSON: nothing of it is shown.
        assert!(inspect_env(b"DB_PASSWORD=hunter2").is_err());
        assert!(inspect_env(br#"{"Config":{"Env":["A=b"]}}"#).is_err());
        // An environment in an unexpected shape is replaced whole.
        let odd = inspect_env(br#"[{"Config":{"Env":"A=b"}}]"#).unwrap();
        assert!(!String::from_utf8(odd).unwrap().contains("A=b"));
    }
}
