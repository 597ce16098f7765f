//! Options parsed the way docker's CLI (cobra + pflag) parses them, so that what is checked
//! is what docker will read: `-v/:/h`, `-v=/:/h`, `--volume=/:/h`, bundled `-dv/:/h`, a value
//! taken from the next word even when it starts with `-`, `--` ending the options, and, for
//! `docker run`, options ending at the image.

use super::spec::{Kind, Opt};
use crate::optscan::{self, Item, Stop, Style};
use crate::verdict::Refusal;

/// One option as given: its table entry, its value, and how it was written.
#[derive(Debug, Clone)]
pub struct Given<'a> {
    pub opt: &'static Opt,
    pub value: Option<&'a str>,
    pub written: String,
}

#[derive(Debug, Clone, Default)]
pub struct Parsed<'a> {
    pub options: Vec<Given<'a>>,
    pub operands: Vec<&'a str>,
}

impl<'a> Parsed<'a> {
    /// The last time the option of this long name was given, if it was.
    pub fn given(&self, name: &str) -> Option<&Given<'a>> {
        self.options.iter().rev().find(|g| g.opt.name() == name)
    }
}

/// Docker's option tables, searched in order (a verb's own options shadow inherited ones).
struct Tables<'t>(&'t [&'static [Opt]]);

impl optscan::Table for Tables<'_> {
    type Opt = &'static Opt;

    fn long(&self, name: &str) -> Option<&'static Opt> {
        self.0
            .iter()
            .find_map(|t| t.iter().find(|o| o.names.contains(&name)))
    }

    fn short(&self, letter: char) -> Option<&'static Opt> {
        self.0
            .iter()
            .find_map(|t| t.iter().find(|o| o.short == Some(letter)))
    }

    fn takes_value(&self, opt: &'static Opt) -> bool {
        matches!(opt.kind, Kind::Value(_))
    }
}

/// Parse `args`. `tables` are searched in order (a verb's own options shadow inherited ones).
/// With `interspersed` false, the first operand ends the options (`docker run IMAGE CMD...`).
pub fn parse<'a>(
    what: &str,
    tables: &[&'static [Opt]],
    interspersed: bool,
    args: &'a [String],
) -> Result<Parsed<'a>, Refusal> {
    let mut parsed = Parsed::default();
    let style = Style::Pflag { interspersed };
    for item in optscan::scan(Tables(tables), style, args) {
        match item {
            Ok((_, Item::Operand(word))) => parsed.operands.push(word),
            Ok((
                _,
                Item::Opt {
                    opt,
                    written,
                    value,
                },
            )) => {
                match (opt.kind, value) {
                    (Kind::Never(why), _) => {
                        return Err(Refusal::new(
                            what,
                            format!("{what}: `{written}` is never allowed: {why}"),
                        ));
                    }
                    (Kind::Flag, Some(_)) => {
                        return Err(Refusal::new(
                            what,
                            format!("{what}: write `{written}` without a value"),
                        ));
                    }
                    _ => {}
                }
                parsed.options.push(Given {
                    opt,
                    value,
                    written: written.to_string(),
                });
            }
            Err((_, Stop::Unknown(written))) => {
                return Err(Refusal::new(
                    what,
                    format!("{what}: unknown option `{written}`"),
                ));
            }
            Err((_, Stop::MissingValue(written, _))) => {
                return Err(Refusal::new(
                    what,
                    format!("{what}: option `{written}` needs a value"),
                ));
            }
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::spec;

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    fn run(s: &str) -> Result<Vec<(String, Option<String>)>, String> {
        let args = words(s);
        let sub = spec::subcommand("run").unwrap();
        parse("docker run", &[sub.options], false, &args)
            .map(|p| {
                let mut out: Vec<(String, Option<String>)> = p
                    .options
                    .iter()
                    .map(|g| (g.opt.name().to_string(), g.value.map(String::from)))
                    .collect();
                out.extend(p.operands.iter().map(|o| (format!("operand:{o}"), None)));
                out
            })
            .map_err(|r| r.reason)
    }

    #[test]
    fn values_in_every_pflag_spelling() {
        for spelling in [
            "-v/:/h",
            "-v=/:/h",
            "-v /:/h",
            "--volume=/:/h",
            "--volume /:/h",
            "-dv/:/h",
            "-dv /:/h",
        ] {
            let got = run(&format!("{spelling} alpine")).unwrap();
            assert!(
                got.contains(&("volume".to_string(), Some("/:/h".to_string()))),
                "{spelling}: {got:?}"
            );
        }
    }

    #[test]
    fn options_end_at_the_image_for_run() {
        let got = run("--rm alpine ls -la --privileged").unwrap();
        assert_eq!(
            got,
            vec![
                ("rm".to_string(), None),
                ("operand:alpine".to_string(), None),
                ("operand:ls".to_string(), None),
                ("operand:-la".to_string(), None),
                ("operand:--privileged".to_string(), None),
            ]
        );
    }

    #[test]
    fn never_options_in_every_spelling() {
        for s in [
            "--privileged",
            "--privileged=true",
            "--privileged=1",
            "-P",
            "-dP",
            "--net=host --privileged",
        ] {
            let e = run(&format!("{s} alpine")).unwrap_err();
            assert!(
                e.contains("never allowed") || e.contains("without a value"),
                "{s}: {e}"
            );
        }
        assert!(
            run("--rm=false alpine")
                .unwrap_err()
                .contains("without a value")
        );
        assert!(
            run("-d=true alpine")
                .unwrap_err()
                .contains("without a value")
        );
        assert!(
            run("--bogus alpine")
                .unwrap_err()
                .contains("unknown option `--bogus`")
        );
        assert!(
            run("-X alpine")
                .unwrap_err()
                .contains("unknown option `-X`")
        );
        assert!(run("--name").unwrap_err().contains("needs a value"));
    }

    #[test]
    fn the_next_word_is_a_value_even_with_a_dash() {
        let got = run("--name --privileged alpine").unwrap();
        assert_eq!(
            got.first(),
            Some(&("name".to_string(), Some("--privileged".to_string())))
        );
    }
}
