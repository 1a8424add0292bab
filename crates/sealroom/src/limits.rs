//! Every limit sealroom enforces, in one place, each with the reason for its number.
//!
//! Limits that an operator may reasonably tune live in [`RoomLimits`]; the rest are constants
//! because raising them changes what the code can safely assume (stack depth, key sizes).

/// Longest bearer token accepted. Real access tokens are well under 4 KiB; anything larger is
/// either a mistake or an attempt to make the verifier parse megabytes before rejecting.
pub const TOKEN_BYTES_MAX: usize = 8 * 1024;

/// Longest `kid` header accepted. Identity providers use short ids; a long `kid` is only useful
/// to an attacker probing for path or query injection in key lookup.
pub const KEY_ID_BYTES_MAX: usize = 128;

/// Longest `sub`, `iss` and tenant claim accepted (RFC 7519 sets no bound; 255 covers every
/// identity provider we know, including URLs as issuers).
pub const IDENTITY_CLAIM_BYTES_MAX: usize = 255;

/// Most roles read from a token's roles claim.
pub const ROLES_MAX: usize = 32;

/// Longest remaining lifetime of an accepted token. Access tokens live minutes to hours; an `exp`
/// years away is a forged or misconfigured token and is refused rather than trusted for years.
pub const TOKEN_LIFETIME_SECS_MAX: i64 = 31 * 24 * 3600;

/// Largest clock leeway an issuer may configure (the brief caps it at a minute).
pub const LEEWAY_SECS_MAX: u64 = 60;

/// Minimum time between two fetches of one JWKS URL triggered by unknown key ids.
pub const JWKS_REFRESH_COOLDOWN_SECS: u64 = 30;

/// Largest JWKS document read from an identity provider.
pub const JWKS_BYTES_MAX: usize = 256 * 1024;

/// Most keys kept from one JWKS document.
pub const JWKS_KEYS_MAX: usize = 64;

/// Timeout of one JWKS fetch, so a slow identity provider cannot hold requests.
pub const JWKS_FETCH_TIMEOUT_SECS: u64 = 5;

/// Unknown key ids remembered per issuer so repeated garbage `kid`s are refused without work.
pub const JWKS_NEGATIVE_CACHE_ENTRIES_MAX: u64 = 4096;

/// Deepest JSON nesting accepted anywhere a client sends JSON. Agent state is shallow; deep
/// nesting is a stack-exhaustion attack on every parser downstream.
pub const JSON_DEPTH_MAX: usize = 32;

/// Largest content of one thread message (256 KiB covers long tool outputs).
pub const MESSAGE_CONTENT_BYTES_MAX: usize = 256 * 1024;

/// Most messages appended in one batch.
pub const MESSAGES_PER_APPEND_MAX: usize = 100;

/// Longest message `role` and `name`.
pub const MESSAGE_ROLE_BYTES_MAX: usize = 32;
/// Longest message `name` (OpenAI allows 64).
pub const MESSAGE_NAME_BYTES_MAX: usize = 64;

/// Longest thread title.
pub const THREAD_TITLE_BYTES_MAX: usize = 512;

/// Largest serialized `metadata` object on a thread, message or item.
pub const METADATA_BYTES_MAX: usize = 16 * 1024;

/// Largest serialized item `value`.
pub const ITEM_VALUE_BYTES_MAX: usize = 256 * 1024;

/// Largest item `text` (the part that is indexed for search).
pub const ITEM_TEXT_BYTES_MAX: usize = 64 * 1024;

/// Most dimensions of one embedding (the largest common models use 3072).
pub const EMBEDDING_DIMENSIONS_MAX: usize = 4096;

/// Deepest namespace path.
pub const NAMESPACE_DEPTH_MAX: usize = 8;

/// Longest namespace segment.
pub const NAMESPACE_SEGMENT_BYTES_MAX: usize = 64;

/// Longest item key.
pub const ITEM_KEY_BYTES_MAX: usize = 256;

/// Page size used when a client does not ask for one.
pub const PAGE_SIZE_DEFAULT: usize = 50;

/// Largest page a client may ask for; larger requests are clamped.
pub const PAGE_SIZE_MAX: usize = 200;

/// Largest number of search results a client may ask for.
pub const SEARCH_RESULTS_MAX: usize = 100;

/// Longest search query text; a 10,000-term query must not cost more than a bounded scan.
pub const SEARCH_QUERY_BYTES_MAX: usize = 4 * 1024;

/// Longest time-to-live of any item or cache entry: a year. Caches hold derived data and must
/// expire; items may also live without a TTL.
pub const TTL_SECS_MAX: u64 = 365 * 24 * 3600;

/// Largest token budget a context view may ask for.
pub const CONTEXT_TOKENS_MAX: usize = 1_000_000;

/// Longest opaque record key handed to the store (an HMAC or an id plus a sequence number).
pub const RECORD_KEY_BYTES_MAX: usize = 64;

/// Longest checkpoint label (thread id, namespace, checkpoint id, task id, task path, channel):
/// LangGraph's are UUIDs and short node paths; 512 bytes leaves room for nesting.
pub const CHECKPOINT_LABEL_BYTES_MAX: usize = 512;

/// Longest serializer type tag of a checkpoint blob (`msgpack`, `msgpack+aes`, `null`).
pub const CHECKPOINT_TYPE_TAG_BYTES_MAX: usize = 64;

/// Largest serialized checkpoint or pending write: a whole conversation's state, and still far
/// below a record the store reads whole.
pub const CHECKPOINT_BLOB_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Largest checkpoint metadata (`source`, `step`, `parents`, `run_id` and the run's scalars).
pub const CHECKPOINT_METADATA_BYTES_MAX: usize = 64 * 1024;

/// Most pending writes stored in one call (a step writes one per channel it touched), so one
/// call is one bounded batch.
pub const CHECKPOINT_WRITES_PER_CALL_MAX: usize = CHECKPOINT_RECORDS_PER_BATCH_MAX;

/// Blob bytes one listing page carries at most (past it the page ends early, with a cursor):
/// a page of 200 large checkpoints must not be one 1.6 GB answer.
pub const CHECKPOINT_PAGE_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Records written per batch when an operation spans many (copying or pruning a thread): one
/// batch stays a bounded transaction.
pub const CHECKPOINT_RECORDS_PER_BATCH_MAX: usize = 256;

/// Records read per store round trip while scanning checkpoints.
pub const CHECKPOINT_SCAN_PAGE: usize = 256;

/// Rooms whose versions the SQLite writer's memo holds (about a hundred bytes each); past it the
/// memo starts over, and misses read the file until it is warm again.
pub const SQLITE_VERSION_MEMO_ROOMS_MAX: usize = 100_000;

/// Item batches a resident index holds back while an earlier one (of a concurrent writer) has
/// not been applied: past it the index is dropped and rebuilt on next use.
pub const INDEX_PENDING_BATCHES_MAX: usize = 256;

/// Most puts and deletes in one item batch: one atomic commit, ingestion's unit (a document's
/// chunks, a turn's extracted memories), bounded like a page.
pub const ITEM_BATCH_CHANGES_MAX: usize = 100;

/// How many times a write retries after losing an optimistic-concurrency race.
pub const WRITE_CONFLICT_RETRIES_MAX: usize = 16;

// Relations the code relies on.
/// A secret's name: short enough to read in a reference `{{secret:NAME}}`.
pub const SECRET_NAME_BYTES_MAX: usize = 64;
/// A secret's value: room for a private key or a long token, not for documents.
pub const SECRET_VALUE_BYTES_MAX: usize = 8 * 1024;
/// A stored secret's shortest value: the boundary replaces every occurrence of a stored value in
/// model-bound text, so a short one would turn ordinary words into references and let a client
/// without the resolve role test guesses of it cheaply (a four-digit PIN in a few requests).
pub const SECRET_VALUE_CHARS_MIN: usize = 8;
/// Phone-number candidates confirmed with libphonenumber's metadata in one scan (up to ten
/// parses each, some microseconds apiece); beyond it, candidates of a phone number's shape are
/// taken as phone numbers without the check (failing closed: masked, never sent), so a text
/// full of digit runs cannot hold a worker for seconds.
pub const PHONE_CHECKS_PER_SCAN_MAX: usize = 1000;
/// Secrets per room: every proxied request reads them all to replace their values by reference.
pub const SECRETS_PER_ROOM_MAX: u64 = 100;

const _: () = assert!(PAGE_SIZE_DEFAULT <= PAGE_SIZE_MAX);
const _: () = assert!(SEARCH_RESULTS_MAX <= PAGE_SIZE_MAX);
const _: () = assert!(KEY_ID_BYTES_MAX < TOKEN_BYTES_MAX);
const _: () = assert!(ITEM_TEXT_BYTES_MAX <= ITEM_VALUE_BYTES_MAX);

/// Per-room quotas an operator may tune. There is deliberately no `Default`: [`RoomLimits::standard`]
/// names the defaults so a configuration always says which it uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomLimits {
    /// Most items one room may hold.
    pub items_per_room_max: u64,
    /// Most threads one room may hold.
    pub threads_per_room_max: u64,
    /// Most messages one thread may hold.
    pub messages_per_thread_max: u64,
    /// Most bytes (sealed, as stored) one room may hold across all collections.
    pub room_bytes_max: u64,
    /// Most entries one room may hold in each cache (tool results; responses). A full cache
    /// evicts the room's own oldest entries.
    pub cache_entries_per_room_max: u64,
    /// Longest time-to-live of a cache entry: caches hold derived data and must expire.
    pub cache_ttl_secs_max: u64,
    /// Most checkpoints, and most pending writes, one room may hold (each a step of an agent's
    /// run; a pruned thread keeps one).
    pub checkpoints_per_room_max: u64,
}

impl RoomLimits {
    /// The defaults: generous for a person's agent state, small enough that one room cannot
    /// exhaust a shared machine.
    pub const fn standard() -> RoomLimits {
        RoomLimits {
            items_per_room_max: 100_000,
            threads_per_room_max: 10_000,
            messages_per_thread_max: 100_000,
            room_bytes_max: 512 * 1024 * 1024,
            cache_entries_per_room_max: 10_000,
            cache_ttl_secs_max: 7 * 24 * 3600,
            checkpoints_per_room_max: 100_000,
        }
    }
}

// Identity (moved here from `identity/` so every limit is in one place).

/// Longest single role name.
pub const ROLE_BYTES_MAX: usize = 64;

/// At most this many keys are tried for one token (keys without `kid`, or a token without one),
/// so a token cannot make the verifier run dozens of signature checks.
pub const CANDIDATE_KEYS_MAX: usize = 4;

/// Longest a verified token is remembered (a key rotation or a JWKS change takes effect within it).
pub const VERIFIED_TOKEN_CACHE_TTL_SECS: u64 = 60;

/// Verified tokens remembered.
pub const VERIFIED_TOKEN_CACHE_ENTRIES_MAX: u64 = 100_000;

/// Clock leeway for development tokens.
pub const DEV_ISSUER_LEEWAY_SECS: u64 = 30;

// Rooms (moved here from `rooms/` so every limit is in one place).

/// Records read per store round trip while building an index.
pub const INDEX_BUILD_CHUNK_RECORDS: usize = 4096;

/// Longest tool name.
pub const TOOL_NAME_BYTES_MAX: usize = 64;

/// Largest cached value.
pub const CACHE_VALUE_BYTES_MAX: usize = 1024 * 1024;

/// Most bytes of one room's in-memory front: its own hot entries, nothing more.
pub const CACHE_FRONT_ROOM_BYTES_MAX: usize = 1024 * 1024;

/// Share of a full cache collection evicted at once (the room's own oldest entries), so a
/// room at its quota does not evict on every write.
pub const CACHE_EVICT_FRACTION: u64 = 10;

/// Entries a room keeps; older ones are dropped as new ones arrive.
pub const AUDIT_ENTRIES_PER_ROOM_MAX: u64 = 100_000;

/// Longest field of an audit event.
pub const AUDIT_FIELD_BYTES_MAX: usize = 512;

/// Most events recorded in one append.
pub const AUDIT_EVENTS_PER_APPEND_MAX: usize = 64;

/// Stripes of the in-process write locks; enough that unrelated threads rarely share one.
pub const WRITE_LOCK_STRIPES: usize = 256;

/// Messages read per store round trip while filling a context view.
pub const CONTEXT_CHUNK_MESSAGES: usize = 64;

/// Largest canonical arguments (or canonical request) a cache key is derived from.
pub const CANONICAL_JSON_BYTES_MAX: usize = 256 * 1024;

/// Largest exponent magnitude of a number: far beyond any double (10^308), small enough that
/// no arithmetic on it can overflow.
pub const CANONICAL_EXPONENT_MAX: i64 = 1_000_000;

// Search (moved here from `search/` so every limit is in one place).

/// Parts this large merge their lexical index on a second thread while their items are laid out.
pub const PARALLEL_ABSORB_ITEMS_MIN: usize = 2048;

/// Longest term kept, in characters; longer words are cut (they are identifiers or noise).
pub const TERM_CHARS_MAX: usize = 64;

/// Most distinct terms a query contributes; a 10,000-term query costs no more than this.
pub const QUERY_TERMS_MAX: usize = 64;

/// Results a search returns when the client names no limit.
pub const SEARCH_RESULTS_DEFAULT: usize = 10;

/// Most metadata equality conditions in one filter.
pub const FILTER_CONDITIONS_MAX: usize = 16;

/// Stripes of the build locks.
pub const INDEX_BUILD_LOCK_STRIPES: usize = 64;

// Storage (moved here from `store/` so every limit is in one place).

/// Read connections. Two cores and WAL readers that never block: a handful is plenty, and each
/// holds a page cache.
pub const SQLITE_READ_CONNECTIONS: usize = 4;

/// Writes queued for the writer before callers wait (backpressure instead of unbounded memory).
pub const SQLITE_WRITE_QUEUE_JOBS_MAX: usize = 4096;

/// How long a reader waits on a lock held during a checkpoint before reporting unavailable.
pub const SQLITE_BUSY_TIMEOUT_MILLIS: u64 = 5_000;

/// Longest a single statement may run before the server cancels it; store operations take
/// milliseconds, so this only stops runaway queries.
pub const POSTGRES_STATEMENT_TIMEOUT_MILLIS: u64 = 15_000;

/// Longest a connection attempt may take.
pub const POSTGRES_CONNECT_TIMEOUT_SECS: u64 = 10;

/// Longest a request waits for a pooled connection before the store reports unavailable.
pub const POSTGRES_POOL_WAIT_SECS: u64 = 10;
