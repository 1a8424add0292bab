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
        let row = (
            samples.count(),
            samples.count() as f64 / seconds,
            samples.percentile_ms(0.5),
            samples.percentile_ms(0.95),
            samples.percentile_ms(0.99),
        );
        table.push_str(&format!(
            "  {operation:<18} {:>9} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>7}\n",
            row.0, row.1, row.2, row.3, row.4, samples.errors
        ));
        json_rows.push(json!({"operation": operation, "requests": row.0, "requests_per_sec": row.1, "p50_ms": row.2, "p95_ms": row.3, "p99_ms": row.4, "errors": samples.errors}));
    }
    let totals = (
        total.count(),
        total.count() as f64 / seconds,
        total.percentile_ms(0.5),
        total.percentile_ms(0.95),
        total.percentile_ms(0.99),
    );
    table.push_str(&format!(
        "  {:<18} {:>9} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>7}\n",
        "all", totals.0, totals.1, totals.2, totals.3, totals.4, total.errors
    ));
    let json = json!({
        "title": title, "seconds": seconds, "operations": json_rows,
        "total": {"requests": totals.0, "requests_per_sec": totals.1, "p50_ms": totals.2, "p95_ms": totals.3, "p99_ms": totals.4, "errors": total.errors},
    });
    (table, json)
}
