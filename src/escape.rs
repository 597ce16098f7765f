//! Escaping of bytes that came from the agent, before they reach a log line or a terminal.
//! Printable ASCII passes, except the quote and backslash that delimit values; every other
//! byte (controls, ESC, DEL, all of UTF-8's non-ASCII bytes, so bidi controls too) becomes
//! `\xHH`. The result cannot end a record, start another, or change how a terminal draws.

use std::fmt::Write;

/// Escape `text` for a `key="value"` audit field or a terminal line.
pub fn escape(text: &str) -> String {
    escape_within(text, usize::MAX)
}

/// What `escape_within` appends where it cut.
pub const CUT: &str = "...[truncated]";

/// `escape`, at most `max` bytes of it: the cut falls between two escapes, never inside one,
/// and is marked with `CUT`.
pub fn escape_within(text: &str, max: usize) -> String {
    within(text, max, |out, ch| match ch {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        ' '..='~' => out.push(ch),
        _ => {
            let mut buf = [0u8; 4];
            for byte in ch.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "\\x{byte:02x}");
            }
        }
    })
}

/// `text`, each character as `encode` writes it, in at most `max` bytes plus `CUT` where it
/// was cut: a character's encoding is kept whole or not at all.
pub fn within(text: &str, max: usize, encode: impl Fn(&mut String, char)) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for ch in text.chars() {
        let before = out.len();
        encode(&mut out, ch);
        if out.len() > max {
            out.truncate(before);
            out.push_str(CUT);
            break;
        }
    }
    out
}

/// Escape for a terminal: like `escape`, but quotes are left alone (messages quote with `).
pub fn for_terminal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '\n' => out.push('\n'),
            ' '..='~' => out.push(ch),
            _ => {
                let mut buf = [0u8; 4];
                for byte in ch.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "\\x{byte:02x}");
                }
            }
        }
    }
    out
}

/// Escape one field of a multi-line display: like `for_terminal`, and a newline is escaped
/// too, so a value cannot start a line of its own.
pub fn one_line(text: &str) -> String {
    for_terminal(text).replace('\n', "\\x0a")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_but_printable_ascii_survives() {
        assert_eq!(escape("docker ps"), "docker ps");
        assert_eq!(escape("a\"b\\c"), "a\\\"b\\\\c");
        assert_eq!(escape("x\ny"), "x\\x0ay");
        assert_eq!(escape("\u{1b}[2J"), "\\x1b[2J");
        assert_eq!(escape("\u{202e}"), "\\xe2\\x80\\xae");
        assert_eq!(for_terminal("ok\u{1b}[2K\rgone"), "ok\\x1b[2K\\x0dgone");
        assert_eq!(for_terminal("line\nnext `x`"), "line\nnext `x`");
        assert_eq!(one_line("a\nb\r"), "a\\x0ab\\x0d");
    }
}
