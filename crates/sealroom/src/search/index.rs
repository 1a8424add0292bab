//! One room's search index: its items, a BM25 index of their texts and an arena of their
//! vectors. Filters (namespace prefix, metadata equality, expiry) select candidates first;
//! ranking only ever looks at candidates, so a room with `limit` matches returns `limit` results.
//!
//! Architecture invariant: an index holds one room's items and nothing else; it is built from
//! that room's opened records and updated only by that room's writes.

use std::collections::HashMap;

use super::lexical::Lexical;
use super::{Metric, SearchError, SearchHit, SearchRequest, tokens, vectors};
use crate::rooms::Item;
use crate::seal::RoomKeyId;
use crate::store::RecordKey;

/// Reciprocal-rank-fusion constant (the customary 60: damps the head of each ranking).
const RRF_K: f64 = 60.0;

/// Fixed bytes counted per indexed item on top of its content.
const ITEM_OVERHEAD_BYTES: usize = 160;

/// What an index was built from: the room-key generation and the items collection's version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexStamp {
    pub key_id: RoomKeyId,
    pub items_version: u64,
}

struct Indexed {
    record_key: RecordKey,
    item: Item,
    vector_slot: Option<u32>,
    bytes: usize,
}

/// The index of one room.
pub struct RoomIndex {
    stamp: IndexStamp,
    slots: Vec<Option<Indexed>>,
    free_slots: Vec<u32>,
    by_record_key: HashMap<RecordKey, u32>,
    lexical: Lexical,
    dims: Option<usize>,
    arena: Vec<f32>,
    inverse_norms: Vec<f32>,
    free_vector_slots: Vec<u32>,
    bytes: usize,
}

fn item_bytes(item: &Item) -> usize {
    ITEM_OVERHEAD_BYTES
        + item.text.as_ref().map_or(0, String::len) * 2
        + item.value.to_string().len()
        + item.embedding.as_ref().map_or(0, |embedding| embedding.len() * 4)
        + item.key.as_str().len()
        + item.namespace.segments().iter().map(String::len).sum::<usize>()
}

impl RoomIndex {
    pub fn new(stamp: IndexStamp) -> RoomIndex {
        RoomIndex {
            stamp,
            slots: Vec::new(),
            free_slots: Vec::new(),
            by_record_key: HashMap::new(),
            lexical: Lexical::default(),
            dims: None,
            arena: Vec::new(),
            inverse_norms: Vec::new(),
            free_vector_slots: Vec::new(),
            bytes: 0,
        }
    }

    pub fn stamp(&self) -> IndexStamp {
        self.stamp
    }

    pub fn set_stamp(&mut self, stamp: IndexStamp) {
        self.stamp = stamp;
    }

    /// Approximate memory held, for the resident-set budget.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Dimensions of the room's embeddings (the first stored embedding fixes them).
    pub fn dims(&self) -> Option<usize> {
        self.dims
    }

    /// Number of indexed items.
    pub fn len(&self) -> usize {
        self.by_record_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_record_key.is_empty()
    }

    /// Adds or replaces an item.
    pub fn upsert(&mut self, record_key: RecordKey, item: Item) {
        self.remove(&record_key);
        let slot = match self.free_slots.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(None);
                u32::try_from(self.slots.len() - 1).expect("fewer than 4 billion items in a room")
            }
        };
        let mut bytes = item_bytes(&item);
        if let Some(text) = &item.text {
            bytes += self.lexical.insert(slot, text);
        }
        let vector_slot = item.embedding.as_deref().and_then(|embedding| self.store_vector(embedding));
        self.bytes += bytes;
        self.by_record_key.insert(record_key.clone(), slot);
        self.slots[slot as usize] = Some(Indexed { record_key, item, vector_slot, bytes });
        self.check();
    }

    /// Stores a vector; a vector of other dimensions than the room's is not indexed (writes
    /// refuse such vectors; this only guards against a race between two first writers).
    fn store_vector(&mut self, embedding: &[f32]) -> Option<u32> {
        let dims = *self.dims.get_or_insert(embedding.len());
        if embedding.len() != dims {
            return None;
        }
        let norm = vectors::norm(embedding);
        let inverse_norm = if norm > 0.0 { 1.0 / norm } else { 0.0 };
        match self.free_vector_slots.pop() {
            Some(slot) => {
                let start = slot as usize * dims;
                self.arena[start..start + dims].copy_from_slice(embedding);
                self.inverse_norms[slot as usize] = inverse_norm;
                Some(slot)
            }
            None => {
                self.arena.extend_from_slice(embedding);
                self.inverse_norms.push(inverse_norm);
                Some(u32::try_from(self.inverse_norms.len() - 1).expect("fewer than 4 billion vectors"))
            }
        }
    }

    /// Removes an item if indexed.
    pub fn remove(&mut self, record_key: &RecordKey) {
        let Some(slot) = self.by_record_key.remove(record_key) else { return };
        if let Some(indexed) = self.slots[slot as usize].take() {
            self.lexical.remove(slot);
            if let Some(vector_slot) = indexed.vector_slot {
                self.free_vector_slots.push(vector_slot);
            }
            self.bytes -= indexed.bytes;
        }
        self.free_slots.push(slot);
        self.check();
    }

    fn check(&self) {
        debug_assert_eq!(self.by_record_key.len(), self.slots.iter().filter(|slot| slot.is_some()).count());
        debug_assert!(self.by_record_key.iter().all(|(key, slot)| {
            self.slots[*slot as usize].as_ref().is_some_and(|indexed| &indexed.record_key == key)
        }));
    }

    /// Items passing the request's filters, live at `now`, in listing order.
    fn candidates(&self, request: &SearchRequest, now: i64) -> Vec<u32> {
        let mut candidates: Vec<u32> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(slot, indexed)| {
                let item = &indexed.as_ref()?.item;
                let live = item.expires_at.is_none_or(|expires_at| expires_at > now);
                let matches = live
                    && item.namespace.starts_with(&request.prefix)
                    && request.filter.iter().all(|(name, wanted)| item.metadata.as_map().get(name) == Some(wanted));
                matches.then_some(u32::try_from(slot).expect("slots fit in u32"))
            })
            .collect();
        candidates.sort_by(|left, right| self.order_key(*left).cmp(&self.order_key(*right)));
        candidates
    }

    fn order_key(&self, slot: u32) -> (&[String], &str) {
        let item = &self.slots[slot as usize].as_ref().expect("candidates are live slots").item;
        (item.namespace.segments(), item.key.as_str())
    }

    fn lexical_ranking(&self, terms: &[String], candidates: &[u32]) -> Vec<(u32, f32)> {
        let allowed: std::collections::HashSet<u32> = candidates.iter().copied().collect();
        let scores = self.lexical.score(terms, |slot| allowed.contains(&slot));
        self.ranked(scores.into_iter().collect())
    }

    fn vector_ranking(
        &self,
        query: &[f32],
        metric: Metric,
        candidates: &[u32],
    ) -> Result<Vec<(u32, f32)>, SearchError> {
        let Some(dims) = self.dims else { return Ok(Vec::new()) };
        if query.len() != dims {
            return Err(SearchError::DimensionMismatch { query: query.len(), room: dims });
        }
        let with_vectors: Vec<(u32, u32)> = candidates
            .iter()
            .filter_map(|slot| self.slots[*slot as usize].as_ref()?.vector_slot.map(|vector_slot| (*slot, vector_slot)))
            .collect();
        let vector_slots: Vec<u32> = with_vectors.iter().map(|(_, vector_slot)| *vector_slot).collect();
        let mut scores = Vec::new();
        vectors::dot_many(query, &self.arena, dims, &vector_slots, &mut scores);
        let query_inverse_norm = match metric {
            Metric::Cosine => {
                let norm = vectors::norm(query);
                if norm > 0.0 { 1.0 / norm } else { 0.0 }
            }
            Metric::Dot => 1.0,
        };
        let scored = with_vectors
            .iter()
            .zip(scores)
            .map(|((slot, vector_slot), score)| match metric {
                Metric::Cosine => (*slot, score * self.inverse_norms[*vector_slot as usize] * query_inverse_norm),
                Metric::Dot => (*slot, score),
            })
            .collect();
        Ok(self.ranked(scored))
    }

    /// Sorts by score, best first; ties in listing order so results are deterministic.
    fn ranked(&self, mut scored: Vec<(u32, f32)>) -> Vec<(u32, f32)> {
        scored.sort_by(|left, right| {
            right.1.total_cmp(&left.1).then_with(|| self.order_key(left.0).cmp(&self.order_key(right.0)))
        });
        scored
    }

    /// Runs a search over this room.
    pub fn search(&self, request: &SearchRequest, now: i64) -> Result<Vec<SearchHit>, SearchError> {
        let candidates = self.candidates(request, now);
        let terms = request.query.as_deref().map(tokens::query_terms).unwrap_or_default();
        let lexical = if terms.is_empty() { Vec::new() } else { self.lexical_ranking(&terms, &candidates) };
        let vector = match &request.embedding {
            Some(query) => self.vector_ranking(query, request.metric, &candidates)?,
            None => Vec::new(),
        };
        let hybrid = !terms.is_empty() && request.embedding.is_some();
        let mut fused: HashMap<u32, SearchHit> = HashMap::new();
        for (rank, (slot, score)) in lexical.iter().enumerate() {
            let hit = fused.entry(*slot).or_insert_with(|| self.hit(*slot));
            hit.lexical = Some((rank + 1, *score));
            hit.score += if hybrid { 1.0 / (RRF_K + (rank + 1) as f64) } else { f64::from(*score) };
        }
        for (rank, (slot, score)) in vector.iter().enumerate() {
            let hit = fused.entry(*slot).or_insert_with(|| self.hit(*slot));
            hit.vector = Some((rank + 1, *score));
            hit.score += if hybrid { 1.0 / (RRF_K + (rank + 1) as f64) } else { f64::from(*score) };
        }
        let mut hits: Vec<SearchHit> = fused.into_values().collect();
        hits.sort_by(|left, right| {
            right.score.total_cmp(&left.score).then_with(|| {
                (left.item.namespace.segments(), left.item.key.as_str())
                    .cmp(&(right.item.namespace.segments(), right.item.key.as_str()))
            })
        });
        hits.truncate(request.limit);
        Ok(hits)
    }

    fn hit(&self, slot: u32) -> SearchHit {
        let indexed = self.slots[slot as usize].as_ref().expect("ranked slots are live");
        SearchHit { item: indexed.item.clone(), score: 0.0, lexical: None, vector: None }
    }
}
