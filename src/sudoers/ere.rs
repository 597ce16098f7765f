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

#[cfg(test)]
use crate::grammar::Optional;
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
        // `[^]x]`: after the space put in below, the `]` would close the class.
        if chars.peek() == Some(&']') {
            return no("a `]` first in a negated class");
        }
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
    let alts = value_alts(ty)?;
    Ok(match alts.as_slice() {
        [one] if !one.contains('|') => one.clone(),
        _ => format!("({})", alts.join("|")),
    })
}

/// A value's ERE as alternatives (each a whole ERE), so that a line too long for sudo can
/// be split between them.
fn value_alts(ty: &ValueType) -> Result<Vec<String>, String> {
    Ok(match ty {
        ValueType::Enum(words) => {
            for w in words {
                plain_word(w)?;
            }
            words.iter().map(|w| literal(w)).collect()
        }
        ValueType::Int { min, max } => int_alts(*min, *max),
        ValueType::Pattern(p) => vec![format!("({})", pattern(&p.source)?)],
        ValueType::Exact(word) => {
            plain_word(word)?;
            vec![literal(word)]
        }
        ValueType::Text => vec!["[^ -][^ ]*".to_string()],
        ValueType::SystemdTime => SYSTEMD_TIME_FORMS
            .iter()
            .map(|f| (*f).to_string())
            .collect(),
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
            vec![format!("{pair}(,{pair})*")]
        }
    })
}

/// `grammar::systemd_time` as ERE alternatives, each a subset of what it accepts (never
/// wider): the words, `@SECONDS`, a signed span or a span `ago` of one to three
/// `NUMBER[ ]UNIT` (systemd_time takes more), a date with an optional time, a time; with the
/// same ranges (months 01-12, days 01-31, hours 00-23, minutes and seconds 00-59) and an
/// optional ` UTC` after a date or time. After each space comes a digit, a unit, `ago`,
/// `UTC` or a time, never an option.
pub const SYSTEMD_TIME_FORMS: [&str; 6] = [
    "now|today|yesterday|tomorrow|@[0-9]{1,11}",
    "[-+][0-9]{1,6} ?(s|sec|seconds?|m|min|minutes?|h|hr|hours?|d|days?|w|weeks?|M|months?|y|years?)( ?[0-9]{1,6} ?(s|sec|seconds?|m|min|minutes?|h|hr|hours?|d|days?|w|weeks?|M|months?|y|years?)){0,2}",
    "[0-9]{1,6} ?(s|sec|seconds?|m|min|minutes?|h|hr|hours?|d|days?|w|weeks?|M|months?|y|years?)( ?[0-9]{1,6} ?(s|sec|seconds?|m|min|minutes?|h|hr|hours?|d|days?|w|weeks?|M|months?|y|years?)){0,2} ago",
    "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])( UTC)?",
    "[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[ T]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\\.[0-9]{1,6})?)?( UTC)?",
    "([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\\.[0-9]{1,6})?)?( UTC)?",
];

/// One sudoers argument pattern: a regular expression, or (where a rule takes only fixed
/// words) the literal line itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Regex(String),
    Literal(String),
}

/// One position of the canonical argument line (`Grammar::canonical`): `before`, one of
/// `alts` (none: `before` alone), `after`.
#[derive(Clone)]
struct Piece {
    before: String,
    alts: Vec<String>,
    after: String,
    /// Every text it can be, when that is a short list of words.
    finite: Option<Vec<String>>,
    required: bool,
    repeat: bool,
}

impl Piece {
    fn fixed(word: &str, required: bool) -> Self {
        Self {
            before: literal(word),
            alts: Vec::new(),
            after: String::new(),
            finite: Some(vec![word.to_string()]),
            required,
            repeat: false,
        }
    }

    fn regex(&self) -> String {
        match self.alts.as_slice() {
            [] => format!("{}{}", self.before, self.after),
            [one] if !one.contains('|') => format!("{}{one}{}", self.before, self.after),
            alts => format!("{}({}){}", self.before, alts.join("|"), self.after),
        }
    }
}

/// The words a value can be, when they are a short fixed list.
fn finite_values(ty: &ValueType) -> Option<Vec<String>> {
    match ty {
        ValueType::Enum(words) => Some(words.clone()),
        ValueType::Exact(word) => Some(vec![word.clone()]),
        _ => None,
    }
}

/// An option as the canonical form writes it: `--long`, `--long=VALUE` (`--long(=VALUE)?`
/// when the value may be left out), or `-s`, `-sVALUE` without a long name.
fn option_piece(opt: &crate::grammar::OptSpec, required: bool) -> Result<Piece, String> {
    let name = match (&opt.long, opt.short) {
        (Some(long), _) => format!("--{long}"),
        (None, Some(short)) => format!("-{short}"),
        (None, None) => return Err("an option without a name".to_string()),
    };
    let join = if opt.long.is_some() { "=" } else { "" };
    let mut piece = Piece::fixed(&name, required);
    piece.repeat = opt.repeat;
    if let Some(ty) = &opt.value {
        piece.alts = value_alts(ty)?;
        let words = finite_values(ty).map(|ws| {
            ws.iter()
                .map(|w| format!("{name}{join}{w}"))
                .collect::<Vec<_>>()
        });
        if opt.optional.is_some() {
            piece.before = format!("{}({}", literal(&name), literal(join));
            piece.after = ")?".to_string();
            piece.finite = words.map(|mut ws| {
                ws.insert(0, name.clone());
                ws
            });
            // `(=(a|b))?` needs its own group even for one alternative.
            if piece.alts.len() == 1 {
                piece.alts = vec![format!("({})", piece.alts.concat())];
            }
        } else {
            piece.before = format!("{}{}", literal(&name), literal(join));
            piece.finite = words;
        }
    }
    Ok(piece)
}

/// Lines with fewer literal forms than this are rendered as literal lines.
const MAX_LITERAL_LINES: usize = 64;

/// The sudoers lines for a program rule: one argument line per member of each
/// `exactly_one_of` group (that member required, the group's others absent), in the canonical
/// order (`Grammar::canonical`): forced arguments, the members, every other option at most
/// once unless it repeats, `--` at most once and only before operands, the fixed words, the
/// operands in order (with `args_after_choice`, the words and operands right after the
/// members, and no `--`). Where a line can hold only fixed words, its literal forms instead.
pub fn canonical_lines(grammar: &Grammar, forced: &[String]) -> Result<Vec<Line>, String> {
    lines_within(grammar, forced, MAX_REGEX, &mut false)
}

/// The same lines, none split for length: one expression where `canonical_lines` may have
/// several whose alternatives together are its own, so it admits exactly the lines they do.
/// The gateway matches these (one compile and one search per member, not one per split),
/// and sudo reads the split ones. Where a repeating piece was split, its halves never mix in
/// one split line (`A( A)*` and `B( B)*` admit no `a b`), so no one expression admits what
/// they do: then the split lines themselves.
pub fn unsplit_lines(grammar: &Grammar, forced: &[String]) -> Result<Vec<Line>, String> {
    let mut narrowed = false;
    let split = lines_within(grammar, forced, MAX_REGEX, &mut narrowed)?;
    if narrowed {
        return Ok(split);
    }
    let check = lines_within(grammar, forced, MAX_CHECK, &mut narrowed)?;
    Ok(if narrowed { split } else { check })
}

/// The longest expression the gateway's own check compiles: a longer one (an enum of
/// thousands of words) is split as sudo's lines are, at this length, so that each stays within
/// the regex engine's size limit.
const MAX_CHECK: usize = 32 * MAX_REGEX;

/// The fixed words, then the operands in order.
fn operand_pieces(grammar: &Grammar, pieces: &mut Vec<Piece>) -> Result<(), String> {
    for word in &grammar.words {
        pieces.push(Piece::fixed(word, true));
    }
    for arg in &grammar.args {
        let mut piece = Piece::fixed("", !arg.optional);
        piece.before = String::new();
        piece.alts = value_alts(&arg.value)?;
        piece.finite = finite_values(&arg.value);
        piece.repeat = arg.repeat;
        pieces.push(piece);
    }
    Ok(())
}

/// The lines, each split until it is at most `max` long; `narrowed` is set when a repeating
/// piece was split.
fn lines_within(
    grammar: &Grammar,
    forced: &[String],
    max: usize,
    narrowed: &mut bool,
) -> Result<Vec<Line>, String> {
    for word in forced.iter().chain(&grammar.words) {
        plain_word(word)?;
    }
    let grouped: Vec<usize> = grammar.exactly_one_of.iter().flatten().copied().collect();
    let mut members: Vec<Vec<usize>> = vec![Vec::new()];
    for group in &grammar.exactly_one_of {
        members = members
            .iter()
            .flat_map(|chosen| {
                group.iter().map(move |m| {
                    let mut next = chosen.clone();
                    next.push(*m);
                    next
                })
            })
            .collect();
    }
    let mut lines = Vec::new();
    for chosen in members {
        let mut pieces: Vec<Piece> = forced.iter().map(|w| Piece::fixed(w, true)).collect();
        for index in &chosen {
            let opt = grammar
                .options
                .get(*index)
                .ok_or("internal: a group names no option")?;
            pieces.push(option_piece(opt, true)?);
        }
        if grammar.args_after_choice {
            operand_pieces(grammar, &mut pieces)?;
        }
        for (i, opt) in grammar.options.iter().enumerate() {
            if !grouped.contains(&i) {
                pieces.push(option_piece(opt, false)?);
            }
        }
        if !grammar.args_after_choice {
            if !grammar.words.is_empty() || !grammar.args.is_empty() {
                pieces.push(Piece::fixed("--", false));
            }
            operand_pieces(grammar, &mut pieces)?;
        }
        if let Some(forms) = literal_forms(&pieces) {
            lines.extend(forms.into_iter().map(Line::Literal));
        } else {
            lines.extend(
                expressions(&pieces, 0, max, narrowed)?
                    .into_iter()
                    .map(Line::Regex),
            );
        }
    }
    lines.dedup();
    Ok(lines)
}

/// The expressions for one sequence of pieces: one per choice of the first piece present
/// (an expression cannot start with the space that separates the rest); none for the empty
/// line (`""` is rendered apart). A line longer than sudo reads is split in two between the
/// alternatives of its longest piece, which together admit the same lines; `max` is that
/// length. Splitting a repeating piece narrows what the lines admit (each repeats only its
/// own half); that sets `narrowed`.
fn expressions(
    pieces: &[Piece],
    depth: usize,
    max: usize,
    narrowed: &mut bool,
) -> Result<Vec<String>, String> {
    let first_required = pieces.iter().position(|p| p.required);
    let last_start = first_required.unwrap_or(pieces.len().saturating_sub(1));
    let mut out = Vec::new();
    for start in 0..=last_start {
        let Some(first) = pieces.get(start) else {
            break;
        };
        let mut line = format!("^{}", first.regex());
        if first.repeat {
            line.push_str(&format!("( {})*", first.regex()));
        }
        for piece in pieces.iter().skip(start + 1) {
            let one = format!(" {}", piece.regex());
            line.push_str(&match (piece.required, piece.repeat) {
                (true, false) => one,
                (true, true) => format!("{one}({one})*"),
                (false, false) => format!("({one})?"),
                (false, true) => format!("({one})*"),
            });
        }
        line.push('$');
        if written_len(&line) <= max {
            out.push(line);
            continue;
        }
        let longest = pieces
            .iter()
            .enumerate()
            .skip(start)
            .filter(|(_, p)| p.alts.len() > 1)
            .max_by_key(|(_, p)| p.regex().len())
            .map(|(i, _)| i);
        let Some(split) = longest.filter(|_| depth < 12) else {
            return Err(format!(
                "its sudoers expression would be {} characters as written (escapes included), and sudo reads at most about {MAX_REGEX}: split it into narrower rules",
                written_len(&line)
            ));
        };
        // Only lines that start at `start`: the pieces before it are absent.
        let mut tail: Vec<Piece> = pieces.iter().skip(start).cloned().collect();
        if let Some(first) = tail.first_mut() {
            first.required = true;
        }
        let at = split - start;
        let alts = tail.get(at).map(|p| p.alts.clone()).unwrap_or_default();
        if tail.get(at).is_some_and(|p| p.repeat) {
            *narrowed = true;
        }
        let (low, high) = alts.split_at(alts.len() / 2);
        for half in [low, high] {
            let mut part = tail.clone();
            if let Some(piece) = part.get_mut(at) {
                piece.alts = half.to_vec();
            }
            out.extend(expressions(&part, depth + 1, max, narrowed)?);
        }
    }
    Ok(out)
}

/// Every line the pieces can make, when each piece is a fixed word list, none repeats, and
/// they are few; `None` otherwise. The empty line is left out.
fn literal_forms(pieces: &[Piece]) -> Option<Vec<String>> {
    let mut forms: Vec<Vec<&str>> = vec![Vec::new()];
    for piece in pieces {
        let words = piece.finite.as_ref()?;
        if piece.repeat
            || words
                .iter()
                .any(|w| w.chars().any(|c| "*?[]\\,:= ".contains(c)))
        {
            return None;
        }
        let mut next = Vec::new();
        for form in &forms {
            if !piece.required {
                next.push(form.clone());
            }
            for word in words {
                let mut longer = form.clone();
                longer.push(word.as_str());
                next.push(longer);
            }
        }
        if next.len() > MAX_LITERAL_LINES {
            return None;
        }
        forms = next;
    }
    Some(
        forms
            .into_iter()
            .filter(|f| !f.is_empty())
            .map(|f| f.join(" "))
            .collect(),
    )
}

/// The decimal integers from `min` to `max`, exactly (no leading zeros, no `+`), as
/// alternatives.
fn int_alts(min: i64, max: i64) -> Vec<String> {
    let mut alts = Vec::new();
    if min < 0 {
        let hi = min.unsigned_abs();
        let lo = if max < 0 { max.unsigned_abs() } else { 1 };
        if lo <= hi {
            alts.extend(uint_range(lo, hi).into_iter().map(|a| format!("-{a}")));
        }
    }
    if max >= 0 {
        alts.extend(uint_range(min.max(0).unsigned_abs(), max.unsigned_abs()));
    }
    alts
}

/// `lo..=hi` as alternatives, one or more per number of digits; the lengths that are whole
/// (`10..=99`) share one: `[1-9][0-9]{0,3}` is 1 to 9999.
fn uint_range(lo: u64, hi: u64) -> Vec<String> {
    let mut out = Vec::new();
    let mut whole: Option<(u32, u32)> = None;
    let flush = |whole: &mut Option<(u32, u32)>, out: &mut Vec<String>| {
        if let Some((a, b)) = whole.take() {
            out.push(match (a, b) {
                (1, 1) => "[1-9]".to_string(),
                (a, b) if a == b => format!("[1-9]{}", digits_of(a - 1)),
                (a, b) => format!("[1-9][0-9]{{{},{}}}", a - 1, b - 1),
            });
        }
    };
    for digits in 1u32..=20 {
        let floor = if digits == 1 {
            0
        } else {
            10u64.saturating_pow(digits - 1)
        };
        let ceiling = 10u64.saturating_pow(digits).saturating_sub(1);
        let (a, b) = (lo.max(floor), hi.min(ceiling));
        if a <= b {
            if a == floor.max(1) && b == ceiling {
                whole = Some(whole.map_or((digits, digits), |(first, _)| (first, digits)));
            } else {
                flush(&mut whole, &mut out);
                out.extend(same_length(&a.to_string(), &b.to_string()));
            }
        }
        if ceiling >= hi {
            break;
        }
    }
    flush(&mut whole, &mut out);
    out
}

/// `[0-9]` repeated `n` times: ``, `[0-9]`, `[0-9]{n}`.
fn digits_of(n: u32) -> String {
    match n {
        0 => String::new(),
        1 => "[0-9]".to_string(),
        n => format!("[0-9]{{{n}}}"),
    }
}

/// The numbers from `lo` to `hi`, written with the same number of digits.
fn same_length(lo: &str, hi: &str) -> Vec<String> {
    let n = lo.len();
    if lo == hi {
        return vec![lo.to_string()];
    }
    let (Some(l0), Some(h0)) = (lo.bytes().next(), hi.bytes().next()) else {
        return Vec::new();
    };
    let (lr, hr) = (lo.get(1..).unwrap_or(""), hi.get(1..).unwrap_or(""));
    let digit = |d: u8| char::from(d).to_string();
    let rest = u32::try_from(n - 1).unwrap_or(u32::MAX);
    if l0 == h0 {
        return same_length(lr, hr)
            .into_iter()
            .map(|tail| format!("{}{tail}", digit(l0)))
            .collect();
    }
    let (low_whole, high_whole) = (lr.bytes().all(|b| b == b'0'), hr.bytes().all(|b| b == b'9'));
    let mut out = Vec::new();
    if !low_whole {
        out.extend(
            same_length(lr, &"9".repeat(n - 1))
                .into_iter()
                .map(|tail| format!("{}{tail}", digit(l0))),
        );
    }
    let first = if low_whole { l0 } else { l0 + 1 };
    let last = if high_whole { h0 } else { h0 - 1 };
    if first <= last {
        let class = if first == last {
            digit(first)
        } else {
            format!("[{}-{}]", digit(first), digit(last))
        };
        out.push(format!("{class}{}", digits_of(rest)));
    }
    if !high_whole {
        out.extend(
            same_length(&"0".repeat(n - 1), hr)
                .into_iter()
                .map(|tail| format!("{}{tail}", digit(h0))),
        );
    }
    out
}

/// `name` or `(a|b|c)`.
fn one_of(names: &[String]) -> String {
    match names {
        [one] => one.clone(),
        many => format!("({})", many.join("|")),
    }
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
    fn integer_ranges_are_exact() {
        for (min, max) in [
            (1, 10_000),
            (0, 7),
            (1, 65_535),
            (-5, 12),
            (-300, -20),
            (90, 1234),
        ] {
            let re = regex::Regex::new(&format!("^({})$", int_alts(min, max).join("|"))).unwrap();
            for n in -400i64..=70_000 {
                assert_eq!(
                    re.is_match(&n.to_string()),
                    (min..=max).contains(&n),
                    "{n} in {min}..={max}"
                );
            }
            assert!(!re.is_match("007") && !re.is_match("+5") && !re.is_match(""));
        }
    }

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
            "[ a]", "(?i)x", r"\s", r"[\d]", "^x", "x$", "[a-z&&b]", "[[a]]", "é", "[a", "[^]x]",
        ] {
            assert!(pattern(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_are_one_argument() {
        assert_eq!(
            value(&ValueType::Int { min: 1, max: 10000 }).as_deref(),
            Ok("([1-9][0-9]{0,3}|10000)")
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
        let re = regex::Regex::new(&format!("^({})$", SYSTEMD_TIME_FORMS.join("|"))).unwrap();
        for time in systemd_times() {
            assert!(crate::grammar::systemd_time(&time), "{time:?}");
            assert!(re.is_match(&time), "{time:?}");
            // Whatever follows as sudo's next argument is never an option.
            for tail in [" -f", " --file=/etc/shadow", " +", " -", "  -f"] {
                assert!(!re.is_match(&format!("{time}{tail}")), "{time:?}{tail:?}");
            }
        }
        for form in SYSTEMD_TIME_FORMS {
            for piece in form.split(' ').skip(1) {
                assert!(
                    piece.starts_with(|c: char| c.is_ascii_alphanumeric() || "?([".contains(c)),
                    "{piece}"
                );
            }
        }
        // Never wider than the grammar: a bare span, a signed span `ago`, a month 13.
        for wider in [
            "5min",
            "-1h ago",
            "2024-13-01",
            "24:00",
            "1h 2m 3s 4min ago",
        ] {
            assert!(!re.is_match(wider), "{wider}");
        }
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
        let forced = ["--no-pager".to_string()];
        let lines = canonical_lines(&grammar, &forced).unwrap();
        let admits = |joined: &str| lines.iter().any(|l| line_admits(l, joined));
        for ok in [
            "",
            "-k -b",
            "-k -b -1",
            "-kb -1",
            "-kb-1",
            "--boot=-1",
            "--boot -1 -k",
            "--color",
            "--color=always",
            "-kcalways",
            "-k --since '1 hour ago'",
            "-S '-1h 30min' -k",
        ] {
            let args: Vec<String> = crate::tokenize::tokenize(ok).unwrap_or_default();
            let canonical = grammar.canonical(&args).unwrap();
            let joined = forced
                .iter()
                .chain(&canonical)
                .cloned()
                .collect::<Vec<_>>()
                .join(" ");
            assert!(admits(&joined), "{ok} as {joined}\n{lines:?}");
        }
        for bad in [
            "--no-pager --color always",
            "--no-pager -c always",
            "--no-pager -k -b",
            "--no-pager --boot=x",
            "--no-pager --since=1 hour ago -f",
            "--no-pager --since=1 hour ago --file=/etc/shadow",
            "--no-pager --dmesg -f",
            "--no-pager --dmesg --dmesg",
            "--no-pager -- --dmesg",
        ] {
            assert!(!admits(bad), "{bad}\n{lines:?}");
        }
    }

    /// iptables reads a chain only right after `-L`/`-S`: with `args_after_choice` the
    /// canonical form puts it there, and the lines admit it there and nowhere else.
    #[test]
    fn with_args_after_choice_the_chain_follows_the_member() {
        let flag = |short: char, long: &str| crate::grammar::OptSpec {
            short: Some(short),
            long: Some(long.into()),
            value: None,
            optional: None,
            repeat: false,
        };
        let grammar = Grammar {
            options: vec![
                flag('L', "list"),
                flag('S', "list-rules"),
                flag('n', "numeric"),
                option('t', "table", ValueType::Enum(vec!["nat".into()]), None),
            ],
            args: vec![crate::grammar::ArgSpec {
                name: "chain".into(),
                value: ValueType::Pattern(crate::grammar::Pattern::new("[A-Z]{1,12}").unwrap()),
                optional: true,
                repeat: false,
            }],
            exactly_one_of: vec![vec![0, 1]],
            args_after_choice: true,
            ..Grammar::default()
        };
        let lines = canonical_lines(&grammar, &[]).unwrap();
        let admits = |joined: &str| lines.iter().any(|l| line_admits(l, joined));
        for (given, form) in [
            ("-nL INPUT", "--list INPUT --numeric"),
            ("-L -n INPUT", "--list INPUT --numeric"),
            (
                "-t nat -S POSTROUTING",
                "--list-rules POSTROUTING --table=nat",
            ),
            ("-L -n", "--list --numeric"),
            ("-S", "--list-rules"),
        ] {
            let args = crate::tokenize::tokenize(given).unwrap();
            let canonical = grammar.canonical(&args).unwrap().join(" ");
            assert_eq!(canonical, form, "{given}");
            assert!(admits(&canonical), "{form}\n{lines:?}");
        }
        for bad in [
            "--list --numeric INPUT",
            "--list -- INPUT",
            "--numeric --list INPUT",
        ] {
            assert!(!admits(bad), "{bad}\n{lines:?}");
        }
        // Without it, the operands go last, after `--` where one starts with `-`.
        let at_end = Grammar {
            args_after_choice: false,
            ..grammar
        };
        let args = crate::tokenize::tokenize("-nL INPUT").unwrap();
        assert_eq!(
            at_end.canonical(&args).unwrap().join(" "),
            "--list --numeric INPUT"
        );
    }

    /// Whether one rendered line admits the joined argument line, as sudo matches it.
    fn line_admits(line: &Line, joined: &str) -> bool {
        match line {
            Line::Literal(text) => text == joined,
            Line::Regex(source) => regex::Regex::new(source).unwrap().is_match(joined),
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
        /// What the gateway's grammar accepts, in its canonical form, the rendered sudoers lines
        /// admit (`sudoers::fits` never refuses a rule's own forms), and what they admit the
        /// grammar accepts.
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
                    option('g', "grep", ValueType::Pattern(crate::grammar::Pattern::new("[A-Za-z0-9_.]([A-Za-z0-9_.-]| [A-Za-z0-9_]){0,63}").unwrap()), None),
                ],
                ..Grammar::default()
            };
            let forced = ["--no-pager".to_string()];
            let lines = canonical_lines(&grammar, &forced).unwrap();
            let admits = |joined: &str| lines.iter().any(|l| line_admits(l, joined));
            let args: Vec<String> = picks.iter().filter_map(|&i| JOURNAL_WORDS.get(i)).map(|w| w.to_string()).collect();
            // Whatever the grammar accepts, its canonical form is admitted.
            if let Ok(canonical) = grammar.canonical(&args) {
                let joined = forced.iter().chain(&canonical).cloned().collect::<Vec<_>>().join(" ");
                proptest::prop_assert!(admits(&joined), "{args:?} as {joined}");
            }
            // Whatever the lines admit, the grammar accepts (the words have no spaces that
            // the join could move between arguments).
            let joined = forced.iter().chain(&args).cloned().collect::<Vec<_>>().join(" ");
            if admits(&joined) && args.iter().all(|a| !a.contains(' ')) {
                proptest::prop_assert!(grammar.check(&args).is_ok(), "{args:?}");
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
        let port = "([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])";
        assert_eq!(
            v,
            format!(
                r"(((addr|laddr)=1\.2\.3\.4|lport={port})(,((addr|laddr)=1\.2\.3\.4|lport={port}))*)"
            )
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

    #[test]
    fn the_gateways_check_splits_only_what_no_expression_can_hold() {
        let words = |n: usize| {
            (0..n)
                .map(|i| format!("unit-{i:05}.service"))
                .collect::<Vec<_>>()
        };
        let grammar = |n: usize| Grammar {
            words: vec!["status".into()],
            args: vec![crate::grammar::ArgSpec {
                name: "unit".into(),
                value: ValueType::Enum(words(n)),
                optional: false,
                repeat: false,
            }],
            ..Grammar::default()
        };
        // A few hundred words: one expression for each form (with and without `--`) for the
        // gateway, several lines each for sudo.
        let small = grammar(300);
        assert_eq!(unsplit_lines(&small, &[]).unwrap().len(), 2);
        assert!(canonical_lines(&small, &[]).unwrap().len() > 4);
        // Four thousand (about 90 000 characters a form): split for the gateway too, each
        // piece within MAX_CHECK, and every one compiles.
        let large = grammar(4000);
        let check = unsplit_lines(&large, &[]).unwrap();
        assert!(check.len() > 2, "{}", check.len());
        for line in &check {
            let Line::Regex(source) = line else {
                panic!("{line:?}")
            };
            assert!(source.len() <= MAX_CHECK);
            assert!(regex::Regex::new(source).is_ok());
        }
        let args = ["status".to_string(), "unit-03999.service".to_string()];
        let lines = crate::sudoers::program_check(&large, &[]).unwrap();
        assert!(crate::sudoers::accepts(&lines, &args));
    }
}
