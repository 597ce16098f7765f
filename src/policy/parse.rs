//! Text to model: the only file that names the YAML crate.
//!
//! Strict: unknown fields and duplicate keys are errors; anchors, aliases and merge keys are
//! refused (a policy is read by humans, and an alias makes one line mean two places); tags
//! the crate does not know are refused; the input is bounded.

use serde::de::DeserializeOwned;

use super::PolicyError;

pub use serde_saphyr::Spanned;

/// Largest rules file accepted, in bytes.
pub const MAX_RULES_BYTES: usize = 1 << 20;

/// Read `text` as a `T` (the rules model), with the limits above.
pub fn from_yaml<T: DeserializeOwned>(text: &str) -> Result<T, PolicyError> {
    if text.len() > MAX_RULES_BYTES {
        return Err(PolicyError::at(
            1,
            1,
            format!("the rules file is larger than {MAX_RULES_BYTES} bytes"),
        ));
    }
    let mut budget = serde_saphyr::Budget::default();
    budget.max_anchors = 0;
    budget.max_aliases = 0;
    budget.max_merge_keys = 0;
    budget.max_documents = 1;
    budget.max_depth = 32;
    budget.max_nodes = 100_000;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    options.merge_keys = serde_saphyr::MergeKeyPolicy::Error;
    options.reject_unsupported_tags = true;
    options.reject_tagged_field_names = true;
    options.strict_booleans = true;
    serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let (line, column) = e
            .location()
            .map_or((1, 1), |l| (l.line().max(1), l.column().max(1)));
        let message = e.without_snippet().to_string();
        let first = message.lines().next().unwrap_or("invalid YAML");
        PolicyError::at(line, column, plain(first))
    })
}

/// Where a spanned value stands in the file.
pub fn location<T>(spanned: &Spanned<T>) -> (u64, u64) {
    (
        spanned.referenced.line().max(1),
        spanned.referenced.column().max(1),
    )
}

/// The YAML crate's budget messages, in the words of a rules file.
fn plain(message: &str) -> String {
    let cut = message.split(" at line ").next().unwrap_or(message);
    let cut = cut.split(", set DuplicateKeyPolicy").next().unwrap_or(cut);
    if !cut.starts_with("budget breached") {
        return cut.to_string();
    }
    let what = if cut.contains("Anchors") || cut.contains("Aliases") {
        "anchors and aliases are not accepted: write each value where it applies"
    } else if cut.contains("Merge") {
        "merge keys (`<<`) are not accepted: write each value where it applies"
    } else if cut.contains("Documents") {
        "a rules file is one YAML document"
    } else if cut.contains("Depth") {
        "the rules file nests too deeply"
    } else {
        "the rules file is too large"
    };
    what.to_string()
}
