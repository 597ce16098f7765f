//! POSIX extended regular expressions for sudoers, built from the same grammar the gateway
//! checks, so that sudo allows what the gateway allows and nothing across arguments.
//!
//! sudo (1.9.10 and later) matches a command's arguments, joined by single spaces, against
//! `^...$`. A space inside an argument cannot be told from one between arguments, so no
//! wildcard made here matches a space: only a literal space written in a rule's pattern
//! (`2024-05-01 10:00`) does. Before running a sudo command the gateway checks the argument
//! list against the same expression, so sudo never refuses what the gateway allowed (an
//! argument whose spaces make sudo see a token the rule does not allow is refused, with the
//! reason). The expression checks tokens, not their count or order: it is wider than the
//! gateway's grammar, and never wider than the tokens the rule allows. A rule pattern is
//! translated from the gateway's syntax: `.` becomes `[^ ]`, a negated class also excludes the space, `\d`
//! and `\w` become classes; what has no POSIX form (`(?...)`, `\s`, escapes inside classes,
//! anchors, a literal space) is an error `agent-gate check` reports at the pattern.

use crate::grammar::{Grammar, ValueType};

/// Characters that are special in a POSIX ERE outside a bracket expression.
const ERE_SPECIAL: &str = ".[]{}()*+?^$|\\";

/// `text` as a literal in an ERE.
pub fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if ERE_SPECIAL.contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A word that can be one argument of a sudo command line.
pub fn plain_word(word: &str) -> Result<(), String> {
    if word.is_empty() || word.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err(format!(
            "`{word}` cannot be one argument of a sudo command: no spaces or control characters"
        ))
    } else {
        Ok(())
    }
}

/// Translate a rule's pattern (the gateway's regex syntax) to an ERE for one argument.
pub fn pattern(source: &str) -> Result<String, String> {
    let no = |what: &str| Err(format!("{what} has no POSIX form for sudoers; {FIX}"));
    let mut out = String::with_capacity(source.len() + 8);
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if !c.is_ascii() || c.is_ascii_control() => return no("a non-ASCII character"),
            '.' => out.push_str("[^ ]"),
            '^' | '$' => {
                return no("an anchor (`^`, `$`); the pattern always matches a whole argument and");
            }
            '(' if chars.peek() == Some(&'?') => return no("a `(?...)` group"),
            '\\' => match chars.next() {
                Some('d') => out.push_str("[0-9]"),
                Some('w') => out.push_str("[A-Za-z0-9_]"),
                Some(e) if ERE_SPECIAL.contains(e) => {
                    out.push('\\');
                    out.push(e);
                }
                Some(e) if e.is_ascii_punctuation() => out.push(e),
                Some(e) => return no(&format!("`\\{e}`")),
                None => return no("a trailing `\\`"),
            },
            '[' => bracket(&mut chars, &mut out)?,
            c => out.push(c),
        }
    }
    Ok(out)
}

const FIX: &str = "write it with bracket classes such as [0-9] or [a-z._-]";

/// A bracket expression, from after its `[` to its `]`.
fn bracket(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    out: &mut String,
) -> Result<(), String> {
    let no = |what: &str| {
        Err(format!(
            "{what} inside [...] has no POSIX form for sudoers; {FIX}"
        ))
    };
    out.push('[');
    let negated = chars.peek() == Some(&'^');
    if negated {
        chars.next();
        out.push('^');
        // The space is excluded too: no class may match across arguments.
        out.push(' ');
    }
    let mut first = true;
    loop {
        let Some(c) = chars.next() else {
            return no("an unclosed `[`");
        };
        match c {
            ']' if !first => {
                out.push(']');
                return Ok(());
            }
            ' ' => return no("a space"),
            '\\' => return no("a backslash escape"),
            '[' if chars.peek() == Some(&':') => {
                out.push_str("[:");
                chars.next();
                loop {
                    match chars.next() {
                        Some(':') if chars.peek() == Some(&']') => {
                            chars.next();
                            out.push_str(":]");
                            break;
                        }
                        Some(c) if c.is_ascii_lowercase() => out.push(c),
                        _ => return no("a malformed [:class:]"),
                    }
                }
            }
            '[' => return no("a nested class"),
            '&' | '~' if chars.peek() == Some(&c) => return no("a class operation"),
            '-' if chars.peek() == Some(&'-') => return no("a class operation"),
            c if !c.is_ascii() || c.is_ascii_control() => return no("a non-ASCII character"),
            c => out.push(c),
        }
        first = false;
    }
}

/// One argument of this type, as an ERE group.
pub fn value(ty: &ValueType) -> Result<String, String> {
    Ok(match ty {
        ValueType::Enum(words) => {
            for w in words {
                plain_word(w)?;
            }
            let alts: Vec<String> = words.iter().map(|w| literal(w)).collect();
            format!("({})", alts.join("|"))
        }
        ValueType::Int { min, max } => {
            let digits = min.unsigned_abs().max(max.unsigned_abs()).to_string().len();
            let sign = if *min < 0 { "-?" } else { "" };
            format!("{sign}[0-9]{{1,{digits}}}")
        }
        ValueType::Pattern { source, .. } => format!("({})", pattern(source)?),
        ValueType::Exact(word) => {
            plain_word(word)?;
            literal(word)
        }
        ValueType::Text => "[^ -][^ ]*".to_string(),
    })
}

/// Every token (or option with its separate value) a grammar accepts, as ERE alternatives.
/// Options that take the same kind of value share one alternative, to stay well inside the
/// length sudo reads (`MAX_REGEX`).
pub fn tokens(grammar: &Grammar) -> Result<Vec<String>, String> {
    let mut alts = Vec::new();
    let flags: String = grammar
        .options
        .iter()
        .filter(|o| o.value.is_none())
        .filter_map(|o| o.short)
        .collect();
    let bundle = if flags.is_empty() {
        String::new()
    } else {
        format!("[{}]*", bracket_set(&flags))
    };
    if !flags.is_empty() {
        alts.push(format!("-[{}]+", bracket_set(&flags)));
    }
    let flag_longs: Vec<String> = grammar
        .options
        .iter()
        .filter(|o| o.value.is_none())
        .filter_map(|o| o.long.as_deref().map(literal))
        .collect();
    if !flag_longs.is_empty() {
        alts.push(format!("--{}", one_of(&flag_longs)));
    }
    // Value -> (long names, short letters) of the options that take it.
    let mut by_value: Vec<(String, Vec<String>, String)> = Vec::new();
    for opt in &grammar.options {
        let Some(ty) = &opt.value else { continue };
        let v = value(ty)?;
        let slot = match by_value.iter().position(|(seen, _, _)| *seen == v) {
            Some(i) => i,
            None => {
                by_value.push((v, Vec::new(), String::new()));
                by_value.len() - 1
            }
        };
        if let Some((_, longs, shorts)) = by_value.get_mut(slot) {
            longs.extend(opt.long.as_deref().map(literal));
            shorts.extend(opt.short);
        }
    }
    for (v, longs, shorts) in &by_value {
        let mut spellings = Vec::new();
        if !longs.is_empty() {
            spellings.push(format!("--{}(=| )", one_of(longs)));
        }
        if !shorts.is_empty() {
            let letters = if shorts.chars().count() == 1 {
                literal(shorts)
            } else {
                format!("[{}]", bracket_set(shorts))
            };
            spellings.push(format!("-{bundle}{letters} ?"));
        }
        alts.push(format!("({}){v}", spellings.join("|")));
    }
    for word in &grammar.words {
        plain_word(word)?;
        alts.push(literal(word));
    }
    for arg in &grammar.args {
        alts.push(value(&arg.value)?);
    }
    alts.push("--".to_string());
    alts.dedup();
    Ok(alts)
}

/// `name` or `(a|b|c)`.
fn one_of(names: &[String]) -> String {
    match names {
        [one] => one.clone(),
        many => format!("({})", many.join("|")),
    }
}

/// Letters for a bracket expression: `-` last, so it is literal.
fn bracket_set(letters: &str) -> String {
    let mut set: String = letters.chars().filter(|&c| c != '-').collect();
    if letters.contains('-') {
        set.push('-');
    }
    set
}

/// The longest expression sudo 1.9 reads in a command's arguments (longer ones never match).
pub const MAX_REGEX: usize = 1000;

/// `^PREFIX( TOKEN)*$`, or `^TOKEN( TOKEN)*$` without a prefix.
pub fn command_line(prefix: &[String], alts: &[String]) -> Result<String, String> {
    for word in prefix {
        plain_word(word)?;
    }
    let token = format!("({})", alts.join("|"));
    let head: Vec<String> = prefix.iter().map(|w| literal(w)).collect();
    let line = if head.is_empty() {
        format!("^{token}( {token})*$")
    } else {
        format!("^{}( {token})*$", head.join(" "))
    };
    if line.len() > MAX_REGEX {
        return Err(format!(
            "its sudoers expression would be {} characters, and sudo reads at most about {MAX_REGEX}: split it into narrower rules",
            line.len()
        ));
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_translate_or_say_why() {
        let ok = [
            (
                "[a-z0-9][a-z0-9._:/-]{0,127}",
                "[a-z0-9][a-z0-9._:/-]{0,127}",
            ),
            ("[0-9]{1,5}(s|m|h)", "[0-9]{1,5}(s|m|h)"),
            ("a.b", "a[^ ]b"),
            ("[^x]+", "[^ x]+"),
            (r"\d+\.\d", r"[0-9]+\.[0-9]"),
            (r"\w-\/", "[A-Za-z0-9_]-/"),
            ("[[:alpha:]]", "[[:alpha:]]"),
            ("[]a]", "[]a]"),
        ];
        for (from, to) in ok {
            assert_eq!(pattern(from).as_deref(), Ok(to), "{from}");
        }
        assert_eq!(pattern("a b").as_deref(), Ok("a b"));
        for bad in [
            "[ a]", "(?i)x", r"\s", r"[\d]", "^x", "x$", "[a-z&&b]", "[[a]]", "é", "[a",
        ] {
            assert!(pattern(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_are_one_argument() {
        assert_eq!(
            value(&ValueType::Int { min: 1, max: 10000 }).as_deref(),
            Ok("[0-9]{1,5}")
        );
        assert_eq!(
            value(&ValueType::Enum(vec!["a.b".into(), "c".into()])).as_deref(),
            Ok(r"(a\.b|c)")
        );
        assert!(value(&ValueType::Exact("a b".into())).is_err());
    }
}
