//! Every rule's `examples`: commands it must allow and commands that must be refused.
//! They run at every load, so a policy that does not do what its author wrote never loads.

use super::compile::examples;
use super::model::RulesModel;
use super::parse::location;
use super::{Policy, PolicyError};
use crate::decide::classify_raw;

pub fn check(policy: &Policy, model: &RulesModel) -> Result<(), PolicyError> {
    for (rule, ex) in examples(model) {
        for raw in &ex.allow {
            let (line, column) = location(raw);
            match classify_raw(policy, &raw.value) {
                Ok(c) if c.permission == rule => {}
                Ok(c) => {
                    return Err(PolicyError::at(
                        line,
                        column,
                        format!(
                            "example `{}` of rule `{rule}` is decided by rule `{}`",
                            raw.value, c.permission
                        ),
                    ));
                }
                Err(r) => {
                    return Err(PolicyError::at(
                        line,
                        column,
                        format!(
                            "example `{}` should be allowed by rule `{rule}` but is refused: {}",
                            raw.value, r.reason
                        ),
                    ));
                }
            }
        }
        for raw in &ex.refuse {
            if let Ok(c) = classify_raw(policy, &raw.value) {
                let (line, column) = location(raw);
                return Err(PolicyError::at(
                    line,
                    column,
                    format!(
                        "example `{}` should be refused but rule `{}` allows it",
                        raw.value, c.rule
                    ),
                ));
            }
        }
    }
    Ok(())
}
