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
//! anchors, a space inside a class) is an error `agent-gate check` reports at the pattern.
//!
//! A literal space in a value is where sudo, which sees only the joined line, could also see
//! two arguments: `--since '1 hour ago'` is one argument to the gateway and `--since 1 hour
//! ago` to a line typed at sudo directly. So what follows a space in a value must never be
//! able to start an option (`-`) or one of journalctl's `+`: a rule's pattern must go on after
//! a space with a letter, digit, `_` or a class of them, not made optional, and the built-in
//! types (`systemd_time`) are written so. Options with an optional value
//! (`optional_value`) are rendered with and without it.

use crate::grammar::{Grammar, Optional, ValueType};

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
            ' ' => {
                let rest: String = chars.clone().collect();
                if !safe_after_space(&rest) {
                    return Err(format!(
                        "a space in a sudo rule's pattern must be followed by a letter, digit, `_` or a class of them, not optional: sudo sees the joined line, where what follows the space could be an argument of its own, and it must never start an option (`-`); {FIX}"
                    ));
                }
                out.push(' ');
            }
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

/// Can what follows a literal space (`rest`, the pattern's source after it) only start with a
/// letter, digit or `_`? Its first atom must be one of those, `\d`, `\w`, or a class that
/// admits none of `-`, `+` and the space, and not be made optional (`?`, `*`, `{0,`).
fn safe_after_space(rest: &str) -> bool {
    let mut chars = rest.chars();
    let atom_ok = match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() || c == '_' => true,
        Some('\\') => matches!(chars.next(), Some('d' | 'w')),
        Some('[') => class_is_word_start(&mut chars),
        _ => false,
    };
    let after = chars.as_str();
    let optional = after.starts_with(['?', '*'])
        || after.strip_prefix('{').is_some_and(|q| {
            q.split([',', '}'])
                .next()
                .is_none_or(|min| min.trim_start_matches('0').is_empty())
        });
    atom_ok && !optional
}

/// A bracket expression, from after its `[`: does it admit only letters, digits and `_`-like
/// characters, never `-`, `+` or a space? Anything unusual counts as no.
fn class_is_word_start(chars: &mut std::str::Chars<'_>) -> bool {
    let mut members: Vec<char> = Vec::new();
    let mut ok = true;
    let mut first = true;
    loop {
        let Some(c) = chars.next() else { return false };
        match c {
            '^' if first => ok = false,
            ']' if !first => break,
            '[' => {
                // `[:alpha:]` and the like.
                let name: String = chars.by_ref().take_while(|&c| c != ']').collect();
                let safe = ["alpha", "digit", "alnum", "upper", "lower", "xdigit"];
                ok &= name
                    .strip_prefix(':')
                    .and_then(|n| n.strip_suffix(':'))
                    .is_some_and(|n| safe.contains(&n));
            }
            c => members.push(c),
        }
        first = false;
    }
    // Ranges: `a-z`; a `-` first or last is itself a member.
    let mut i = 0;
    while let Some(&c) = members.get(i) {
        match (members.get(i + 1), members.get(i + 2)) {
            (Some('-'), Some(&hi)) => {
                ok &= !(c..=hi).contains(&'-') && !(c..=hi).contains(&'+') && c <= hi;
                ok &= !(c..=hi).contains(&' ');
                i += 3;
            }
            _ => {
                ok &= c.is_ascii_alphanumeric() || "_.:/@%,".contains(c);
                i += 1;
            }
        }
    }
    ok
}

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
        ValueType::SystemdTime => SYSTEMD_TIME.to_string(),
        ValueType::KeyValues(keys) => {
            // Keys whose values are written alike share one alternative: `(addr|laddr)=...`.
            let mut by_value: Vec<(String, Vec<String>)> = Vec::new();
            for (key, ty) in keys {
                plain_word(key)?;
                let v = value(ty)?;
                match by_value.iter_mut().find(|(seen, _)| *seen == v) {
                    Some((_, names)) => names.push(literal(key)),
                    None => by_value.push((v, vec![literal(key)])),
                }
            }
            let pairs: Vec<String> = by_value
                .iter()
                .map(|(v, names)| format!("{}={v}", one_of(names)))
                .collect();
            let pair = format!("({})", pairs.join("|"));
            format!("{pair}(,{pair})*")
        }
    })
}

/// `grammar::systemd_time` as an ERE: wider (it checks no ranges, and takes a bare span with
/// or without a sign or ` ago`, which systemd refuses), never across an option: after each
/// space comes a digit, a unit, `ago`, `UTC` or a time.
pub const SYSTEMD_TIME: &str = concat!(
    "(now|today|yesterday|tomorrow|@[0-9]{1,11}",
    "|[-+]?( ?[0-9]{1,6} ?(s|sec|seconds?|m|min|minutes?|h|hr|hours?|d|days?|w|weeks?|M|months?|y|years?))+( ago)?",
    "|([0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]{1,6})?)?)?",
    "|[0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]{1,6})?)?)( UTC)?)"
);

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
    // (value, how optional) -> (long names, short letters) of the options that take it.
    type Spelled = (Vec<String>, String);
    let mut by_value: Vec<((String, Option<Optional>), Spelled)> = Vec::new();
    for opt in &grammar.options {
        let Some(ty) = &opt.value else { continue };
        let key = (value(ty)?, opt.optional);
        let slot = match by_value.iter().position(|(seen, _)| *seen == key) {
            Some(i) => i,
            None => {
                by_value.push((key, (Vec::new(), String::new())));
                by_value.len() - 1
            }
        };
        if let Some((_, (longs, shorts))) = by_value.get_mut(slot) {
            longs.extend(opt.long.as_deref().map(literal));
            shorts.extend(opt.short);
        }
    }
    for ((v, optional), (longs, shorts)) in &by_value {
        let letters = match shorts.chars().count() {
            0 => None,
            1 => Some(literal(shorts)),
            _ => Some(format!("[{}]", bracket_set(shorts))),
        };
        // How the value is joined to the option: `--opt=V`, `--opt V`, `-oV`, `-o V`; an
        // attached-only optional value never comes as the next argument.
        let (long_join, short_join) = match optional {
            Some(Optional::Attached) => ("=", ""),
            None | Some(Optional::Lookahead) => ("(=| )", " ?"),
        };
        let mut spellings = Vec::new();
        let mut bare = Vec::new();
        if !longs.is_empty() {
            spellings.push(format!("--{}{long_join}", one_of(longs)));
            bare.push(format!("--{}", one_of(longs)));
        }
        if let Some(letters) = &letters {
            spellings.push(format!("-{bundle}{letters}{short_join}"));
            bare.push(format!("-{bundle}{letters}"));
        }
        alts.push(format!("({}){v}", spellings.join("|")));
        if optional.is_some() {
            // Written without its value.
            alts.push(format!("({})", bare.join("|")));
        }
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

/// The longest expression in a command's arguments sudo matches, as the sudoers file spells
/// it (its `\,`, `\:` and `\=` escapes counted): sudo 1.9.13 matches one of 1024 characters
/// and never one of 1025 (measured); this leaves a margin.
pub const MAX_REGEX: usize = 1000;

/// How long `expression` is once written into a sudoers file, where `,`, `:` and `=` are
/// escaped with a backslash (`render::sudoers`).
pub fn written_len(expression: &str) -> usize {
    expression.len() + expression.chars().filter(|c| ",:=".contains(*c)).count()
}

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
    let written = written_len(&line);
    if written > MAX_REGEX {
        return Err(format!(
            "its sudoers expression would be {written} characters as written (escapes included), and sudo reads at most about {MAX_REGEX}: split it into narrower rules"
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

    #[test]
    fn what_follows_a_space_cannot_start_an_option() {
        for ok in [
            "a b",
            "[0-9]{4}( [0-9]{2}:[0-9]{2})?",
            r"a \d+",
            "a [[:alpha:]]+",
            "a [A-Za-z0-9_]",
            "a b{1,3}",
            "a [a-z]+",
        ] {
            assert!(pattern(ok).is_ok(), "{ok}");
        }
        for bad in [
            "a -b",
            "a( -[a-z]+)?",
            "a .",
            "a b?-f",
            "a b*",
            "a b{0,2}-f",
            "a b{,2}",
            "a [a-]",
            "a [-a]",
            "a [!-/]",
            "a [*-0]",
            "a [^x]",
            "a [[:punct:]]",
            "a (b)",
            "a  b",
            "a ",
            "a |-f",
            "a +",
            r"a \s",
            " -a",
        ] {
            let e = pattern(bad).unwrap_err();
            assert!(
                e.contains("no POSIX form")
                    || e.contains("must be followed by a letter, digit, `_` or a class of them"),
                "{bad}: {e}"
            );
        }
    }

    /// Values as `grammar::systemd_time` accepts them, built from its parts.
    fn systemd_times() -> Vec<String> {
        let mut out: Vec<String> = ["now", "today", "yesterday", "tomorrow", "@1700000000", "@0"]
            .map(String::from)
            .to_vec();
        for unit in crate::grammar::SYSTEMD_TIME_UNITS {
            for number in ["1", "30", "999999"] {
                for span in [
                    format!("{number}{unit}"),
                    format!("{number} {unit}"),
                    format!("{number}{unit} 5s"),
                    format!("1h{number}{unit}"),
                    format!("2 h {number} {unit}"),
                ] {
                    out.push(format!("-{span}"));
                    out.push(format!("+{span}"));
                    out.push(format!("{span} ago"));
                }
            }
        }
        for date in ["2024-01-01", "1999-12-31"] {
            for time in ["", " 10:00", " 23:59:59", "T00:00:00.5", " 10:00:00.123456"] {
                for zone in ["", " UTC"] {
                    out.push(format!("{date}{time}{zone}"));
                }
            }
        }
        for time in ["10:00", "00:00:00", "23:59:59.999999"] {
            out.push(time.to_string());
            out.push(format!("{time} UTC"));
        }
        out
    }

    #[test]
    fn the_systemd_time_expression_takes_what_the_grammar_does_and_no_option() {
        let re = regex::Regex::new(&format!("^{SYSTEMD_TIME}$")).unwrap();
        for time in systemd_times() {
            assert!(crate::grammar::systemd_time(&time), "{time:?}");
            assert!(re.is_match(&time), "{time:?}");
            // Whatever follows as sudo's next argument is never an option.
            for tail in [" -f", " --file=/etc/shadow", " +", " -", "  -f"] {
                assert!(!re.is_match(&format!("{time}{tail}")), "{time:?}{tail:?}");
            }
        }
        for piece in SYSTEMD_TIME.split(' ').skip(1) {
            assert!(
                piece.starts_with(|c: char| c.is_ascii_alphanumeric() || "?([".contains(c)),
                "{piece}"
            );
        }
        // Wider than the grammar where it is harmless (systemd refuses these itself).
        assert!(re.is_match("5min") && !crate::grammar::systemd_time("5min"));
    }

    fn option(
        short: char,
        long: &str,
        ty: ValueType,
        optional: Option<Optional>,
    ) -> crate::grammar::OptSpec {
        crate::grammar::OptSpec {
            short: Some(short),
            long: Some(long.to_string()),
            value: Some(ty),
            optional,
            repeat: false,
        }
    }

    #[test]
    fn optional_values_are_rendered_with_and_without_them() {
        let grammar = Grammar {
            options: vec![
                crate::grammar::OptSpec {
                    short: Some('k'),
                    long: Some("dmesg".into()),
                    value: None,
                    optional: None,
                    repeat: false,
                },
                option(
                    'b',
                    "boot",
                    ValueType::Int { min: -9, max: 9 },
                    Some(Optional::Lookahead),
                ),
                option(
                    'c',
                    "color",
                    ValueType::Enum(vec!["always".into()]),
                    Some(Optional::Attached),
                ),
                option('S', "since", ValueType::SystemdTime, None),
            ],
            ..Grammar::default()
        };
        let line = command_line(&["--no-pager".to_string()], &tokens(&grammar).unwrap()).unwrap();
        let re = regex::Regex::new(&line).unwrap();
        for ok in [
            "--no-pager",
            "--no-pager -k -b",
            "--no-pager -k -b -1",
            "--no-pager -kb -1",
            "--no-pager -kb-1",
            "--no-pager --boot=-1",
            "--no-pager --boot -1 -k",
            "--no-pager --color",
            "--no-pager --color=always",
            "--no-pager -kcalways",
            "--no-pager -k --since 1 hour ago",
            "--no-pager -S -1h 30min -k",
        ] {
            assert!(re.is_match(ok), "{ok}\n{line}");
        }
        for bad in [
            "--no-pager --color always",
            "--no-pager -c always",
            "--no-pager -b x",
            "--no-pager --since 1 hour ago -f",
            "--no-pager --since 1 hour ago --file=/etc/shadow",
            "--no-pager -k -f",
        ] {
            assert!(!re.is_match(bad), "{bad}\n{line}");
        }
    }

    /// Words an agent might send to a journalctl rule like the shipped one.
    const JOURNAL_WORDS: &[&str] = &[
        "-k",
        "-b",
        "-1",
        "0",
        "all",
        "--boot",
        "--boot=-1",
        "-kb",
        "-b-1",
        "-bk",
        "--since",
        "-S",
        "1 hour ago",
        "-1h",
        "today",
        "-1h 30min",
        "2024-01-01 10:00",
        "1 hour ago -f",
        "--until=now",
        "-g",
        "--grep",
        "Out of memory",
        "oom -f",
        "-f",
        "--",
        "x",
        "-n",
        "5",
        "-kn5",
        "--color",
        "--color=always",
        "always",
    ];

    proptest::proptest! {
        /// What the gateway's grammar accepts, the rendered sudoers expression accepts too, for
        /// every list of these words: `sudoers::fits` never refuses a rule's own forms.
        #[test]
        fn sudoers_accepts_what_the_grammar_accepts(
            picks in proptest::collection::vec(0..JOURNAL_WORDS.len(), 0..6)
        ) {
            let mut lines = option('n', "lines", ValueType::Int { min: 1, max: 100 }, None);
            lines.repeat = true;
            let grammar = Grammar {
                options: vec![
                    crate::grammar::OptSpec {
                        short: Some('k'),
                        long: Some("dmesg".into()),
                        value: None,
                        optional: None,
                        repeat: true,
                    },
                    lines,
                    option('b', "boot", ValueType::Int { min: -9, max: 9 }, Some(Optional::Lookahead)),
                    option('c', "color", ValueType::Enum(vec!["always".into()]), Some(Optional::Attached)),
                    option('S', "since", ValueType::SystemdTime, None),
                    option('U', "until", ValueType::SystemdTime, None),
                    option('g', "grep", ValueType::Pattern {
                        regex: regex::Regex::new("^(?:[A-Za-z0-9_.]([A-Za-z0-9_.-]| [A-Za-z0-9_]){0,63})$").unwrap(),
                        source: "[A-Za-z0-9_.]([A-Za-z0-9_.-]| [A-Za-z0-9_]){0,63}".into(),
                    }, None),
                ],
                ..Grammar::default()
            };
            let line = command_line(&["--no-pager".to_string()], &tokens(&grammar).unwrap()).unwrap();
            let re = regex::Regex::new(&line).unwrap();
            let args: Vec<String> = picks.iter().filter_map(|&i| JOURNAL_WORDS.get(i)).map(|w| w.to_string()).collect();
            if grammar.check(&args).is_ok() {
                let joined = format!("--no-pager {}", args.join(" "));
                proptest::prop_assert!(re.is_match(joined.trim_end()), "{args:?}");
            }
        }
    }

    #[test]
    fn key_values_share_alternatives_and_stay_one_argument() {
        let ty = ValueType::KeyValues(vec![
            ("addr".into(), ValueType::Exact("1.2.3.4".into())),
            ("laddr".into(), ValueType::Exact("1.2.3.4".into())),
            ("lport".into(), ValueType::Int { min: 1, max: 65535 }),
        ]);
        let v = value(&ty).unwrap();
        assert_eq!(
            v,
            r"((addr|laddr)=1\.2\.3\.4|lport=[0-9]{1,5})(,((addr|laddr)=1\.2\.3\.4|lport=[0-9]{1,5}))*"
        );
        let re = regex::Regex::new(&format!("^{v}$")).unwrap();
        assert!(re.is_match("addr=1.2.3.4,lport=22"));
        assert!(!re.is_match("addr=1.2.3.4 lport=22"));
        assert!(!re.is_match("addr=1.2.3.4,"));
    }

    #[test]
    fn the_length_is_measured_as_the_sudoers_file_spells_it() {
        assert_eq!(written_len("a{1,2}=b:c"), 13);
        // `^p( (ALT))*$` is the alternative and 9 more.
        let alts = vec!["x".repeat(MAX_REGEX - 9)];
        assert_eq!(command_line(&["p".into()], &alts).unwrap().len(), MAX_REGEX);
        let alts = vec![format!("{},,", "x".repeat(MAX_REGEX - 11))];
        assert!(
            command_line(&["p".into()], &alts)
                .unwrap_err()
                .contains("as written (escapes included)")
        );
    }
}
