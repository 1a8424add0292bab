//! Embeddings from a configured OpenAI-compatible `/embeddings` upstream.
//!
//! Only the caller's own texts are ever in one upstream request (batches never mix rooms), and
//! the API key comes from the environment or a file and never appears in logs or errors.
//!
//! Results are cached in memory for a bounded time, keyed by the room, the requester's scope
//! (`Room::requester_scope`: per room, per member of a shared room, per generation) and a digest
//! of model and text. So one room's cache never answers another's, one tenant member's search
//! never warms the cache for another member (whose timing would otherwise tell what the first
//! searched), and an erased room's successor never finds its predecessor's entries.

use std::sync::Arc;
use std::time::Duration;

use sealroom::Room;
use sealroom::room_id::RoomId;
use sealroom::rooms::RequesterScope;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::config::EmbeddingsConfig;
use crate::limits::{EMBEDDING_CACHE_ENTRIES_MAX, EMBEDDING_CACHE_TTL_SECS, EMBEDDINGS_RESPONSE_BYTES_MAX};

/// Why embeddings could not be computed. Carries no URL, key or text.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("the embeddings upstream did not answer in time")]
    Timeout,
    #[error("the embeddings upstream failed ({0})")]
    Upstream(String),
    #[error("the embeddings upstream answered with something unusable")]
    Malformed,
    #[error(transparent)]
    Room(#[from] sealroom::RoomError),
}

#[derive(Serialize)]
struct EmbeddingsRequest<'a> {
    model: &'a str,
    input: &'a [String],
}

#[derive(Deserialize)]
struct EmbeddingsResponse {
    data: Vec<EmbeddingEntry>,
}

#[derive(Deserialize)]
struct EmbeddingEntry {
    embedding: Vec<f32>,
    index: usize,
}

/// The embeddings client.
pub struct Embedder {
    client: reqwest::Client,
    url: String,
    model: String,
    api_key: Option<SecretString>,
    batch_max: usize,
    /// Embeddings by (room, requester scope, digest of model and text); see the module comment.
    cache: moka::sync::Cache<(RoomId, RequesterScope, [u8; 32]), Arc<Vec<f32>>>,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "Embedder(model={})", self.model)
    }
}

impl Embedder {
    pub fn new(config: &EmbeddingsConfig) -> Result<Embedder, sealroom::secrets::SecretError> {
        let timeout = Duration::from_secs(config.timeout_secs);
        Ok(Embedder {
            client: crate::outbound::client(timeout, timeout),
            url: format!("{}/embeddings", config.base_url),
            model: config.model.clone(),
            api_key: crate::outbound::api_key(config.api_key.as_ref())?,
            batch_max: config.batch_max,
            cache: moka::sync::Cache::builder()
                .max_capacity(EMBEDDING_CACHE_ENTRIES_MAX)
                .time_to_live(Duration::from_secs(EMBEDDING_CACHE_TTL_SECS))
                .support_invalidation_closures()
                .build(),
        })
    }

    /// Drops every cached embedding of a room (its texts may be gone: erasure, deletes).
    pub fn forget_room(&self, room: &RoomId) {
        let room = *room;
        let _ = self.cache.invalidate_entries_if(move |key, _| key.0 == room);
    }

    fn cache_key(&self, room: &Room, scope: RequesterScope, text: &str) -> (RoomId, RequesterScope, [u8; 32]) {
        let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        context.update(&(self.model.len() as u64).to_be_bytes());
        context.update(self.model.as_bytes());
        context.update(text.as_bytes());
        let mut digest = [0u8; 32];
        digest.copy_from_slice(context.finish().as_ref());
        (room.id(), scope, digest)
    }

    /// Embeddings of `texts`, all belonging to `room`, in order.
    pub async fn embed(&self, room: &Room, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let scope = room.requester_scope().await?;
        let cached = |text: &String| {
            let scope = scope?;
            self.cache.get(&self.cache_key(room, scope, text)).map(|cached| cached.as_ref().clone())
        };
        let mut results: Vec<Option<Vec<f32>>> = texts.iter().map(cached).collect();
        let missing: Vec<usize> = (0..texts.len()).filter(|index| results[*index].is_none()).collect();
        for batch in missing.chunks(self.batch_max) {
            let inputs: Vec<String> = batch.iter().map(|index| texts[*index].clone()).collect();
            let vectors = self.request(&inputs).await?;
            for (index, vector) in batch.iter().zip(vectors) {
                if let Some(scope) = scope {
                    self.cache.insert(self.cache_key(room, scope, &texts[*index]), Arc::new(vector.clone()));
                }
                results[*index] = Some(vector);
            }
        }
        results.into_iter().map(|vector| vector.ok_or(EmbedError::Malformed)).collect()
    }

    async fn request(&self, inputs: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut request = self.client.post(&self.url).json(&EmbeddingsRequest { model: &self.model, input: inputs });
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        let mut response = request.send().await.map_err(|error| {
            if error.is_timeout() { EmbedError::Timeout } else { EmbedError::Upstream("unreachable".into()) }
        })?;
        if !response.status().is_success() {
            return Err(EmbedError::Upstream(format!("status {}", response.status().as_u16())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|_| EmbedError::Upstream("read failed".into()))? {
            if body.len() + chunk.len() > EMBEDDINGS_RESPONSE_BYTES_MAX {
                return Err(EmbedError::Malformed);
            }
            body.extend_from_slice(&chunk);
        }
        let parsed: EmbeddingsResponse = serde_json::from_slice(&body).map_err(|_| EmbedError::Malformed)?;
        let mut vectors: Vec<Option<Vec<f32>>> = vec![None; inputs.len()];
        for entry in parsed.data {
            let slot = vectors.get_mut(entry.index).ok_or(EmbedError::Malformed)?;
            if sealroom::rooms::check_embedding(&entry.embedding).is_err() {
                return Err(EmbedError::Malformed);
            }
            *slot = Some(entry.embedding);
        }
        vectors.into_iter().map(|vector| vector.ok_or(EmbedError::Malformed)).collect()
    }
}
