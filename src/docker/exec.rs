//! `docker exec CONTAINER PROGRAM ARGS`: refused, except for the programs the rules declare
//! with `container:` (the ollama benchmark), each with its own option grammar.

use super::{parse, spec};
use crate::plan::ExecPlan;
use crate::policy::{Policy, ProgramRule};
use crate::programs;
use crate::verdict::{Classified, Refusal, Tier};

/// `docker exec CONTAINER PROGRAM ...`, only for programs declared with `container:`.
pub fn check(policy: &Policy, args: &[String]) -> Result<Classified, Refusal> {
    let Some(sub) = spec::subcommand("exec") else {
        return Err(Refusal::new(
            "docker exec",
            "`docker exec` is not known to the grammar",
        ));
    };
    let parsed = parse::parse("docker exec", &[sub.options], false, args)
        .map_err(|r| r.hint(programs::exec_forms(policy)))?;
    let (Some(container), Some(program)) = (parsed.operands.first(), parsed.operands.get(1)) else {
        return Err(Refusal::new(
            "docker exec",
            "`docker exec` needs a container and a program",
        ));
    };
    let rest: Vec<String> = parsed
        .operands
        .iter()
        .skip(2)
        .map(|s| s.to_string())
        .collect();
    container_program(policy, container, program, &rest)
}

/// A program in a container, reached as `docker exec CONTAINER PROGRAM ARGS`.
fn container_program(
    policy: &Policy,
    container: &str,
    program: &str,
    args: &[String],
) -> Result<Classified, Refusal> {
    let candidates: Vec<&ProgramRule> = policy
        .programs
        .iter()
        .filter(|p| p.container.as_deref() == Some(container) && p.command == program)
        .collect();
    let best = match programs::first_accepting(candidates.iter().copied(), args) {
        Ok(rule) => {
            let Some(docker) = &policy.docker else {
                return Err(Refusal::new(
                    "docker exec",
                    "docker is not configured on this host",
                ));
            };
            let argv = [
                "exec".to_string(),
                container.to_string(),
                program.to_string(),
            ]
            .into_iter()
            .chain(rule.forced_args.iter().cloned())
            .chain(args.iter().cloned());
            let env = super::docker_env(docker, &rule.env);
            let plan = ExecPlan::new(
                &policy.defaults,
                None,
                &docker.program,
                argv,
                &env,
                rule.timeout,
            )
            .with_stdin(rule.stdin);
            return Ok(Classified::new(
                rule.id.clone(),
                rule.id.clone(),
                Tier::Allow,
                plan,
            ));
        }
        Err(best) => best,
    };
    let hint = programs::exec_forms(policy);
    match best {
        Some((rule, m)) => Err(Refusal::new(
            rule.id.clone(),
            format!("docker exec {container} {program}: {}", m.message),
        )
        .hint(hint)),
        None => Err(Refusal::new(
            "docker exec",
            "`docker exec` runs only the configured programs in the configured containers"
                .to_string(),
        )
        .hint(hint)),
    }
}
