//! The one option scanner: splits an argument list into options and operands the way the
//! real tool will, for docker's CLI (cobra + pflag) and for the programs the rules declare
//! (GNU getopt). Both read `--long`, `--long=value`, `--long value`, bundled short flags
//! (`-nvL`), a short option's value attached (`-n100`) or in the next word (even one that
//! starts with `-`), `-` as an operand and `--` ending the options. They differ in two places,
//! set by `Style`: pflag reads `-v=x` as the value `x` (getopt as `=x`), and a docker command
//! may stop reading options at its first operand (`docker run IMAGE CMD...`).
//!
//! An option may also take an optional value (`Optional`): getopt's `b::` reads it only when
//! it is attached (`-b-1`, `--boot=-1`); a tool that looks ahead itself, as journalctl does
//! for `-b`, also takes the next word when that word parses as the value (`-b -1`), and
//! leaves any other word to be read as an option or operand (`-b -k`).
//!
//! The scanner is lazy: a caller that refuses an option stops there, so the first problem in
//! the argument list is the one reported.

use std::fmt;

/// How an option was written, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spelling<'a> {
    Long(&'a str),
    Short(char),
}

impl fmt::Display for Spelling<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Long(name) => write!(f, "--{name}"),
            Self::Short(letter) => write!(f, "-{letter}"),
        }
    }
}

/// The options a command knows, as the scanner needs them.
pub trait Table {
    /// What the caller gets back for a known option (its table entry).
    type Opt: Copy;
    fn long(&self, name: &str) -> Option<Self::Opt>;
    fn short(&self, letter: char) -> Option<Self::Opt>;
    /// Does it take a value? One that does not is returned with the value attached to its
    /// long form (`--flag=x`), if any, for the caller to refuse.
    fn takes_value(&self, opt: Self::Opt) -> bool;
    /// Is its value optional, and how is it found? `None` (the default): a value, if the
    /// option takes one (`takes_value`), is required. An optional value wins over
    /// `takes_value`.
    fn optional_value(&self, _opt: Self::Opt) -> Option<Optional> {
        None
    }
    /// For `Optional::Lookahead`: would the tool take `word`, the next word, as this
    /// option's value?
    fn is_value(&self, _opt: Self::Opt, _word: &str) -> bool {
        false
    }
}

/// How an option whose value may be left out finds its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Optional {
    /// getopt's `::` (and pflag's `NoOptDefVal`): only a value in the same word, `-bVALUE`
    /// or `--boot=VALUE`; the next word is never the value.
    Attached,
    /// Attached, or else the next word when the tool itself takes it as the value (`is_value`):
    /// journalctl reads `-b -1` as boot -1, and `-b -k` as `-b` and then `-k`.
    Lookahead,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// GNU getopt_long: options anywhere among the operands; `-n=5` is `-n` with `=5`.
    Getopt,
    /// pflag: `-v=x` is `-v` with `x`; `interspersed: false` ends the options at the first
    /// operand, as cobra does for commands that pass the rest on (`docker run`).
    Pflag { interspersed: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item<'a, O> {
    Operand(&'a str),
    Opt {
        opt: O,
        written: Spelling<'a>,
        value: Option<&'a str>,
    },
}

/// Why scanning stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop<'a, O> {
    Unknown(Spelling<'a>),
    MissingValue(Spelling<'a>, O),
}

/// Each item (or the error that ends the scan) with the index of the word it started in.
pub type Scanned<'a, O> = Result<(usize, Item<'a, O>), (usize, Stop<'a, O>)>;

pub struct Scanner<'a, T: Table> {
    table: T,
    style: Style,
    args: &'a [String],
    next: usize,
    /// The rest of a short-option bundle being read, and the index of its word.
    bundle: Option<(usize, &'a str)>,
    only_operands: bool,
    done: bool,
}

pub fn scan<T: Table>(table: T, style: Style, args: &[String]) -> Scanner<'_, T> {
    Scanner {
        table,
        style,
        args,
        next: 0,
        bundle: None,
        only_operands: false,
        done: false,
    }
}

impl<'a, T: Table> Scanner<'a, T> {
    fn next_word(&mut self) -> Option<&'a str> {
        let word = self.args.get(self.next)?;
        self.next += 1;
        Some(word)
    }

    /// The next word, as the value of `opt` (written at word `index`).
    fn value_word(
        &mut self,
        index: usize,
        written: Spelling<'a>,
        opt: T::Opt,
    ) -> Result<&'a str, (usize, Stop<'a, T::Opt>)> {
        self.next_word()
            .ok_or((index, Stop::MissingValue(written, opt)))
    }

    /// The value of an optional-valued option written without one: the next word, if the
    /// option looks ahead and the tool would take it.
    fn lookahead(&mut self, opt: T::Opt, how: Optional) -> Option<&'a str> {
        let word = self.args.get(self.next)?;
        if how == Optional::Lookahead && self.table.is_value(opt, word) {
            self.next += 1;
            Some(word)
        } else {
            None
        }
    }

    fn short(&mut self, index: usize, bundle: &'a str) -> Scanned<'a, T::Opt> {
        let mut chars = bundle.chars();
        let Some(letter) = chars.next() else {
            // Not reached: a bundle is never empty (`-` alone is an operand).
            return Err((index, Stop::Unknown(Spelling::Short('-'))));
        };
        let rest = chars.as_str();
        let written = Spelling::Short(letter);
        let Some(opt) = self.table.short(letter) else {
            return Err((index, Stop::Unknown(written)));
        };
        let pflag = matches!(self.style, Style::Pflag { .. });
        let value = if let Some(how) = self.table.optional_value(opt) {
            match rest.strip_prefix('=') {
                Some(v) if pflag => Some(v),
                // pflag (`NoOptDefVal`): no value, and the rest of the word is more flags.
                _ if pflag && !rest.is_empty() => {
                    self.bundle = Some((index, rest));
                    None
                }
                // getopt: the rest of the word is the value (`optarg`), never more options.
                _ if !rest.is_empty() => Some(rest),
                _ => self.lookahead(opt, how),
            }
        } else if self.table.takes_value(opt) {
            match rest.strip_prefix('=') {
                Some(v) if pflag => Some(v),
                _ if !rest.is_empty() => Some(rest),
                _ => Some(self.value_word(index, written, opt)?),
            }
        } else if let (true, Some(v)) = (pflag, rest.strip_prefix('=')) {
            // pflag reads `-d=x` as a value given to the flag: the caller refuses it.
            Some(v)
        } else {
            if !rest.is_empty() {
                self.bundle = Some((index, rest));
            }
            None
        };
        Ok((
            index,
            Item::Opt {
                opt,
                written,
                value,
            },
        ))
    }

    fn long(&mut self, index: usize, long: &'a str) -> Scanned<'a, T::Opt> {
        let (name, attached) = match long.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (long, None),
        };
        let written = Spelling::Long(name);
        let Some(opt) = self.table.long(name) else {
            return Err((index, Stop::Unknown(written)));
        };
        let value = match (attached, self.table.optional_value(opt)) {
            (None, Some(how)) => self.lookahead(opt, how),
            (None, None) if self.table.takes_value(opt) => {
                Some(self.value_word(index, written, opt)?)
            }
            (other, _) => other,
        };
        Ok((
            index,
            Item::Opt {
                opt,
                written,
                value,
            },
        ))
    }
}

impl<'a, T: Table> Iterator for Scanner<'a, T> {
    type Item = Scanned<'a, T::Opt>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = if let Some((index, bundle)) = self.bundle.take() {
            self.short(index, bundle)
        } else {
            let index = self.next;
            let arg = self.next_word()?;
            if self.only_operands || arg == "-" || !arg.starts_with('-') {
                if self.style
                    == (Style::Pflag {
                        interspersed: false,
                    })
                {
                    self.only_operands = true;
                }
                Ok((index, Item::Operand(arg)))
            } else if arg == "--" {
                self.only_operands = true;
                return self.next();
            } else if let Some(long) = arg.strip_prefix("--") {
                self.long(index, long)
            } else {
                self.short(index, arg.get(1..).unwrap_or_default())
            }
        };
        self.done = item.is_err();
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `-a` flag, `-v`/`--value` takes a value, `--flag` flag.
    struct Demo;

    impl Table for Demo {
        type Opt = &'static str;
        fn long(&self, name: &str) -> Option<&'static str> {
            match name {
                "value" => Some("value"),
                "flag" => Some("flag"),
                _ => None,
            }
        }
        fn short(&self, letter: char) -> Option<&'static str> {
            match letter {
                'a' => Some("a"),
                'v' => Some("value"),
                _ => None,
            }
        }
        fn takes_value(&self, opt: &'static str) -> bool {
            opt == "value"
        }
    }

    /// The scan as one line: `opt=value` or `opt` for options, `@word` for operands, and
    /// `!unknown -x` / `!missing -x` for the error that ends it.
    fn show(style: Style, words: &[&str]) -> String {
        let args: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        scan(Demo, style, &args)
            .map(|item| match item {
                Ok((i, Item::Operand(w))) => format!("{i}@{w}"),
                Ok((i, Item::Opt { opt, value, .. })) => match value {
                    Some(v) => format!("{i}:{opt}={v}"),
                    None => format!("{i}:{opt}"),
                },
                Err((i, Stop::Unknown(s))) => format!("{i}!unknown {s}"),
                Err((i, Stop::MissingValue(s, _))) => format!("{i}!missing {s}"),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    const GETOPT: Style = Style::Getopt;
    const PFLAG: Style = Style::Pflag { interspersed: true };
    const RUN: Style = Style::Pflag {
        interspersed: false,
    };

    #[test]
    fn both_styles_read_the_same_basic_forms() {
        for style in [GETOPT, PFLAG] {
            let rows: &[(&[&str], &str)] = &[
                (&["-a", "x"], "0:a 1@x"),
                (&["-av", "1"], "0:a 0:value=1"),
                (&["-av1"], "0:a 0:value=1"),
                (&["-v", "-a"], "0:value=-a"),
                (&["--value", "-a"], "0:value=-a"),
                (&["--value=1", "--flag"], "0:value=1 1:flag"),
                (&["--flag=1"], "0:flag=1"),
                (&["-", "--", "-a"], "0@- 2@-a"),
                (&["x", "-a"], "0@x 1:a"),
                (&["-v"], "0!missing -v"),
                (&["--value"], "0!missing --value"),
                (&["-ab", "-a"], "0:a 0!unknown -b"),
                (&["--val", "x"], "0!unknown --val"),
            ];
            for (words, want) in rows {
                assert_eq!(show(style, words), *want, "{style:?} {words:?}");
            }
        }
    }

    #[test]
    fn the_styles_differ_where_the_tools_do() {
        // getopt: `-v=1` is the value `=1`; `-a=` goes on to the option `-=`.
        assert_eq!(show(GETOPT, &["-v=1"]), "0:value==1");
        assert_eq!(show(GETOPT, &["-a=1"]), "0:a 0!unknown -=");
        // pflag: `-v=1` is the value `1`; `-a=1` gives the flag a value (the caller refuses).
        assert_eq!(show(PFLAG, &["-v=1"]), "0:value=1");
        assert_eq!(show(PFLAG, &["-a=1"]), "0:a=1");
        // `docker run IMAGE -a`: the first operand ends the options, `--` included.
        assert_eq!(show(RUN, &["-a", "img", "-a", "--"]), "0:a 1@img 2@-a 3@--");
        assert_eq!(show(PFLAG, &["-a", "img", "-a"]), "0:a 1@img 2:a");
    }

    #[test]
    fn nothing_is_read_after_the_first_error() {
        assert_eq!(show(GETOPT, &["-z", "-a", "x"]), "0!unknown -z");
    }

    /// `-a` flag; `-b`/`--boot` an optional value that looks ahead (a number, as journalctl's
    /// boot offsets); `-c`/`--color` an optional value only when attached (getopt's `c::`).
    struct Optionals;

    impl Table for Optionals {
        type Opt = &'static str;
        fn long(&self, name: &str) -> Option<&'static str> {
            match name {
                "boot" => Some("boot"),
                "color" => Some("color"),
                _ => None,
            }
        }
        fn short(&self, letter: char) -> Option<&'static str> {
            match letter {
                'a' => Some("a"),
                'b' => Some("boot"),
                'c' => Some("color"),
                _ => None,
            }
        }
        fn takes_value(&self, _opt: &'static str) -> bool {
            false
        }
        fn optional_value(&self, opt: &'static str) -> Option<Optional> {
            match opt {
                "boot" => Some(Optional::Lookahead),
                "color" => Some(Optional::Attached),
                _ => None,
            }
        }
        fn is_value(&self, opt: &'static str, word: &str) -> bool {
            opt == "boot" && word.trim_start_matches(['-', '+']).parse::<u8>().is_ok()
        }
    }

    fn show_optionals(words: &[&str], style: Style) -> String {
        let args: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        scan(Optionals, style, &args)
            .map(|item| match item {
                Ok((i, Item::Operand(w))) => format!("{i}@{w}"),
                Ok((i, Item::Opt { opt, value, .. })) => match value {
                    Some(v) => format!("{i}:{opt}={v}"),
                    None => format!("{i}:{opt}"),
                },
                Err((i, Stop::Unknown(s))) => format!("{i}!unknown {s}"),
                Err((i, Stop::MissingValue(s, _))) => format!("{i}!missing {s}"),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn optional_values_are_read_as_the_tool_reads_them() {
        let rows: &[(&[&str], &str)] = &[
            // Nothing after it, or a word the tool does not take: no value.
            (&["-b"], "0:boot"),
            (&["-b", "-a"], "0:boot 1:a"),
            (&["-b", "x"], "0:boot 1@x"),
            (&["-b", "--", "-1"], "0:boot 2@-1"),
            (&["--boot", "-a"], "0:boot 1:a"),
            // journalctl's lookahead: the next word, when it is a value.
            (&["-b", "-1"], "0:boot=-1"),
            (&["-b", "0", "-a"], "0:boot=0 2:a"),
            (&["--boot", "-1"], "0:boot=-1"),
            (&["-ab", "-1"], "0:a 0:boot=-1"),
            // Attached: the rest of the word, whatever it is (the caller checks it).
            (&["-b-1"], "0:boot=-1"),
            (&["-ba"], "0:boot=a"),
            (&["--boot=-1"], "0:boot=-1"),
            (&["--boot="], "0:boot="),
            // getopt's `::`: never the next word.
            (&["-c", "1"], "0:color 1@1"),
            (&["--color", "1"], "0:color 1@1"),
            (&["-c1", "-a"], "0:color=1 1:a"),
            (&["--color=always"], "0:color=always"),
            (&["-ac"], "0:a 0:color"),
        ];
        for (words, want) in rows {
            assert_eq!(show_optionals(words, GETOPT), *want, "{words:?}");
        }
        // pflag's optional values (`NoOptDefVal`): `=` or nothing; `-ca` is two flags.
        for (words, want) in [
            (&["-c=1"][..], "0:color=1"),
            (&["-ca"][..], "0:color 0:a"),
            (&["--color=1", "-c", "1"][..], "0:color=1 1:color 2@1"),
        ] {
            assert_eq!(show_optionals(words, PFLAG), want, "{words:?}");
        }
    }
}
