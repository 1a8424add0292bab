//! Logs and metrics setup. Logs are structured (pretty or JSON); the metrics recorder is
//! process-global and installed once.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global log subscriber (`RUST_LOG` overrides the default `info`; it cannot lift
/// [`payload_guard`]).
pub fn init_logs(format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only for a terminal: a log file or collector gets plain text (and no time
    // spent formatting escapes).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .finish()
            .with(payload_guard())
            .try_init(),
        LogFormat::Pretty => builder.compact().finish().with(payload_guard()).try_init(),
    };
}

/// Drops a dependency's events that may carry request payloads, whatever `RUST_LOG` asks for:
/// rmcp logs whole JSON-RPC messages (tool arguments and results, which are users' content) at
/// debug level. Only its warnings and errors reach the log (some name a session id, which is
/// neither content nor a credential: a session answers only its owner's token).
pub fn payload_guard() -> tracing_subscriber::filter::FilterFn {
    fn allowed(metadata: &tracing::Metadata<'_>) -> bool {
        !metadata.target().starts_with("rmcp") || *metadata.level() <= tracing::Level::WARN
    }
    tracing_subscriber::filter::FilterFn::new(allowed as fn(&tracing::Metadata<'_>) -> bool)
}

/// Histogram buckets: from half a millisecond (a cached read) to ten seconds (a slow upstream).
const LATENCY_BUCKETS_SECS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The process's Prometheus recorder, installed on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&LATENCY_BUCKETS_SECS)
                .expect("the bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (an embedding host's); ours then only
            // renders what it sees, which is still correct for this server's routes.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}
