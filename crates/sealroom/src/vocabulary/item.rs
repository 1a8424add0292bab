//! An item (a memory or a document) as every layer sees it, and the validated input to store
//! one.

use serde_json::Value;

use crate::limits::{EMBEDDING_DIMENSIONS_MAX, ITEM_TEXT_BYTES_MAX, ITEM_VALUE_BYTES_MAX};
use crate::vocabulary::names::{InputError, ItemKey, Metadata, Namespace, Ttl};

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
}
