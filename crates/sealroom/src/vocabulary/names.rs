//! Newtypes that parse client input at the trust boundary: every id, name and bound a room
//! operation takes. Each has a fallible constructor and private fields, so an unchecked value
//! cannot reach a room.

use serde_json::{Map, Value};

use crate::limits::{
    CONTEXT_TOKENS_MAX, ITEM_KEY_BYTES_MAX, MESSAGE_CONTENT_BYTES_MAX, MESSAGE_NAME_BYTES_MAX, METADATA_BYTES_MAX,
    NAMESPACE_DEPTH_MAX, NAMESPACE_SEGMENT_BYTES_MAX, PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX, THREAD_TITLE_BYTES_MAX,
    TTL_SECS_MAX,
};

/// Client input that does not parse. Names the field and the rule, never echoes the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InputError {
    pub field: &'static str,
    pub problem: String,
}

impl InputError {
    pub fn new(field: &'static str, problem: impl Into<String>) -> InputError {
        InputError { field, problem: problem.into() }
    }
}

/// A thread id: a UUID (version 7, so ids sort by creation time) chosen by the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ThreadId(uuid::Uuid);

impl ThreadId {
    pub(crate) fn generate() -> ThreadId {
        ThreadId(uuid::Uuid::now_v7())
    }

    /// Parses a thread id sent by a client.
    pub fn parse(text: &str) -> Result<ThreadId, InputError> {
        uuid::Uuid::try_parse(text).map(ThreadId).map_err(|_| InputError::new("thread_id", "must be a UUID"))
    }

    pub(crate) fn from_bytes(bytes: [u8; 16]) -> ThreadId {
        ThreadId(uuid::Uuid::from_bytes(bytes))
    }

    pub(crate) fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
}

impl std::fmt::Display for ThreadId {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(formatter)
    }
}

fn check_label(field: &'static str, text: &str, bytes_max: usize) -> Result<(), InputError> {
    if text.is_empty() || text.len() > bytes_max {
        return Err(InputError::new(field, format!("must be 1 to {bytes_max} bytes")));
    }
    if text.chars().any(char::is_control) {
        return Err(InputError::new(field, "may not contain control characters"));
    }
    if text.contains('/') {
        return Err(InputError::new(field, "may not contain '/'"));
    }
    if text == "." || text == ".." {
        return Err(InputError::new(field, "may not be '.' or '..'"));
    }
    Ok(())
}

/// A namespace path of 1 to 8 segments (LangGraph-style: `["memories", "travel"]`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace(Vec<String>);

impl Namespace {
    /// Parses namespace segments.
    pub fn parse(segments: Vec<String>) -> Result<Namespace, InputError> {
        if segments.is_empty() || segments.len() > NAMESPACE_DEPTH_MAX {
            return Err(InputError::new("namespace", format!("must have 1 to {NAMESPACE_DEPTH_MAX} segments")));
        }
        for segment in &segments {
            check_label("namespace", segment, NAMESPACE_SEGMENT_BYTES_MAX)?;
        }
        Ok(Namespace(segments))
    }

    pub fn segments(&self) -> &[String] {
        &self.0
    }

    /// Whether this namespace starts with `prefix`.
    pub fn starts_with(&self, prefix: &NamespacePrefix) -> bool {
        self.0.starts_with(&prefix.0)
    }
}

impl std::fmt::Display for Namespace {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0.join("/"))
    }
}

/// A namespace prefix for listing and search: 0 to 8 segments (empty means the whole room).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct NamespacePrefix(Vec<String>);

impl NamespacePrefix {
    /// Parses prefix segments.
    pub fn parse(segments: Vec<String>) -> Result<NamespacePrefix, InputError> {
        if segments.len() > NAMESPACE_DEPTH_MAX {
            return Err(InputError::new("prefix", format!("may have at most {NAMESPACE_DEPTH_MAX} segments")));
        }
        for segment in &segments {
            check_label("prefix", segment, NAMESPACE_SEGMENT_BYTES_MAX)?;
        }
        Ok(NamespacePrefix(segments))
    }

    /// Parses a `/`-separated prefix as sent in a query string (`""` is the whole room).
    pub fn parse_path(path: &str) -> Result<NamespacePrefix, InputError> {
        let trimmed = path.trim_matches('/');
        if trimmed.is_empty() {
            return Ok(NamespacePrefix(Vec::new()));
        }
        NamespacePrefix::parse(trimmed.split('/').map(str::to_owned).collect())
    }

    /// The prefix matching everything.
    pub fn everything() -> NamespacePrefix {
        NamespacePrefix(Vec::new())
    }

    pub fn segments(&self) -> &[String] {
        &self.0
    }
}

/// An item key within a namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemKey(String);

impl ItemKey {
    pub fn parse(text: &str) -> Result<ItemKey, InputError> {
        check_label("key", text, ITEM_KEY_BYTES_MAX)?;
        Ok(ItemKey(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Splits an item path `ns1/ns2/key` into its namespace and key (at least one namespace
/// segment and a key).
pub fn parse_item_path(path: &str) -> Result<(Namespace, ItemKey), InputError> {
    let mut segments: Vec<String> = path.split('/').map(str::to_owned).collect();
    let key = segments.pop().unwrap_or_default();
    if segments.is_empty() {
        return Err(InputError::new("path", "must be a namespace of at least one segment followed by a key"));
    }
    Ok((Namespace::parse(segments)?, ItemKey::parse(&key)?))
}

/// How many entries a page holds: defaults when absent, clamped to the maximum, and refused
/// when zero or negative (a negative limit is a client bug worth reporting).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageSize(usize);

impl PageSize {
    pub fn parse(requested: Option<i64>) -> Result<PageSize, InputError> {
        PageSize::parse_with_max(requested, PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX)
    }

    pub fn parse_with_max(requested: Option<i64>, default: usize, max: usize) -> Result<PageSize, InputError> {
        match requested {
            None => Ok(PageSize(default.min(max))),
            Some(value) if value <= 0 => Err(InputError::new("limit", "must be a positive integer")),
            Some(value) => Ok(PageSize(usize::try_from(value).unwrap_or(usize::MAX).min(max))),
        }
    }

    pub fn get(self) -> usize {
        self.0
    }
}

/// A time-to-live in seconds, 1 second to a year.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ttl(u64);

impl Ttl {
    pub fn parse(seconds: i64) -> Result<Ttl, InputError> {
        match u64::try_from(seconds) {
            Ok(seconds) if (1..=TTL_SECS_MAX).contains(&seconds) => Ok(Ttl(seconds)),
            _ => Err(InputError::new("ttl_secs", format!("must be between 1 and {TTL_SECS_MAX}"))),
        }
    }

    pub fn secs(self) -> u64 {
        self.0
    }

    pub(crate) fn expires_at(self, now: i64) -> i64 {
        now.saturating_add(i64::try_from(self.0).unwrap_or(i64::MAX))
    }
}

/// A JSON object of client metadata, bounded in size and depth (the depth was bounded by the
/// HTTP layer's parser; the size is bounded here).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Metadata(Map<String, Value>);

impl Metadata {
    pub fn parse(value: Option<Value>) -> Result<Metadata, InputError> {
        match value {
            None | Some(Value::Null) => Ok(Metadata(Map::new())),
            Some(Value::Object(map)) => {
                let size = serde_json::to_vec(&map).map(|bytes| bytes.len()).unwrap_or(usize::MAX);
                if size > METADATA_BYTES_MAX {
                    return Err(InputError::new("metadata", format!("may be at most {METADATA_BYTES_MAX} bytes")));
                }
                Ok(Metadata(map))
            }
            Some(_) => Err(InputError::new("metadata", "must be a JSON object")),
        }
    }

    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    pub(crate) fn from_stored(map: Map<String, Value>) -> Metadata {
        Metadata(map)
    }
}

/// A thread title.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    pub fn parse(text: &str) -> Result<Title, InputError> {
        if text.len() > THREAD_TITLE_BYTES_MAX {
            return Err(InputError::new("title", format!("may be at most {THREAD_TITLE_BYTES_MAX} bytes")));
        }
        Ok(Title(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Who wrote a message, with OpenAI's role names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageRole {
    System,
    Developer,
    User,
    Assistant,
    Tool,
}

impl MessageRole {
    pub fn parse(text: &str) -> Result<MessageRole, InputError> {
        Ok(match text {
            "system" => MessageRole::System,
            "developer" => MessageRole::Developer,
            "user" => MessageRole::User,
            "assistant" => MessageRole::Assistant,
            "tool" => MessageRole::Tool,
            _ => return Err(InputError::new("role", "must be system, developer, user, assistant or tool")),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MessageRole::System => "system",
            MessageRole::Developer => "developer",
            MessageRole::User => "user",
            MessageRole::Assistant => "assistant",
            MessageRole::Tool => "tool",
        }
    }
}

/// A message to append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    role: MessageRole,
    content: String,
    name: Option<String>,
    metadata: Metadata,
}

impl NewMessage {
    pub fn parse(
        role: &str,
        content: String,
        name: Option<String>,
        metadata: Option<Value>,
    ) -> Result<NewMessage, InputError> {
        let role = MessageRole::parse(role)?;
        if content.len() > MESSAGE_CONTENT_BYTES_MAX {
            return Err(InputError::new("content", format!("may be at most {MESSAGE_CONTENT_BYTES_MAX} bytes")));
        }
        if let Some(name) = &name
            && (name.is_empty() || name.len() > MESSAGE_NAME_BYTES_MAX || name.chars().any(char::is_control))
        {
            return Err(InputError::new(
                "name",
                format!("must be 1 to {MESSAGE_NAME_BYTES_MAX} bytes without control characters"),
            ));
        }
        Ok(NewMessage { role, content, name, metadata: Metadata::parse(metadata)? })
    }

    pub fn role(&self) -> MessageRole {
        self.role
    }
    pub fn content(&self) -> &str {
        &self.content
    }
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }
}

/// A token budget for a context view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenBudget(usize);

impl TokenBudget {
    pub fn parse(requested: i64) -> Result<TokenBudget, InputError> {
        match usize::try_from(requested) {
            Ok(tokens) if (1..=CONTEXT_TOKENS_MAX).contains(&tokens) => Ok(TokenBudget(tokens)),
            _ => Err(InputError::new("max_tokens", format!("must be between 1 and {CONTEXT_TOKENS_MAX}"))),
        }
    }

    pub fn get(self) -> usize {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn item_paths_need_a_namespace_and_a_key() {
        let (namespace, key) = parse_item_path("memories/travel/flight").expect("valid");
        assert_eq!(namespace.segments(), ["memories", "travel"]);
        assert_eq!(key.as_str(), "flight");
        for bad in ["", "key", "a//b", "a/", "/a", "a/../b", "a/./b", "a/b\u{0}c"] {
            assert!(parse_item_path(bad).is_err(), "{bad:?}");
        }
        let too_deep = ["n"; NAMESPACE_DEPTH_MAX + 1].join("/") + "/key";
        assert!(parse_item_path(&too_deep).is_err());
        let long_segment = format!("{}/key", "s".repeat(NAMESPACE_SEGMENT_BYTES_MAX + 1));
        assert!(parse_item_path(&long_segment).is_err());
    }

    #[test]
    fn page_sizes_are_clamped_or_refused() {
        assert_eq!(PageSize::parse(None).expect("default").get(), PAGE_SIZE_DEFAULT);
        assert_eq!(PageSize::parse(Some(1_000_000_000)).expect("clamped").get(), PAGE_SIZE_MAX);
        assert!(PageSize::parse(Some(0)).is_err());
        assert!(PageSize::parse(Some(-1)).is_err());
    }

    #[test]
    fn ttl_bounds() {
        assert!(Ttl::parse(0).is_err());
        assert!(Ttl::parse(-5).is_err());
        assert!(Ttl::parse(i64::try_from(TTL_SECS_MAX).expect("fits") + 1).is_err());
        assert_eq!(Ttl::parse(60).expect("valid").secs(), 60);
    }

    #[test]
    fn metadata_must_be_a_bounded_object() {
        assert!(Metadata::parse(Some(serde_json::json!([1]))).is_err());
        assert!(Metadata::parse(Some(serde_json::json!({"k": "v".repeat(METADATA_BYTES_MAX)}))).is_err());
        assert!(Metadata::parse(Some(serde_json::json!({"k": "v"}))).is_ok());
    }

    proptest! {
        /// Item path parsing never panics, and what it accepts round-trips.
        #[test]
        fn item_path_parsing_is_total(path in "[a-z/.\\x00-\\x1f é]{0,40}") {
            if let Ok((namespace, key)) = parse_item_path(&path) {
                prop_assert_eq!(format!("{}/{}", namespace, key.as_str()), path);
            }
        }

        #[test]
        fn prefix_parsing_never_panics(path in ".{0,80}") {
            let _ = NamespacePrefix::parse_path(&path);
        }
    }
}
