//! A policy that does what its author wrote: the rules file compiled, then every rule's own
//! `examples` (commands it must allow, commands that must be refused) run through the same
//! classification `decide` uses. Above both `policy` and `decide`, so neither imports the other.

use crate::decide::classify_raw;
use crate::policy::{self, Policy, PolicyError};

/// Compile `text` and run its examples: the policy, or the first error at its line and column.
pub fn parse(text: &str) -> Result<Policy, PolicyError> {
    let policy = policy::compile(text)?;
    check_examples(&policy)?;
    Ok(policy)
}

fn check_examples(policy: &Policy) -> Result<(), PolicyError> {
    for ex in &policy.examples {
        let at = |message: String| Err(PolicyError::at(ex.line, ex.column, message));
        let (command, rule) = (&ex.command, &ex.rule);
        match classify_raw(policy, command) {
            Ok(c) if ex.allow && c.permission == *rule => {}
            Ok(c) if ex.allow => {
                return at(format!(
                    "example `{command}` of rule `{rule}` is decided by rule `{}`",
                    c.permission
                ));
            }
            Err(r) if ex.allow => {
                return at(format!(
                    "example `{command}` should be allowed by rule `{rule}` but is refused: {}",
                    r.reason
                ));
            }
            Ok(c) => {
                return at(format!(
                    "example `{command}` should be refused but rule `{}` allows it",
                    c.rule
                ));
            }
            Err(_) => {}
        }
    }
    Ok(())
}
