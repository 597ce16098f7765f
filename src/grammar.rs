//! Option grammar for programs declared in the rules file, parsed with GNU getopt semantics:
//! bundled short flags (`-nvL`), attached short values (`-n100`), `--long value` and
//! `--long=value`, options anywhere among the operands, `--` ending the options.
//!
//! Long options must be spelled in full: getopt_long would expand `--cursor-f` to
//! `--cursor-file`, so an abbreviation is an unknown option here, never a guess.

use regex::Regex;

use crate::optscan::{self, Item, Spelling, Stop, Style};

/// A typed value for an option or an operand.
#[derive(Debug, Clone)]
pub enum ValueType {
    /// One of a fixed set of words.
    Enum(Vec<String>),
    /// A decimal integer within bounds (inclusive).
    Int { min: i64, max: i64 },
    /// Matches an anchored regular expression (the source is kept for messages).
    Pattern { regex: Regex, source: String },
    /// Exactly this string.
    Exact(String),
    /// Any text that does not start with `-`.
    Text,
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
            Self::Pattern { regex, source } if !regex.is_match(value) => {
                Some(format!("must match {source}"))
            }
            Self::Exact(want) if want != value => Some(format!("must be exactly {want}")),
            Self::Text if value.starts_with('-') || value.is_empty() => {
                Some("must be non-empty text that does not start with `-`".to_string())
            }
            _ => None,
        }
    }

    /// A short placeholder for usage lines.
    pub fn placeholder(&self, name: &str) -> String {
        match self {
            Self::Enum(words) => words.join("|"),
            Self::Exact(want) => want.clone(),
            Self::Int { min, max } => format!("{}({min}..{max})", name.to_uppercase()),
            Self::Pattern { .. } | Self::Text => name.to_uppercase(),
        }
    }
}

/// Plain decimal only: no sign games, no leading `+`, no hex, no whitespace.
fn parse_decimal(value: &str) -> Option<i64> {
    let digits = value.strip_prefix('-').unwrap_or(value);
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// One option a program accepts.
#[derive(Debug, Clone)]
pub struct OptSpec {
    pub short: Option<char>,
    pub long: Option<String>,
    pub value: Option<ValueType>,
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
#[derive(Debug, Clone)]
pub struct ArgSpec {
    pub name: String,
    pub value: ValueType,
    pub optional: bool,
    pub repeat: bool,
}

/// The whole grammar of one declared form of a program.
#[derive(Debug, Clone, Default)]
pub struct Grammar {
    /// Fixed leading operands (`status` in `fail2ban-client status sshd`).
    pub words: Vec<String>,
    pub options: Vec<OptSpec>,
    pub args: Vec<ArgSpec>,
    /// Groups of option indexes of which exactly one must be given.
    pub exactly_one_of: Vec<Vec<usize>>,
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
        text.push(' ');
        text.push_str(&ty.placeholder(opt.long.as_deref().unwrap_or("value")));
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
                value: ValueType::Pattern {
                    regex: Regex::new("^(?:[A-Za-z0-9_-]{1,28})$").unwrap(),
                    source: "[A-Za-z0-9_-]{1,28}".into(),
                },
                optional: true,
                repeat: false,
            }],
            exactly_one_of: vec![vec![0, 1]],
        }
    }

    fn words(s: &str) -> Vec<String> {
        s.split(' ')
            .filter(|w| !w.is_empty())
            .map(String::from)
            .collect()
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
}
