//! The server's fixed limits, in one place, each with the reason for its number. (Limits an
//! operator may tune are settings: `config.rs`, with their defaults in `config::defaults`. The
//! kernel's limits are in `sealroom::limits`.)

/// Principals whose state is remembered; an evicted idle principal starts with a full bucket.
pub const LIMITER_TRACKED_PRINCIPALS_MAX: u64 = 100_000;

/// How long an idle principal's state is kept. Long enough that no request still in flight
/// outlives its principal's slots; a kept bucket has refilled to the burst by then anyway.
pub const LIMITER_TRACKED_IDLE_SECS: u64 = 600;

/// How often expired records are swept from the store.
pub const EXPIRY_SWEEP_INTERVAL_SECS: u64 = 60;

/// Expired records removed per sweep, so one sweep never holds the writer for long.
pub const EXPIRY_SWEEP_RECORDS_MAX: usize = 1_000;

/// Longest the server waits, after it stops accepting, for open requests to finish.
pub const SHUTDOWN_DRAIN_SECS_MAX: u64 = 30;

/// Lines buffered between the export producer and the client.
pub const EXPORT_BUFFER_LINES: usize = 64;

/// Page size while exporting.
pub const EXPORT_PAGE_ENTRIES: i64 = 200;

/// Context budget when the client names none.
pub const CONTEXT_TOKENS_DEFAULT: i64 = 4_000;

/// Rooms per admin page.
pub const ADMIN_PAGE_MAX: usize = 1000;

/// Longest a read's entry waits in the queue.
pub const AUDIT_QUEUE_DELAY_MILLIS: u64 = 20;

/// Entries queued before senders wait (backpressure, bounded memory).
pub const AUDIT_QUEUE_ENTRIES_MAX: usize = 10_000;

/// Rooms whose entries are appended at the same time.
pub const AUDIT_APPENDS_CONCURRENT: usize = 256;

/// Entries taken from the queue per batch.
pub const AUDIT_BATCH_MAX: usize = 1_024;

/// Cached embeddings, across rooms (each entry is one requester's in one room).
pub const EMBEDDING_CACHE_ENTRIES_MAX: u64 = 10_000;

/// Longest an embedding stays cached: long enough to spare the upstream for an agent's repeated
/// queries within a conversation, short enough that what a request derived does not stay in
/// memory long after it.
pub const EMBEDDING_CACHE_TTL_SECS: u64 = 600;

/// Longest an upstream answer may be (a batch of 64 embeddings of 3,072 floats is ~4 MB).
pub const EMBEDDINGS_RESPONSE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Most messages in one request.
pub const PROXY_MESSAGES_MAX: usize = 256;

/// Most memories recalled into one prompt.
pub const RECALL_MEMORIES_MAX: i64 = 20;

/// Longest list of recalled sources written to one audit entry.
pub const RECALL_AUDIT_TARGET_BYTES_MAX: usize = 500;

/// Longest field name quoted in an error (longer names are cut).
pub const FIELD_NAME_QUOTED_MAX: usize = 64;

/// Chunks buffered between the upstream and the client.
pub const RELAY_BUFFER_CHUNKS: usize = 32;

/// Largest non-streaming upstream answer read.
pub const UPSTREAM_RESPONSE_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Connections of the private metrics address: a scraper or two, and an operator's curl.
pub const METRICS_CONNECTION_LIMITS: crate::config::ConnectionLimits = crate::config::ConnectionLimits {
    connections_max: 16,
    connections_per_address_max: 16,
    header_read_timeout_secs: 10,
};

/// Characters of the last user message used as the recall query: enough for any question,
/// short enough that a pasted document does not become a query of thousands of terms.
pub const RECALL_QUERY_CHARS_MAX: usize = 1_000;

/// Longest `Retry-After` passed on from the model upstream (an hour; longer is not a pause).
pub const UPSTREAM_RETRY_AFTER_SECS_MAX: u64 = 3_600;

/// Largest MCP tool result, in bytes of JSON: a model's context could not hold more, and a larger
/// page is asked for with a smaller `limit`.
pub const MCP_TOOL_RESULT_BYTES_MAX: usize = 1024 * 1024;

/// Largest arguments of an MCP tool that writes: its result restates what it stored (plus ids
/// and times), so arguments this size leave room for a result within
/// [`MCP_TOOL_RESULT_BYTES_MAX`]. Checked before anything is stored, so a write is never
/// committed and then reported as failed for the size of its answer.
pub const MCP_WRITE_ARGUMENTS_BYTES_MAX: usize = MCP_TOOL_RESULT_BYTES_MAX - 64 * 1024;

/// Largest request to the checkpoint routes: a serialized checkpoint of
/// `CHECKPOINT_BLOB_BYTES_MAX` (8 MiB) as base64, in JSON.
pub const CHECKPOINT_REQUEST_BYTES_MAX: usize = 12 * 1024 * 1024;
