//! An item (a memory or a document) as every layer sees it, and the validated input to store
//! one.

use serde_json::Value;

use crate::limits::{EMBEDDING_DIMENSIONS_MAX, ITEM_TEXT_BYTES_MAX, ITEM_VALUE_BYTES_MAX};
use crate::vocabulary::names::{InputError, ItemKey, Metadata, Namespace, Ttl};

/// Who wrote a stored text, as the server saw it when it was written (never as a client claims
/// it): the prompt builder labels every fragment with it, and an operator can keep fragments of
/// origins they do not trust out of prompts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Origin {
    /// The user, through the HTTP API with their own token.
    User,
    /// A model: an assistant message (a stored exchange of the proxy, or appended as one).
    Model,
    /// A tool: a message with the tool role.
    Tool,
    /// A writer of the tenant's shared room.
    Tenant,
    /// A tool call on the MCP endpoint (a model-driven client).
    Mcp,
}

impl Origin {
    pub const ALL: [Origin; 5] = [Origin::User, Origin::Model, Origin::Tool, Origin::Tenant, Origin::Mcp];

    /// The stable name in API answers, prompts and configuration.
    pub fn name(self) -> &'static str {
        match self {
            Origin::User => "user",
            Origin::Model => "model",
            Origin::Tool => "tool",
            Origin::Tenant => "tenant",
            Origin::Mcp => "mcp",
        }
    }

    pub fn parse(name: &str) -> Option<Origin> {
        Origin::ALL.into_iter().find(|origin| origin.name() == name)
    }

    /// The name of an origin that may be unknown (text stored before origins were recorded).
    pub fn name_of(origin: Option<Origin>) -> &'static str {
        origin.map_or("unrecorded", Origin::name)
    }
}

/// A validated item to store.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemInput {
    pub(crate) value_json: String,
    pub(crate) text: Option<String>,
    pub(crate) embedding: Option<Vec<f32>>,
    pub(crate) metadata: Metadata,
    pub(crate) ttl: Option<Ttl>,
}

impl ItemInput {
    /// Validates an item: value size, text size, embedding shape, metadata and TTL.
    pub fn parse(
        value: &Value,
        text: Option<String>,
        embedding: Option<Vec<f32>>,
        metadata: Option<Value>,
        ttl_secs: Option<i64>,
    ) -> Result<ItemInput, InputError> {
        let value_json = value.to_string();
        if value_json.len() > ITEM_VALUE_BYTES_MAX {
            return Err(InputError::new("value", format!("may be at most {ITEM_VALUE_BYTES_MAX} bytes")));
        }
        if text.as_ref().is_some_and(|text| text.len() > ITEM_TEXT_BYTES_MAX) {
            return Err(InputError::new("text", format!("may be at most {ITEM_TEXT_BYTES_MAX} bytes")));
        }
        if let Some(embedding) = &embedding {
            check_embedding(embedding)?;
        }
        Ok(ItemInput {
            value_json,
            text,
            embedding,
            metadata: Metadata::parse(metadata)?,
            ttl: ttl_secs.map(Ttl::parse).transpose()?,
        })
    }

    /// The embedding, if any.
    pub fn embedding(&self) -> Option<&[f32]> {
        self.embedding.as_deref()
    }

    /// The indexed text, if any.
    pub fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }

    /// The parts to store, with the expiry computed from `now` (for the benchmark baseline).
    #[cfg(feature = "test-hooks")]
    pub(crate) fn into_parts(self, now: i64) -> ItemParts {
        ItemParts {
            expires_at: self.ttl.map(|ttl| ttl.expires_at(now)),
            value_json: self.value_json,
            text: self.text,
            embedding: self.embedding,
            metadata: self.metadata.as_map().clone(),
        }
    }

    /// Attaches an embedding computed by the server (for items stored without one).
    pub fn with_embedding(mut self, embedding: Vec<f32>) -> Result<ItemInput, InputError> {
        check_embedding(&embedding)?;
        self.embedding = Some(embedding);
        Ok(self)
    }
}

/// What an [`ItemInput`] stores.
#[cfg(feature = "test-hooks")]
pub(crate) struct ItemParts {
    pub value_json: String,
    pub text: Option<String>,
    pub embedding: Option<Vec<f32>>,
    pub metadata: serde_json::Map<String, Value>,
    pub expires_at: Option<i64>,
}

/// Embeddings must have 1 to 4096 finite components.
pub fn check_embedding(embedding: &[f32]) -> Result<(), InputError> {
    if embedding.is_empty() || embedding.len() > EMBEDDING_DIMENSIONS_MAX {
        return Err(InputError::new("embedding", format!("must have 1 to {EMBEDDING_DIMENSIONS_MAX} dimensions")));
    }
    if embedding.iter().any(|component| !component.is_finite()) {
        return Err(InputError::new("embedding", "must hold finite numbers"));
    }
    Ok(())
}

/// A stored item.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub namespace: Namespace,
    pub key: ItemKey,
    pub value: Value,
    pub text: Option<String>,
    pub embedding: Option<Vec<f32>>,
    pub metadata: Metadata,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: Option<i64>,
    /// Who wrote it (`None`: stored before origins were recorded).
    pub origin: Option<Origin>,
}

/// Which namespaces a namespace listing returns (LangGraph's `list_namespaces`): those with a
/// live item that match every condition, cut to `max_depth` segments and deduplicated, in
/// segment order, from `offset`, at most `limit`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceQuery {
    /// Leading segments, `*` matching any one segment.
    pub prefix: Option<Vec<String>>,
    /// Trailing segments, `*` matching any one segment.
    pub suffix: Option<Vec<String>>,
    pub max_depth: Option<usize>,
    pub limit: usize,
    pub offset: usize,
}

impl NamespaceQuery {
    /// Checks the sizes of a query a client sent.
    pub fn parse(
        prefix: Option<Vec<String>>,
        suffix: Option<Vec<String>>,
        max_depth: Option<i64>,
        limit: Option<i64>,
        offset: Option<i64>,
    ) -> Result<NamespaceQuery, InputError> {
        use crate::limits::{NAMESPACE_DEPTH_MAX, NAMESPACE_SEGMENT_BYTES_MAX, PAGE_SIZE_MAX};
        for (field, path) in [("prefix", &prefix), ("suffix", &suffix)] {
            let bad_segment = |segment: &String| {
                segment.is_empty()
                    || segment.len() > NAMESPACE_SEGMENT_BYTES_MAX
                    || segment.chars().any(char::is_control)
            };
            if let Some(path) = path
                && (path.len() > NAMESPACE_DEPTH_MAX || path.iter().any(bad_segment))
            {
                return Err(InputError::new(
                    field,
                    format!(
                        "must have at most {NAMESPACE_DEPTH_MAX} segments of 1 to {NAMESPACE_SEGMENT_BYTES_MAX} bytes"
                    ),
                ));
            }
        }
        let max_depth = match max_depth {
            None => None,
            Some(depth) => {
                Some(usize::try_from(depth).map_err(|_| InputError::new("max_depth", "must not be negative"))?)
            }
        };
        let limit = match limit {
            None => 100,
            Some(limit) => usize::try_from(limit)
                .ok()
                .filter(|limit| (1..=PAGE_SIZE_MAX).contains(limit))
                .ok_or_else(|| InputError::new("limit", format!("must be between 1 and {PAGE_SIZE_MAX}")))?,
        };
        let offset =
            usize::try_from(offset.unwrap_or(0)).map_err(|_| InputError::new("offset", "must not be negative"))?;
        Ok(NamespaceQuery { prefix, suffix, max_depth, limit, offset })
    }

    /// The page of `namespaces` (each once, any order) this query returns.
    pub fn select<'a>(&self, namespaces: impl IntoIterator<Item = &'a [String]>) -> Vec<Vec<String>> {
        let segments_match = |pattern: &[String], segments: &[String]| {
            pattern.iter().zip(segments).all(|(want, have)| want == "*" || want == have)
        };
        let mut selected: Vec<Vec<String>> = namespaces
            .into_iter()
            .filter(|namespace| {
                self.prefix.as_ref().is_none_or(|prefix| {
                    namespace.len() >= prefix.len() && segments_match(prefix, &namespace[..prefix.len()])
                }) && self.suffix.as_ref().is_none_or(|suffix| {
                    namespace.len() >= suffix.len()
                        && segments_match(suffix, &namespace[namespace.len() - suffix.len()..])
                })
            })
            .map(|namespace| match self.max_depth {
                Some(depth) => namespace[..depth.min(namespace.len())].to_vec(),
                None => namespace.to_vec(),
            })
            .collect();
        selected.sort();
        selected.dedup();
        selected.into_iter().skip(self.offset).take(self.limit).collect()
    }
}
