//! Latency recording and the report table.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

/// Latencies of one kind of request, in microseconds.
#[derive(Default, Clone)]
pub struct Samples {
    micros: Vec<u32>,
    pub errors: u64,
}

impl Samples {
    pub fn record(&mut self, elapsed: Duration) {
        self.micros.push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
    }

    pub fn merge(&mut self, other: Samples) {
        self.micros.extend(other.micros);
        self.errors += other.errors;
    }

    pub fn count(&self) -> usize {
        self.micros.len()
    }

    /// The `fraction` percentile in milliseconds.
    pub fn percentile_ms(&mut self, fraction: f64) -> f64 {
        if self.micros.is_empty() {
            return 0.0;
        }
        self.micros.sort_unstable();
        let index = ((self.micros.len() - 1) as f64 * fraction).round() as usize;
        f64::from(self.micros[index]) / 1000.0
    }
}

/// Samples per operation.
pub type Report = BTreeMap<String, Samples>;

pub fn merge(into: &mut Report, from: Report) {
    for (operation, samples) in from {
        into.entry(operation).or_default().merge(samples);
    }
}

/// One line per operation plus a total, as a table and as JSON.
pub fn summarize(title: &str, report: &mut Report, seconds: f64) -> (String, Value) {
    let mut table = format!(
        "{title}\n  {:<18} {:>9} {:>10} {:>9} {:>9} {:>9} {:>7}\n",
        "operation", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors"
    );
    let mut json_rows = Vec::new();
    let mut total = Samples::default();
    for (operation, samples) in report.iter_mut() {
        total.merge(samples.clone());
        let (line, mut row) = summary_row(operation, samples, seconds);
        table.push_str(&line);
        row["operation"] = json!(operation);
        json_rows.push(row);
    }
    let (line, total_row) = summary_row("all", &mut total, seconds);
    table.push_str(&line);
    let json = json!({"title": title, "seconds": seconds, "operations": json_rows, "total": total_row});
    (table, json)
}

/// One operation's table line and JSON figures.
fn summary_row(name: &str, samples: &mut Samples, seconds: f64) -> (String, Value) {
    let (requests, errors) = (samples.count(), samples.errors);
    let per_sec = requests as f64 / seconds;
    let (p50, p95, p99) = (samples.percentile_ms(0.5), samples.percentile_ms(0.95), samples.percentile_ms(0.99));
    let line = format!("  {name:<18} {requests:>9} {per_sec:>10.0} {p50:>9.2} {p95:>9.2} {p99:>9.2} {errors:>7}\n");
    let row = json!({"requests": requests, "requests_per_sec": per_sec, "p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "errors": errors});
    (line, row)
}
