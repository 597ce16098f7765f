//! `--format` templates: the part of Go's text/template that may reach the docker CLI.
//!
//! A `--format` value is a program the docker CLI runs over the data it prints (`ps`,
//! `inspect`, `images`, `info`, `system df`, `network ls`, `volume ls`, `compose ps`). It
//! cannot start a process (docker's functions are json, split, join, title, lower, upper, pad
//! and truncate, on top of Go's builtins), but it can make the CLI build a string of any
//! size: `{{printf "%999999999d" 1}}` is a gigabyte from nothing, nested `json`/`join`/`split`
//! multiply what they are given, and since Go 1.22 `{{range .HostConfig.ShmSize}}` counts up
//! to a number taken from the data. So a template is tokenized and parsed here like Go does,
//! and only a subset is accepted, one whose worst-case output is a bounded multiple of the
//! data docker would print anyway:
//!
//! - no `printf` (widths), `call`, `slice`, `html`/`js`/`urlquery`, variables, `template`,
//!   `define`, `block`, `break`/`continue`; integer literals are decimal and within ±1024;
//! - every action is costed: a field is the data once (1), `json` multiplies by 6 (`\u0000`
//!   for each control byte), `upper`/`lower`/`title` by 3 (a bad UTF-8 byte becomes U+FFFD),
//!   `split` by 2 (`[a b c]`), `join` by 1 + the separator's length, `print` adds its
//!   arguments, `truncate` caps. An action may reach 64× the data, the template 1024×;
//! - `range` runs only over fields docker defines as lists or maps, one level deep, and text
//!   and constants inside it count once per element (an element is at least one byte of the
//!   data, so that too stays a multiple of the data);
//! - `with` may only narrow the data (a field, `index`, `.Label`), so costs inside it stay in
//!   the same unit.
//!
//! docker turns the two-character sequences `\t` and `\n` into a tab and a newline before it
//! parses (for `ps`-style listings, not for `inspect`). That cannot change what is parsed here:
//! outside actions it is text, and inside an action a backslash is accepted only within a
//! string literal, where a tab is plain content and a newline makes Go refuse the template.

use std::fmt::Display;

/// docker's own limit for any option value here.
const MAX_BYTES: usize = 1024;
const MAX_ACTIONS: usize = 64;
/// For `if`/`with`/`range` blocks and, separately, for parentheses.
const MAX_DEPTH: usize = 4;
const MAX_INT: i64 = 1024;
const MAX_TRUNCATE: i64 = 1024;
const MAX_PAD: i64 = 64;
/// How many times the data one action may build (all its steps together).
const MAX_GROWTH: u64 = 64;
/// Bytes of constants one action may build (`json` of a long literal, `pad` widths...).
const MAX_FIXED: u64 = 64 * 1024;
/// How many times the data the whole template may build.
const MAX_COST: u64 = 1024;

const ACCEPTED: &str = "accepted in --format: field paths such as {{.Names}} or \
{{.State.Status}}, `.Label \"key\"`, `json`, `upper`, `lower`, `title`, `join LIST \",\"`, \
`split TEXT \":\"`, `truncate TEXT N` (N <= 1024), `pad TEXT A B` (A, B <= 64), `index`, `len`, \
`eq` `ne` `lt` `le` `gt` `ge`, `and` `or` `not`, `print`, `println`, `|`, \
`if`/`else`/`with`/`range` (one level, over a list field such as .Mounts) ... `end`, \
`{{/* comments */}}`, and a leading `table`";

/// The last field names `range` may run over: lists and maps in docker's inspect and info
/// data. Go ranges over integers too, and a template cannot see types, so a name docker uses
/// for a number (`Size`, `ShmSize`, `Pid`) must never be here. `Containers` is a number in
/// `docker info`, but a count of containers, as small as the data.
const RANGE_FIELDS: &[&str] = &[
    "Aliases",
    "Args",
    "Binds",
    "CapAdd",
    "CapDrop",
    "Cmd",
    "Config",
    "Containers",
    "DNSNames",
    "Data",
    "Devices",
    "Dns",
    "DnsOptions",
    "DnsSearch",
    "Entrypoint",
    "Env",
    "ExposedPorts",
    "ExtraHosts",
    "Labels",
    "Layers",
    "Links",
    "Log",
    "Mounts",
    "Networks",
    "Options",
    "PortBindings",
    "Ports",
    "RepoDigests",
    "RepoTags",
    "SecurityOpt",
    "Sysctls",
    "Test",
    "Tmpfs",
    "Ulimits",
    "Volumes",
    "Warnings",
];

/// A function the subset accepts: its arity (a piped value counts as the last argument) and
/// the usage shown when it is called wrongly.
struct Func {
    name: &'static str,
    min: usize,
    max: usize,
    usage: &'static str,
}

const FUNCS: &[Func] = &[
    func("json", 1, 1, "{{json .Config.Labels}}"),
    func("upper", 1, 1, "{{upper .Names}}"),
    func("lower", 1, 1, "{{lower .Names}}"),
    func("title", 1, 1, "{{title .Names}}"),
    func("split", 2, 2, "{{split .Image \":\"}}"),
    func("join", 2, 2, "{{join .Names \",\"}}"),
    func("truncate", 2, 2, "{{truncate .ID 12}}"),
    func("pad", 3, 3, "{{pad .Names 1 1}}"),
    func("len", 1, 1, "{{len .Mounts}}"),
    func(
        "index",
        1,
        8,
        "{{index .Config.Labels \"com.docker.compose.project\"}}",
    ),
    func("eq", 2, 8, "{{eq .State.Status \"running\"}}"),
    func("ne", 2, 2, "{{ne .State.Status \"running\"}}"),
    func("lt", 2, 2, "{{lt .RestartCount 3}}"),
    func("le", 2, 2, "{{le .RestartCount 3}}"),
    func("gt", 2, 2, "{{gt .RestartCount 3}}"),
    func("ge", 2, 2, "{{ge .RestartCount 3}}"),
    func("not", 1, 1, "{{not .State.Running}}"),
    func("and", 1, 8, "{{and .State.Running .State.Paused}}"),
    func("or", 1, 8, "{{or .State.Running .State.Paused}}"),
    func("print", 0, 16, "{{print .Name \" \" .ID}}"),
    func("println", 0, 16, "{{println .Name}}"),
];

const fn func(name: &'static str, min: usize, max: usize, usage: &'static str) -> Func {
    Func {
        name,
        min,
        max,
        usage,
    }
}

/// Checks a `--format` value; the error says where (byte N, counting from 1), what is wrong
/// and what to write instead.
///
/// Accepted: text (anything but a stray `}}`) and up to 64 actions `{{ ... }}` with optional
/// trim markers `{{- ` / ` -}}`:
/// - `{{/* comment */}}`;
/// - `{{PIPELINE}}`: commands joined by `|`, where a command is a field path (`.`, `.Names`,
///   `.Config.Env`), `.Label "key"`, a string ("..." with Go escapes, or `raw`), an integer
///   within ±1024, `true`/`false`, `(PIPELINE)` optionally followed by `.Field`, or a function
///   from `FUNCS` with its arguments; after a `|` only a function;
/// - `{{if P}}`, `{{else if P}}`, `{{with FIELD}}`, `{{else with FIELD}}`, `{{range FIELD}}`
///   (FIELD ending in one of `RANGE_FIELDS`, no `range` inside a `range`), `{{else}}`,
///   `{{end}}`, nested at most 4 deep; parentheses nest at most 4 deep.
pub fn check(template: &str) -> Result<(), String> {
    check_hiding(template, &[])
}

/// `check`, and no field path may reach the `hidden` ones (`["Config", "Env"]`): not through
/// a field named like their last part anywhere (`{{with .Config}}{{.Env}}`), not by printing
/// a value that holds them whole (`.`, `{{json .}}`, `.Config`).
pub fn check_hiding(template: &str, hidden: &[&[&str]]) -> Result<(), String> {
    // The docker CLI prints the whole object for an empty format (`--format ''`), and for
    // `json` in CLIs that know it (24 and later): the environment with it.
    let word = template.trim();
    if !hidden.is_empty() && (word.is_empty() || word.eq_ignore_ascii_case("json")) {
        return Err(
            "an empty --format, or `json`, prints the whole object, its environment included: send `docker inspect` without --format (values are redacted) or a template of the fields you need"
                .to_string(),
        );
    }
    if template.len() > MAX_BYTES {
        return Err(format!(
            "a --format template is at most {MAX_BYTES} bytes (this one has {})",
            template.len()
        ));
    }
    Checker {
        src: template,
        actions: 0,
        blocks: Vec::new(),
        cost: 0,
        hidden,
    }
    .run()
}

/// Why `token` could show a hidden field, if it could.
fn reveals(token: &Token<'_>, hidden: &[&[&str]]) -> Option<String> {
    let shown = |path: &str| {
        format!(
            "`{path}` would show what this host hides from --format (the containers' environment)"
        )
    };
    match token.tok {
        Tok::Dot if !hidden.is_empty() => Some(shown(".")),
        Tok::Field(path) => {
            let parts: Vec<&str> = path.split('.').filter(|p| !p.is_empty()).collect();
            let hit = hidden.iter().any(|h| {
                h.last().is_some_and(|last| parts.contains(last))
                    || (parts.len() < h.len() && h.starts_with(&parts))
            });
            hit.then(|| shown(path))
        }
        _ => None,
    }
}

/// Positions come first: the list of what is accepted can be long.
fn at(pos: usize, message: impl Display) -> String {
    format!("at byte {}: {message}", pos.saturating_add(1))
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// A bound on the size of a value: at most `data` times the data docker formats, plus `fixed`
/// bytes of constants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Size {
    data: u64,
    fixed: u64,
}

impl Size {
    const DATA: Size = Size { data: 1, fixed: 0 };

    fn fixed(bytes: usize) -> Size {
        Size {
            data: 0,
            fixed: u64::try_from(bytes).unwrap_or(u64::MAX),
        }
    }

    fn plus(self, other: Size) -> Size {
        Size {
            data: self.data.saturating_add(other.data),
            fixed: self.fixed.saturating_add(other.fixed),
        }
    }

    fn times(self, k: u64) -> Size {
        Size {
            data: self.data.saturating_mul(k),
            fixed: self.fixed.saturating_mul(k),
        }
    }

    fn max(self, other: Size) -> Size {
        Size {
            data: self.data.max(other.data),
            fixed: self.fixed.max(other.fixed),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Tok<'a> {
    Space,
    Dot,
    /// `.A.B`, with its dots.
    Field(&'a str),
    Ident(&'a str),
    /// A string literal, by its written length (never shorter than its value).
    Str(usize),
    Int(i64, usize),
    Bool(usize),
    Open,
    Close,
    Pipe,
}

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    tok: Tok<'a>,
    at: usize,
}

enum Term<'a> {
    Dot,
    Field(&'a str),
    Func(&'a str),
    Str(usize),
    Int(i64, usize),
    Bool(usize),
    Sub(Pipeline<'a>),
    /// `(PIPELINE).Field`: a part of the pipeline's value.
    Chain(Pipeline<'a>),
}

struct Operand<'a> {
    term: Term<'a>,
    at: usize,
}

struct Command<'a> {
    operands: Vec<Operand<'a>>,
}

struct Pipeline<'a> {
    commands: Vec<Command<'a>>,
    at: usize,
}

enum Action<'a> {
    Plain(Pipeline<'a>),
    If(Pipeline<'a>),
    ElseIf(Pipeline<'a>),
    With(Pipeline<'a>),
    ElseWith(Pipeline<'a>),
    Range(Pipeline<'a>),
    Else,
    End,
}

/// A function argument as the limits see it: `join`'s separator, `truncate`'s length and
/// `pad`'s widths must be literals written in place, because their value is the bound.
#[derive(Debug, Clone, Copy)]
enum Arg {
    Str(usize),
    Int(i64, usize),
    Value(Size),
}

impl Arg {
    fn size(self) -> Size {
        match self {
            Arg::Str(len) | Arg::Int(_, len) => Size::fixed(len),
            Arg::Value(size) => size,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    If,
    With,
    Range,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::If => "if",
            Kind::With => "with",
            Kind::Range => "range",
        }
    }

    fn a(self) -> &'static str {
        match self {
            Kind::If => "an `if`",
            Kind::With => "a `with`",
            Kind::Range => "a `range`",
        }
    }
}

struct Block {
    kind: Kind,
    at: usize,
    else_seen: bool,
}

struct Checker<'a> {
    src: &'a str,
    actions: usize,
    blocks: Vec<Block>,
    cost: u64,
    hidden: &'a [&'a [&'a str]],
}

impl<'a> Checker<'a> {
    fn byte(&self, pos: usize) -> Option<u8> {
        self.src.as_bytes().get(pos).copied()
    }

    fn has(&self, pos: usize, what: &[u8]) -> bool {
        self.src
            .as_bytes()
            .get(pos..)
            .is_some_and(|rest| rest.starts_with(what))
    }

    fn find(&self, from: usize, what: &[u8]) -> Option<usize> {
        let rest = self.src.as_bytes().get(from..)?;
        rest.windows(what.len())
            .position(|w| w == what)
            .map(|i| from + i)
    }

    /// Slices between positions the lexer reached by ASCII steps, so on char boundaries.
    fn slice(&self, from: usize, to: usize) -> &'a str {
        self.src.get(from..to).unwrap_or_default()
    }

    fn in_range(&self) -> bool {
        self.blocks.iter().any(|b| b.kind == Kind::Range)
    }

    fn run(mut self) -> Result<(), String> {
        let mut pos = 0;
        loop {
            let open = self.find(pos, b"{{");
            self.text(pos, open.unwrap_or(self.src.len()))?;
            let Some(open) = open else { break };
            self.actions += 1;
            if self.actions > MAX_ACTIONS {
                return Err(at(
                    open,
                    format!("a --format template has at most {MAX_ACTIONS} actions `{{{{...}}}}`"),
                ));
            }
            pos = self.action(open)?;
        }
        if let Some(block) = self.blocks.last() {
            return Err(at(
                block.at,
                format!(
                    "`{{{{{}` is not closed: add `{{{{end}}}}`",
                    block.kind.word()
                ),
            ));
        }
        Ok(())
    }

    fn text(&mut self, from: usize, to: usize) -> Result<(), String> {
        // Go would print a stray `}}` as text, but it is nearly always a mistyped action.
        if let Some(stray) = self.find(from, b"}}").filter(|&p| p < to) {
            return Err(at(stray, "`}}` without an opening `{{`"));
        }
        if self.in_range() {
            // Text inside `range` is written once per element.
            self.spend(
                from,
                u64::try_from(to.saturating_sub(from)).unwrap_or(u64::MAX),
            )?;
        }
        Ok(())
    }

    /// Reads the action opening at `open`; returns the position after it.
    fn action(&mut self, open: usize) -> Result<usize, String> {
        // Go's left trim marker is `-` and one space; a comment may follow right after.
        let trim = self.byte(open + 2) == Some(b'-') && self.byte(open + 3).is_some_and(is_space);
        let body = if trim { open + 4 } else { open + 2 };
        if self.has(body, b"/*") {
            return self.comment(open, body);
        }
        let lex_from = if trim { open + 3 } else { open + 2 };
        let (tokens, close, after) = self.lex(open, lex_from)?;
        if let Some((why, token)) = tokens
            .iter()
            .find_map(|t| reveals(t, self.hidden).map(|why| (why, t)))
        {
            return Err(at(token.at, why));
        }
        let action = parse_action(&tokens, close)?;
        self.apply(action, open)?;
        Ok(after)
    }

    fn comment(&self, open: usize, body: usize) -> Result<usize, String> {
        let Some(end) = self.find(body + 2, b"*/") else {
            return Err(at(open, "unclosed comment: end it with `*/}}`"));
        };
        let end = end + 2;
        if self.has(end, b"}}") {
            return Ok(end + 2);
        }
        if self.byte(end).is_some_and(is_space)
            && self.byte(end + 1) == Some(b'-')
            && self.has(end + 2, b"}}")
        {
            return Ok(end + 4);
        }
        Err(at(end, "a comment ends with `*/}}` or `*/ -}}`"))
    }

    /// The action's tokens, where its `}}` is and the position after it.
    fn lex(&self, open: usize, mut p: usize) -> Result<(Vec<Token<'a>>, usize, usize), String> {
        let mut tokens = Vec::new();
        loop {
            if self.has(p, b"}}") {
                return Ok((tokens, p, p + 2));
            }
            let Some(c) = self.byte(p) else {
                return Err(at(open, "unterminated action: this `{{` has no `}}`"));
            };
            if is_space(c) {
                let mut q = p;
                while self.byte(q).is_some_and(is_space) {
                    q += 1;
                }
                if self.has(q, b"-}}") {
                    return Ok((tokens, q + 1, q + 3));
                }
                tokens.push(Token {
                    tok: Tok::Space,
                    at: p,
                });
                p = q;
                continue;
            }
            let (tok, next) = match c {
                b'"' => self.string(p)?,
                b'`' => match self.find(p + 1, b"`") {
                    Some(end) => (Tok::Str(end + 1 - p), end + 1),
                    None => {
                        return Err(at(p, "unterminated raw string: close it with a backquote"));
                    }
                },
                b'(' => (Tok::Open, p + 1),
                b')' => (Tok::Close, p + 1),
                b'|' => (Tok::Pipe, p + 1),
                b'.' => match self.byte(p + 1) {
                    Some(d) if is_ident_start(d) => self.field(p),
                    // Go reads `.5` as a number.
                    Some(d) if d.is_ascii_digit() => self.number(p)?,
                    _ => (Tok::Dot, p + 1),
                },
                b'+' | b'-' | b'0'..=b'9' => self.number(p)?,
                c if is_ident_start(c) => self.ident(p),
                b'$' => {
                    return Err(at(
                        p,
                        "variables (`$x := ...`, `$`) are not accepted in --format: refer to fields from the dot, such as {{.Name}}",
                    ));
                }
                b':' | b'=' => return Err(at(p, "assignments are not accepted in --format")),
                b'\'' => {
                    return Err(at(
                        p,
                        "character constants are not accepted in --format: write a string, \"a\"",
                    ));
                }
                _ => {
                    let shown = self
                        .src
                        .get(p..)
                        .and_then(|s| s.chars().next())
                        .unwrap_or('?');
                    return Err(at(
                        p,
                        format!("unexpected character `{shown}` in an action"),
                    ));
                }
            };
            tokens.push(Token { tok, at: p });
            p = next;
        }
    }

    fn string(&self, start: usize) -> Result<(Tok<'a>, usize), String> {
        let unterminated = || at(start, "unterminated string: close it with `\"`");
        let mut q = start + 1;
        loop {
            match self.byte(q) {
                None | Some(b'\n') => return Err(unterminated()),
                Some(b'"') => return Ok((Tok::Str(q + 1 - start), q + 1)),
                Some(b'\\') => {
                    let digits = |n: usize, ok: fn(u8) -> bool| {
                        (q + 2..q + 2 + n).all(|i| self.byte(i).is_some_and(ok))
                    };
                    let number = |from: usize, n: usize, radix: u32| {
                        std::str::from_utf8(
                            self.src.as_bytes().get(from..from + n).unwrap_or_default(),
                        )
                        .ok()
                        .and_then(|text| u32::from_str_radix(text, radix).ok())
                    };
                    // Each escape's width, the code point it makes, and whether it makes one byte.
                    let escape = match self.byte(q + 1) {
                        None => return Err(unterminated()),
                        Some(b'n') => Some((2, u32::from('\n'), false)),
                        Some(b't') => Some((2, u32::from('\t'), false)),
                        Some(b'\\') => Some((2, u32::from('\\'), false)),
                        Some(b'"') => Some((2, u32::from('"'), false)),
                        Some(b'a') => Some((2, 0x07, false)),
                        Some(b'b') => Some((2, 0x08, false)),
                        Some(b'f') => Some((2, 0x0c, false)),
                        Some(b'r') => Some((2, 0x0d, false)),
                        Some(b'v') => Some((2, 0x0b, false)),
                        Some(b'x') if digits(2, |c| c.is_ascii_hexdigit()) => {
                            number(q + 2, 2, 16).map(|v| (4, v, true))
                        }
                        Some(b'u') if digits(4, |c| c.is_ascii_hexdigit()) => {
                            number(q + 2, 4, 16).map(|v| (6, v, false))
                        }
                        Some(b'U') if digits(8, |c| c.is_ascii_hexdigit()) => {
                            number(q + 2, 8, 16).map(|v| (10, v, false))
                        }
                        // Go's octal escapes are three digits, at most \377.
                        Some(b'0'..=b'3') if digits(2, |c| matches!(c, b'0'..=b'7')) => {
                            number(q + 1, 3, 8).map(|v| (4, v, true))
                        }
                        Some(_) => None,
                    };
                    let Some((width, code, one_byte)) = escape else {
                        return Err(at(
                            q,
                            "invalid escape in a string (Go accepts \\n \\t \\\\ \\\" \\xHH \\uHHHH ...)",
                        ));
                    };
                    if !printable_escape(code, one_byte) {
                        return Err(at(
                            q,
                            "an escape in a string may make only a printable character, `\\n` or `\\t`: docker would print a control, invisible or broken character (`\\x1b`, `\\u202e`, `\\xff`) raw to the terminal",
                        ));
                    }
                    q += width;
                }
                Some(_) => q += 1,
            }
        }
    }

    fn field(&self, start: usize) -> (Tok<'a>, usize) {
        let mut q = start;
        while self.byte(q) == Some(b'.') && self.byte(q + 1).is_some_and(is_ident_start) {
            q += 2;
            while self.byte(q).is_some_and(is_ident) {
                q += 1;
            }
        }
        (Tok::Field(self.slice(start, q)), q)
    }

    fn ident(&self, start: usize) -> (Tok<'a>, usize) {
        let mut q = start;
        while self.byte(q).is_some_and(is_ident) {
            q += 1;
        }
        let word = self.slice(start, q);
        let tok = match word {
            "true" | "false" => Tok::Bool(word.len()),
            _ => Tok::Ident(word),
        };
        (tok, q)
    }

    /// Go reads numbers liberally (`0x1F`, `1e9`, `1_000`, `010` is octal, `0999` a float
    /// that is an integer), so only a plain decimal is accepted, and only within ±1024.
    fn number(&self, start: usize) -> Result<(Tok<'a>, usize), String> {
        let mut q = start;
        if matches!(self.byte(q), Some(b'+' | b'-')) {
            q += 1;
        }
        let digits_from = q;
        while self
            .byte(q)
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.'))
        {
            q += 1;
        }
        let raw = self.slice(start, q);
        let digits = self.slice(digits_from, q);
        let plain = !digits.is_empty()
            && digits.len() <= 4
            && digits.bytes().all(|c| c.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'));
        let value = raw
            .parse::<i64>()
            .ok()
            .filter(|v| plain && v.abs() <= MAX_INT);
        match value {
            Some(v) => Ok((Tok::Int(v, raw.len()), q)),
            None => Err(at(
                start,
                format!(
                    "integer `{raw}` is not accepted: --format integers are plain decimals from -{MAX_INT} to {MAX_INT} (`truncate` lengths <= {MAX_TRUNCATE}, `pad` widths <= {MAX_PAD})"
                ),
            )),
        }
    }

    fn apply(&mut self, action: Action<'a>, open: usize) -> Result<(), String> {
        match action {
            Action::Plain(pipeline) => {
                self.charge(&pipeline)?;
            }
            Action::If(pipeline) => {
                self.charge(&pipeline)?;
                self.push(Kind::If, open)?;
            }
            Action::With(pipeline) => {
                self.narrowing(&pipeline)?;
                self.push(Kind::With, open)?;
            }
            Action::Range(pipeline) => {
                if self.in_range() {
                    return Err(at(
                        open,
                        "a nested `range` is not accepted in --format: one level of `range` is enough for docker's lists",
                    ));
                }
                range_operand(&pipeline)?;
                self.charge(&pipeline)?;
                self.push(Kind::Range, open)?;
            }
            Action::Else => {
                self.else_branch(open, None)?;
            }
            Action::ElseIf(pipeline) => {
                self.else_branch(open, Some(Kind::If))?;
                self.charge(&pipeline)?;
            }
            Action::ElseWith(pipeline) => {
                self.else_branch(open, Some(Kind::With))?;
                self.narrowing(&pipeline)?;
            }
            Action::End => {
                if self.blocks.pop().is_none() {
                    return Err(at(
                        open,
                        "`{{end}}` without an open `if`, `with` or `range`",
                    ));
                }
            }
        }
        Ok(())
    }

    fn push(&mut self, kind: Kind, open: usize) -> Result<(), String> {
        if self.blocks.len() >= MAX_DEPTH {
            return Err(at(
                open,
                format!("if/with/range blocks nest at most {MAX_DEPTH} deep in --format"),
            ));
        }
        self.blocks.push(Block {
            kind,
            at: open,
            else_seen: false,
        });
        Ok(())
    }

    /// `{{else}}` (chained: `None`), or `{{else if}}`/`{{else with}}` continuing a block of
    /// that kind, as Go allows.
    fn else_branch(&mut self, open: usize, chained: Option<Kind>) -> Result<(), String> {
        let Some(block) = self.blocks.last_mut() else {
            return Err(at(
                open,
                "`{{else}}` without an open `if`, `with` or `range`",
            ));
        };
        if block.else_seen {
            return Err(at(
                open,
                format!(
                    "a second `{{{{else}}}}` in this `{}`: the last branch is already taken",
                    block.kind.word()
                ),
            ));
        }
        match chained {
            None => block.else_seen = true,
            Some(kind) if kind == block.kind => {}
            Some(kind) => {
                return Err(at(
                    open,
                    format!(
                        "`{{{{else {}}}}}` continues only {}, not {}",
                        kind.word(),
                        kind.a(),
                        block.kind.a()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `with` makes its value the dot of its body. A value bigger than the data would multiply
    /// every cost inside, and a constant (`or .A "long text"`) would escape the count inside a
    /// `range`, so only a part of the data is accepted.
    fn narrowing(&mut self, pipeline: &Pipeline<'a>) -> Result<(), String> {
        let value = self.charge(pipeline)?;
        if value.data > 1 || value.fixed > 0 {
            return Err(at(
                pipeline.at,
                "`with` takes a part of the data (a field, `index`, `.Label`), not a computed value: write {{with .State.Health}}{{.Status}}{{end}}",
            ));
        }
        Ok(())
    }

    /// Costs one action's pipeline and returns the bound on its value.
    fn charge(&mut self, pipeline: &Pipeline<'a>) -> Result<Size, String> {
        let mut work = Size::default();
        let value = eval_pipeline(pipeline, &mut work)?;
        if work.data > MAX_GROWTH {
            return Err(at(
                pipeline.at,
                format!(
                    "this action can build more than {MAX_GROWTH} times the data it formats: json, upper/lower/title, split and join each multiply what they are given (a `join` separator counts once per element); use fewer nested functions"
                ),
            ));
        }
        if work.fixed > MAX_FIXED {
            return Err(at(
                pipeline.at,
                format!("this action can build more than {MAX_FIXED} bytes of constants"),
            ));
        }
        // Inside `range` the action runs once per element: its share of the data, and its
        // constants again each time.
        let spent = if self.in_range() {
            work.data.saturating_add(work.fixed)
        } else {
            work.data
        };
        self.spend(pipeline.at, spent)?;
        Ok(value)
    }

    /// Adds to the template's total, in units of the data.
    fn spend(&mut self, pos: usize, cost: u64) -> Result<(), String> {
        self.cost = self.cost.saturating_add(cost);
        if self.cost > MAX_COST {
            return Err(at(
                pos,
                format!(
                    "the template can build more than {MAX_COST} times the data docker formats (text and constants inside `range` repeat for every element); write a shorter template"
                ),
            ));
        }
        Ok(())
    }
}

fn range_operand(pipeline: &Pipeline<'_>) -> Result<(), String> {
    let only = match pipeline.commands.as_slice() {
        [command] => match command.operands.as_slice() {
            [operand] => Some(operand),
            _ => None,
        },
        _ => None,
    };
    let Some(Operand {
        term: Term::Field(path),
        at: pos,
    }) = only
    else {
        return Err(at(
            pipeline.at,
            "`range` takes one list or map field, such as {{range .Mounts}} or {{range .NetworkSettings.Networks}}",
        ));
    };
    let last = path.rsplit('.').next().unwrap_or_default();
    if RANGE_FIELDS.contains(&last) {
        return Ok(());
    }
    Err(at(
        *pos,
        format!(
            "`range` runs only over docker's list and map fields ({}); `{path}` is not one of them: Go's range over a number counts up to it, so {{{{range .HostConfig.ShmSize}}}} would loop 67 million times",
            RANGE_FIELDS.join(", ")
        ),
    ))
}

fn parse_action<'a>(tokens: &[Token<'a>], close: usize) -> Result<Action<'a>, String> {
    let mut p = Parser {
        tokens,
        i: 0,
        close,
    };
    p.skip_space();
    let keyword = match p.peek() {
        Some(Token {
            tok: Tok::Ident(word),
            at: pos,
        }) => Some((word, pos)),
        _ => None,
    };
    let action = match keyword {
        Some(("if", _)) => {
            p.i += 1;
            Action::If(p.pipeline(0)?)
        }
        Some(("with", _)) => {
            p.i += 1;
            Action::With(p.pipeline(0)?)
        }
        Some(("range", _)) => {
            p.i += 1;
            Action::Range(p.pipeline(0)?)
        }
        Some(("end", _)) => {
            p.i += 1;
            Action::End
        }
        Some(("else", _)) => {
            p.i += 1;
            p.skip_space();
            match p.peek() {
                Some(Token {
                    tok: Tok::Ident("if"),
                    ..
                }) => {
                    p.i += 1;
                    Action::ElseIf(p.pipeline(0)?)
                }
                Some(Token {
                    tok: Tok::Ident("with"),
                    ..
                }) => {
                    p.i += 1;
                    Action::ElseWith(p.pipeline(0)?)
                }
                _ => Action::Else,
            }
        }
        Some((word @ ("template" | "define" | "block"), pos)) => {
            return Err(at(
                pos,
                format!(
                    "`{word}` is not accepted in --format: a --format value is one template; {ACCEPTED}"
                ),
            ));
        }
        Some((word @ ("break" | "continue"), pos)) => {
            return Err(at(
                pos,
                format!("`{word}` is not accepted in --format: a `range` runs over the whole list"),
            ));
        }
        _ => Action::Plain(p.pipeline(0)?),
    };
    p.skip_space();
    match p.peek() {
        None => Ok(action),
        Some(Token {
            tok: Tok::Close,
            at: pos,
        }) => Err(at(pos, "unexpected `)`")),
        Some(token) => Err(at(
            token.at,
            "unexpected words after `end` or `else`: they stand alone, as {{end}} and {{else}}",
        )),
    }
}

struct Parser<'t, 'a> {
    tokens: &'t [Token<'a>],
    i: usize,
    /// Where the action's `}}` is: errors at the end of the action point there.
    close: usize,
}

impl<'a> Parser<'_, 'a> {
    fn peek(&self) -> Option<Token<'a>> {
        self.tokens.get(self.i).copied()
    }

    fn skip_space(&mut self) {
        while matches!(
            self.peek(),
            Some(Token {
                tok: Tok::Space,
                ..
            })
        ) {
            self.i += 1;
        }
    }

    fn here(&self) -> usize {
        self.peek().map_or(self.close, |t| t.at)
    }

    fn pipeline(&mut self, depth: usize) -> Result<Pipeline<'a>, String> {
        self.skip_space();
        let start = self.here();
        let mut commands = Vec::new();
        loop {
            self.skip_space();
            let command_at = self.here();
            let operands = self.command(depth)?;
            if operands.is_empty() {
                let why = if commands.is_empty() {
                    "an empty action or condition: write a field such as {{.Names}}"
                } else {
                    "a `|` must be followed by a function, as in {{.Names | upper}}"
                };
                return Err(at(command_at, why));
            }
            commands.push(Command { operands });
            match self.peek() {
                Some(Token { tok: Tok::Pipe, .. }) => self.i += 1,
                _ => break,
            }
        }
        Ok(Pipeline {
            commands,
            at: start,
        })
    }

    fn command(&mut self, depth: usize) -> Result<Vec<Operand<'a>>, String> {
        let mut operands = Vec::new();
        loop {
            self.skip_space();
            match self.peek() {
                None
                | Some(Token {
                    tok: Tok::Pipe | Tok::Close,
                    ..
                }) => return Ok(operands),
                Some(_) => {}
            }
            operands.push(self.operand(depth)?);
            // Go separates arguments by spaces: `.A"x"` and `json(.A)` are parse errors.
            match self.peek() {
                None
                | Some(Token {
                    tok: Tok::Space | Tok::Pipe | Tok::Close,
                    ..
                }) => {}
                Some(token) => return Err(at(token.at, "separate arguments with a space")),
            }
        }
    }

    fn operand(&mut self, depth: usize) -> Result<Operand<'a>, String> {
        let Some(token) = self.peek() else {
            return Err(at(self.close, "an action ends where a value was expected"));
        };
        self.i += 1;
        let term = match token.tok {
            Tok::Dot => Term::Dot,
            Tok::Field(path) => Term::Field(path),
            Tok::Str(len) => Term::Str(len),
            Tok::Int(value, len) => Term::Int(value, len),
            Tok::Bool(len) => Term::Bool(len),
            Tok::Ident("nil") => {
                return Err(at(token.at, "`nil` is not accepted in --format"));
            }
            Tok::Ident(
                word @ ("if" | "else" | "end" | "range" | "with" | "template" | "define" | "block"
                | "break" | "continue"),
            ) => {
                return Err(at(
                    token.at,
                    format!("`{word}` must begin its own action, as in {{{{{word} ...}}}}"),
                ));
            }
            Tok::Ident(name) => Term::Func(name),
            Tok::Open => {
                if depth >= MAX_DEPTH {
                    return Err(at(
                        token.at,
                        format!("parentheses nest at most {MAX_DEPTH} deep in --format"),
                    ));
                }
                let inner = self.pipeline(depth + 1)?;
                match self.peek() {
                    Some(Token {
                        tok: Tok::Close, ..
                    }) => self.i += 1,
                    _ => return Err(at(token.at, "this `(` is not closed")),
                }
                match self.peek() {
                    Some(Token {
                        tok: Tok::Field(_), ..
                    }) => {
                        self.i += 1;
                        Term::Chain(inner)
                    }
                    _ => Term::Sub(inner),
                }
            }
            Tok::Close => return Err(at(token.at, "unexpected `)`")),
            Tok::Pipe | Tok::Space => return Err(at(token.at, "a value was expected here")),
        };
        Ok(Operand { term, at: token.at })
    }
}

fn eval_pipeline(pipeline: &Pipeline<'_>, work: &mut Size) -> Result<Size, String> {
    // Go appends each command's value to the next command's arguments.
    let mut piped: Option<(Arg, usize)> = None;
    for command in &pipeline.commands {
        let value = eval_command(command, piped.take(), work)?;
        piped = Some((Arg::Value(value), pipeline.at));
    }
    Ok(piped.map_or_else(Size::default, |(arg, _)| arg.size()))
}

fn eval_command(
    command: &Command<'_>,
    piped: Option<(Arg, usize)>,
    work: &mut Size,
) -> Result<Size, String> {
    let mut operands = command.operands.iter();
    let Some(first) = operands.next() else {
        return Err("an empty command".to_string());
    };
    match (&first.term, command.operands.as_slice(), piped) {
        (Term::Func(name), _, piped) => {
            let mut args = Vec::new();
            for operand in operands {
                args.push((eval_arg(operand, work)?, operand.at));
            }
            args.extend(piped);
            let value = call(name, &args, first.at)?;
            *work = work.plus(value);
            Ok(value)
        }
        // docker's listing contexts have a `Label` method: `{{.Label "com.docker.compose.project"}}`.
        (
            Term::Field(path),
            [
                _,
                Operand {
                    term: Term::Str(len),
                    ..
                },
            ],
            None,
        ) if path.rsplit('.').next() == Some("Label") => {
            *work = work.plus(Size::DATA).plus(Size::fixed(*len));
            Ok(Size::DATA)
        }
        (_, _, piped) => {
            if let Some(extra) = operands.next() {
                return Err(at(
                    extra.at,
                    "only a function takes arguments here (and `.Label \"key\"`): a field or value stands alone, or write {{index .Config.Labels \"key\"}}",
                ));
            }
            if piped.is_some() {
                return Err(at(
                    first.at,
                    "after `|` comes a function, as in {{.Names | upper}}",
                ));
            }
            Ok(eval_arg(first, work)?.size())
        }
    }
}

fn eval_arg(operand: &Operand<'_>, work: &mut Size) -> Result<Arg, String> {
    let arg = match &operand.term {
        Term::Dot | Term::Field(_) => Arg::Value(Size::DATA),
        Term::Str(len) => Arg::Str(*len),
        Term::Int(value, len) => Arg::Int(*value, *len),
        Term::Bool(len) => Arg::Value(Size::fixed(*len)),
        // Go calls a function named as an argument with no arguments.
        Term::Func(name) => Arg::Value(call(name, &[], operand.at)?),
        // A chain's field is a part of the pipeline's value; the pipeline charged its work.
        Term::Sub(inner) | Term::Chain(inner) => {
            return Ok(Arg::Value(eval_pipeline(inner, work)?));
        }
    };
    *work = work.plus(arg.size());
    Ok(arg)
}

fn refused_function(name: &str, pos: usize) -> String {
    let why = match name {
        "printf" => {
            "`printf` is not accepted in --format: its widths (`%999999999d`) build strings of any size"
        }
        "call" => "`call` is not accepted in --format: it runs a function value found in the data",
        "slice" => "`slice` is not accepted in --format: use `truncate TEXT N` or `index`",
        "html" | "js" | "urlquery" => {
            "`html`, `js` and `urlquery` are not accepted in --format: they escape text for web pages, which docker output does not need"
        }
        _ => "",
    };
    if why.is_empty() {
        at(
            pos,
            format!("`{name}` is not a function --format accepts; {ACCEPTED}"),
        )
    } else {
        at(pos, format!("{why}; {ACCEPTED}"))
    }
}

/// `what` is the parameter in the singular ("a length", "a width").
fn literal_int(
    func: &Func,
    args: &[(Arg, usize)],
    k: usize,
    what: &str,
    max: i64,
    pos: usize,
) -> Result<u64, String> {
    match args.get(k) {
        Some((Arg::Int(value, _), _)) if (0..=max).contains(value) => {
            Ok(u64::try_from(*value).unwrap_or(u64::MAX))
        }
        Some((Arg::Int(..), arg_at)) => Err(at(
            *arg_at,
            format!(
                "`{}` takes {what} from 0 to {max}: {}",
                func.name, func.usage
            ),
        )),
        _ => Err(at(
            pos,
            format!(
                "`{}` takes {what} as an integer literal written in place (a piped value becomes the last argument): {}",
                func.name, func.usage
            ),
        )),
    }
}

fn literal_str(func: &Func, args: &[(Arg, usize)], k: usize, pos: usize) -> Result<u64, String> {
    match args.get(k) {
        Some((Arg::Str(len), _)) => Ok(u64::try_from(*len).unwrap_or(u64::MAX)),
        _ => Err(at(
            pos,
            format!(
                "`{}` takes its separator as a string written in place (a piped value becomes the last argument): {}",
                func.name, func.usage
            ),
        )),
    }
}

fn arg_size(args: &[(Arg, usize)], k: usize) -> Size {
    args.get(k)
        .map_or_else(Size::default, |(arg, _)| arg.size())
}

/// The bound on a function's value, from the bounds on its arguments.
fn call(name: &str, args: &[(Arg, usize)], pos: usize) -> Result<Size, String> {
    let Some(func) = FUNCS.iter().find(|f| f.name == name) else {
        return Err(refused_function(name, pos));
    };
    if args.len() < func.min || args.len() > func.max {
        let count = if func.min == func.max {
            format!(
                "{} argument{}",
                func.min,
                if func.min == 1 { "" } else { "s" }
            )
        } else {
            format!("{} to {} arguments", func.min, func.max)
        };
        return Err(at(
            pos,
            format!(
                "`{name}` takes {count} (a piped value counts as the last): {}",
                func.usage
            ),
        ));
    }
    let first = arg_size(args, 0);
    let size = match name {
        // Every control byte becomes `\u00XX`, every bad UTF-8 byte `\ufffd`.
        "json" => first.times(6).plus(Size::fixed(2)),
        // Go's case mapping writes a bad UTF-8 byte as U+FFFD, three bytes.
        "upper" | "lower" | "title" => first.times(3),
        "split" => {
            literal_str(func, args, 1, pos)?;
            // Printed as `[a b c]`: a separator per element.
            first.times(2).plus(Size::fixed(2))
        }
        "join" => {
            let separator = literal_str(func, args, 1, pos)?;
            // A list has at most as many elements as it has bytes printed.
            first.times(separator.saturating_add(1))
        }
        "truncate" => Size {
            data: 0,
            fixed: literal_int(func, args, 1, "a length", MAX_TRUNCATE, pos)?,
        },
        "pad" => {
            let left = literal_int(func, args, 1, "a width", MAX_PAD, pos)?;
            let right = literal_int(func, args, 2, "a width", MAX_PAD, pos)?;
            first.plus(Size {
                data: 0,
                fixed: left.saturating_add(right),
            })
        }
        // An element of its first argument.
        "index" => first,
        // One of its arguments.
        "and" | "or" => args
            .iter()
            .fold(Size::default(), |acc, (arg, _)| acc.max(arg.size())),
        "print" | "println" => args
            .iter()
            .fold(Size::fixed(args.len() + 1), |acc, (arg, _)| {
                acc.plus(arg.size())
            }),
        // A number or a boolean.
        _ => Size::fixed(20),
    };
    Ok(size)
}

/// Whether a string escape's code point may reach the output: `\n`, `\t`, or a printable
/// character. `\xHH` and octal escapes make one byte, so only ASCII is whole there (`\xff`
/// alone is no UTF-8); `\u` and `\U` make a character, refused as the tokenizer refuses
/// one written out (controls, and the invisible and bidi ones).
fn printable_escape(code: u32, one_byte: bool) -> bool {
    if code == u32::from('\n') || code == u32::from('\t') {
        return true;
    }
    if one_byte && code > 0x7e {
        return false;
    }
    char::from_u32(code)
        .is_some_and(|c| !crate::tokenize::is_control(c) && !crate::tokenize::is_invisible(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A template and either `None` (accepted) or a fragment of the refusal.
    fn cases() -> Vec<(String, Option<&'static str>)> {
        let fixed: &[(&str, Option<&str>)] = &[
            // Accepted: real-world templates.
            ("", None),
            ("json", None),
            ("table", None),
            ("{{.Names}}", None),
            (r"table {{.ID}}\t{{.Image}}", None),
            (r"table {{.ID}}\t{{.Names}}\n", None),
            ("{{json .}}", None),
            ("{{json .Config.Labels}}", None),
            ("{{.State.Status}}", None),
            ("{{.State.Health.Status}}", None),
            ("{{range .Mounts}}{{.Name}} {{end}}", None),
            (
                "{{range .Mounts}}{{.Source}} -> {{.Destination}}{{println}}{{end}}",
                None,
            ),
            (
                "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                None,
            ),
            ("{{range .Config.Env}}{{.}}{{else}}none{{end}}", None),
            (
                r#"{{index .Config.Labels "com.docker.compose.project"}}"#,
                None,
            ),
            (r#"{{.Label "com.docker.compose.service"}}"#, None),
            (r#"{{join .Names ","}}"#, None),
            ("{{truncate .ID 12}}", None),
            ("{{upper .Name}}", None),
            ("{{- .Name -}}", None),
            ("{{.Names}} {{.Status}}", None),
            ("{{.Repository}}:{{.Tag}}", None),
            ("{{.Names | upper}}", None),
            ("{{.|json}}", None),
            ("{{pad .Name 2 2}}", None),
            ("{{len .Mounts}}", None),
            (r#"{{index (split .Image ":") 0}}"#, None),
            (
                r#"{{(index (index .NetworkSettings.Ports "80/tcp") 0).HostPort}}"#,
                None,
            ),
            (
                r#"{{if eq .State.Status "running"}}up{{else}}down{{end}}"#,
                None,
            ),
            (
                "{{if .State.Running}}yes{{else if .State.Restarting}}again{{else}}no{{end}}",
                None,
            ),
            ("{{with .State.Health}}{{.Status}}{{end}}", None),
            (
                r#"{{with index .Config.Labels "x"}}{{.}}{{else}}-{{end}}"#,
                None,
            ),
            ("{{and .State.Running (not .State.Paused)}}", None),
            ("{{title (lower .Name)}}", None),
            ("{{/* a comment */}}{{.ID}}", None),
            ("{{- /* trimmed */ -}}{{.ID}}", None),
            (r#"{{"}}"}} {{`raw {{`}}"#, None),
            (r#"{{"a\tb\u00e9\x41\101"}}"#, None),
            ("{{json (json .)}}", None),
            ("{{-3}} {{print .ID .Names}}", None),
            // Refused: functions that build or run.
            (
                r#"{{printf "%999999999d" 1}}"#,
                Some("`printf` is not accepted"),
            ),
            (
                r#"{{json (printf "%s" (printf "%99d" 1))}}"#,
                Some("`printf` is not accepted"),
            ),
            (
                r#"{{.Names | printf "%s"}}"#,
                Some("`printf` is not accepted"),
            ),
            ("{{call .F}}", Some("`call` is not accepted")),
            ("{{slice .ID 0 3}}", Some("`slice` is not accepted")),
            ("{{html .Name}}", Some("web pages")),
            ("{{exec .Name}}", Some("`exec` is not a function")),
            (r#"{{template "x"}}"#, Some("`template` is not accepted")),
            (r#"{{define "x"}}{{end}}"#, Some("`define` is not accepted")),
            (r#"{{block "x" .}}{{end}}"#, Some("`block` is not accepted")),
            (
                "{{range .Mounts}}{{break}}{{end}}",
                Some("`break` is not accepted"),
            ),
            ("{{$x := .}}", Some("variables")),
            ("{{range .Mounts}}{{$.Name}}{{end}}", Some("variables")),
            ("{{nil}}", Some("`nil` is not accepted")),
            ("{{'a'}}", Some("character constants")),
            // Refused: bounds.
            ("{{truncate .ID 99999999}}", Some("from -1024 to 1024")),
            ("{{truncate .ID -1}}", Some("a length from 0 to 1024")),
            ("{{.ID | truncate 12}}", Some("written in place")),
            ("{{pad .Name 100000 1}}", Some("from -1024 to 1024")),
            ("{{pad .Name 100 1}}", Some("a width from 0 to 64")),
            (
                "{{pad .Name .Size 1}}",
                Some("integer literal written in place"),
            ),
            ("{{0x10}}", Some("plain decimals")),
            ("{{1e9}}", Some("plain decimals")),
            ("{{010}}", Some("plain decimals")),
            ("{{1.5}}", Some("plain decimals")),
            ("{{json (json (json .))}}", Some("more than 64 times")),
            (
                r#"{{join (split .ID "") "0123456789012345678901234567890123456789"}}"#,
                Some("more than 64 times"),
            ),
            (r#"{{.Names | join ","}}"#, Some("separator as a string")),
            (r#"{{join .Names .ID}}"#, Some("separator as a string")),
            ("{{with json .}}{{.}}{{end}}", Some("`with` takes a part")),
            (
                r#"{{with or .A "constant"}}{{.}}{{end}}"#,
                Some("`with` takes a part"),
            ),
            (
                "{{range .HostConfig.ShmSize}}x{{end}}",
                Some("`range` runs only over"),
            ),
            ("{{range .}}x{{end}}", Some("`range` takes one list")),
            ("{{range 5}}x{{end}}", Some("`range` takes one list")),
            (
                "{{range .Mounts}}{{range .Config.Env}}{{end}}{{end}}",
                Some("nested `range`"),
            ),
            (
                "{{range .Env}}{{pad . 64 64}}{{pad . 64 64}}{{pad . 64 64}}{{pad . 64 64}}\
                 {{pad . 64 64}}{{pad . 64 64}}{{pad . 64 64}}{{pad . 64 64}}{{end}}",
                Some("more than 1024 times"),
            ),
            ("{{(((((.A)))))}}", Some("parentheses nest at most 4")),
            (
                "{{if .A}}{{if .B}}{{if .C}}{{if .D}}{{if .E}}{{end}}{{end}}{{end}}{{end}}{{end}}",
                Some("nest at most 4"),
            ),
            // Refused: structure.
            ("{{.Names", Some("unterminated action")),
            ("{{.Names}", Some("unexpected character `}`")),
            (r#"{{"unterminated}}"#, Some("unterminated string")),
            ("{{`raw}}", Some("unterminated raw string")),
            ("{{.A}}}}", Some("without an opening")),
            ("{{(.A}}", Some("not closed")),
            ("{{.A)}}", Some("unexpected `)`")),
            ("{{}}", Some("an empty action")),
            ("{{.A |}}", Some("must be followed by a function")),
            ("{{if .A}}x", Some("`{{if` is not closed")),
            ("{{end}}", Some("`{{end}}` without")),
            ("{{else}}", Some("`{{else}}` without")),
            (
                "{{if .A}}{{else}}{{else}}{{end}}",
                Some("a second `{{else}}`"),
            ),
            (
                "{{if .A}}{{else with .B}}{{end}}",
                Some("continues only a `with`, not an `if`"),
            ),
            ("{{end .A}}", Some("stand alone")),
            ("{{/* unclosed}}", Some("unclosed comment")),
            ("{{/* c */ }}", Some("a comment ends with")),
            (r#"{{.A "x"}}"#, Some("only a function takes arguments")),
            (r#"{{"a" "b"}}"#, Some("only a function takes arguments")),
            ("{{.A | .B}}", Some("after `|` comes a function")),
            ("{{json(.A)}}", Some("separate arguments with a space")),
            ("{{json}}", Some("`json` takes 1 argument")),
            (r#"{{"\q"}}"#, Some("invalid escape")),
            (r#"{{"\x1b[2J"}}"#, Some("only a printable character")),
            (r#"{{"\033"}}"#, Some("only a printable character")),
            (r#"{{"\u0000"}}"#, Some("only a printable character")),
            (r#"{{"\U0000009b"}}"#, Some("only a printable character")),
            (r#"{{"\u202e"}}"#, Some("only a printable character")),
            (r#"{{"\xff"}}"#, Some("only a printable character")),
            (r#"{{"\377"}}"#, Some("only a printable character")),
            (r#"{{"\r"}}"#, Some("only a printable character")),
            (r#"{{"\a"}}"#, Some("only a printable character")),
            (r#"{{"\n\t\\\"\x41\101\u00e9\U0001F600"}}"#, None),
            ("{{.Größe}}", Some("unexpected character")),
            ("{{json if}}", Some("must begin its own action")),
        ];
        let mut all: Vec<(String, Option<&'static str>)> = fixed
            .iter()
            .map(|(t, why)| ((*t).to_string(), *why))
            .collect();
        all.push(("x".repeat(2048), Some("at most 1024 bytes")));
        all.push(("{{.ID}}".repeat(64), None));
        all.push(("{{.ID}}".repeat(100), Some("at most 64 actions")));
        all.push((
            format!("{{{{{}.A{}}}}}", "(".repeat(40), ")".repeat(40)),
            Some("parentheses nest at most 4"),
        ));
        all
    }

    #[test]
    fn templates() {
        let cases = cases();
        assert!(cases.len() >= 40);
        let mut failures = Vec::new();
        for (template, expected) in &cases {
            let got = check(template);
            let ok = match (expected, &got) {
                (None, Ok(())) => true,
                (Some(fragment), Err(why)) => why.contains(fragment),
                _ => false,
            };
            if !ok {
                failures.push(format!("{template:?}: expected {expected:?}, got {got:?}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn refusals_say_where_and_what_to_write() {
        let why = check(r#"{{.Names}} {{printf "%999999999d" 1}}"#).unwrap_err();
        assert!(why.starts_with("at byte 14: `printf`"), "{why}");
        assert!(
            why.contains("{{.Names}}") && why.contains("`truncate TEXT N`"),
            "{why}"
        );
        let why = check("ab {{.Names").unwrap_err();
        assert!(why.starts_with("at byte 4: unterminated action"), "{why}");
    }

    proptest::proptest! {
        /// Template-like input gets an answer, and an accepted one stays within the bounds.
        #[test]
        fn never_panics(template in r#"[{}().| a-z"`\\$:=0-9A-Z/*-]{0,120}"#) {
            if check(&template).is_ok() {
                proptest::prop_assert!(template.matches("{{").count() <= MAX_ACTIONS);
            }
        }

        /// So does any text at all, multi-byte characters inside and outside strings included.
        #[test]
        fn never_panics_on_any_text(template in r#"(\{\{|\}\}|"|`|\PC){0,120}"#) {
            let _ = check(&template);
        }
    }
}
