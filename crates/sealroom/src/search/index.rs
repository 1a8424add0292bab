//! One room's search index: its items, a BM25 index of their texts and blocks of their
//! vectors. Filters (namespace prefix, metadata equality, expiry) select candidates first;
//! ranking only ever looks at candidates, so a room with `limit` matches returns `limit` results.
//!
//! Architecture invariant: an index holds one room's items and nothing else; it is built from
//! that room's opened records and updated only by that room's writes.

use std::collections::BTreeMap;

use foldhash::HashMap;
use foldhash::HashMapExt;

use super::lexical::Lexical;
use super::{Metric, SearchError, SearchHit, SearchRequest, tokens, vectors};
use crate::limits::{INDEX_PENDING_BATCHES_MAX, PARALLEL_ABSORB_ITEMS_MIN};
use crate::vocabulary::item::Item;
use crate::vocabulary::names::{ItemKey, Namespace, NamespacePrefix};
use crate::vocabulary::records::RecordKey;
use crate::vocabulary::records::RoomKeyId;

/// Reciprocal-rank-fusion constant (the customary 60: damps the head of each ranking).
const RRF_K: f64 = 60.0;

/// Fixed bytes counted per indexed item on top of its content.
const ITEM_OVERHEAD_BYTES: usize = 160;

/// A share of a room's items with the lexical index of their texts (slots numbered from 0),
/// prepared on a worker thread while other shares are still being read.
pub struct IndexPart {
    /// Items (embeddings moved to `vectors`) with their vector's position in `vectors`.
    entries: Vec<(RecordKey, Item, Option<u32>, usize)>,
    lexical: Lexical,
    lexical_bytes: usize,
    dims: Option<usize>,
    vectors: VectorBlock,
}

impl IndexPart {
    /// Lays out the vectors (with their norms) and tokenizes the texts of a share of items.
    #[cfg(test)]
    pub fn build(items: Vec<(RecordKey, Item)>) -> IndexPart {
        let mut builder = IndexPartBuilder::new(items.len());
        for (record_key, item) in items {
            builder.push(record_key, item, None);
        }
        builder.finish()
    }
}

/// Builds an [`IndexPart`] one item at a time, as records are opened: a vector given as the
/// little-endian bytes of a stored payload goes straight into the part's block, never through
/// a vector of its own.
pub struct IndexPartBuilder {
    entries: Vec<(RecordKey, Item, Option<u32>, usize)>,
    expected: usize,
    dims: Option<usize>,
    vectors: VectorBlock,
}

impl IndexPartBuilder {
    /// A builder for about `expected` items (a capacity hint, not a limit).
    pub fn new(expected: usize) -> IndexPartBuilder {
        IndexPartBuilder {
            entries: Vec::with_capacity(expected),
            expected,
            dims: None,
            vectors: VectorBlock::with_capacity(0, 0),
        }
    }

    /// Adds an item. Its vector is `vector_bytes` (little-endian `f32`s) if given, else the
    /// item's own embedding. The first vector fixes the part's dimensions; a vector of other
    /// dimensions is not indexed (writes refuse such vectors; this guards a race).
    pub fn push(&mut self, record_key: RecordKey, mut item: Item, vector_bytes: Option<&[u8]>) {
        let embedding = item.embedding.take();
        let dims = vector_bytes.map(|bytes| bytes.len() / 4).or(embedding.as_ref().map(Vec::len));
        let bytes = item_bytes(&item) + dims.unwrap_or(0) * 4;
        let vector = dims.and_then(|dims| {
            if *self.dims.get_or_insert(dims) != dims {
                return None;
            }
            if self.vectors.len() == 0 {
                self.vectors = VectorBlock::with_capacity(dims, self.expected.saturating_sub(self.entries.len()));
            }
            match (vector_bytes, &embedding) {
                (Some(bytes), _) => self.vectors.push_little_endian(bytes),
                (None, Some(embedding)) => self.vectors.push(embedding),
                (None, None) => None,
            }
        });
        self.entries.push((record_key, item, vector, bytes));
    }

    /// Tokenizes the texts of the items pushed.
    pub fn finish(self) -> IndexPart {
        let texts: Vec<(u32, &str)> = self
            .entries
            .iter()
            .enumerate()
            .filter_map(|(slot, (_, item, _, _))| Some((u32::try_from(slot).ok()?, item.text.as_deref()?)))
            .collect();
        let (lexical, lexical_bytes) = Lexical::build(&texts);
        IndexPart { entries: self.entries, lexical, lexical_bytes, dims: self.dims, vectors: self.vectors }
    }
}

/// Vectors of one room laid out end to end, each with its inverse norm. A room's vectors live in
/// a few blocks: one per part of a build (moved into the index whole, never copied) and later
/// writes appended to the last.
struct VectorBlock {
    values: Vec<f32>,
    inverse_norms: Vec<f32>,
}

impl VectorBlock {
    fn with_capacity(dims: usize, vectors: usize) -> VectorBlock {
        VectorBlock { values: Vec::with_capacity(dims * vectors), inverse_norms: Vec::with_capacity(vectors) }
    }

    /// Appends a vector; returns its index in the block.
    fn push(&mut self, vector: &[f32]) -> Option<u32> {
        self.append(|values| values.extend_from_slice(vector))
    }

    /// Appends a vector given as little-endian `f32` bytes (a whole number of floats).
    fn push_little_endian(&mut self, bytes: &[u8]) -> Option<u32> {
        self.append(|values| {
            values
                .extend(bytes.chunks_exact(4).map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]])))
        })
    }

    /// Appends the vector `write` adds to the values, with its inverse norm.
    fn append(&mut self, write: impl FnOnce(&mut Vec<f32>)) -> Option<u32> {
        let index = u32::try_from(self.inverse_norms.len()).ok()?;
        let start = self.values.len();
        write(&mut self.values);
        self.inverse_norms.push(inverse_norm(&self.values[start..]));
        Some(index)
    }

    fn len(&self) -> usize {
        self.inverse_norms.len()
    }
}

fn inverse_norm(vector: &[f32]) -> f32 {
    let norm = vectors::norm(vector);
    if norm > 0.0 { 1.0 / norm } else { 0.0 }
}

/// Where an item's vector lives: a block and a position in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct VectorSlot {
    block: u32,
    index: u32,
}

/// What an index was built from: the room-key generation and the items collection's version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexStamp {
    pub key_id: RoomKeyId,
    pub items_version: u64,
}

/// An indexed item. Its record key is kept once, in `by_record_key`.
struct Indexed {
    item: Item,
    vector_slot: Option<VectorSlot>,
    bytes: usize,
}

/// The index of one room.
pub struct RoomIndex {
    stamp: IndexStamp,
    /// Changes committed after the stamp's version whose predecessors have not been applied
    /// yet (concurrent writers finish in any order), by the version their batch produced.
    pending: BTreeMap<u64, Vec<(RecordKey, Option<Item>)>>,
    slots: Vec<Option<Indexed>>,
    free_slots: Vec<u32>,
    by_record_key: HashMap<RecordKey, u32>,
    lexical: Lexical,
    dims: Option<usize>,
    blocks: Vec<VectorBlock>,
    free_vector_slots: Vec<VectorSlot>,
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
        RoomIndex {
            stamp,
            pending: BTreeMap::new(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            by_record_key: HashMap::new(),
            lexical: Lexical::default(),
            dims: None,
            blocks: Vec::new(),
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

    /// Absorbs a part of a room prepared on a worker thread (the first search of a room): its
    /// items take the next slots, its vectors become a block as they are (moved, not copied),
    /// and its lexical index is merged in. A build absorbs each part as soon as it is ready,
    /// while the others are still being prepared, so only the last part's absorption is left
    /// once every record is open. Parts come from disjoint range reads: their record keys are
    /// distinct.
    pub fn absorb(&mut self, part: IndexPart) {
        let IndexPart { entries, lexical, lexical_bytes, dims, vectors } = part;
        let slot_offset = u32::try_from(self.slots.len()).expect("slots fit in u32");
        let mut merged = std::mem::take(&mut self.lexical);
        if entries.len() < PARALLEL_ABSORB_ITEMS_MIN {
            merged.merge(lexical, slot_offset);
            self.lay_out(entries, dims, vectors);
        } else {
            // The lexical merge and the items' layout touch nothing in common: on a second
            // thread, the merge no longer adds to the serial tail of a cold build.
            merged = std::thread::scope(|scope| {
                let merging = scope.spawn(move || {
                    merged.merge(lexical, slot_offset);
                    merged
                });
                self.lay_out(entries, dims, vectors);
                // A panic there ends the build, which the caller answers as unavailable.
                merging.join().expect("the lexical merge completes")
            });
        }
        self.lexical = merged;
        self.bytes += lexical_bytes;
        self.check();
    }

    /// Appends a part's items (the next slots) and its vectors (a new block).
    fn lay_out(
        &mut self,
        entries: Vec<(RecordKey, Item, Option<u32>, usize)>,
        dims: Option<usize>,
        vectors: VectorBlock,
    ) {
        self.slots.reserve(entries.len());
        self.by_record_key.reserve(entries.len());
        // A part whose vectors have other dimensions than the room's keeps its items
        // searchable by text only (writes refuse such vectors; this guards a race).
        let room_dims = dims.map(|dims| *self.dims.get_or_insert(dims));
        let vectors_fit = dims.is_some() && room_dims == dims && vectors.len() > 0;
        let block = u32::try_from(self.blocks.len()).expect("blocks fit in u32");
        if vectors_fit {
            self.blocks.push(vectors);
        }
        for (record_key, item, vector, bytes) in entries {
            let slot = u32::try_from(self.slots.len()).expect("slots fit in u32");
            let vector_slot = vector.filter(|_| vectors_fit).map(|index| VectorSlot { block, index });
            self.bytes += bytes;
            let previous = self.by_record_key.insert(record_key, slot);
            assert!(previous.is_none(), "range reads return each record once");
            self.slots.push(Some(Indexed { item, vector_slot, bytes }));
        }
    }

    /// Adds or replaces an item.
    /// Applies the item changes of the batch that made the items collection `version` in the
    /// generation `key_id`, in version order: a batch that finished before its predecessor
    /// waits for it (at most [`INDEX_PENDING_BATCHES_MAX`]). Returns `false` when the index can
    /// no longer follow (another generation, a version already passed, too many waiting: a
    /// write this process did not see); it must then be dropped and rebuilt when next used.
    pub fn apply_at(&mut self, key_id: RoomKeyId, version: u64, changes: Vec<(RecordKey, Option<Item>)>) -> bool {
        if key_id != self.stamp.key_id || version <= self.stamp.items_version {
            return false;
        }
        self.pending.insert(version, changes);
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() != self.stamp.items_version + 1 {
                break;
            }
            let (version, changes) = entry.remove_entry();
            for (record_key, item) in changes {
                match item {
                    Some(item) => self.upsert(record_key, item),
                    None => self.remove(&record_key),
                }
            }
            self.stamp.items_version = version;
        }
        self.pending.len() <= INDEX_PENDING_BATCHES_MAX
    }

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
        // The embedding lives once, in a vector block; returned hits get it back from there.
        let vector_slot = item.embedding.take().and_then(|embedding| self.store_vector(&embedding));
        self.bytes += bytes;
        self.by_record_key.insert(record_key, slot);
        self.slots[slot as usize] = Some(Indexed { item, vector_slot, bytes });
        self.check();
    }

    /// Stores a vector; a vector of other dimensions than the room's is not indexed (writes
    /// refuse such vectors; this only guards against a race between two first writers).
    fn store_vector(&mut self, embedding: &[f32]) -> Option<VectorSlot> {
        let dims = *self.dims.get_or_insert(embedding.len());
        if embedding.len() != dims {
            return None;
        }
        if let Some(slot) = self.free_vector_slots.pop() {
            let block = &mut self.blocks[slot.block as usize];
            block.values[slot.index as usize * dims..][..dims].copy_from_slice(embedding);
            block.inverse_norms[slot.index as usize] = inverse_norm(embedding);
            return Some(slot);
        }
        if self.blocks.is_empty() {
            self.blocks.push(VectorBlock::with_capacity(dims, self.slots.capacity()));
        }
        let block = u32::try_from(self.blocks.len() - 1).expect("blocks fit in u32");
        let index = self.blocks[block as usize].push(embedding)?;
        Some(VectorSlot { block, index })
    }

    /// The vector at `slot` (each `dims` long).
    fn vector(&self, slot: VectorSlot, dims: usize) -> &[f32] {
        &self.blocks[slot.block as usize].values[slot.index as usize * dims..][..dims]
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

    /// Every record key names its own live slot, and every live slot is named (debug builds).
    fn check(&self) {
        if cfg!(debug_assertions) {
            let mut named: Vec<u32> = self.by_record_key.values().copied().collect();
            named.sort_unstable();
            named.dedup();
            assert_eq!(named.len(), self.by_record_key.len(), "two record keys name one slot");
            assert!(named.iter().all(|slot| self.slots[*slot as usize].is_some()), "a record key names a free slot");
            assert_eq!(named.len(), self.slots.iter().filter(|slot| slot.is_some()).count(), "a live slot is unnamed");
        }
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

    fn lexical_ranking(&self, terms: &[String], mask: &[bool], keep: Option<usize>) -> Vec<(u32, f32)> {
        let scores = self.lexical.score(terms, |slot| mask.get(slot as usize).copied().unwrap_or(false));
        self.ranked(scores.into_iter().collect(), keep)
    }

    fn vector_ranking(
        &self,
        query: &[f32],
        metric: Metric,
        members: &[u32],
        keep: Option<usize>,
    ) -> Result<Vec<(u32, f32)>, SearchError> {
        let Some(dims) = self.dims else { return Ok(Vec::new()) };
        if query.len() != dims {
            return Err(SearchError::DimensionMismatch { query: query.len(), room: dims });
        }
        let (slots, vector_slots): (Vec<u32>, Vec<VectorSlot>) = members
            .iter()
            .filter_map(|slot| self.slots[*slot as usize].as_ref()?.vector_slot.map(|vector_slot| (*slot, vector_slot)))
            .unzip();
        let mut scores = Vec::new();
        vectors::dot_each(query, &vector_slots, |slot| self.vector(slot, dims), &mut scores);
        if metric == Metric::Cosine {
            let query_inverse_norm = inverse_norm(query);
            for (score, slot) in scores.iter_mut().zip(&vector_slots) {
                *score *= self.blocks[slot.block as usize].inverse_norms[slot.index as usize] * query_inverse_norm;
            }
        }
        Ok(self.ranked(slots.into_iter().zip(scores).collect(), keep))
    }

    /// Best first; ties in listing order so results are deterministic. With `keep`, only the
    /// best `keep` are selected (in linear time) and sorted, not the whole room.
    fn ranked(&self, mut scored: Vec<(u32, f32)>, keep: Option<usize>) -> Vec<(u32, f32)> {
        let better = |left: &(u32, f32), right: &(u32, f32)| {
            right.1.total_cmp(&left.1).then_with(|| self.order_key(left.0).cmp(&self.order_key(right.0)))
        };
        if let Some(keep) = keep
            && scored.len() > keep
        {
            scored.select_nth_unstable_by(keep, better);
            scored.truncate(keep);
        }
        scored.sort_unstable_by(better);
        scored
    }

    /// Runs a search over this room. A hybrid search ranks every candidate in both rankings (so
    /// fusion is exact); a lexical or vector search selects its best `limit` without sorting the
    /// rest. Only the returned items are copied out.
    pub fn search(&self, request: &SearchRequest, now: i64) -> Result<Vec<SearchHit>, SearchError> {
        let (mask, members) = self.candidates(request, now);
        let terms = request.query.as_deref().map(tokens::query_terms).unwrap_or_default();
        let hybrid = !terms.is_empty() && request.embedding.is_some();
        // Fusion by rank needs every candidate's rank in both rankings; one ranking alone needs
        // only its best `limit`.
        let keep = (!hybrid).then_some(request.limit);
        let lexical = if terms.is_empty() { Vec::new() } else { self.lexical_ranking(&terms, &mask, keep) };
        let vector = match &request.embedding {
            Some(query) => self.vector_ranking(query, request.metric, &members, keep)?,
            None => Vec::new(),
        };
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

    /// The namespace of every live item (repeated once per item).
    pub fn namespaces(&self, now: i64) -> impl Iterator<Item = &[String]> {
        self.slots.iter().filter_map(move |indexed| {
            let item = &indexed.as_ref()?.item;
            item.expires_at.is_none_or(|expires_at| expires_at > now).then(|| item.namespace.segments())
        })
    }

    /// The live item filed under `record_key`, if indexed (with its embedding).
    pub fn item(&self, record_key: &RecordKey, now: i64) -> Option<Item> {
        let slot = *self.by_record_key.get(record_key)?;
        let item = self.hit(slot).item;
        item.expires_at.is_none_or(|expires_at| expires_at > now).then_some(item)
    }

    fn hit(&self, slot: u32) -> SearchHit {
        let indexed = self.slots[slot as usize].as_ref().expect("ranked slots are live");
        let mut item = indexed.item.clone();
        if let (Some(vector_slot), Some(dims)) = (indexed.vector_slot, self.dims) {
            item.embedding = Some(self.vector(vector_slot, dims).to_vec());
        }
        SearchHit { item, score: 0.0, lexical: None, vector: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocabulary::names::Metadata;
    use crate::vocabulary::records::RoomKeyId;
    use proptest::prelude::*;

    const DIMS: usize = 5;

    fn item(key: u32, embedding: Option<Vec<f32>>) -> (RecordKey, Item) {
        let item = Item {
            namespace: Namespace::parse(vec!["docs".into()]).expect("namespace"),
            key: ItemKey::parse(&format!("k{key:04}")).expect("key"),
            value: serde_json::json!(key),
            text: Some(format!("text {key}")),
            embedding,
            metadata: Metadata::from_stored(serde_json::Map::new()),
            created_at: 0,
            updated_at: 0,
            expires_at: None,
            origin: None,
        };
        (RecordKey::new(key.to_be_bytes().to_vec()), item)
    }

    /// The live vectors ranked by dot product with `query` (as many as a search returns), as
    /// the index returns them.
    fn assert_ranks_like_brute_force(index: &RoomIndex, model: &HashMap<u32, Vec<f32>>, query: &[f32]) {
        // A small limit selects the best few without sorting the rest; the largest sorts all.
        for limit in [3, crate::limits::SEARCH_RESULTS_MAX] {
            let request = SearchRequest::parse(
                None,
                Some(query.to_vec()),
                NamespacePrefix::everything(),
                None,
                Some(limit as i64),
                Some("dot"),
            )
            .expect("request");
            let hits = index.search(&request, 0).expect("search");
            let found: Vec<(String, Vec<f32>)> = hits
                .into_iter()
                .map(|hit| (hit.item.key.as_str().to_owned(), hit.item.embedding.expect("vector")))
                .collect();
            let mut expected: Vec<(f32, String, Vec<f32>)> = model
                .iter()
                .map(|(key, vector)| (vectors::dot_portable(query, vector), format!("k{key:04}"), vector.clone()))
                .collect();
            expected.sort_by(|left, right| right.0.total_cmp(&left.0).then_with(|| left.1.cmp(&right.1)));
            let expected: Vec<(String, Vec<f32>)> =
                expected.into_iter().take(limit).map(|(_, key, vector)| (key, vector)).collect();
            assert!(found == expected, "the index ranks unlike brute force (limit {limit})");
        }
    }

    #[test]
    fn batches_that_finish_out_of_order_are_applied_in_version_order() {
        let key_id = RoomKeyId::from([1; 16]);
        let mut index = RoomIndex::new(IndexStamp { key_id, items_version: 5 });
        let (first_key, first) = item(1, None);
        let (second_key, second) = item(2, None);
        // Version 7 arrives first: held back until version 6 is applied.
        assert!(index.apply_at(key_id, 7, vec![(second_key.clone(), Some(second))]));
        assert_eq!(index.stamp().items_version, 5);
        assert_eq!(index.len(), 0);
        assert!(index.apply_at(key_id, 6, vec![(first_key.clone(), Some(first))]));
        assert_eq!(index.stamp().items_version, 7);
        assert_eq!(index.len(), 2);
        assert!(index.apply_at(key_id, 8, vec![(first_key, None)]));
        assert_eq!(index.len(), 1);
        // A version already passed, another generation, or too many gaps: the index gives up.
        assert!(!index.apply_at(key_id, 8, Vec::new()));
        assert!(!index.apply_at(RoomKeyId::from([2; 16]), 9, Vec::new()));
        let held: Vec<bool> = (0..=crate::limits::INDEX_PENDING_BATCHES_MAX as u64)
            .map(|gap| index.apply_at(key_id, 10 + gap, Vec::new()))
            .collect();
        assert_eq!(held.last(), Some(&false), "a version that never comes is not waited for forever");
    }

    fn vector() -> impl Strategy<Value = Vec<f32>> {
        prop::collection::vec(-1.0f32..1.0, DIMS)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        /// Parts as a cold build makes them (uneven, empty, with and without vectors) are
        /// absorbed, then removals free vector slots in several blocks and upserts reuse them
        /// or grow the last block: the index ranks exactly like brute force throughout.
        #[test]
        fn vectors_built_in_blocks_stay_exact_through_edits(
            parts in prop::collection::vec(prop::collection::vec(prop::option::of(vector()), 0..12), 1..6),
            edits in prop::collection::vec((0u32..60, prop::option::of(vector())), 0..40),
            query in vector(),
        ) {
            let stamp = IndexStamp { key_id: RoomKeyId::from([0; 16]), items_version: 0 };
            let mut model = HashMap::new();
            let mut index = RoomIndex::new(stamp);
            let mut next_key = 0;
            for part in parts {
                let mut items = Vec::new();
                for vector in part {
                    if let Some(vector) = &vector {
                        model.insert(next_key, vector.clone());
                    }
                    items.push(item(next_key, vector));
                    next_key += 1;
                }
                index.absorb(IndexPart::build(items));
            }
            prop_assert_eq!(index.len(), next_key as usize);
            assert_ranks_like_brute_force(&index, &model, &query);
            for (key, vector) in edits {
                match vector {
                    Some(vector) => {
                        let (record_key, entry) = item(key, Some(vector.clone()));
                        index.upsert(record_key, entry);
                        model.insert(key, vector);
                    }
                    None => {
                        index.remove(&item(key, None).0);
                        model.remove(&key);
                    }
                }
                assert_ranks_like_brute_force(&index, &model, &query);
            }
        }
    }

    #[test]
    fn a_large_part_merged_on_a_second_thread_is_searchable_by_text_and_vector() {
        let stamp = IndexStamp { key_id: RoomKeyId::from([0; 16]), items_version: 0 };
        let vector_of =
            |key: u32| (0..DIMS).map(|dim| ((key as usize * 7 + dim * 13) % 17) as f32 / 8.0 - 1.0).collect();
        let mut index = RoomIndex::new(stamp);
        let mut model = HashMap::new();
        let mut next_key = 0;
        for size in [10, PARALLEL_ABSORB_ITEMS_MIN + 5, 3] {
            let items = (next_key..next_key + size as u32).map(|key| item(key, Some(vector_of(key)))).collect();
            model.extend((next_key..next_key + size as u32).map(|key| (key, vector_of(key))));
            index.absorb(IndexPart::build(items));
            next_key += size as u32;
        }
        assert_ranks_like_brute_force(&index, &model, &vector_of(5));
        for key in [0, 9, 10, 1000, PARALLEL_ABSORB_ITEMS_MIN as u32 + 14, next_key - 1] {
            let request =
                SearchRequest::parse(Some(key.to_string()), None, NamespacePrefix::everything(), None, Some(2), None)
                    .expect("request");
            let hits = index.search(&request, 0).expect("search");
            let keys: Vec<&str> = hits.iter().map(|hit| hit.item.key.as_str()).collect();
            assert_eq!(keys, [format!("k{key:04}")], "the one item whose text holds {key}");
        }
    }
}
