//! Deploys: exactly `nh os switch [FLAKE]` and `nixos-rebuild switch --flake FLAKE`, on the
//! one configured flake, optionally written with `sudo` in front. Always `ask`.

use crate::decide::{Classified, Refusal, Tier};
use crate::plan::ExecPlan;
use crate::policy::Policy;

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
            let Some(nh) = &deploy.nh else {
                return Err(
                    Refusal::new("deploy", "deploys through nh are not configured").hint(hint),
                );
            };
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
            let args = ["os", "switch", flake].map(String::from);
            Ok(Classified::new(
                "deploy",
                "deploy",
                Tier::Ask,
                ExecPlan::new(policy, None, nh, args, &[], deploy.timeout),
            ))
        }
        _ => {
            let (Some(rebuild), Some(sudo)) = (&deploy.nixos_rebuild, &policy.sudo) else {
                return Err(Refusal::new(
                    "deploy",
                    "deploys through nixos-rebuild are not configured",
                )
                .hint(hint));
            };
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
            let args = ["switch", "--flake", flake].map(String::from);
            let plan = ExecPlan::new(policy, Some(sudo), rebuild, args, &[], deploy.timeout);
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
