//! Options parsed the way docker's CLI (cobra + pflag) parses them, so that what is checked
//! is what docker will read: `-v/:/h`, `-v=/:/h`, `--volume=/:/h`, bundled `-dv/:/h`, a value
//! taken from the next word even when it starts with `-`, `--` ending the options, and, for
//! `docker run`, options ending at the image.

use super::spec::{Kind, Opt};
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

fn find_long(tables: &[&'static [Opt]], name: &str) -> Option<&'static Opt> {
    tables
        .iter()
        .find_map(|t| t.iter().find(|o| o.names.contains(&name)))
}

fn find_short(tables: &[&'static [Opt]], short: char) -> Option<&'static Opt> {
    tables
        .iter()
        .find_map(|t| t.iter().find(|o| o.short == Some(short)))
}

/// Parse `args`. `tables` are searched in order (a verb's own options shadow inherited ones).
/// With `interspersed` false, the first operand ends the options (`docker run IMAGE CMD...`);
/// with `stop_at_first` the first operand is returned with everything after it unparsed too.
pub fn parse<'a>(
    what: &str,
    tables: &[&'static [Opt]],
    interspersed: bool,
    args: &'a [String],
) -> Result<Parsed<'a>, Refusal> {
    let mut parsed = Parsed::default();
    let mut only_operands = false;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if only_operands || arg == "-" || !arg.starts_with('-') {
            parsed.operands.push(arg);
            if !interspersed {
                only_operands = true;
            }
            continue;
        }
        if arg == "--" {
            only_operands = true;
            continue;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, attached) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (long, None),
            };
            let opt = find_long(tables, name)
                .ok_or_else(|| Refusal::new(what, format!("{what}: unknown option `--{name}`")))?;
            let value = match (opt.kind, attached) {
                (Kind::Never(why), _) => return Err(never(what, &format!("--{name}"), why)),
                (Kind::Flag, Some(_)) => {
                    return Err(Refusal::new(
                        what,
                        format!("{what}: write `--{name}` without a value"),
                    ));
                }
                (Kind::Flag, None) => None,
                (Kind::Value(_), Some(v)) => Some(v),
                (Kind::Value(_), None) => Some(next_value(what, &format!("--{name}"), &mut iter)?),
            };
            parsed.options.push(Given {
                opt,
                value,
                written: format!("--{name}"),
            });
            continue;
        }
        let bundle = arg.get(1..).unwrap_or_default();
        for (offset, short) in bundle.char_indices() {
            let written = format!("-{short}");
            let opt = find_short(tables, short)
                .ok_or_else(|| Refusal::new(what, format!("{what}: unknown option `{written}`")))?;
            let rest = bundle.get(offset + short.len_utf8()..).unwrap_or_default();
            match opt.kind {
                Kind::Never(why) => return Err(never(what, &written, why)),
                Kind::Flag => {
                    if rest.starts_with('=') {
                        return Err(Refusal::new(
                            what,
                            format!("{what}: write `{written}` without a value"),
                        ));
                    }
                    parsed.options.push(Given {
                        opt,
                        value: None,
                        written,
                    });
                }
                Kind::Value(_) => {
                    // pflag: `-v=x` and `-vx` both give `x`; a bare `-v` takes the next word.
                    let value = match rest.strip_prefix('=') {
                        Some(v) => v,
                        None if !rest.is_empty() => rest,
                        None => next_value(what, &written, &mut iter)?,
                    };
                    parsed.options.push(Given {
                        opt,
                        value: Some(value),
                        written,
                    });
                    break;
                }
            }
        }
    }
    Ok(parsed)
}

fn next_value<'a>(
    what: &str,
    written: &str,
    iter: &mut std::slice::Iter<'a, String>,
) -> Result<&'a str, Refusal> {
    iter.next()
        .map(String::as_str)
        .ok_or_else(|| Refusal::new(what, format!("{what}: option `{written}` needs a value")))
}

fn never(what: &str, written: &str, why: &str) -> Refusal {
    Refusal::new(what, format!("{what}: `{written}` is never allowed: {why}"))
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
