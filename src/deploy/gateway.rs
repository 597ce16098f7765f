//! The agent's side of a deploy, as the gateway sees it: exactly `nh os switch [FLAKE]` and
//! `nixos-rebuild switch --flake FLAKE`, on the one configured flake, optionally written with
//! `sudo` in front, are `ask`. The gateway, as the agent's account, never runs the deploy: it
//! starts the root-side step (`step_plan`) through sudo.

use super::{Asker, Form, root_plan};
use crate::plan::ExecPlan;
use crate::policy::Policy;
use crate::verdict::{Classified, Refusal, Tier};

pub fn check(policy: &Policy, program: &str, args: &[String]) -> Result<Classified, Refusal> {
    let Some(deploy) = &policy.deploy else {
        return Err(Refusal::new(
            "deploy",
            "deploys are not configured on this host",
        ));
    };
    let flake = deploy.flake.as_str();
    let forms = accepted_forms(policy).join("`, `");
    let hint = format!("the accepted deploys are exactly `{forms}`, each approved by a human");
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match program {
        "nh" => {
            let plan = root_plan(policy, Form::Nh).ok_or_else(|| {
                Refusal::new("deploy", "deploys through nh are not configured").hint(hint.clone())
            })?;
            match words.as_slice() {
                ["os", "switch"] => {}
                ["os", "switch", f] if *f == flake => {}
                ["os", "switch", ..] => {
                    return Err(Refusal::new(
                        "deploy",
                        format!("`nh os switch` takes no options or other flake here: a deploy builds exactly the locked flake {flake}"),
                    )
                    .hint(hint));
                }
                ["os", verb, ..] => {
                    return Err(Refusal::new(
                        "deploy",
                        format!("`nh os {verb}` is not a deploy this gateway runs"),
                    )
                    .hint(hint));
                }
                _ => {
                    return Err(
                        Refusal::new("deploy", "only `nh os switch` is accepted from nh")
                            .hint(hint),
                    );
                }
            }
            Ok(Classified::new("deploy", "deploy", Tier::Ask, plan))
        }
        _ => {
            let plan = root_plan(policy, Form::NixosRebuild).ok_or_else(|| {
                Refusal::new("deploy", "deploys through nixos-rebuild are not configured")
                    .hint(hint.clone())
            })?;
            match words.as_slice() {
                ["switch", "--flake", f] if *f == flake => {}
                ["switch", ..] => {
                    return Err(Refusal::new(
                        "deploy",
                        format!("`nixos-rebuild switch` is accepted only as `--flake {flake}` with nothing else: no other flake, option or spelling"),
                    )
                    .hint(hint));
                }
                _ => {
                    return Err(
                        Refusal::new("deploy", "only `nixos-rebuild switch` is a deploy")
                            .hint(hint),
                    );
                }
            }
            Ok(Classified::new("deploy", "deploy", Tier::Ask, plan))
        }
    }
}

/// The deploy commands as the agent writes them, for messages and `list`.
pub fn accepted_forms(policy: &Policy) -> Vec<String> {
    let Some(deploy) = &policy.deploy else {
        return Vec::new();
    };
    let mut forms = Vec::new();
    if deploy.nh.is_some() {
        forms.push("nh os switch".to_string());
        forms.push(format!("nh os switch {}", deploy.flake));
    }
    if deploy.nixos_rebuild.is_some() && policy.sudo.is_some() {
        forms.push(format!("nixos-rebuild switch --flake {}", deploy.flake));
    }
    forms
}

/// Which deploy an `ask` plan is.
pub fn form_of(policy: &Policy, plan: &ExecPlan) -> Option<Form> {
    Form::ALL
        .into_iter()
        .find(|form| root_plan(policy, *form).as_ref() == Some(plan))
}

/// What the gateway runs for an `ask`: `sudo -n -- GATE deploy-step --rules RULES --form F
/// --key L [--client IP] [--fingerprint FP] [--no-wait]`, the command line `render sudoers` permits. The
/// session may wait for the human, then run the deploy: its timeout covers both.
pub fn step_plan(
    policy: &Policy,
    form: Form,
    gate: &str,
    rules: &str,
    asker: &Asker,
    wait: bool,
) -> Option<ExecPlan> {
    let deploy = policy.deploy.as_ref()?;
    let sudo = policy.sudo.as_deref()?;
    let mut args: Vec<String> = ["deploy-step", "--rules", rules, "--form", form.word()]
        .into_iter()
        .map(String::from)
        .collect();
    args.extend(["--key".to_string(), asker.key.clone()]);
    if let Some(client) = asker.client {
        args.extend(["--client".to_string(), client.to_string()]);
    }
    if let Some(fp) = &asker.fingerprint {
        args.extend(["--fingerprint".to_string(), fp.clone()]);
    }
    // An MCP call files or joins the request and returns at once: the agent asks
    // `deploy_status` and calls `run` again once it is approved.
    if !wait {
        args.push("--no-wait".to_string());
    }
    let timeout = deploy.approval.wait + deploy.timeout + std::time::Duration::from_secs(60);
    Some(ExecPlan::new(
        &policy.defaults,
        Some(sudo),
        gate,
        args,
        &[],
        timeout,
    ))
}
