//! One room's search index: its items, a BM25 index of their texts and an arena of their
//! vectors. Filters (namespace prefix, metadata equality, expiry) select candidates first;
//! ranking only ever looks at candidates, so a room with `limit` matches returns `limit` results.
//!
//! Architecture invariant: an index holds one room's items and nothing else; it is built from
//! that room's opened records and updated only by that room's writes.

use foldhash::HashMap;
use foldhash::HashMapExt;

use super::lexical::Lexical;
use super::{Metric, SearchError, SearchHit, SearchRequest, tokens, vectors};
use crate::rooms::{Item, ItemKey, Namespace, NamespacePrefix};
use crate::seal::RoomKeyId;
use crate::store::RecordKey;

/// Reciprocal-rank-fusion constant (the customary 60: damps the head of each ranking).
const RRF_K: f64 = 60.0;

/// Fixed bytes counted per indexed item on top of its content.
const ITEM_OVERHEAD_BYTES: usize = 160;

/// A share of a room's items with the lexical index of their texts (slots numbered from 0),
/// prepared on a worker thread while other shares are still being read.
pub struct IndexPart {
    /// Items (embeddings moved to `arena`) with their vector's position in `arena`.
    entries: Vec<(RecordKey, Item, Option<u32>, usize)>,
    lexical: Lexical,
    lexical_bytes: usize,
    dims: Option<usize>,
    arena: Vec<f32>,
    inverse_norms: Vec<f32>,
}

impl IndexPart {
    /// Tokenizes the texts and lays out the vectors (with their norms) of a share of items.
    pub fn build(items: Vec<(RecordKey, Item)>) -> IndexPart {
        let texts: Vec<(u32, &str)> = items
            .iter()
            .enumerate()
            .filter_map(|(slot, (_, item))| Some((u32::try_from(slot).ok()?, item.text.as_deref()?)))
            .collect();
        let (lexical, lexical_bytes) = Lexical::build(&texts);
        let mut part = IndexPart {
            entries: Vec::with_capacity(items.len()),
            lexical,
            lexical_bytes,
            dims: None,
            arena: Vec::new(),
            inverse_norms: Vec::new(),
        };
        for (record_key, mut item) in items {
            let bytes = item_bytes(&item);
            let vector = item.embedding.take().and_then(|embedding| {
                let dims = *part.dims.get_or_insert(embedding.len());
                if embedding.len() != dims {
                    return None;
                }
                let norm = vectors::norm(&embedding);
                part.inverse_norms.push(if norm > 0.0 { 1.0 / norm } else { 0.0 });
                part.arena.extend_from_slice(&embedding);
                u32::try_from(part.inverse_norms.len() - 1).ok()
            });
            part.entries.push((record_key, item, vector, bytes));
        }
        part
    }
}

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
        + 64
        + item.embedding.as_ref().map_or(0, |embedding| embedding.len() * 4)
        + item.key.as_str().len()
        + item.namespace.segments().iter().map(String::len).sum::<usize>()
}

impl RoomIndex {
    pub fn new(stamp: IndexStamp) -> RoomIndex {
        RoomIndex::with_capacity(stamp, 0)
    }

    /// An empty index with room for `items` items (a build knows how many are coming).
    pub fn with_capacity(stamp: IndexStamp, items: usize) -> RoomIndex {
        RoomIndex {
            stamp,
            slots: Vec::with_capacity(items),
            free_slots: Vec::new(),
            by_record_key: HashMap::with_capacity(items),
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

    /// Builds the index of a whole room from parts prepared in parallel (the first search of
    /// a room). Record keys come from disjoint range reads, so they are distinct.
    ///
    /// The parts' lexical indexes are merged on a second thread while this one lays out the
    /// items and vectors: this is the one serial step of a cold build.
    pub fn from_parts(stamp: IndexStamp, mut parts: Vec<IndexPart>) -> RoomIndex {
        let total = parts.iter().map(|part| part.entries.len()).sum();
        let mut index = RoomIndex::with_capacity(stamp, total);
        let mut lexicals = Vec::with_capacity(parts.len());
        let mut slot_offset = 0usize;
        for part in &mut parts {
            lexicals.push((std::mem::take(&mut part.lexical), u32::try_from(slot_offset).expect("slots fit in u32")));
            slot_offset += part.entries.len();
            index.bytes += part.lexical_bytes;
        }
        let lexical = std::thread::scope(|scope| {
            let merging = scope.spawn(move || {
                let mut lexical = Lexical::default();
                for (part, slot_offset) in lexicals {
                    lexical.merge(part, slot_offset);
                }
                lexical
            });
            index.lay_out(parts);
            // A panic here ends the build, which the caller answers as unavailable.
            merging.join().expect("the lexical merge completes")
        });
        index.lexical = lexical;
        index.check();
        index
    }

    /// Appends the parts' items and vectors, in part order (the slots the lexical merge uses).
    fn lay_out(&mut self, parts: Vec<IndexPart>) {
        // The arena is the bulk of a room's memory: allocated once at its final size rather
        // than grown (and copied) part by part.
        self.arena.reserve_exact(parts.iter().map(|part| part.arena.len()).sum());
        self.inverse_norms.reserve_exact(parts.iter().map(|part| part.inverse_norms.len()).sum());
        for part in parts {
            // A part whose vectors have other dimensions than the room's keeps its items
            // searchable by text only (writes refuse such vectors; this guards a race).
            let dims = part.dims.map(|dims| *self.dims.get_or_insert(dims));
            let vectors_fit = part.dims.is_some() && dims == part.dims;
            let vector_base = u32::try_from(self.inverse_norms.len()).expect("vectors fit in u32");
            if vectors_fit {
                self.arena.extend_from_slice(&part.arena);
                self.inverse_norms.extend_from_slice(&part.inverse_norms);
            }
            for (record_key, item, vector, bytes) in part.entries {
                let slot = u32::try_from(self.slots.len()).expect("slots fit in u32");
                let vector_slot = vector.filter(|_| vectors_fit).map(|local| vector_base + local);
                self.bytes += bytes;
                let previous = self.by_record_key.insert(record_key.clone(), slot);
                assert!(previous.is_none(), "range reads return each record once");
                self.slots.push(Some(Indexed { record_key, item, vector_slot, bytes }));
            }
        }
    }

    /// Adds or replaces an item.
    pub fn upsert(&mut self, record_key: RecordKey, mut item: Item) {
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
        // The embedding lives once, in the arena; returned hits get it back from there.
        let vector_slot = item.embedding.take().and_then(|embedding| self.store_vector(&embedding));
        self.bytes += bytes;
        self.by_record_key.insert(record_key.clone(), slot);
        self.slots[slot as usize] = Some(Indexed { record_key, item, vector_slot, bytes });
        self.check();
    }

    /// Stores a vector; a vector of other dimensions than the room's is not indexed (writes
    /// refuse such vectors; this only guards against a race between two first writers).
    fn store_vector(&mut self, embedding: &[f32]) -> Option<u32> {
        if self.dims.is_none() {
            self.arena.reserve(embedding.len() * self.slots.capacity());
            self.inverse_norms.reserve(self.slots.capacity());
        }
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

    /// Items passing the request's filters and live at `now`, as a membership mask by slot.
    fn candidates(&self, request: &SearchRequest, now: i64) -> (Vec<bool>, Vec<u32>) {
        let mut mask = vec![false; self.slots.len()];
        let mut members = Vec::new();
        for (slot, indexed) in self.slots.iter().enumerate() {
            let Some(indexed) = indexed else { continue };
            let item = &indexed.item;
            let matches = item.expires_at.is_none_or(|expires_at| expires_at > now)
                && item.namespace.starts_with(&request.prefix)
                && request.filter.iter().all(|(name, wanted)| item.metadata.as_map().get(name) == Some(wanted));
            if matches {
                mask[slot] = true;
                members.push(u32::try_from(slot).expect("slots fit in u32"));
            }
        }
        (mask, members)
    }

    fn order_key(&self, slot: u32) -> (&[String], &str) {
        let item = &self.slots[slot as usize].as_ref().expect("ranked slots are live").item;
        (item.namespace.segments(), item.key.as_str())
    }

    fn lexical_ranking(&self, terms: &[String], mask: &[bool]) -> Vec<(u32, f32)> {
        let scores = self.lexical.score(terms, |slot| mask.get(slot as usize).copied().unwrap_or(false));
        self.ranked(scores.into_iter().collect())
    }

    fn vector_ranking(&self, query: &[f32], metric: Metric, members: &[u32]) -> Result<Vec<(u32, f32)>, SearchError> {
        let Some(dims) = self.dims else { return Ok(Vec::new()) };
        if query.len() != dims {
            return Err(SearchError::DimensionMismatch { query: query.len(), room: dims });
        }
        let (slots, vector_slots): (Vec<u32>, Vec<u32>) = members
            .iter()
            .filter_map(|slot| self.slots[*slot as usize].as_ref()?.vector_slot.map(|vector_slot| (*slot, vector_slot)))
            .unzip();
        let mut scores = Vec::new();
        vectors::dot_many(query, &self.arena, dims, &vector_slots, &mut scores);
        if metric == Metric::Cosine {
            let norm = vectors::norm(query);
            let query_inverse_norm = if norm > 0.0 { 1.0 / norm } else { 0.0 };
            for (score, vector_slot) in scores.iter_mut().zip(&vector_slots) {
                *score *= self.inverse_norms[*vector_slot as usize] * query_inverse_norm;
            }
        }
        Ok(self.ranked(slots.into_iter().zip(scores).collect()))
    }

    /// Sorts by score, best first; ties in listing order so results are deterministic.
    fn ranked(&self, mut scored: Vec<(u32, f32)>) -> Vec<(u32, f32)> {
        scored.sort_unstable_by(|left, right| {
            right.1.total_cmp(&left.1).then_with(|| self.order_key(left.0).cmp(&self.order_key(right.0)))
        });
        scored
    }

    /// Runs a search over this room. Rankings are computed over every candidate (so fusion is
    /// exact), and only the returned items are copied out.
    pub fn search(&self, request: &SearchRequest, now: i64) -> Result<Vec<SearchHit>, SearchError> {
        let (mask, members) = self.candidates(request, now);
        let terms = request.query.as_deref().map(tokens::query_terms).unwrap_or_default();
        let lexical = if terms.is_empty() { Vec::new() } else { self.lexical_ranking(&terms, &mask) };
        let vector = match &request.embedding {
            Some(query) => self.vector_ranking(query, request.metric, &members)?,
            None => Vec::new(),
        };
        let hybrid = !terms.is_empty() && request.embedding.is_some();
        #[derive(Clone, Copy, Default)]
        struct Fused {
            score: f64,
            lexical: Option<(usize, f32)>,
            vector: Option<(usize, f32)>,
            ranked: bool,
        }
        let mut fused = vec![Fused::default(); self.slots.len()];
        let mut touched = Vec::with_capacity(lexical.len().max(vector.len()));
        for (ranking, is_lexical) in [(&lexical, true), (&vector, false)] {
            for (rank, (slot, score)) in ranking.iter().enumerate() {
                let entry = &mut fused[*slot as usize];
                if !entry.ranked {
                    entry.ranked = true;
                    touched.push(*slot);
                }
                if is_lexical {
                    entry.lexical = Some((rank + 1, *score));
                } else {
                    entry.vector = Some((rank + 1, *score));
                }
                entry.score += if hybrid { 1.0 / (RRF_K + (rank + 1) as f64) } else { f64::from(*score) };
            }
        }
        let better = |left: &u32, right: &u32| {
            fused[*right as usize]
                .score
                .total_cmp(&fused[*left as usize].score)
                .then_with(|| self.order_key(*left).cmp(&self.order_key(*right)))
        };
        if touched.len() > request.limit {
            touched.select_nth_unstable_by(request.limit, better);
            touched.truncate(request.limit);
        }
        touched.sort_unstable_by(better);
        Ok(touched
            .into_iter()
            .map(|slot| {
                let entry = fused[slot as usize];
                let mut hit = self.hit(slot);
                hit.score = entry.score;
                hit.lexical = entry.lexical;
                hit.vector = entry.vector;
                hit
            })
            .collect())
    }

    /// A page of the room's live items under `prefix`, after `after` in (namespace, key)
    /// order, and whether more follow: listings are answered from memory, so paging through a
    /// large room costs one build rather than opening every record for every page.
    pub fn page(
        &self,
        prefix: &NamespacePrefix,
        after: Option<(&Namespace, &ItemKey)>,
        limit: usize,
        now: i64,
    ) -> (Vec<Item>, bool) {
        let mut members: Vec<u32> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(slot, indexed)| {
                let item = &indexed.as_ref()?.item;
                let listed = item.expires_at.is_none_or(|expires_at| expires_at > now)
                    && item.namespace.starts_with(prefix)
                    && after.is_none_or(|(namespace, key)| (&item.namespace, &item.key) > (namespace, key));
                listed.then(|| u32::try_from(slot).expect("slots fit in u32"))
            })
            .collect();
        let has_more = members.len() > limit;
        let by_name = |left: &u32, right: &u32| self.order_key(*left).cmp(&self.order_key(*right));
        if has_more {
            members.select_nth_unstable_by(limit, by_name);
            members.truncate(limit);
        }
        members.sort_unstable_by(by_name);
        (members.into_iter().map(|slot| self.hit(slot).item).collect(), has_more)
    }

    fn hit(&self, slot: u32) -> SearchHit {
        let indexed = self.slots[slot as usize].as_ref().expect("ranked slots are live");
        let mut item = indexed.item.clone();
        if let (Some(vector_slot), Some(dims)) = (indexed.vector_slot, self.dims) {
            let start = vector_slot as usize * dims;
            item.embedding = Some(self.arena[start..start + dims].to_vec());
        }
        SearchHit { item, score: 0.0, lexical: None, vector: None }
    }
}
