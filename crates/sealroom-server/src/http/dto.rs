//! Request and response bodies of the v1 HTTP API. These are the only types that derive
//! `Serialize`/`Deserialize` for the wire; domain types are converted into them here, field by
//! field, so nothing sealed or secret can reach a response by accident.
//!
//! Request types refuse unknown fields: a body naming `user`, `user_id`, `owner` or `tenant` is
//! a 400, never a way to pick a room.

use sealroom::rooms::{ContextView, Item, Message, ThreadInfo};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

/// `GET /v1/me`
#[derive(Serialize, ToSchema)]
pub struct MeResponse {
    /// The caller's pseudonymous room id.
    pub room_id: String,
    pub issuer: String,
    pub subject: String,
    pub tenant: Option<String>,
    /// The tenant room's id, when the token names a tenant.
    pub tenant_room_id: Option<String>,
    pub roles: Vec<String>,
    /// Whether the caller may write to the tenant room.
    pub tenant_writer: bool,
    /// When the token expires (unix seconds).
    pub token_expires_at: i64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateThreadRequest {
    pub title: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

/// `PATCH` body: absent fields stay, `"title": null` clears the title.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateThreadRequest {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub title: Option<Option<String>>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

/// Distinguishes a field set to `null` from an absent one.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Serialize, ToSchema, schemars::JsonSchema)]
pub struct ThreadResponse {
    pub id: String,
    pub title: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    pub created_at: i64,
    pub updated_at: i64,
    pub message_count: u64,
}

impl From<&ThreadInfo> for ThreadResponse {
    fn from(thread: &ThreadInfo) -> ThreadResponse {
        ThreadResponse {
            id: thread.id.to_string(),
            title: thread.title.clone(),
            metadata: thread.metadata.as_map().clone(),
            created_at: thread.created_at,
            updated_at: thread.updated_at,
            message_count: thread.message_count,
        }
    }
}

#[derive(Serialize, ToSchema, schemars::JsonSchema)]
pub struct ThreadListResponse {
    pub threads: Vec<ThreadResponse>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Page size (default 50, at most 200).
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageInput {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    pub role: String,
    pub content: String,
    pub name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppendMessagesRequest {
    pub messages: Vec<MessageInput>,
}

#[derive(Serialize, ToSchema, schemars::JsonSchema)]
pub struct MessageResponse {
    pub thread_id: String,
    /// Position in the thread from 1; pass as `after` to page.
    pub sequence: u64,
    pub role: String,
    pub content: String,
    pub name: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    pub created_at: i64,
    /// Who wrote it, recorded by the server: `user`, `model`, `tool`, `tenant`, `mcp`, or
    /// `unrecorded` (stored before origins were recorded).
    pub origin: &'static str,
}

impl From<&Message> for MessageResponse {
    fn from(message: &Message) -> MessageResponse {
        MessageResponse {
            thread_id: message.thread_id.to_string(),
            sequence: message.sequence,
            role: message.role.as_str().to_owned(),
            content: message.content.clone(),
            name: message.name.clone(),
            metadata: message.metadata.as_map().clone(),
            created_at: message.created_at,
            origin: sealroom::rooms::Origin::name_of(message.origin),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MessagesResponse {
    pub messages: Vec<MessageResponse>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub next_after: Option<u64>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct MessagesQuery {
    /// Return messages with a sequence number greater than this.
    pub after: Option<u64>,
    pub limit: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ContextQuery {
    /// Token budget (default 4,000).
    pub max_tokens: Option<i64>,
}

#[derive(Serialize, ToSchema, schemars::JsonSchema)]
pub struct ContextResponse {
    pub messages: Vec<MessageResponse>,
    pub tokens_estimated: usize,
    /// Whether older messages were left out to fit the budget.
    pub truncated: bool,
}

impl From<&ContextView> for ContextResponse {
    fn from(view: &ContextView) -> ContextResponse {
        ContextResponse {
            messages: view.messages.iter().map(MessageResponse::from).collect(),
            tokens_estimated: view.tokens_estimated,
            truncated: view.truncated,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutItemRequest {
    #[schema(value_type = Object)]
    pub value: Value,
    /// Text to index for search.
    pub text: Option<String>,
    /// An embedding of `text` (or of the value), for vector search.
    pub embedding: Option<Vec<f32>>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// Seconds until the item expires (at most a year); absent means no expiry.
    pub ttl_secs: Option<i64>,
}

#[derive(Serialize, ToSchema, schemars::JsonSchema)]
pub struct ItemResponse {
    pub namespace: Vec<String>,
    pub key: String,
    #[schema(value_type = Object)]
    pub value: Value,
    pub text: Option<String>,
    /// Dimensions of the stored embedding, if any.
    pub embedding_dimensions: Option<usize>,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: Option<i64>,
    /// Who wrote it, recorded by the server (as for messages).
    pub origin: &'static str,
}

impl From<&Item> for ItemResponse {
    fn from(item: &Item) -> ItemResponse {
        ItemResponse {
            namespace: item.namespace.segments().to_vec(),
            key: item.key.as_str().to_owned(),
            value: item.value.clone(),
            text: item.text.clone(),
            embedding_dimensions: item.embedding.as_ref().map(Vec::len),
            metadata: item.metadata.as_map().clone(),
            created_at: item.created_at,
            updated_at: item.updated_at,
            expires_at: item.expires_at,
            origin: sealroom::rooms::Origin::name_of(item.origin),
        }
    }
}

#[derive(Serialize, ToSchema, schemars::JsonSchema)]
pub struct ItemListResponse {
    pub items: Vec<ItemResponse>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ItemListQuery {
    /// Namespace prefix, `/`-separated (empty for everything).
    pub prefix: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequestBody {
    /// Text to search for (BM25 over the items' `text`; also embedded when an embeddings
    /// upstream is configured and no `embedding` is given).
    pub query: Option<String>,
    /// A query embedding for vector search.
    pub embedding: Option<Vec<f32>>,
    /// Namespace prefix, `/`-separated.
    pub prefix: Option<String>,
    /// Metadata values that must all match exactly; applied before ranking.
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
    /// Results to return (default 10, at most 100).
    pub limit: Option<i64>,
    /// `cosine` (default) or `dot`.
    pub metric: Option<String>,
}

#[derive(Serialize, ToSchema, schemars::JsonSchema)]
pub struct SearchResult {
    pub item: ItemResponse,
    /// The fused score (reciprocal rank fusion when both rankings ran).
    pub score: f64,
    pub lexical_rank: Option<usize>,
    pub lexical_score: Option<f32>,
    pub vector_rank: Option<usize>,
    pub vector_score: Option<f32>,
}

impl From<&sealroom::search::SearchHit> for SearchResult {
    fn from(hit: &sealroom::search::SearchHit) -> SearchResult {
        SearchResult {
            item: ItemResponse::from(&hit.item),
            score: hit.score,
            lexical_rank: hit.lexical.map(|(rank, _)| rank),
            lexical_score: hit.lexical.map(|(_, score)| score),
            vector_rank: hit.vector.map(|(rank, _)| rank),
            vector_score: hit.vector.map(|(_, score)| score),
        }
    }
}

#[derive(Serialize, ToSchema, schemars::JsonSchema)]
pub struct SearchResponse {
    pub results: Vec<SearchResult>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolPutRequest {
    /// The tool's arguments, canonicalized before keying: member order, whitespace, escapes and
    /// number spelling do not matter; numbers are compared by exact decimal value (`1.0` is `1`,
    /// `12345678901234567890` is not `12345678901234567000`).
    #[schema(value_type = Object)]
    pub args: Box<serde_json::value::RawValue>,
    #[schema(value_type = Object)]
    pub result: Value,
    /// Required: cached results always expire.
    pub ttl_secs: i64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolLookupRequest {
    /// The tool's arguments, canonicalized as for storing.
    #[schema(value_type = Object)]
    pub args: Box<serde_json::value::RawValue>,
}

#[derive(Serialize, ToSchema, schemars::JsonSchema)]
pub struct ToolLookupResponse {
    pub hit: bool,
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    pub age_secs: Option<i64>,
    pub expires_at: Option<i64>,
}

impl From<Option<sealroom::rooms::CacheHit>> for ToolLookupResponse {
    fn from(hit: Option<sealroom::rooms::CacheHit>) -> ToolLookupResponse {
        match hit {
            Some(hit) => ToolLookupResponse {
                hit: true,
                result: Some(hit.value),
                age_secs: Some(hit.age_secs),
                expires_at: Some(hit.expires_at),
            },
            None => ToolLookupResponse { hit: false, result: None, age_secs: None, expires_at: None },
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditPageQuery {
    /// Return entries with a sequence number greater than this.
    pub after: Option<u64>,
    pub limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct AuditEntryResponse {
    pub sequence: u64,
    pub at: i64,
    /// The room id of the principal who acted (for tenant rooms, the member's own room).
    pub actor_room_id: String,
    pub token_id: Option<String>,
    pub operation: String,
    pub target: String,
    pub outcome: String,
    pub request_id: Option<String>,
    /// The entry's chain hash (hex).
    pub hash: String,
}

impl From<&sealroom::rooms::AuditEntry> for AuditEntryResponse {
    fn from(entry: &sealroom::rooms::AuditEntry) -> AuditEntryResponse {
        AuditEntryResponse {
            sequence: entry.sequence,
            at: entry.at,
            actor_room_id: entry.actor_room.to_hex(),
            token_id: entry.token_id.clone(),
            operation: entry.operation.clone(),
            target: entry.target.clone(),
            outcome: entry.outcome.clone(),
            request_id: entry.request_id.clone(),
            hash: hex::encode(entry.hash),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AuditPageResponse {
    pub entries: Vec<AuditEntryResponse>,
    pub next_after: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct ErasureReceiptResponse {
    pub room_id: String,
    pub erased_at: i64,
    /// Whether the room had ever been written.
    pub existed: bool,
    /// Records and bytes purged after the key was destroyed.
    pub records: u64,
    pub bytes: u64,
}

impl From<&sealroom::rooms::ErasureReceipt> for ErasureReceiptResponse {
    fn from(receipt: &sealroom::rooms::ErasureReceipt) -> ErasureReceiptResponse {
        ErasureReceiptResponse {
            room_id: receipt.room.to_hex(),
            erased_at: receipt.erased_at,
            existed: receipt.existed,
            records: receipt.records,
            bytes: receipt.bytes,
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageAfterQuery {
    pub after: Option<String>,
    pub limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct RoomSummaryResponse {
    pub room_id: String,
    pub created_at: i64,
    pub version: u64,
    pub records: u64,
    pub bytes: u64,
}

impl From<&sealroom::vocabulary::records::RoomSummary> for RoomSummaryResponse {
    fn from(summary: &sealroom::vocabulary::records::RoomSummary) -> RoomSummaryResponse {
        RoomSummaryResponse {
            room_id: summary.room.to_hex(),
            created_at: summary.created_at,
            version: summary.version,
            records: summary.records,
            bytes: summary.bytes,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AdminRoomsResponse {
    pub rooms: Vec<RoomSummaryResponse>,
    pub next_after: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AdminStatsResponse {
    pub rooms: u64,
    pub records: u64,
    pub bytes: u64,
    pub erasures: u64,
    /// Isolation alarms raised by this process since it started (must be zero).
    pub isolation_alarms: u64,
}

#[derive(Serialize, ToSchema)]
pub struct ErasureEntryResponse {
    pub room_id: String,
    pub erased_at: i64,
    pub purged: bool,
}

impl From<&sealroom::vocabulary::records::ErasureEntry> for ErasureEntryResponse {
    fn from(entry: &sealroom::vocabulary::records::ErasureEntry) -> ErasureEntryResponse {
        ErasureEntryResponse { room_id: entry.room.to_hex(), erased_at: entry.erased_at, purged: entry.purged }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AdminErasuresResponse {
    pub erasures: Vec<ErasureEntryResponse>,
    pub next_after: Option<u64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminEraseRequest {
    pub issuer: String,
    pub subject: String,
}

#[derive(Serialize, ToSchema)]
pub struct AuditVerdictResponse {
    pub room_id: String,
    pub intact: bool,
    pub entries: Option<u64>,
    pub broken_at: Option<u64>,
    pub reason: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotationRequest {
    pub after: Option<String>,
    pub limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct RotationResponse {
    pub rewrapped: u64,
    pub already_current: u64,
    /// Rooms whose key opens under neither configured master key.
    pub failed: Vec<String>,
    pub next_after: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct HealthResponse {
    pub status: &'static str,
}

/// A serialized value: the client serializer's type tag and its bytes, base64 (standard
/// alphabet, padded). The server never parses it.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlobBody {
    #[serde(rename = "type")]
    pub type_tag: String,
    pub data: String,
}

impl BlobBody {
    pub fn from_blob(blob: &sealroom::vocabulary::checkpoint::TypedBlob) -> BlobBody {
        use base64::Engine;
        BlobBody {
            type_tag: blob.type_tag.clone(),
            data: base64::engine::general_purpose::STANDARD.encode(&blob.bytes),
        }
    }

    pub fn parse(
        self,
        field: &'static str,
    ) -> Result<sealroom::vocabulary::checkpoint::TypedBlob, sealroom::rooms::InputError> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(self.data.as_bytes())
            .map_err(|_| sealroom::rooms::InputError::new(field, "data must be standard base64"))?;
        sealroom::vocabulary::checkpoint::TypedBlob::parse(field, &self.type_tag, bytes)
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutCheckpointRequest {
    pub thread_id: String,
    /// The namespace (`""`, the root, when absent).
    #[serde(default)]
    pub checkpoint_ns: String,
    pub checkpoint_id: String,
    pub parent_checkpoint_id: Option<String>,
    pub checkpoint: BlobBody,
    /// JSON object; listings filter on its top-level keys.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

#[derive(Serialize, ToSchema)]
pub struct CheckpointAddressResponse {
    pub thread_id: String,
    pub checkpoint_ns: String,
    pub checkpoint_id: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PendingWriteInput {
    pub channel: String,
    /// The write's index in its task; negative for special channels (error -1, interrupt -3,
    /// resume -4, …), which replace, where a write at a non-negative index is kept only if first.
    pub index: i64,
    pub value: BlobBody,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutWritesRequest {
    pub thread_id: String,
    #[serde(default)]
    pub checkpoint_ns: String,
    pub checkpoint_id: String,
    pub task_id: String,
    #[serde(default)]
    pub task_path: String,
    pub writes: Vec<PendingWriteInput>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GetCheckpointRequest {
    pub thread_id: String,
    #[serde(default)]
    pub checkpoint_ns: String,
    /// The checkpoint; the thread's latest (greatest id) when absent.
    pub checkpoint_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PendingWriteResponse {
    pub task_id: String,
    pub task_path: String,
    pub channel: String,
    pub index: i64,
    pub value: BlobBody,
}

#[derive(Serialize, ToSchema)]
pub struct CheckpointResponse {
    pub thread_id: String,
    pub checkpoint_ns: String,
    pub checkpoint_id: String,
    pub parent_checkpoint_id: Option<String>,
    pub checkpoint: BlobBody,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    /// Sorted by task path, task id and index.
    pub pending_writes: Vec<PendingWriteResponse>,
    pub created_at: i64,
}

impl From<&sealroom::vocabulary::checkpoint::CheckpointTuple> for CheckpointResponse {
    fn from(tuple: &sealroom::vocabulary::checkpoint::CheckpointTuple) -> CheckpointResponse {
        CheckpointResponse {
            thread_id: tuple.thread.thread_id.clone(),
            checkpoint_ns: tuple.thread.namespace.clone(),
            checkpoint_id: tuple.checkpoint_id.clone(),
            parent_checkpoint_id: tuple.parent_checkpoint_id.clone(),
            checkpoint: BlobBody::from_blob(&tuple.checkpoint),
            metadata: tuple.metadata.as_map().clone(),
            pending_writes: tuple.pending_writes.iter().map(PendingWriteResponse::from).collect(),
            created_at: tuple.created_at,
        }
    }
}

impl From<&sealroom::vocabulary::checkpoint::PendingWrite> for PendingWriteResponse {
    fn from(write: &sealroom::vocabulary::checkpoint::PendingWrite) -> PendingWriteResponse {
        PendingWriteResponse {
            task_id: write.task_id.clone(),
            task_path: write.task_path.clone(),
            channel: write.channel.clone(),
            index: write.index,
            value: BlobBody::from_blob(&write.value),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListCheckpointsRequest {
    /// Only this thread (every thread of your room when absent).
    pub thread_id: Option<String>,
    /// Only this namespace (every namespace when absent).
    pub checkpoint_ns: Option<String>,
    pub checkpoint_id: Option<String>,
    /// Only checkpoint ids strictly less than this one.
    pub before: Option<String>,
    /// Metadata values every returned checkpoint has (top-level keys; numbers by value).
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
    /// Page size (default 50, at most 200).
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CheckpointListResponse {
    /// Greatest checkpoint id first.
    pub checkpoints: Vec<CheckpointResponse>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckpointThreadRequest {
    pub thread_id: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteRunsRequest {
    pub run_ids: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CopyThreadRequest {
    pub source_thread_id: String,
    pub target_thread_id: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PruneRequest {
    pub thread_ids: Vec<String>,
    /// `keep_latest` (each namespace's latest checkpoint stays) or `delete`.
    pub strategy: String,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct NamespacesQuery {
    /// Leading segments, `/`-separated; `*` matches any one segment.
    pub prefix: Option<String>,
    /// Trailing segments, `/`-separated; `*` matches any one segment.
    pub suffix: Option<String>,
    /// Cut namespaces to this many segments (then each is listed once).
    pub max_depth: Option<i64>,
    /// At most this many (default 100, at most 200).
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct NamespacesResponse {
    /// Sorted segment by segment.
    pub namespaces: Vec<Vec<String>>,
}

/// One change of an item batch.
#[derive(Deserialize, ToSchema)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum ItemChangeInput {
    /// Stores (creates or replaces) an item.
    Put {
        namespace: Vec<String>,
        key: String,
        #[schema(value_type = Object)]
        value: Value,
        text: Option<String>,
        embedding: Option<Vec<f32>>,
        #[schema(value_type = Option<Object>)]
        metadata: Option<Value>,
        ttl_secs: Option<i64>,
    },
    /// Deletes an item (nothing to delete is not an error).
    Delete { namespace: Vec<String>, key: String },
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemBatchRequest {
    /// 1 to 100 puts and deletes, each item at most once: applied all together or not at all.
    pub changes: Vec<ItemChangeInput>,
}

/// What one change did, in the order of the request.
#[derive(Serialize, ToSchema)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ItemChangeResult {
    Put { item: ItemResponse },
    Delete { namespace: Vec<String>, key: String, existed: bool },
}

#[derive(Serialize, ToSchema)]
pub struct ItemBatchResponse {
    pub results: Vec<ItemChangeResult>,
}
