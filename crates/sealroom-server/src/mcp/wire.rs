//! The MCP tools' inputs and the outputs only MCP has (the rest are the API's own response
//! types, `http::dto`). Every input refuses unknown fields, so its JSON Schema says
//! `additionalProperties: false`, and none has a field that could name a user, tenant or room:
//! the token decides whose room a tool touches.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `memory_put`, `tenant_memory_put`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryPut {
    /// The namespace path, one string per segment, e.g. `["memories", "travel"]`.
    pub namespace: Vec<String>,
    /// The item's key within the namespace.
    pub key: String,
    /// Any JSON value to store.
    pub value: Value,
    /// Text to index for search.
    pub text: Option<String>,
    /// An embedding of the text, for vector search.
    pub embedding: Option<Vec<f32>>,
    /// Metadata to filter searches on.
    pub metadata: Option<Map<String, Value>>,
    /// Seconds until the item expires.
    pub ttl_secs: Option<i64>,
}

/// `memory_get`, `memory_delete`, `tenant_memory_get`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryKey {
    /// The namespace path, one string per segment.
    pub namespace: Vec<String>,
    pub key: String,
}

/// `memory_list`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemoryList {
    /// Only items under this namespace path.
    pub prefix: Option<Vec<String>>,
    /// Page size (default 50, at most 200).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// `memory_search`, `tenant_memory_search`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MemorySearch {
    /// Text to search for (BM25, and vectors when the server embeds queries).
    pub query: Option<String>,
    /// A query embedding, for vector search.
    pub embedding: Option<Vec<f32>>,
    /// Only items under this namespace path.
    pub prefix: Option<Vec<String>>,
    /// Metadata values items must have (equality, all of them).
    pub filter: Option<Map<String, Value>>,
    /// Results (default 10).
    pub limit: Option<i64>,
}

/// `thread_create`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThreadCreate {
    pub title: Option<String>,
    pub metadata: Option<Map<String, Value>>,
}

/// `thread_list`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThreadList {
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// One message of `thread_append`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageIn {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    pub role: String,
    pub content: String,
    pub name: Option<String>,
    pub metadata: Option<Map<String, Value>>,
}

/// `thread_append`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThreadAppend {
    pub thread_id: String,
    pub messages: Vec<MessageIn>,
}

/// `thread_context`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ThreadContext {
    pub thread_id: String,
    /// Token budget (default 4,000).
    pub max_tokens: Option<i64>,
}

/// `tool_cache_lookup`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolCacheLookup {
    /// The tool whose result is cached.
    pub tool: String,
    /// The tool's arguments (compared by value: member order and number spelling do not matter).
    pub args: Value,
}

/// `tool_cache_put`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolCachePut {
    pub tool: String,
    pub args: Value,
    /// The result to cache.
    pub result: Value,
    /// Seconds the result stays cached (required: cached results always expire).
    pub ttl_secs: i64,
}

/// What a deletion or a cache write says.
#[derive(Serialize, JsonSchema)]
pub struct Done {
    pub done: bool,
}

/// The messages `thread_append` stored.
#[derive(Serialize, JsonSchema)]
pub struct Appended {
    pub messages: Vec<crate::http::dto::MessageResponse>,
}
