//! Defaults of the settings, each with its reason.

/// 2 MiB: a full batch of long messages or a large item fits; anything larger is a bulk
/// import that should be split.
pub const REQUEST_BODY_BYTES_MAX: usize = 2 * 1024 * 1024;
/// 30 s: longer than any store operation should take, shorter than client timeouts.
pub const REQUEST_TIMEOUT_SECS: u64 = 30;
/// 1,024 connections: well within default file-descriptor limits.
pub const CONNECTIONS_MAX: usize = 1024;
/// 256 connections from one address: a busy agent backend keeps tens to a couple of hundred
/// keep-alive connections, and one address can then hold at most a quarter of all slots.
/// Behind a load balancer or NAT many clients share one address: raise it to
/// `connections_max` there (the balancer bounds its clients itself).
pub const CONNECTIONS_PER_ADDRESS_MAX: usize = 256;
/// 10 s to send a request's headers: any client on a working network sends them in
/// milliseconds; a connection that sends nothing, or half a header, for 10 s is holding a
/// slot, not making a request (it is also how long an idle kept-alive connection stays).
pub const HEADER_READ_TIMEOUT_SECS: u64 = 10;
/// 512 requests in flight: beyond that a 2-core machine only adds queueing delay.
pub const REQUESTS_IN_FLIGHT_MAX: usize = 512;
/// 50 requests a second per user is far above an agent's needs and far below what starves
/// a node; bursts of 100 absorb a page load.
pub const PRINCIPAL_REQUESTS_PER_SEC: f64 = 50.0;
pub const PRINCIPAL_BURST: f64 = 100.0;
/// 16 requests of one user at once.
pub const PRINCIPAL_IN_FLIGHT_MAX: usize = 16;
/// PostgreSQL connections per node.
pub const POSTGRES_POOL_SIZE: usize = 16;
/// 256 MiB of search indexes: about 100,000 items of 384 dimensions with text.
pub const SEARCH_RESIDENT_BYTES_MAX: u64 = 256 * 1024 * 1024;
/// A model may take minutes to answer a long prompt; longer than that is a stuck upstream.
pub const UPSTREAM_TIMEOUT_SECS: u64 = 300;
/// Thread history added to a prompt: 2,000 tokens keeps recent turns without crowding the
/// model's window.
pub const CONTEXT_TOKENS: usize = 2_000;
/// Cached responses live an hour unless configured otherwise.
pub const RESPONSE_CACHE_TTL_SECS: u64 = 3_600;
/// 64 MiB of hot cache entries in memory.
pub const CACHE_FRONT_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// An embeddings upstream that has not answered in 10 s will not answer usefully.
pub const EMBEDDINGS_TIMEOUT_SECS: u64 = 10;
/// Texts per embeddings request: OpenAI accepts 2,048; 64 keeps requests small.
pub const EMBEDDINGS_BATCH_MAX: usize = 64;
/// 8 MCP sessions per principal: a person runs a few assistants at once; each session holds a
/// task and a channel on the server until it ends or goes idle.
pub const MCP_SESSIONS_PER_PRINCIPAL_MAX: usize = 8;
/// 5 minutes of silence ends an MCP session (clients that never send DELETE are the rule).
pub const MCP_SESSION_IDLE_SECS: u64 = 300;
