//! tokenize + decide over every row of the legitimate corpus, and over the attack corpus.
//! `cargo bench --bench decide`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;

use agent_gate::decide::{Request, decide};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

#[path = "../tests/support/corpus.rs"]
mod support;

fn bench(c: &mut Criterion) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/corpus/rules.yaml"
    ))
    .unwrap();
    let policy = agent_gate::rules::parse(&text).unwrap();
    for (name, file) in [("legit", "legit.tsv"), ("attack", "attack.tsv")] {
        let rows: Vec<String> = support::rows(file).into_iter().map(|r| r.command).collect();
        let mut group = c.benchmark_group("tokenize+decide");
        group.throughput(Throughput::Elements(rows.len() as u64));
        group.bench_function(format!("{name} corpus ({} commands)", rows.len()), |b| {
            b.iter(|| {
                for raw in &rows {
                    let d = decide(
                        &policy,
                        &Request {
                            raw: black_box(raw),
                            key: Some("hermes"),
                            by_key: false,
                            client: None,
                            fingerprint: None,
                        },
                    );
                    black_box(&d);
                }
            });
        });
        group.finish();
    }
    c.bench_function("rules::parse (tests/corpus/rules.yaml)", |b| {
        b.iter(|| black_box(agent_gate::rules::parse(black_box(&text)).unwrap()));
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
