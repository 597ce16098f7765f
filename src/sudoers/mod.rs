//! The sudoers expression of a rule's arguments: built from the rule's grammar when the rules
//! load, matched by `decide` before anything runs through sudo, and printed by `render
//! sudoers`. One value serves all three, so the gateway and sudo agree on what is allowed.

pub mod ere;

use crate::docker::spec;
use crate::grammar::Grammar;
use crate::verdict::Refusal;

/// The sudoers argument patterns of one program rule, in the canonical form the gateway
/// passes (`Grammar::canonical`), its forced arguments first.
pub fn program_lines(grammar: &Grammar, forced: &[String]) -> Result<Vec<SudoersArgs>, String> {
    Ok(args_of(ere::canonical_lines(grammar, forced)?))
}

/// The same patterns, not split for sudo's line length where one expression admits what the
/// split ones do (`ere::unsplit_lines`): what the gateway matches a command against before
/// it runs through sudo.
pub fn program_check(grammar: &Grammar, forced: &[String]) -> Result<Vec<SudoersArgs>, String> {
    Ok(args_of(ere::unsplit_lines(grammar, forced)?))
}

fn args_of(lines: Vec<ere::Line>) -> Vec<SudoersArgs> {
    lines
        .into_iter()
        .map(|line| match line {
            ere::Line::Regex(source) => SudoersArgs::new(source),
            ere::Line::Literal(text) => SudoersArgs::literal(text),
        })
        .collect()
}

/// One sudoers expression for a command's arguments: its source, as `render sudoers` prints
/// it, and the same expression compiled on first use. Compiling one costs about 0.1 ms, so it
/// is done at most once per rule and only for a command that goes through sudo.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SudoersArgs {
    pub source: String,
    /// The source is the argument line itself, not an expression.
    pub literal: bool,
    /// What every line the expression admits starts with (`literal_prefix`): a line that does
    /// not is refused without compiling or running the expression.
    prefix: String,
    #[serde(skip)]
    compiled: std::sync::OnceLock<Option<regex::Regex>>,
}

impl SudoersArgs {
    pub fn new(source: String) -> Self {
        Self {
            prefix: literal_prefix(&source),
            source,
            literal: false,
            compiled: std::sync::OnceLock::new(),
        }
    }

    pub fn literal(line: String) -> Self {
        Self {
            source: line,
            literal: true,
            prefix: String::new(),
            compiled: std::sync::OnceLock::new(),
        }
    }

    /// Would sudo accept this argument line (the arguments joined by single spaces)?
    fn accepts(&self, line: &str) -> bool {
        if self.literal {
            return self.source == line;
        }
        if !line.starts_with(&self.prefix) {
            return false;
        }
        self.compiled
            .get_or_init(|| regex::Regex::new(&self.source).ok())
            .as_ref()
            .is_some_and(|re| re.is_match(line))
    }
}

/// The text every match of the anchored expression `source` starts with: the plain characters
/// (and backslash-escaped punctuation) after the leading `^`, up to the first that is not
/// plain, less the last one when a quantifier follows it. Empty where the expression is not
/// anchored or alternates at its top level, so that the prefix is only ever a necessary
/// condition.
fn literal_prefix(source: &str) -> String {
    let Some(rest) = source.strip_prefix('^') else {
        return String::new();
    };
    // A top-level `|` would make the prefix one alternative's: count the depth.
    let mut depth = 0i32;
    let mut escaped = false;
    let mut in_class = false;
    for c in rest.chars() {
        match (escaped, in_class, c) {
            (true, ..) => escaped = false,
            (false, _, '\\') => escaped = true,
            (false, false, '[') => in_class = true,
            (false, true, ']') => in_class = false,
            (false, false, '(') => depth += 1,
            (false, false, ')') => depth -= 1,
            (false, false, '|') if depth == 0 => return String::new(),
            _ => {}
        }
    }
    let mut prefix = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        let plain = match c {
            '\\' => match chars.peek() {
                Some(&next) if next.is_ascii_punctuation() => {
                    chars.next();
                    Some(next)
                }
                _ => None,
            },
            c if "^$.[]()|*+?{}".contains(c) => None,
            c => Some(c),
        };
        let Some(plain) = plain else {
            break;
        };
        if chars.peek().is_some_and(|n| "*+?{".contains(*n)) {
            break;
        }
        prefix.push(plain);
    }
    prefix
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
    // sudo cannot check a template: through sudo, `inspect` takes none (`-f '{{.Config.Env}}'`
    // would print the environment as root); `docker inspect` without sudo still can.
    let templates = sub != "inspect";
    for opt in table
        .iter()
        .filter(|o| allowed.contains(o.name()))
        .filter(|o| templates || !matches!(o.kind, spec::Kind::Value(spec::Check::Template)))
    {
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

#[cfg(test)]
mod tests {
    use crate::grammar::ValueType;
    use crate::policy::ProgramRule;

    /// Words an agent might send for a value of this type: valid ones and near misses.
    fn samples(ty: &ValueType) -> Vec<String> {
        let mut out: Vec<String> = match ty {
            ValueType::Enum(words) => words.clone(),
            ValueType::Exact(word) => vec![word.clone()],
            ValueType::Int { min, max } => [*min, *max, max + 1, min - 1, 0]
                .iter()
                .map(ToString::to_string)
                .chain(["007".to_string()])
                .collect(),
            ValueType::SystemdTime => [
                "today",
                "-1h",
                "1 hour ago",
                "2024-01-01",
                "2024-13-01",
                "5min",
                "-1h ago",
                "10:00",
            ]
            .map(String::from)
            .to_vec(),
            ValueType::KeyValues(_) => [
                "user=ai-worker",
                "user=ai-worker,addr=10.0.0.5",
                "user=root;id",
                "group=wheel",
            ]
            .map(String::from)
            .to_vec(),
            ValueType::Pattern(_) | ValueType::Text => {
                ["INPUT", "sshd", "Ban", "a-b", "/etc/shadow", "x;y"]
                    .map(String::from)
                    .to_vec()
            }
        };
        out.push("bogus".to_string());
        out
    }

    /// Every word the rule's options, words and operands could be written as, and junk.
    fn alphabet(rule: &ProgramRule) -> Vec<String> {
        let mut words: Vec<String> = ["--", "-", "-f", "--file=/etc/shadow", "./--", "-h"]
            .map(String::from)
            .to_vec();
        words.extend(rule.grammar.words.iter().cloned());
        for opt in &rule.grammar.options {
            let names: Vec<String> = opt
                .short
                .map(|s| format!("-{s}"))
                .into_iter()
                .chain(opt.long.as_ref().map(|l| format!("--{l}")))
                .collect();
            words.extend(names.iter().cloned());
            if let Some(ty) = &opt.value {
                for v in samples(ty) {
                    for name in &names {
                        let join = if name.starts_with("--") { "=" } else { "" };
                        words.push(format!("{name}{join}{v}"));
                    }
                    words.push(v);
                }
            }
        }
        for arg in &rule.grammar.args {
            words.extend(samples(&arg.value));
        }
        words
    }

    /// An argument list built from the grammar (one member of each group, some other
    /// options with values of their types, the words, the operands), chosen by `picks`.
    fn built(rule: &ProgramRule, picks: &[usize]) -> Vec<String> {
        let mut pick = picks.iter().cycle().copied().skip(1);
        let mut next = |n: usize| pick.next().unwrap_or(0) % n.max(1);
        let valid = |ty: &ValueType, i: usize| {
            let good: Vec<String> = samples(ty)
                .into_iter()
                .filter(|v| ty.mismatch(v).is_none())
                .collect();
            good.get(i % good.len().max(1)).cloned()
        };
        let g = &rule.grammar;
        let mut out = Vec::new();
        let spell = |i: usize, n: usize, out: &mut Vec<String>| {
            let opt = &g.options[i];
            let name = match (&opt.long, opt.short) {
                (Some(l), Some(s)) => {
                    if n.is_multiple_of(2) {
                        format!("--{l}")
                    } else {
                        format!("-{s}")
                    }
                }
                (Some(l), None) => format!("--{l}"),
                (None, Some(s)) => format!("-{s}"),
                (None, None) => return,
            };
            match opt.value.as_ref().and_then(|ty| valid(ty, n)) {
                Some(v) if name.starts_with("--") => out.push(format!("{name}={v}")),
                Some(v) => {
                    out.push(name);
                    out.push(v)
                }
                None => out.push(name),
            }
        };
        for group in &g.exactly_one_of {
            let member = group[next(group.len())];
            let n = next(7);
            spell(member, n, &mut out);
        }
        let grouped: Vec<usize> = g.exactly_one_of.iter().flatten().copied().collect();
        for i in 0..g.options.len() {
            if !grouped.contains(&i) && next(3) == 0 {
                let n = next(7);
                spell(i, n, &mut out);
            }
        }
        out.extend(g.words.iter().cloned());
        for arg in &g.args {
            if (!arg.optional || next(2) == 0)
                && let Some(v) = valid(&arg.value, next(7))
            {
                out.push(v);
            }
        }
        out
    }

    /// Whether the gateway allows `args`, or the same line read with a space inside a value
    /// (two neighbours joined: sudo cannot tell `--grep='a b'` from `--grep=a b`, which is why
    /// what follows a space in a sudo value can never start an option). Up to `depth` joins.
    fn same_line_allowed(rule: &ProgramRule, args: &[String], depth: usize) -> bool {
        if rule.grammar.check(args).is_ok() {
            return true;
        }
        depth > 0
            && (1..args.len()).any(|i| {
                let mut joined = args.to_vec();
                let next = joined.remove(i);
                joined[i - 1] = format!("{} {next}", joined[i - 1]);
                !next.starts_with('-') && same_line_allowed(rule, &joined, depth - 1)
            })
    }

    /// A repeating operand too long for one sudoers line is split between its alternatives,
    /// and each rendered line then repeats only its own half: `status A B` with A and B in
    /// different halves is no rendered line. The gateway's check must refuse it as sudo would.
    #[test]
    fn a_split_repeating_operand_is_checked_as_sudo_reads_it() {
        let units: Vec<String> = (0..80)
            .map(|i| format!("service-number-{i:03}.service"))
            .collect();
        let text = format!(
            "version: 1\nsudo: /run/wrappers/bin/sudo\nkeys:\n  k:\n    may: [status]\n\
             programs:\n  - id: status\n    command: systemctl\n    path: /run/current-system/sw/bin/systemctl\n    sudo: true\n    words: [status]\n    args:\n      - {{name: unit, value: {{enum: [{}]}}, repeat: true}}\n",
            units.join(", ")
        );
        let policy = crate::rules::parse(&text).unwrap();
        let rule = &policy.programs[0];
        assert!(rule.sudoers_args.len() > 2, "the lines are split");
        let line = |a: &str, b: &str| vec!["status".to_string(), a.to_string(), b.to_string()];
        let same = line(&units[0], &units[1]);
        let mixed = line(&units[0], &units[79]);
        assert!(super::accepts(&rule.sudoers_args, &same));
        assert!(super::accepts(&rule.sudoers_check, &same));
        assert!(!super::accepts(&rule.sudoers_args, &mixed));
        assert!(!super::accepts(&rule.sudoers_check, &mixed));
    }

    #[test]
    fn a_literal_prefix_is_only_what_every_match_starts_with() {
        for (source, prefix) in [
            ("^--list( --numeric)?$", "--list"),
            ("^--no-pager --unit=(a|b)$", "--no-pager --unit="),
            ("^--lines\\=5$", "--lines=5"),
            ("^-T( -C x)?$", "-T"),
            ("^ab?c$", "a"),
            ("^ab{2}$", "a"),
            ("^a|b$", ""),
            ("^(a|b)c$", ""),
            ("^[|]x$", ""),
            ("no anchor", ""),
            ("^a\\dz$", "a"),
        ] {
            assert_eq!(super::literal_prefix(source), prefix, "{source}");
        }
    }

    /// Parsed once: each rule's expressions compile on first use and are kept.
    fn sudo_rules() -> &'static [(ProgramRule, Vec<String>)] {
        static RULES: std::sync::OnceLock<Vec<(ProgramRule, Vec<String>)>> =
            std::sync::OnceLock::new();
        RULES.get_or_init(|| {
            [
                include_str!("../../rules.yaml"),
                include_str!("../../tests/corpus/rules.yaml"),
            ]
            .iter()
            .flat_map(|text| crate::rules::parse(text).unwrap().programs)
            .filter(|p| p.sudo)
            .map(|p| {
                let words = alphabet(&p);
                (p, words)
            })
            .collect()
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1500))]
        /// For every sudo rule of the shipped and the corpus rules: an argument list that the
        /// rendered sudoers lines admit is one the gateway's grammar accepts, or the same line
        /// with a space inside a value, where the words after the space are never options
        /// (sudo matches the arguments joined by spaces and cannot tell them apart). Words
        /// holding a space themselves are left out: the gateway never passes one (`fits`).
        #[test]
        fn what_sudoers_admits_the_gateway_allows(
            rule_pick in 0usize..64,
            picks in proptest::collection::vec(0usize..512, 0..7),
            edits in proptest::collection::vec((0usize..5, 0usize..8, 0usize..512), 0..3),
        ) {
            let rules = sudo_rules();
            let (rule, alphabet) = &rules[rule_pick % rules.len()];
            let words: Vec<String> = if picks.first().is_some_and(|p| p % 2 == 0) {
                built(rule, &picks)
            } else {
                picks.iter().map(|i| alphabet[i % alphabet.len()].clone()).collect()
            };
            // Near the admitted lines: a canonical form (when the words are accepted), then a
            // few edits: a word repeated, inserted, dropped, two swapped, or a `--` put in.
            let mut args = rule.grammar.canonical(&words).unwrap_or(words);
            for (op, at, word) in edits {
                let at = at % (args.len() + 1);
                match (op, args.len()) {
                    (0, n) if n > 0 => { let w = args[at % n].clone(); args.insert(at, w) }
                    (1, _) => args.insert(at, alphabet[word % alphabet.len()].clone()),
                    (2, n) if n > 0 => { args.remove(at % n); }
                    (3, n) if n > 1 => args.swap(at % n, (at + 1) % n),
                    (4, _) => args.insert(at, "--".to_string()),
                    _ => {}
                }
            }
            let full: Vec<String> = rule.forced_args.iter().chain(&args).cloned().collect();
            // The gateway's unsplit expressions admit exactly what the rendered lines do.
            proptest::prop_assert_eq!(
                super::accepts(&rule.sudoers_check, &full),
                super::accepts(&rule.sudoers_args, &full),
                "{}: {:?}", rule.id, full
            );
            if !full.is_empty() && args.iter().all(|a| !a.contains(' ')) && super::accepts(&rule.sudoers_args, &full) {
                proptest::prop_assert!(same_line_allowed(rule, &args, 3), "{}: {args:?}", rule.id);
            }
        }

        /// And the other way: what the gateway accepts, in its canonical form, sudoers admits,
        /// so `fits` refuses nothing a rule allows (values with spaces aside).
        #[test]
        fn what_the_gateway_allows_sudoers_admits(rule_pick in 0usize..64, picks in proptest::collection::vec(0usize..512, 0..7)) {
            let rules = sudo_rules();
            let (rule, alphabet) = &rules[rule_pick % rules.len()];
            let args: Vec<String> = picks.iter().map(|i| alphabet[i % alphabet.len()].clone()).collect();
            if let Ok(canonical) = rule.grammar.canonical(&args) {
                let full: Vec<String> = rule.forced_args.iter().chain(&canonical).cloned().collect();
                proptest::prop_assert!(full.is_empty() || super::accepts(&rule.sudoers_args, &full), "{}: {args:?} as {full:?}", rule.id);
            }
        }
    }
}
