//! The model boundary's detector: MB/s of `detect::scan` and of a masker (scan, pseudonyms,
//! redactions) over about a megabyte of chat-like prose with a value every few hundred bytes,
//! beside two plain scans of the same text in the same run (a pass over its bytes, and one
//! simple pattern). Run: `cargo bench -p sealroom --bench detect`.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod common;

use std::time::Duration;

use criterion::{BenchmarkId, Throughput};
use sealroom::boundary::{Masker, Policies};
use sealroom::rooms::PseudonymSecret;

const PROSE: [&str; 6] = [
    "Thanks for the update on the travel plans; the hotel near the station looks fine and the price is within budget. ",
    "Could you check whether the meeting on Thursday still works, and move the review to version 2.4.1 if not? ",
    "Die Rechnung kommt nächste Woche, bitte prüfe die Positionen 12 bis 18 noch einmal. ",
    "Order 48213 shipped on 2024-03-01 and should arrive before the weekend, tracking is in the portal. ",
    "私は来週東京に行きます。ホテルの予約を確認してください。 ",
    "The build log shows 1,204 tests passed in 38.2 s; nothing new failed since the last run. ",
];

const VALUES: [&str; 8] = [
    "ana.lopez@example.org",
    "+44 20 7946 0958",
    "4111 1111 1111 1111",
    "DE89 3704 0044 0532 0130 00",
    "203.0.113.77",
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "postgres://app:Zx81-pLm4qT@db.internal/main",
];

fn corpus(bytes: usize) -> String {
    let mut text = String::with_capacity(bytes + 512);
    let mut index = 0usize;
    while text.len() < bytes {
        text.push_str(PROSE[index % PROSE.len()]);
        if index.is_multiple_of(3) {
            text.push_str(VALUES[(index / 3) % VALUES.len()]);
            text.push_str(". ");
        }
        index += 1;
    }
    text
}

fn main() {
    let text = corpus(1 << 20);
    let simple = regex::Regex::new(r"[0-9]{4}").unwrap();
    let policies = Policies::default();
    let mut criterion = common::criterion(Duration::from_secs(4));
    let mut group = criterion.benchmark_group("detect");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.sample_size(20);
    group.bench_function(BenchmarkId::new("scan", "all rules"), |bencher| {
        bencher.iter(|| sealroom::detect::scan(&text).len())
    });
    group.bench_function(BenchmarkId::new("mask", "default policies"), |bencher| {
        bencher.iter(|| {
            let mut masker = Masker::new(&policies, PseudonymSecret::from_bytes([1; 32]), Vec::new());
            masker.mask(&text).unwrap().len()
        })
    });
    group.bench_function(BenchmarkId::new("baseline", "byte pass"), |bencher| {
        bencher.iter(|| text.bytes().filter(u8::is_ascii_digit).count())
    });
    group.bench_function(BenchmarkId::new("baseline", "one pattern"), |bencher| {
        bencher.iter(|| simple.find_iter(&text).count())
    });
    group.finish();
    println!("\ndetection over {} bytes ({} findings):", text.len(), sealroom::detect::scan(&text).len());
    for (function, parameter) in
        [("scan", "all rules"), ("mask", "default policies"), ("baseline", "byte pass"), ("baseline", "one pattern")]
    {
        if let Some(mean) = common::mean_nanos("detect", function, parameter) {
            let megabytes_per_sec = text.len() as f64 / (mean / 1e9) / 1e6;
            println!("  {function:<8} {parameter:<18} {:>9.2} ms   {megabytes_per_sec:>8.1} MB/s", mean / 1e6);
        }
    }
}
