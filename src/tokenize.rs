//! Strict, shell-free splitting of `SSH_ORIGINAL_COMMAND` into an argv.
//!
//! POSIX quoting, minus everything a shell would do beyond quoting: single quotes make every
//! character literal, double quotes too except `$` and backquote (which a shell would expand,
//! so they are refused), and no backslash escapes at all. Anything that looks like shell syntax
//! outside quotes is refused rather than taken literally: the agent may believe a shell is
//! there, and silently treating `;` as a literal would surprise it.

use std::fmt;

/// Longest command accepted, in bytes (sshd passes up to ~256 KiB; nobody types more than this).
pub const MAX_COMMAND_BYTES: usize = 4096;
/// Most arguments accepted, program name included.
pub const MAX_ARGS: usize = 128;

/// Why a command could not be split. Every variant names the character and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenizeError {
    #[error("the command is empty: this gateway gives no login shell")]
    Empty,
    #[error("the command is {len} bytes long; at most {MAX_COMMAND_BYTES} are accepted")]
    TooLong { len: usize },
    #[error("the command has more than {MAX_ARGS} arguments")]
    TooManyArgs,
    #[error("control character {} at column {column}: commands are one line of printable text", Cp(*ch))]
    Control { ch: char, column: usize },
    #[error("invisible or direction-changing character {} at column {column}: it would hide what the command says", Cp(*ch))]
    Invisible { ch: char, column: usize },
    #[error("non-ASCII character {} at column {column} outside quotes: program names and options are plain ASCII", Cp(*ch))]
    NonAscii { ch: char, column: usize },
    #[error(
        "shell syntax `{ch}` at column {column}: no shell runs here, so {what}; put it in single quotes if you mean it literally"
    )]
    ShellSyntax {
        ch: char,
        column: usize,
        what: &'static str,
    },
    #[error(
        "`{ch}` inside double quotes at column {column} would be expanded by a shell; use single quotes"
    )]
    ExpansionInDoubleQuotes { ch: char, column: usize },
    #[error("backslash at column {column}: escapes are not supported; use single quotes")]
    Backslash { column: usize },
    #[error("unterminated {} quote opened at column {column}", if *single { "single" } else { "double" })]
    Unterminated { single: bool, column: usize },
}

/// A code point written as `U+XXXX`, for messages.
struct Cp(char);

impl fmt::Display for Cp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "U+{:04X}", u32::from(self.0))
    }
}

/// Split `raw` into words, or say exactly why not.
pub fn tokenize(raw: &str) -> Result<Vec<String>, TokenizeError> {
    if raw.len() > MAX_COMMAND_BYTES {
        return Err(TokenizeError::TooLong { len: raw.len() });
    }
    // Characters that may not appear anywhere, quoted or not, are checked first so that the
    // error names the worst thing in the command rather than a quote problem after it.
    for (index, ch) in raw.chars().enumerate() {
        let column = index + 1;
        if is_control(ch) {
            return Err(TokenizeError::Control { ch, column });
        }
        if is_invisible(ch) {
            return Err(TokenizeError::Invisible { ch, column });
        }
    }
    if raw.chars().all(|c| c == ' ') {
        return Err(TokenizeError::Empty);
    }

    let mut words: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut chars = raw.chars().enumerate();
    while let Some((index, ch)) = chars.next() {
        let column = index + 1;
        match ch {
            ' ' => {
                if in_word {
                    push_word(&mut words, &mut current)?;
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some((_, '\'')) => break,
                        Some((_, c)) => current.push(c),
                        None => {
                            return Err(TokenizeError::Unterminated {
                                single: true,
                                column,
                            });
                        }
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some((_, '"')) => break,
                        Some((i, c @ ('$' | '`'))) => {
                            return Err(TokenizeError::ExpansionInDoubleQuotes {
                                ch: c,
                                column: i + 1,
                            });
                        }
                        Some((i, '\\')) => return Err(TokenizeError::Backslash { column: i + 1 }),
                        Some((_, c)) => current.push(c),
                        None => {
                            return Err(TokenizeError::Unterminated {
                                single: false,
                                column,
                            });
                        }
                    }
                }
            }
            '\\' => return Err(TokenizeError::Backslash { column }),
            c if !c.is_ascii() => return Err(TokenizeError::NonAscii { ch: c, column }),
            c => {
                if let Some(what) = shell_meaning(c) {
                    return Err(TokenizeError::ShellSyntax {
                        ch: c,
                        column,
                        what,
                    });
                }
                in_word = true;
                current.push(c);
            }
        }
    }
    if in_word {
        push_word(&mut words, &mut current)?;
    }
    Ok(words)
}

fn push_word(words: &mut Vec<String>, current: &mut String) -> Result<(), TokenizeError> {
    if words.len() >= MAX_ARGS {
        return Err(TokenizeError::TooManyArgs);
    }
    words.push(std::mem::take(current));
    Ok(())
}

/// What an unquoted character would mean to a shell, if anything.
fn shell_meaning(c: char) -> Option<&'static str> {
    Some(match c {
        ';' => "commands cannot be chained",
        '&' => "commands cannot be chained or sent to the background",
        '|' => "there are no pipes",
        '<' | '>' => "there is no redirection",
        '(' | ')' => "there are no subshells",
        '$' => "nothing is expanded",
        '`' => "there is no command substitution",
        '*' | '?' | '[' | ']' => "nothing is globbed",
        '{' | '}' => "there is no brace expansion or grouping",
        '~' => "there is no tilde expansion",
        '!' => "there is no history expansion or negation",
        '#' => "there are no comments",
        _ => return None,
    })
}

/// C0 controls (tab and newline included), DEL and C1 controls.
pub fn is_control(c: char) -> bool {
    matches!(u32::from(c), 0x00..=0x1F | 0x7F..=0x9F)
}

/// Code points that render as nothing, as a space, or that reorder the text around them, from
/// the Unicode tables (`unicode-properties`): every format character (Cf: bidi controls, zero
/// widths, U+0605, U+06DD, U+070F, tags...), space separators but the ASCII space (Zs), line
/// and paragraph separators (Zl, Zp), private use (Co) and unassigned code points (Cn, the
/// non-characters among them). Then the default-ignorable code points of other categories
/// (DerivedCoreProperties.txt: the Hangul fillers, the combining grapheme joiner, variation
/// selectors, Mongolian selectors), the braille blank, which draws as a space, and U+FFFC and
/// U+FFFD: the replacement character is what a byte that was not UTF-8 became.
pub fn is_invisible(c: char) -> bool {
    use unicode_properties::{GeneralCategory as G, UnicodeGeneralCategory};
    // No ASCII character is in these categories (controls are `is_control`'s): the tables
    // are searched only for the rest.
    if c.is_ascii() {
        return false;
    }
    let by_category = match c.general_category() {
        G::Format | G::LineSeparator | G::ParagraphSeparator | G::PrivateUse | G::Unassigned => {
            true
        }
        G::SpaceSeparator => c != ' ',
        _ => false,
    };
    by_category
        || matches!(
            u32::from(c),
            0x034F
                | 0x115F
                | 0x1160
                | 0x17B4
                | 0x17B5
                | 0x180B..=0x180F
                | 0x2800
                | 0x3164
                | 0xFE00..=0xFE0F
                | 0xFFA0
                | 0xFFFC
                | 0xFFFD
                | 0xE0100..=0xE01EF
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> Vec<String> {
        tokenize(raw).unwrap_or_else(|e| panic!("{raw:?}: {e}"))
    }

    #[test]
    fn splits_on_spaces_and_honours_quotes() {
        let table: &[(&str, &[&str])] = &[
            ("docker ps", &["docker", "ps"]),
            ("  docker   ps  ", &["docker", "ps"]),
            (
                "docker ps --format '{{.Names}}'",
                &["docker", "ps", "--format", "{{.Names}}"],
            ),
            ("a 'b c' \"d e\"", &["a", "b c", "d e"]),
            ("a ''", &["a", ""]),
            ("a --pri\"\"vileged", &["a", "--privileged"]),
            ("a 'it''s'", &["a", "its"]),
            ("a '$HOME;|&'", &["a", "$HOME;|&"]),
            ("a '\\'", &["a", "\\"]),
            ("echo 'héllo wörld'", &["echo", "héllo wörld"]),
            ("a \"it's\"", &["a", "it's"]),
        ];
        for (raw, want) in table {
            assert_eq!(ok(raw), *want, "{raw:?}");
        }
    }

    #[test]
    fn refuses_with_the_character_and_its_column() {
        let table: &[(&str, TokenizeError)] = &[
            ("", TokenizeError::Empty),
            ("   ", TokenizeError::Empty),
            (
                "docker ps; sh",
                TokenizeError::ShellSyntax {
                    ch: ';',
                    column: 10,
                    what: "commands cannot be chained",
                },
            ),
            (
                "docker ps\nsh",
                TokenizeError::Control {
                    ch: '\n',
                    column: 10,
                },
            ),
            (
                "docker\tps",
                TokenizeError::Control {
                    ch: '\t',
                    column: 7,
                },
            ),
            (
                "docker ps\u{7f}",
                TokenizeError::Control {
                    ch: '\u{7f}',
                    column: 10,
                },
            ),
            (
                "docker ps\u{85}",
                TokenizeError::Control {
                    ch: '\u{85}',
                    column: 10,
                },
            ),
            (
                "docker ps \"$(id)\"",
                TokenizeError::ExpansionInDoubleQuotes {
                    ch: '$',
                    column: 12,
                },
            ),
            (
                "docker ps \"`id`\"",
                TokenizeError::ExpansionInDoubleQuotes {
                    ch: '`',
                    column: 12,
                },
            ),
            ("docker ps \\", TokenizeError::Backslash { column: 11 }),
            (
                "docker ps \"",
                TokenizeError::Unterminated {
                    single: false,
                    column: 11,
                },
            ),
            (
                "docker ps 'a\"",
                TokenizeError::Unterminated {
                    single: true,
                    column: 11,
                },
            ),
            (
                "docker run \u{2013}privileged",
                TokenizeError::NonAscii {
                    ch: '\u{2013}',
                    column: 12,
                },
            ),
            (
                "docker\u{3000}run",
                TokenizeError::Invisible {
                    ch: '\u{3000}',
                    column: 7,
                },
            ),
            (
                "docker 'a\u{202e}b'",
                TokenizeError::Invisible {
                    ch: '\u{202e}',
                    column: 10,
                },
            ),
            (
                "docker ps # hidden",
                TokenizeError::ShellSyntax {
                    ch: '#',
                    column: 11,
                    what: "there are no comments",
                },
            ),
            (
                "docker run -v ~/:/h",
                TokenizeError::ShellSyntax {
                    ch: '~',
                    column: 15,
                    what: "there is no tilde expansion",
                },
            ),
        ];
        for (raw, want) in table {
            assert_eq!(tokenize(raw).as_ref(), Err(want), "{raw:?}");
        }
    }

    #[test]
    fn every_shell_character_is_refused_unquoted_and_accepted_single_quoted() {
        for c in ";&|<>()$`*?[]{}~!#".chars() {
            let raw = format!("a b{c}c");
            assert!(
                matches!(tokenize(&raw), Err(TokenizeError::ShellSyntax { .. })),
                "{raw:?}"
            );
            assert_eq!(
                ok(&format!("a 'b{c}c'")),
                vec!["a".to_string(), format!("b{c}c")]
            );
        }
    }

    #[test]
    fn bounds_length_and_argument_count() {
        let long = format!("docker ps --filter name={}", "a".repeat(MAX_COMMAND_BYTES));
        assert_eq!(
            tokenize(&long),
            Err(TokenizeError::TooLong { len: long.len() })
        );
        let exactly = format!("a{}", " b".repeat(MAX_ARGS - 1));
        assert_eq!(ok(&exactly).len(), MAX_ARGS);
        let more = format!("a{}", " b".repeat(MAX_ARGS));
        assert_eq!(tokenize(&more), Err(TokenizeError::TooManyArgs));
    }

    #[test]
    fn messages_name_the_code_point() {
        let e = tokenize("ps \u{200b}").unwrap_err();
        assert!(e.to_string().contains("U+200B"), "{e}");
        assert!(e.to_string().contains("column 4"), "{e}");
    }

    /// The code points the hand list of the first version named (all still refused), and the
    /// format characters it missed, inside quotes where non-ASCII is otherwise fine.
    #[test]
    fn invisible_characters_come_from_the_unicode_tables() {
        let ranges: &[(u32, u32)] = &[
            (0x00A0, 0x00A0),
            (0x00AD, 0x00AD),
            (0x034F, 0x034F),
            (0x061C, 0x061C),
            (0x115F, 0x1160),
            (0x1680, 0x1680),
            (0x17B4, 0x17B5),
            (0x180B, 0x180F),
            (0x2000, 0x200F),
            (0x2028, 0x202F),
            (0x205F, 0x206F),
            (0x2800, 0x2800),
            (0x3000, 0x3000),
            (0x3164, 0x3164),
            (0xE000, 0xF8FF),
            (0xFDD0, 0xFDEF),
            (0xFE00, 0xFE0F),
            (0xFEFF, 0xFEFF),
            (0xFFA0, 0xFFA0),
            (0xFFF0, 0xFFFF),
            (0x1BCA0, 0x1BCA3),
            (0x1D173, 0x1D17A),
            (0xE0000, 0xE0FFF),
            (0xF0000, 0x10FFFF),
            // Format characters (Cf) the hand list missed.
            (0x0600, 0x0605),
            (0x06DD, 0x06DD),
            (0x070F, 0x070F),
            (0x0890, 0x0891),
            (0x08E2, 0x08E2),
            (0x110BD, 0x110BD),
            (0x110CD, 0x110CD),
            (0x13430, 0x1343F),
            (0x1BCA0, 0x1BCA3),
        ];
        for &(from, to) in ranges {
            for cp in from..=to {
                let Some(c) = char::from_u32(cp) else {
                    continue;
                };
                assert!(is_invisible(c), "U+{cp:04X}");
                let raw = format!("docker ps --format 'a{c}b'");
                assert!(
                    matches!(tokenize(&raw), Err(TokenizeError::Invisible { .. })),
                    "U+{cp:04X}"
                );
            }
        }
        for c in ['a', ' ', '\u{e9}', '\u{4e2d}', '\u{1f600}', '\u{300}'] {
            assert!(!is_invisible(c), "{c:?}");
        }
    }
}
