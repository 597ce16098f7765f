//! tokenize + decide over every row of the legitimate corpus, and over the attack corpus; and
//! the load: the rules parsed and compiled (`policy::compile`), compiled with every example
//! run (`rules::parse`, what `check` and a load without a record do), and read back from the
//! compiled record (`policy::record::decode`, what forced mode does).
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
    for (name, file) in [
        ("tests/corpus/rules.yaml", "tests/corpus/rules.yaml"),
        ("shipped rules.yaml", "rules.yaml"),
    ] {
        let text =
            std::fs::read_to_string(format!("{}/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let mut group = c.benchmark_group(format!("load {name}"));
        group.bench_function("policy::compile (YAML, no examples)", |b| {
            b.iter(|| black_box(agent_gate::policy::compile(black_box(&text)).unwrap()));
        });
        group.bench_function("rules::parse (YAML and every example)", |b| {
            b.iter(|| black_box(agent_gate::rules::parse(black_box(&text)).unwrap()));
        });
        let policy = agent_gate::rules::parse(&text).unwrap();
        let record = agent_gate::policy::record::encode(&policy).unwrap();
        group.bench_function("record::decode (the compiled record)", |b| {
            b.iter(|| {
                black_box(
                    agent_gate::policy::record::decode(black_box(&record), &policy.digest).unwrap(),
                )
            });
        });
        group.bench_function("digest + record::decode", |b| {
            b.iter(|| {
                let digest = format!(
                    "sha256:{}",
                    agent_gate::digest::sha256_hex(black_box(text.as_bytes()))
                );
                black_box(agent_gate::policy::record::decode(black_box(&record), &digest).unwrap())
            });
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
