//! Per-room retrieval: BM25 over Unicode word segments, exact vector scan, and hybrid ranking
//! by reciprocal rank fusion, over in-memory indexes built one room at a time.
//!
//! Indexes are built from a room's sealed records the first time the room is searched, kept in
//! step with that room's writes, and held in a resident set bounded by bytes (least recently
//! used evicted). An index never holds another room's items: there is no shared index to forget
//! a filter on, and so no "filtered search returned 3 of 10" failure either.

mod index;
mod lexical;
pub mod tokens;
pub mod vectors;

use std::sync::{Arc, RwLock};

use serde_json::{Map, Value};

pub use index::{IndexPart, IndexPartBuilder, IndexStamp, RoomIndex};

use crate::limits::{
    FILTER_CONDITIONS_MAX, INDEX_BUILD_LOCK_STRIPES, SEARCH_QUERY_BYTES_MAX, SEARCH_RESULTS_DEFAULT, SEARCH_RESULTS_MAX,
};
use crate::room_id::RoomId;
use crate::vocabulary::item::Item;
use crate::vocabulary::names::{InputError, NamespacePrefix};

/// How vectors are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    Cosine,
    Dot,
}

/// A validated search.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchRequest {
    pub query: Option<String>,
    pub embedding: Option<Vec<f32>>,
    pub prefix: NamespacePrefix,
    /// Metadata equality conditions, all of which must hold.
    pub filter: Map<String, Value>,
    pub limit: usize,
    pub metric: Metric,
}

impl SearchRequest {
    /// Validates a search: a query text or an embedding (or both), bounded in every dimension.
    pub fn parse(
        query: Option<String>,
        embedding: Option<Vec<f32>>,
        prefix: NamespacePrefix,
        filter: Option<Value>,
        limit: Option<i64>,
        metric: Option<&str>,
    ) -> Result<SearchRequest, InputError> {
        if query.as_ref().is_some_and(|query| query.len() > SEARCH_QUERY_BYTES_MAX) {
            return Err(InputError::new("query", format!("may be at most {SEARCH_QUERY_BYTES_MAX} bytes")));
        }
        if query.as_deref().is_none_or(|query| query.trim().is_empty()) && embedding.is_none() {
            return Err(InputError::new("query", "a search needs a query text or an embedding"));
        }
        if let Some(embedding) = &embedding {
            crate::vocabulary::item::check_embedding(embedding)?;
        }
        let filter = match filter {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) if map.len() <= FILTER_CONDITIONS_MAX => map,
            Some(Value::Object(_)) => {
                return Err(InputError::new("filter", format!("may hold at most {FILTER_CONDITIONS_MAX} conditions")));
            }
            Some(_) => return Err(InputError::new("filter", "must be an object of metadata values to match")),
        };
        let limit =
            crate::vocabulary::names::PageSize::parse_with_max(limit, SEARCH_RESULTS_DEFAULT, SEARCH_RESULTS_MAX)?
                .get();
        let metric = match metric.unwrap_or("cosine") {
            "cosine" => Metric::Cosine,
            "dot" => Metric::Dot,
            _ => return Err(InputError::new("metric", "must be \"cosine\" or \"dot\"")),
        };
        Ok(SearchRequest { query, embedding, prefix, filter, limit, metric })
    }
}

/// One result.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchHit {
    pub item: Item,
    /// The fused score (reciprocal rank fusion for hybrid searches, else the one ranking's).
    pub score: f64,
    /// Rank (from 1) and BM25 score in the lexical ranking, if the item is in it.
    pub lexical: Option<(usize, f32)>,
    /// Rank (from 1) and similarity in the vector ranking, if the item is in it.
    pub vector: Option<(usize, f32)>,
}

/// Why a search cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchError {
    #[error("the query embedding has {query} dimensions; this room's embeddings have {room}")]
    DimensionMismatch { query: usize, room: usize },
}

/// A room's index as held in memory.
pub(crate) struct ResidentIndex {
    pub(crate) index: RwLock<RoomIndex>,
}

/// The resident set of room indexes, bounded by bytes, least recently used evicted.
pub(crate) struct SearchIndexes {
    resident: moka::sync::Cache<RoomId, Arc<ResidentIndex>>,
    /// One builder per room at a time: concurrent first searches wait for one build.
    build_locks: Vec<tokio::sync::Mutex<()>>,
}

impl SearchIndexes {
    pub(crate) fn new(resident_bytes_max: u64) -> SearchIndexes {
        let resident = moka::sync::Cache::builder()
            .max_capacity(resident_bytes_max)
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .weigher(|_room: &RoomId, resident: &Arc<ResidentIndex>| {
                let bytes = resident.index.read().map_or(0, |index| index.bytes());
                u32::try_from(bytes).unwrap_or(u32::MAX)
            })
            .build();
        SearchIndexes {
            resident,
            build_locks: (0..INDEX_BUILD_LOCK_STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }

    pub(crate) fn get(&self, room: &RoomId) -> Option<Arc<ResidentIndex>> {
        self.resident.get(room)
    }

    /// Holds a room's index at its current size (re-weighing it for the budget).
    pub(crate) fn insert(&self, room: RoomId, index: RoomIndex) -> Arc<ResidentIndex> {
        let resident = Arc::new(ResidentIndex { index: RwLock::new(index) });
        self.resident.insert(room, resident.clone());
        resident
    }

    pub(crate) fn reweigh(&self, room: RoomId, resident: Arc<ResidentIndex>) {
        self.resident.insert(room, resident);
    }

    pub(crate) fn forget(&self, room: &RoomId) {
        self.resident.invalidate(room);
    }

    pub(crate) fn build_lock(&self, room: &RoomId) -> &tokio::sync::Mutex<()> {
        let stripe = usize::from(room.as_bytes()[0]) % INDEX_BUILD_LOCK_STRIPES;
        &self.build_locks[stripe]
    }

    /// Rooms resident now (for tests and metrics).
    pub(crate) fn resident_rooms(&self) -> u64 {
        self.resident.run_pending_tasks();
        self.resident.entry_count()
    }
}
