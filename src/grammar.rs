//! Option grammar for programs declared in the rules file, parsed with GNU getopt semantics:
//! bundled short flags (`-nvL`), attached short values (`-n100`), `--long value` and
//! `--long=value`, options anywhere among the operands, `--` ending the options.
//!
//! Long options must be spelled in full: getopt_long would expand `--cursor-f` to
//! `--cursor-file`, so an abbreviation is an unknown option here, never a guess.
//!
//! An option's value may be optional (`OptSpec::optional`): getopt's `b::` takes only an
//! attached value (`-b-1`, `--boot=-1`); journalctl's `-b` also takes the next word when it
//! parses as a boot descriptor (`-b -1`), which the scanner does when the word is of the
//! option's type (`optscan::Optional::Lookahead`).

use std::sync::OnceLock;

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};

pub use crate::optscan::Optional;
use crate::optscan::{self, Item, Spelling, Stop, Style};

/// The largest compiled form a rules file's pattern may take (regex's `size_limit`).
const PATTERN_SIZE_LIMIT: usize = 64 * 1024;

/// An anchored regular expression a whole value must match: the source as the rules wrote
/// it (kept for messages and for the sudoers line), and the expression compiled on first use.
/// A policy compiled from the rules file has it compiled already (compiling is how the
/// source is checked); one loaded from its compiled record (`policy::record`) compiles only
/// the patterns a decision reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pattern {
    pub source: String,
    #[serde(skip)]
    compiled: OnceLock<Option<Regex>>,
}

impl Pattern {
    /// Compile `source`, anchored at both ends, or say why it is no expression.
    pub fn new(source: &str) -> Result<Self, regex::Error> {
        let regex = Self::build(source)?;
        Ok(Self {
            source: source.to_string(),
            compiled: OnceLock::from(Some(regex)),
        })
    }

    fn build(source: &str) -> Result<Regex, regex::Error> {
        RegexBuilder::new(&format!("^(?:{source})$"))
            .size_limit(PATTERN_SIZE_LIMIT)
            .build()
    }

    /// Does the whole of `value` match? A source that does not compile matches nothing: it
    /// compiled when the record was written, by the same build, so that is a broken record,
    /// and refusing is the safe reading.
    pub fn is_match(&self, value: &str) -> bool {
        self.compiled
            .get_or_init(|| Self::build(&self.source).ok())
            .as_ref()
            .is_some_and(|re| re.is_match(value))
    }
}

/// A typed value for an option or an operand.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ValueType {
    /// One of a fixed set of words.
    Enum(Vec<String>),
    /// A decimal integer within bounds (inclusive).
    Int { min: i64, max: i64 },
    /// Matches an anchored regular expression.
    Pattern(Pattern),
    /// Exactly this string.
    Exact(String),
    /// Any text that does not start with `-`.
    Text,
    /// A timestamp as systemd reads one (systemd.time(7), `journalctl --since`), in the
    /// forms `systemd_time` accepts.
    SystemdTime,
    /// Comma-separated `KEY=VALUE` pairs, each key one of these and at most once, each value
    /// of its key's type: `sshd -C user=alice,addr=192.0.2.1`.
    KeyValues(Vec<(String, ValueType)>),
}

impl ValueType {
    /// Why `value` is not of this type, or `None` when it is.
    pub fn mismatch(&self, value: &str) -> Option<String> {
        match self {
            Self::Enum(words) if !words.iter().any(|w| w == value) => {
                Some(format!("must be one of: {}", words.join(", ")))
            }
            Self::Int { min, max } => match parse_decimal(value) {
                Some(n) if (*min..=*max).contains(&n) => None,
                _ => Some(format!("must be a whole number from {min} to {max}")),
            },
            Self::Pattern(p) if !p.is_match(value) => Some(format!("must match {}", p.source)),
            Self::Exact(want) if want != value => Some(format!("must be exactly {want}")),
            Self::Text if value.starts_with('-') || value.is_empty() => {
                Some("must be non-empty text that does not start with `-`".to_string())
            }
            Self::SystemdTime if !systemd_time(value) => Some(SYSTEMD_TIME_FORMS.to_string()),
            Self::KeyValues(keys) => key_values_mismatch(keys, value),
            _ => None,
        }
    }

    /// A short placeholder for usage lines.
    pub fn placeholder(&self, name: &str) -> String {
        match self {
            Self::Enum(words) => words.join("|"),
            Self::Exact(want) => want.clone(),
            Self::Int { min, max } => format!("{}({min}..{max})", name.to_uppercase()),
            Self::Pattern(_) | Self::Text | Self::SystemdTime => name.to_uppercase(),
            Self::KeyValues(keys) => {
                let names: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
                format!("({})=VALUE,...", names.join("|"))
            }
        }
    }
}

/// Why `value` is not `KEY=VALUE[,KEY=VALUE...]` over `keys`, or `None` when it is.
fn key_values_mismatch(keys: &[(String, ValueType)], value: &str) -> Option<String> {
    let names: Vec<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
    let form = || {
        format!(
            "must be KEY=VALUE pairs separated by commas, KEY one of: {}",
            names.join(", ")
        )
    };
    let mut seen: Vec<&str> = Vec::new();
    for item in value.split(',') {
        let Some((key, v)) = item.split_once('=') else {
            return Some(format!("{}; `{item}` is not KEY=VALUE", form()));
        };
        let Some((_, ty)) = keys.iter().find(|(k, _)| k == key) else {
            return Some(format!("{}; not `{key}`", form()));
        };
        if seen.contains(&key) {
            return Some(format!("gives `{key}` twice"));
        }
        seen.push(key);
        if let Some(why) = ty.mismatch(v) {
            return Some(format!("has `{key}={v}`, whose value {why}"));
        }
    }
    None
}

const SYSTEMD_TIME_FORMS: &str = "must be a time as systemd reads it: now, today, yesterday, tomorrow, @UNIX_SECONDS, -1h, +5min, '1 hour ago', '2 days ago', 2024-01-01, '2024-01-01 10:00[:00]', 2024-01-01T10:00:00, 10:00 (optionally followed by ' UTC')";

/// The units systemd's `parse_sec` reads (`extract_multiplier`), as this grammar accepts
/// them: seconds and up, ASCII only. Each one, followed by the end, a space or a digit, is
/// read by systemd as the unit it is here (its table is matched by prefix, longest first).
pub const SYSTEMD_TIME_UNITS: &[&str] = &[
    "seconds", "second", "sec", "s", "minutes", "minute", "min", "m", "hours", "hour", "hr", "h",
    "days", "day", "d", "weeks", "week", "w", "months", "month", "M", "years", "year", "y",
];

/// The longest `systemd_time` value accepted.
pub const SYSTEMD_TIME_MAX: usize = 64;

/// A strict subset of what systemd's `parse_timestamp` accepts, each form read by systemd as
/// it reads here: `now`, `today`, `yesterday`, `tomorrow`; `@SECONDS`; `+SPAN`, `-SPAN` and
/// `SPAN ago`, a span being `5min`, `1 hour`, `1h 30min`; `YYYY-MM-DD`, with ` HH:MM`,
/// ` HH:MM:SS` or ` HH:MM:SS.FFFFFF` (or `T` for the space), or the time alone; a date or
/// time may end in ` UTC`. No time zone names (systemd would open one under
/// /usr/share/zoneinfo), no weekdays, no two-digit years; single spaces only.
pub fn systemd_time(value: &str) -> bool {
    if value.len() > SYSTEMD_TIME_MAX {
        return false;
    }
    if matches!(value, "now" | "today" | "yesterday" | "tomorrow") {
        return true;
    }
    if let Some(seconds) = value.strip_prefix('@') {
        return digits(seconds, 1, 11);
    }
    if let Some(span) = value.strip_prefix(['+', '-']) {
        return time_span(span);
    }
    if let Some(span) = value.strip_suffix(" ago") {
        return time_span(span);
    }
    let stamp = value.strip_suffix(" UTC").unwrap_or(value);
    match stamp.split_once([' ', 'T']) {
        Some((date, time)) => calendar_date(date) && clock_time(time),
        None => calendar_date(stamp) || clock_time(stamp),
    }
}

/// `text` is `min..=max` ASCII digits.
fn digits(text: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit())
}

/// Two digits from 0 to `max`.
fn two_digits(text: &str, max: u8) -> bool {
    digits(text, 2, 2) && text.parse::<u8>().is_ok_and(|n| n <= max)
}

/// `YYYY-MM-DD`.
fn calendar_date(text: &str) -> bool {
    let mut parts = text.split('-');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(y), Some(m), Some(d), None) => {
            digits(y, 4, 4) && two_digits(m, 12) && m != "00" && two_digits(d, 31) && d != "00"
        }
        _ => false,
    }
}

/// `HH:MM`, `HH:MM:SS` or `HH:MM:SS.F` (1 to 6 fraction digits).
fn clock_time(text: &str) -> bool {
    let (hms, fraction) = match text.split_once('.') {
        Some((hms, f)) => (hms, Some(f)),
        None => (text, None),
    };
    let parts: Vec<&str> = hms.split(':').collect();
    let fields_ok = match parts.as_slice() {
        [h, m] => fraction.is_none() && two_digits(h, 23) && two_digits(m, 59),
        [h, m, s] => two_digits(h, 23) && two_digits(m, 59) && two_digits(s, 59),
        _ => false,
    };
    fields_ok && fraction.is_none_or(|f| digits(f, 1, 6))
}

/// One or more `NUMBER[ ]UNIT`, each after the first optionally after one space:
/// `5min`, `1 hour`, `1h 30min`, `1h30min`.
fn time_span(text: &str) -> bool {
    let mut rest = text;
    let mut first = true;
    loop {
        if !first {
            if rest.is_empty() {
                return true;
            }
            rest = rest.strip_prefix(' ').unwrap_or(rest);
        }
        first = false;
        let number = rest.bytes().take_while(u8::is_ascii_digit).count();
        if !(1..=6).contains(&number) {
            return false;
        }
        rest = rest.get(number..).unwrap_or_default();
        rest = rest.strip_prefix(' ').unwrap_or(rest);
        let unit = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (word, after) = rest.split_at(unit);
        if !SYSTEMD_TIME_UNITS.contains(&word) {
            return false;
        }
        rest = after;
    }
}

/// Plain decimal only: no sign games, no leading `+`, no hex, no whitespace, and no leading
/// zero (tools that parse with base 0, as systemd's `safe_atou` does, read `010` as 8).
fn parse_decimal(value: &str) -> Option<i64> {
    let digits = value.strip_prefix('-').unwrap_or(value);
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if (digits.len() > 1 && digits.starts_with('0')) || value == "-0" {
        return None;
    }
    value.parse().ok()
}

/// One option a program accepts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OptSpec {
    pub short: Option<char>,
    pub long: Option<String>,
    pub value: Option<ValueType>,
    /// The value may be left out, and how the tool then finds it (only with `value`).
    pub optional: Option<Optional>,
    pub repeat: bool,
}

impl OptSpec {
    /// The option as it is written in messages: `--long`, or `-s` when it has no long name.
    pub fn display(&self) -> String {
        match (&self.long, self.short) {
            (Some(long), _) => format!("--{long}"),
            (None, Some(short)) => format!("-{short}"),
            (None, None) => String::new(),
        }
    }

    /// Every spelling of this option, for usage lines: `-t|--table`.
    pub fn spellings(&self) -> String {
        let mut parts = Vec::new();
        if let Some(short) = self.short {
            parts.push(format!("-{short}"));
        }
        if let Some(long) = &self.long {
            parts.push(format!("--{long}"));
        }
        parts.join("|")
    }

    /// True when `name` (a long name, or a single short letter) names this option.
    pub fn is_named(&self, name: &str) -> bool {
        self.long.as_deref() == Some(name)
            || self
                .short
                .is_some_and(|s| name.chars().eq(std::iter::once(s)))
    }
}

/// One operand position.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArgSpec {
    pub name: String,
    pub value: ValueType,
    pub optional: bool,
    pub repeat: bool,
}

/// What an argument list means: each option's values in order (`None` for a flag), then the
/// operands.
type Meaning = (Vec<Vec<Option<String>>>, Vec<String>);

/// The whole grammar of one declared form of a program.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Grammar {
    /// Fixed leading operands (`status` in `fail2ban-client status sshd`).
    pub words: Vec<String>,
    pub options: Vec<OptSpec>,
    pub args: Vec<ArgSpec>,
    /// Groups of option indexes of which exactly one must be given.
    pub exactly_one_of: Vec<Vec<usize>>,
    /// The canonical form writes the words and operands right after the `exactly_one_of`
    /// member, not at the end: iptables reads a chain only as the word right after `-L` or
    /// `-S` (`iptables --list --numeric INPUT` is "Bad argument `INPUT'").
    #[serde(default)]
    pub args_after_choice: bool,
}

/// Why an argument list does not fit a grammar. `token` is what the agent wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub message: String,
    /// How many leading words fitted before the failure: used to pick the closest form.
    pub progress: usize,
}

impl Mismatch {
    fn new(progress: usize, message: String) -> Self {
        Self { message, progress }
    }
}

/// The scanner reads a grammar's options by their index.
impl optscan::Table for &Grammar {
    type Opt = usize;

    fn long(&self, name: &str) -> Option<usize> {
        self.options
            .iter()
            .position(|o| o.long.as_deref() == Some(name))
    }

    fn short(&self, letter: char) -> Option<usize> {
        self.options.iter().position(|o| o.short == Some(letter))
    }

    fn takes_value(&self, which: usize) -> bool {
        self.options.get(which).is_some_and(|o| o.value.is_some())
    }

    fn optional_value(&self, which: usize) -> Option<Optional> {
        self.options
            .get(which)
            .filter(|o| o.value.is_some())
            .and_then(|o| o.optional)
    }

    fn is_value(&self, which: usize, word: &str) -> bool {
        self.options
            .get(which)
            .and_then(|o| o.value.as_ref())
            .is_some_and(|ty| ty.mismatch(word).is_none())
    }
}

impl Grammar {
    /// Check `args` (everything after the program name) against this grammar.
    pub fn check(&self, args: &[String]) -> Result<(), Mismatch> {
        let mut counts = vec![0usize; self.options.len()];
        let mut operands: Vec<&str> = Vec::new();
        for item in optscan::scan(self, Style::Getopt, args) {
            let (index, which, value) = match item {
                Ok((_, Item::Operand(word))) => {
                    operands.push(word);
                    continue;
                }
                Ok((index, Item::Opt { opt, value, .. })) => (index, opt, value),
                Err((index, Stop::Unknown(Spelling::Long(name)))) => {
                    return Err(Mismatch::new(
                        index,
                        format!(
                            "option `--{name}` is not allowed (long options are spelled in full)"
                        ),
                    ));
                }
                Err((index, Stop::Unknown(written))) => {
                    return Err(Mismatch::new(
                        index,
                        format!("option `{written}` is not allowed"),
                    ));
                }
                Err((index, Stop::MissingValue(_, which))) => {
                    return Err(missing_value(index, self.option(which)?));
                }
            };
            let spec = self.option(which)?;
            match (&spec.value, value) {
                (None, Some(_)) => {
                    return Err(Mismatch::new(
                        index,
                        format!("option `{}` takes no value", spec.display()),
                    ));
                }
                (Some(ty), Some(value)) => check_value(index, spec, ty, value)?,
                _ => {}
            }
            // After the value, so the reason names a wrong value (`-u docker`) first.
            bump(&mut counts, which, spec, index)?;
        }
        self.check_groups(&counts, args.len())?;
        self.check_operands(&operands, args.len())
    }

    /// The order the canonical form writes options in: one member of each `exactly_one_of`
    /// group (group order), then every other option in declaration order. `sudoers::ere`
    /// renders the same order.
    pub fn canonical_order(&self) -> Vec<usize> {
        let grouped: Vec<usize> = self.exactly_one_of.iter().flatten().copied().collect();
        let mut order = grouped.clone();
        order.extend((0..self.options.len()).filter(|i| !grouped.contains(i)));
        order
    }

    /// What an accepted argument list means: each option's values in the order given (a
    /// flag's are `None`), and the operands.
    fn meaning(&self, args: &[String]) -> Option<Meaning> {
        let mut given: Vec<Vec<Option<String>>> = vec![Vec::new(); self.options.len()];
        let mut operands = Vec::new();
        for item in optscan::scan(self, Style::Getopt, args) {
            match item.ok()? {
                (_, Item::Operand(word)) => operands.push(word.to_string()),
                (_, Item::Opt { opt, value, .. }) => {
                    given.get_mut(opt)?.push(value.map(String::from));
                }
            }
        }
        Some((given, operands))
    }

    /// An accepted argument list in the one spelling sudoers pins (`render sudoers`): each
    /// option as `--long[=VALUE]` (or `-sVALUE` without a long name) in `canonical_order`,
    /// then `--` when an operand starts with `-`, then the operands (with
    /// `args_after_choice`, the operands right after the group's member instead, and
    /// none may start with `-`). It means what `args`
    /// means: the form is read back and compared, and a list it cannot carry is refused.
    pub fn canonical(&self, args: &[String]) -> Result<Vec<String>, Mismatch> {
        self.check(args)?;
        let unclear = |why: &str| Mismatch::new(args.len(), why.to_string());
        let meaning = self
            .meaning(args)
            .ok_or_else(|| unclear("the arguments could not be read again"))?;
        let (given, operands) = &meaning;
        let mut out = Vec::new();
        if self.args_after_choice && operands.iter().any(|o| o.starts_with('-')) {
            return Err(unclear(
                "an operand starting with `-` cannot follow the option it belongs to",
            ));
        }
        let chosen = self.exactly_one_of.iter().flatten().count();
        let order = self.canonical_order();
        for n in 0..=order.len() {
            if self.args_after_choice && n == chosen {
                out.extend(operands.iter().cloned());
            }
            let Some(&i) = order.get(n) else { break };
            let (Some(spec), Some(values)) = (self.options.get(i), given.get(i)) else {
                continue;
            };
            for value in values {
                out.push(match (&spec.long, spec.short, value.as_deref()) {
                    (Some(long), _, None) => format!("--{long}"),
                    (Some(long), _, Some(v)) => format!("--{long}={v}"),
                    (None, Some(short), None) => format!("-{short}"),
                    (None, Some(_), Some("")) => {
                        return Err(unclear(
                            "an empty value of a short option cannot be passed through sudo",
                        ));
                    }
                    (None, Some(short), Some(v)) => format!("-{short}{v}"),
                    (None, None, _) => return Err(unclear("an option without a name")),
                });
            }
        }
        if !self.args_after_choice {
            if operands.iter().any(|o| o.starts_with('-')) {
                out.push("--".to_string());
            }
            out.extend(operands.iter().cloned());
        }
        if self.check(&out).is_err() || self.meaning(&out).as_ref() != Some(&meaning) {
            return Err(unclear(
                "these arguments cannot be written in the one form sudo's rules allow",
            ));
        }
        Ok(out)
    }

    fn option(&self, which: usize) -> Result<&OptSpec, Mismatch> {
        self.options
            .get(which)
            .ok_or_else(|| Mismatch::new(0, "internal: option index out of range".to_string()))
    }

    fn check_groups(&self, counts: &[usize], progress: usize) -> Result<(), Mismatch> {
        for group in &self.exactly_one_of {
            let given: usize = group
                .iter()
                .map(|&i| counts.get(i).copied().unwrap_or(0).min(1))
                .sum();
            if given != 1 {
                let names: Vec<String> = group
                    .iter()
                    .filter_map(|&i| self.options.get(i))
                    .map(OptSpec::spellings)
                    .collect();
                return Err(Mismatch::new(
                    progress,
                    format!("exactly one of {} is required", names.join(", ")),
                ));
            }
        }
        Ok(())
    }

    fn check_operands(&self, operands: &[&str], progress: usize) -> Result<(), Mismatch> {
        let mut rest = operands.iter();
        for word in &self.words {
            match rest.next() {
                Some(got) if got == word => {}
                Some(got) => {
                    return Err(Mismatch::new(
                        0,
                        format!("expected `{word}` here, not `{got}`"),
                    ));
                }
                None => return Err(Mismatch::new(0, format!("expected `{word}`"))),
            }
        }
        let mut rest = rest.peekable();
        for spec in &self.args {
            let mut seen = 0usize;
            while let Some(value) = rest.peek() {
                if let Some(why) = spec.value.mismatch(value) {
                    return Err(Mismatch::new(
                        progress,
                        format!("{} `{value}` {why}", spec.name.to_uppercase()),
                    ));
                }
                rest.next();
                seen += 1;
                if !spec.repeat {
                    break;
                }
            }
            if seen == 0 && !spec.optional {
                return Err(Mismatch::new(
                    progress,
                    format!("{} is required", spec.name.to_uppercase()),
                ));
            }
        }
        if let Some(extra) = rest.next() {
            return Err(Mismatch::new(
                progress,
                format!("unexpected extra argument `{extra}`"),
            ));
        }
        Ok(())
    }

    /// A usage line for `list`: `(-L|-S) [-n] [-t filter|nat] [CHAIN]`.
    pub fn usage(&self) -> String {
        let mut parts: Vec<String> = self.words.clone();
        let grouped: Vec<usize> = self.exactly_one_of.iter().flatten().copied().collect();
        for group in &self.exactly_one_of {
            let alts: Vec<String> = group
                .iter()
                .filter_map(|&i| self.options.get(i))
                .map(|o| usage_of(o, false))
                .collect();
            parts.push(format!("({})", alts.join(" | ")));
        }
        for (i, opt) in self.options.iter().enumerate() {
            if !grouped.contains(&i) {
                parts.push(usage_of(opt, true));
            }
        }
        for arg in &self.args {
            let mut text = arg.value.placeholder(&arg.name);
            if arg.repeat {
                text.push_str("...");
            }
            parts.push(if arg.optional {
                format!("[{text}]")
            } else {
                text
            });
        }
        parts.join(" ")
    }
}

fn usage_of(opt: &OptSpec, bracket: bool) -> String {
    let mut text = opt.spellings();
    if let Some(ty) = &opt.value {
        let value = ty.placeholder(opt.long.as_deref().unwrap_or("value"));
        match opt.optional {
            None => text.push_str(&format!(" {value}")),
            Some(Optional::Lookahead) => text.push_str(&format!(" [{value}]")),
            Some(Optional::Attached) => text.push_str(&format!("[={value}]")),
        }
    }
    if bracket { format!("[{text}]") } else { text }
}

fn bump(counts: &mut [usize], which: usize, spec: &OptSpec, index: usize) -> Result<(), Mismatch> {
    if let Some(count) = counts.get_mut(which) {
        *count += 1;
        if *count > 1 && !spec.repeat {
            return Err(Mismatch::new(
                index,
                format!("option `{}` may be given only once", spec.display()),
            ));
        }
    }
    Ok(())
}

fn missing_value(index: usize, spec: &OptSpec) -> Mismatch {
    Mismatch::new(index, format!("option `{}` needs a value", spec.display()))
}

fn check_value(index: usize, spec: &OptSpec, ty: &ValueType, value: &str) -> Result<(), Mismatch> {
    match ty.mismatch(value) {
        None => Ok(()),
        Some(why) => Err(Mismatch::new(
            index,
            format!("value `{value}` of `{}` {why}", spec.display()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(short: char, long: &str) -> OptSpec {
        OptSpec {
            short: Some(short),
            long: Some(long.to_string()),
            value: None,
            optional: None,
            repeat: false,
        }
    }

    fn iptables() -> Grammar {
        let mut verbose = flag('v', "verbose");
        verbose.repeat = true;
        let mut table = flag('t', "table");
        table.value = Some(ValueType::Enum(vec!["filter".into(), "nat".into()]));
        let mut wait = flag('w', "wait");
        wait.value = Some(ValueType::Int { min: 0, max: 10 });
        Grammar {
            words: vec![],
            options: vec![
                flag('L', "list"),
                flag('S', "list-rules"),
                flag('n', "numeric"),
                verbose,
                table,
                wait,
            ],
            args: vec![ArgSpec {
                name: "chain".into(),
                value: ValueType::Pattern(Pattern::new("[A-Za-z0-9_-]{1,28}").unwrap()),
                optional: true,
                repeat: false,
            }],
            exactly_one_of: vec![vec![0, 1]],
            args_after_choice: true,
        }
    }

    fn words(s: &str) -> Vec<String> {
        s.split(' ')
            .filter(|w| !w.is_empty())
            .map(String::from)
            .collect()
    }

    #[test]
    fn integers_have_no_leading_zero() {
        let ty = ValueType::Int { min: -20, max: 20 };
        for ok in ["0", "7", "10", "-7", "20"] {
            assert_eq!(ty.mismatch(ok), None, "{ok}");
        }
        // `010` is 8 to a tool that parses with base 0 (systemd's safe_atou).
        for bad in ["010", "007", "00", "-0", "-07", "+7", "0x7", " 7", "21", ""] {
            assert!(ty.mismatch(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn accepts_getopt_spellings() {
        let g = iptables();
        for ok in [
            "-L",
            "-L -n",
            "-nvL",
            "-L INPUT -n -v",
            "-t nat -L -n -v",
            "-tnat -L",
            "--table=nat -L",
            "--table nat --list",
            "-S INPUT",
            "-L -vv",
            "-w5 -L",
            "-L -- INPUT",
        ] {
            assert_eq!(g.check(&words(ok)), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_what_getopt_would_read_differently() {
        let g = iptables();
        let table = [
            ("-F", "option `-F` is not allowed"),
            ("-L -Z", "option `-Z` is not allowed"),
            (
                "--fl",
                "option `--fl` is not allowed (long options are spelled in full)",
            ),
            (
                "--li",
                "option `--li` is not allowed (long options are spelled in full)",
            ),
            (
                "-t security -L",
                "value `security` of `--table` must be one of: filter, nat",
            ),
            (
                "-L -w 2147483647",
                "value `2147483647` of `--wait` must be a whole number from 0 to 10",
            ),
            (
                "-L -S",
                "exactly one of -L|--list, -S|--list-rules is required",
            ),
            (
                "-n",
                "exactly one of -L|--list, -S|--list-rules is required",
            ),
            ("-L -n -n", "option `--numeric` may be given only once"),
            ("-L INPUT OUTPUT", "unexpected extra argument `OUTPUT`"),
            ("-L -t", "option `--table` needs a value"),
            ("--list=x", "option `--list` takes no value"),
            ("-L 'a b'", "CHAIN `'a` must match [A-Za-z0-9_-]{1,28}"),
        ];
        for (args, want) in table {
            let got = g.check(&words(args)).unwrap_err();
            assert_eq!(got.message, want, "{args}");
        }
    }

    #[test]
    fn fixed_words_come_first() {
        let g = Grammar {
            words: vec!["status".into()],
            args: vec![ArgSpec {
                name: "jail".into(),
                value: ValueType::Enum(vec!["sshd".into(), "recidive".into()]),
                optional: true,
                repeat: false,
            }],
            ..Grammar::default()
        };
        assert_eq!(g.check(&words("status")), Ok(()));
        assert_eq!(g.check(&words("status sshd")), Ok(()));
        assert!(g.check(&words("status sshd extra")).is_err());
        assert!(g.check(&words("set sshd")).is_err());
        assert!(g.check(&words("status nope")).is_err());
        assert_eq!(g.usage(), "status [sshd|recidive]");
    }

    #[test]
    fn integers_are_plain_decimal() {
        let ty = ValueType::Int { min: 1, max: 100 };
        for bad in [
            "",
            "+5",
            "0x10",
            " 5",
            "5 ",
            "1e2",
            "101",
            "0",
            "-1",
            "99999999999999999999",
        ] {
            assert!(ty.mismatch(bad).is_some(), "{bad:?}");
        }
        assert_eq!(ty.mismatch("100"), None);
    }

    #[test]
    fn usage_line() {
        assert_eq!(
            iptables().usage(),
            "(-L|--list | -S|--list-rules) [-n|--numeric] [-v|--verbose] [-t|--table filter|nat] [-w|--wait WAIT(0..10)] [CHAIN]"
        );
    }

    /// journalctl's `-k`, `-n N`, `-S TIME`, `-b [BOOT]` (looks ahead) and a `--color[=WHEN]`
    /// that takes its value only attached, as getopt's `::` does.
    fn journalctl() -> Grammar {
        let mut lines = flag('n', "lines");
        lines.value = Some(ValueType::Int { min: 1, max: 100 });
        let mut since = flag('S', "since");
        since.value = Some(ValueType::SystemdTime);
        let mut boot = flag('b', "boot");
        boot.value = Some(ValueType::Pattern(
            Pattern::new("all|[+-]?[0-9]{1,4}|[0-9a-f]{32}([+-][0-9]{1,4})?").unwrap(),
        ));
        boot.optional = Some(Optional::Lookahead);
        let mut color = flag('c', "color");
        color.value = Some(ValueType::Enum(vec!["always".into(), "never".into()]));
        color.optional = Some(Optional::Attached);
        Grammar {
            options: vec![flag('k', "dmesg"), lines, since, boot, color],
            ..Grammar::default()
        }
    }

    #[test]
    fn optional_values_as_the_tool_reads_them() {
        let g = journalctl();
        let id = "0123456789abcdef0123456789abcdef";
        for ok in [
            "-k -b".to_string(),
            "-b -k".to_string(),
            "-k -b -1".to_string(),
            "-k -b 0".to_string(),
            "-k -b all".to_string(),
            "-b -1 -k".to_string(),
            "-kb -1".to_string(),
            "-kb-1".to_string(),
            "-k --boot=-1".to_string(),
            "-k --boot -1 -n 5".to_string(),
            format!("-k -b {id}"),
            format!("-k --boot={id}-1"),
            "-k --color".to_string(),
            "-k --color=never".to_string(),
            "-k -calways".to_string(),
        ] {
            assert_eq!(g.check(&words(&ok)), Ok(()), "{ok}");
        }
        let table = [
            // Not a boot descriptor: the next word is read as what it is.
            ("-k -b -f", "option `-f` is not allowed"),
            ("-k -b x", "unexpected extra argument `x`"),
            ("-k -b 99999", "unexpected extra argument `99999`"),
            ("-k -b -99999", "option `-9` is not allowed"),
            // Attached, the value is the rest of the word, and must be a boot descriptor.
            (
                "-k -bk",
                "value `k` of `--boot` must match all|[+-]?[0-9]{1,4}|[0-9a-f]{32}([+-][0-9]{1,4})?",
            ),
            (
                "-k --boot=",
                "value `` of `--boot` must match all|[+-]?[0-9]{1,4}|[0-9a-f]{32}([+-][0-9]{1,4})?",
            ),
            // getopt's `::` never takes the next word.
            ("-k --color never", "unexpected extra argument `never`"),
            ("-k -b -1 -b 0", "option `--boot` may be given only once"),
        ];
        for (args, want) in table {
            let got = g.check(&words(args)).unwrap_err();
            assert_eq!(got.message, want, "{args}");
        }
        assert_eq!(
            g.usage(),
            "[-k|--dmesg] [-n|--lines LINES(1..100)] [-S|--since SINCE] [-b|--boot [BOOT]] [-c|--color[=always|never]]"
        );
    }

    #[test]
    fn systemd_times_are_the_forms_systemd_reads() {
        for ok in [
            "now",
            "today",
            "yesterday",
            "tomorrow",
            "@1700000000",
            "-1h",
            "+5min",
            "-30s",
            "-2days",
            "-1h 30min",
            "-1h30min",
            "1 hour ago",
            "2 days ago",
            "10min ago",
            "1h 30min ago",
            "3 M ago",
            "2024-01-01",
            "2024-01-01 10:00",
            "2024-01-01 10:00:00",
            "2024-01-01 10:00:00.123456",
            "2024-01-01T10:00:00",
            "2024-12-31 23:59:59 UTC",
            "2024-01-01 UTC",
            "10:00",
            "10:00:05",
            "10:00 UTC",
        ] {
            assert!(systemd_time(ok), "{ok:?}");
            assert_eq!(ValueType::SystemdTime.mismatch(ok), None, "{ok:?}");
        }
        let long = format!("-{}", "1s ".repeat(30));
        for bad in [
            "",
            "Now",
            "5min",
            "1 hour",
            "-",
            "-0",
            "-1",
            "-1 h -f",
            "-1h -f",
            "-1h --file=/etc/shadow",
            "1 hour ago -f",
            "1 hour  ago",
            "1  hour ago",
            " -1h",
            "-1h ",
            "-1hour ago",
            "-5mins",
            "-5ms",
            "-5usec",
            "-1234567s",
            "+5 min left",
            "@",
            "@-1",
            "@123456789012",
            "@1700000000.5",
            "2024-1-01",
            "2024-13-01",
            "2024-00-10",
            "2024-01-32",
            "24-01-01",
            "2024-01-01  10:00",
            "2024-01-01 24:00",
            "2024-01-01 10:60",
            "2024-01-01 10:00:00.",
            "2024-01-01 10:00:00.1234567",
            "2024-01-01 10:00.5",
            "2024-01-01 10:00 Asia/Tokyo",
            "2024-01-01 10:00 CET",
            "2024-01-01 10:00 +01:00",
            "2024-01-01T10:00:00Z",
            "Mon 2024-01-01",
            "today UTC",
            "yesterday -f",
            "10",
            "1e5s",
            "-\u{b5}s",
            long.as_str(),
        ] {
            assert!(!systemd_time(bad), "{bad:?}");
        }
        for unit in SYSTEMD_TIME_UNITS {
            assert!(systemd_time(&format!("-5{unit}")), "{unit}");
            assert!(systemd_time(&format!("5 {unit} ago")), "{unit}");
        }
    }

    #[test]
    fn key_values_are_pairs_of_known_keys() {
        let ty = ValueType::KeyValues(vec![
            (
                "user".into(),
                ValueType::Pattern(Pattern::new("[a-z]+").unwrap()),
            ),
            ("lport".into(), ValueType::Int { min: 1, max: 65535 }),
        ]);
        for ok in ["user=root", "user=root,lport=22", "lport=2222,user=git"] {
            assert_eq!(ty.mismatch(ok), None, "{ok}");
        }
        let form = "must be KEY=VALUE pairs separated by commas, KEY one of: user, lport";
        for (bad, want) in [
            ("", format!("{form}; `` is not KEY=VALUE")),
            ("user=root,", format!("{form}; `` is not KEY=VALUE")),
            (
                "user=root,,lport=22",
                format!("{form}; `` is not KEY=VALUE"),
            ),
            ("user", format!("{form}; `user` is not KEY=VALUE")),
            ("group=wheel", format!("{form}; not `group`")),
            ("User=root", format!("{form}; not `User`")),
            ("user=root,user=git", "gives `user` twice".to_string()),
            (
                "user=Root",
                "has `user=Root`, whose value must match [a-z]+".to_string(),
            ),
            (
                "lport=0",
                "has `lport=0`, whose value must be a whole number from 1 to 65535".to_string(),
            ),
            (
                "user=root lport=22",
                "has `user=root lport=22`, whose value must match [a-z]+".to_string(),
            ),
        ] {
            assert_eq!(ty.mismatch(bad), Some(want), "{bad:?}");
        }
        assert_eq!(ty.placeholder("c"), "(user|lport)=VALUE,...");
    }
}
