//! The corpus files (tests/corpus/*.tsv), shared by the corpus test and the benchmark.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

/// Column 3 of the corpus, decoded exactly as tests/corpus/README.md says.
pub fn decode(field: &str) -> String {
    let mut out = String::new();
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('0') => out.push('\0'),
            Some('x') => out.push(hex(&mut chars, 2)),
            Some('u') => out.push(hex(&mut chars, 4)),
            other => panic!("unknown escape \\{other:?} in {field:?}"),
        }
    }
    out
}

fn hex(chars: &mut std::str::Chars<'_>, n: usize) -> char {
    let digits: String = chars.take(n).collect();
    char::from_u32(u32::from_str_radix(&digits, 16).unwrap()).unwrap()
}

pub struct Row {
    pub id: String,
    pub command: String,
    pub expected: &'static str,
}

/// The rows of `tests/corpus/{file}`, relative to the crate root.
pub fn rows(file: &str) -> Vec<Row> {
    let text = std::fs::read_to_string(format!(
        "{}/tests/corpus/{file}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    // Split on '\n' only: row A002 is three spaces, and CRs are encoded as `\r`.
    text.split('\n')
        .skip(1)
        .filter(|line| !line.is_empty())
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            let expected = match cols[3] {
                "refuse" => "refuse",
                "allow" => "allow",
                "approve-needed" => "ask",
                other => panic!("{}: unknown expectation {other}", cols[0]),
            };
            Row {
                id: cols[0].to_string(),
                command: decode(cols[2]),
                expected,
            }
        })
        .collect()
}
