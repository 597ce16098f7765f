//! The sudoers expression of a rule's arguments: built from the rule's grammar when the rules
//! load, matched by `decide` before anything runs through sudo, and printed by `render
//! sudoers`. One value serves all three, so the gateway and sudo agree on what is allowed.

pub mod ere;

use crate::docker::spec;
use crate::grammar::Grammar;
use crate::verdict::Refusal;

/// The regular expression for one program rule's arguments, its forced arguments first.
pub fn program_regex(grammar: &Grammar, forced: &[String]) -> Result<String, String> {
    ere::command_line(forced, &ere::tokens(grammar)?)
}

/// One sudoers expression for a command's arguments: its source, as `render sudoers` prints
/// it, and the same expression compiled on first use. Compiling one costs about 0.1 ms, so it
/// is done at most once per rule and only for a command that goes through sudo.
#[derive(Debug, Clone)]
pub struct SudoersArgs {
    pub source: String,
    compiled: std::sync::OnceLock<Option<regex::Regex>>,
}

impl SudoersArgs {
    pub fn new(source: String) -> Self {
        Self {
            source,
            compiled: std::sync::OnceLock::new(),
        }
    }

    /// Would sudo accept this argument line (the arguments joined by single spaces)?
    fn accepts(&self, line: &str) -> bool {
        self.compiled
            .get_or_init(|| regex::Regex::new(&self.source).ok())
            .as_ref()
            .is_some_and(|re| re.is_match(line))
    }
}

/// Would the sudoers lines rendered for this command accept `args` (everything after the
/// program path)? sudo joins the arguments with spaces and matches the whole line; an
/// empty list matches only the `""` line, which is rendered when the grammar allows it.
pub fn accepts(expressions: &[SudoersArgs], args: &[String]) -> bool {
    let line = args.join(" ");
    expressions.iter().any(|e| e.accepts(&line))
}

/// `sudo docker SUB ...`: the subcommand's `allowed` options (long names), any values
/// without spaces, and operands that are not options.
pub fn docker_regexes(
    allowed: &std::collections::BTreeSet<String>,
    sub: &str,
) -> Result<Vec<SudoersArgs>, String> {
    let table: &[spec::Opt] = spec::subcommand(sub)
        .map(|s| s.options)
        .ok_or_else(|| format!("`sudo docker {sub}` cannot be rendered for sudoers"))?;
    let mut flags = String::new();
    let mut alts = Vec::new();
    for opt in table.iter().filter(|o| allowed.contains(o.name())) {
        let value = "[^ ]+";
        for name in opt.names {
            let name = ere::literal(name);
            match opt.kind {
                spec::Kind::Flag => alts.push(format!("--{name}(=(true|false))?")),
                _ => {
                    alts.push(format!("--{name}={value}"));
                    alts.push(format!("--{name} {value}"));
                }
            }
        }
        match (opt.short, opt.kind) {
            (Some(s), spec::Kind::Flag) => flags.push(s),
            (Some(s), _) => {
                alts.push(format!("-{s}=?{value}"));
                alts.push(format!("-{s} {value}"));
            }
            (None, _) => {}
        }
    }
    if !flags.is_empty() {
        alts.push(format!("-[{flags}]+"));
    }
    alts.push("[^ -][^ ]*".to_string());
    let mut prefixes = vec![sub.split(' ').map(String::from).collect::<Vec<_>>()];
    if sub == "system info" {
        prefixes.push(vec!["info".to_string()]);
    }
    let mut out = Vec::new();
    for prefix in prefixes {
        out.push(SudoersArgs::new(ere::command_line(&prefix, &alts)?));
    }
    Ok(out)
}

/// The sudoers lines rendered from the rules must accept what the gateway is about to run
/// through sudo; where they would not (an argument with a space the rule does not spell out),
/// the gateway refuses it itself, with the reason, rather than let sudo fail.
pub fn fits(rule: &str, expressions: &[SudoersArgs], args: &[String]) -> Result<(), Refusal> {
    if accepts(expressions, args) {
        return Ok(());
    }
    let spaced = args.iter().find(|a| a.chars().any(char::is_whitespace));
    let reason = match spaced {
        Some(arg) => format!(
            "sudo matches its arguments joined by spaces, so `{arg}` (with a space) cannot be told from two arguments; sudo's rules would refuse it"
        ),
        None => "sudo's rules, rendered from the same policy, would not accept this argument list"
            .to_string(),
    };
    Err(Refusal::new(rule, reason).hint("write each argument without spaces"))
}
