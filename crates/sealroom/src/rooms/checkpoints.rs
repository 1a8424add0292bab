//! Checkpoints of agent runs (LangGraph's checkpointer model), sealed in the room like
//! everything else: a checkpoint per (thread, namespace, checkpoint id), the pending writes of
//! the tasks that ran after it, and per thread and namespace the greatest checkpoint id (the
//! "latest", so reading it costs two records, not a scan of the thread).
//!
//! The store sees only HMACs under the room's index key: a checkpoint's record key is
//! `H(thread) ‖ H(namespace) ‖ H(checkpoint id)` (16, 8 and 16 bytes), a pending write's adds
//! `H(task id) ‖ index`, a head's is `H(thread) ‖ H(namespace)`. So a thread's records share a
//! key prefix (deleting a thread is one prefix deletion) and nothing of a name reaches the
//! store. Every payload also carries its names, checked against its key on every read.
//!
//! Checkpoint ids are ordered as strings, greatest newest (LangGraph's ids are UUIDv6). Listing
//! opens the matching checkpoints and sorts them in memory; the room's checkpoint quota bounds
//! that work.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::codec::{StoredCheckpoint, StoredCheckpointHead, StoredCheckpointWrite};
use super::threads::Page;
use super::{AlarmKind, Room, RoomError, WriteFailure, conflict_backoff};
use crate::limits::{
    CHECKPOINT_PAGE_BYTES_MAX, CHECKPOINT_RECORDS_PER_BATCH_MAX, CHECKPOINT_SCAN_PAGE, CHECKPOINT_WRITES_PER_CALL_MAX,
    WRITE_CONFLICT_RETRIES_MAX,
};
use crate::seal::RoomKeys;
use crate::store::{Check, Operation, Quota, Range, StoredRecord};
use crate::vocabulary::checkpoint::{
    CheckpointCursor, CheckpointMetadata, CheckpointQuery, CheckpointThread, CheckpointTuple, NewPendingWrite,
    PendingWrite, TypedBlob, WritingTask,
};
use crate::vocabulary::clock::unix_now_secs;
use crate::vocabulary::names::{InputError, PageSize};
use crate::vocabulary::records::{Collection, RecordKey};

const THREAD_DOMAIN: &[u8] = b"checkpoint thread";
const NAMESPACE_DOMAIN: &[u8] = b"checkpoint namespace";
const CHECKPOINT_DOMAIN: &[u8] = b"checkpoint id";
const TASK_DOMAIN: &[u8] = b"checkpoint task";

/// The record keys of a room's checkpoints.
struct KeyMaker<'keys>(&'keys RoomKeys);

impl KeyMaker<'_> {
    fn thread(&self, thread_id: &str) -> Vec<u8> {
        self.0.index_hash(THREAD_DOMAIN, &[thread_id.as_bytes()])[..16].to_vec()
    }

    fn head(&self, at: &CheckpointThread) -> Vec<u8> {
        let mut key = self.thread(&at.thread_id);
        let namespace = self.0.index_hash(NAMESPACE_DOMAIN, &[at.thread_id.as_bytes(), at.namespace.as_bytes()]);
        key.extend_from_slice(&namespace[..8]);
        key
    }

    fn checkpoint(&self, at: &CheckpointThread, checkpoint_id: &str) -> Vec<u8> {
        let mut key = self.head(at);
        let parts: [&[u8]; 3] = [at.thread_id.as_bytes(), at.namespace.as_bytes(), checkpoint_id.as_bytes()];
        key.extend_from_slice(&self.0.index_hash(CHECKPOINT_DOMAIN, &parts)[..16]);
        key
    }

    fn write(&self, at: &CheckpointThread, checkpoint_id: &str, task_id: &str, index: i64) -> Vec<u8> {
        let mut key = self.checkpoint(at, checkpoint_id);
        let parts: [&[u8]; 4] =
            [at.thread_id.as_bytes(), at.namespace.as_bytes(), checkpoint_id.as_bytes(), task_id.as_bytes()];
        key.extend_from_slice(&self.0.index_hash(TASK_DOMAIN, &parts)[..16]);
        // Order-preserving for signed indexes (not that the order is used: writes are sorted
        // by their names after opening).
        key.extend_from_slice(&((index as u64) ^ (1 << 63)).to_be_bytes());
        key
    }
}

fn record_key(bytes: Vec<u8>) -> RecordKey {
    RecordKey::new(bytes)
}

/// Checkpoint operations of one room.
pub struct Checkpoints<'room> {
    room: &'room Room,
}

impl<'room> Checkpoints<'room> {
    pub(crate) fn new(room: &'room Room) -> Checkpoints<'room> {
        Checkpoints { room }
    }

    /// Stores (creates or replaces) a checkpoint; the thread's latest id moves to it if it is
    /// the greatest.
    pub async fn put(
        &self,
        at: &CheckpointThread,
        checkpoint_id: &str,
        parent_checkpoint_id: Option<&str>,
        checkpoint: &TypedBlob,
        metadata: &CheckpointMetadata,
    ) -> Result<(), RoomError> {
        in_one_generation!(self.room, self.put_once(at, checkpoint_id, parent_checkpoint_id, checkpoint, metadata))
    }

    async fn put_once(
        &self,
        at: &CheckpointThread,
        checkpoint_id: &str,
        parent_checkpoint_id: Option<&str>,
        checkpoint: &TypedBlob,
        metadata: &CheckpointMetadata,
    ) -> Result<(), RoomError> {
        self.room.require_write()?;
        let owner = *self.room.id().as_bytes();
        for attempt in 0..WRITE_CONFLICT_RETRIES_MAX {
            if attempt > 0 {
                conflict_backoff(attempt).await;
            }
            let keys = self.room.write_keys().await?;
            let make = KeyMaker(&keys);
            let head_key = record_key(make.head(at));
            let _guard = self.room.lock_record(Collection::CheckpointHeads, &head_key).await;
            let head = self.head(&keys, at).await?;
            let key = record_key(make.checkpoint(at, checkpoint_id));
            let stored = StoredCheckpoint {
                owner,
                thread_id: at.thread_id.clone(),
                namespace: at.namespace.clone(),
                checkpoint_id: checkpoint_id.to_owned(),
                parent_checkpoint_id: parent_checkpoint_id.map(str::to_owned),
                type_tag: checkpoint.type_tag.clone(),
                bytes: checkpoint.bytes.clone(),
                metadata_json: Value::Object(metadata.as_map().clone()).to_string(),
                created_at: unix_now_secs(),
            };
            let value = self.room.seal(&keys, Collection::Checkpoints, &key, &stored)?;
            let mut operations =
                vec![Operation::Put { collection: Collection::Checkpoints, key, value, expires_at: None }];
            let mut checks = Vec::new();
            let newest = head.as_ref().is_none_or(|(latest, _)| checkpoint_id > latest.as_str());
            if newest {
                let head_payload = StoredCheckpointHead {
                    owner,
                    thread_id: at.thread_id.clone(),
                    namespace: at.namespace.clone(),
                    latest: checkpoint_id.to_owned(),
                };
                let value = self.room.seal(&keys, Collection::CheckpointHeads, &head_key, &head_payload)?;
                checks.push(match &head {
                    Some((_, version)) => Check::Version(Collection::CheckpointHeads, head_key.clone(), *version),
                    None => Check::Absent(Collection::CheckpointHeads, head_key.clone()),
                });
                operations.push(Operation::Put {
                    collection: Collection::CheckpointHeads,
                    key: head_key,
                    value,
                    expires_at: None,
                });
            }
            let quotas = vec![
                Quota::Records {
                    collection: Collection::Checkpoints,
                    max: self.room.limits().checkpoints_per_room_max,
                },
                self.room.room_bytes_quota(),
            ];
            match self.room.commit(&keys, checks, operations, quotas).await {
                Ok(_) => return Ok(()),
                Err(WriteFailure::Retry) => continue,
                Err(WriteFailure::Failed(error)) => return Err(error),
            }
        }
        Err(RoomError::Conflict)
    }

    /// Stores a task's pending writes for a checkpoint (which need not be stored yet: LangGraph
    /// sends them concurrently). A write at a non-negative index is kept only if there is none
    /// at that index yet; a negative index (an error, an interrupt, a resume) replaces.
    pub async fn put_writes(
        &self,
        at: &CheckpointThread,
        checkpoint_id: &str,
        task: &WritingTask,
        writes: &[NewPendingWrite],
    ) -> Result<(), RoomError> {
        in_one_generation!(self.room, self.put_writes_once(at, checkpoint_id, task, writes))
    }

    async fn put_writes_once(
        &self,
        at: &CheckpointThread,
        checkpoint_id: &str,
        task: &WritingTask,
        writes: &[NewPendingWrite],
    ) -> Result<(), RoomError> {
        self.room.require_write()?;
        if writes.len() > CHECKPOINT_WRITES_PER_CALL_MAX {
            return Err(InputError::new("writes", format!("must hold at most {CHECKPOINT_WRITES_PER_CALL_MAX}")).into());
        }
        if writes.is_empty() {
            return Ok(());
        }
        let owner = *self.room.id().as_bytes();
        for attempt in 0..WRITE_CONFLICT_RETRIES_MAX {
            if attempt > 0 {
                conflict_backoff(attempt).await;
            }
            let keys = self.room.write_keys().await?;
            let make = KeyMaker(&keys);
            let mut operations = Vec::with_capacity(writes.len());
            let mut checks = Vec::new();
            let mut seen = HashSet::new();
            for write in writes {
                let key = record_key(make.write(at, checkpoint_id, &task.task_id, write.index));
                if !seen.insert(key.clone()) && write.index >= 0 {
                    continue;
                }
                if write.index >= 0 {
                    if self.room.get_record(&keys, Collection::CheckpointWrites, &key).await?.is_some() {
                        continue;
                    }
                    checks.push(Check::Absent(Collection::CheckpointWrites, key.clone()));
                }
                let stored = StoredCheckpointWrite {
                    owner,
                    thread_id: at.thread_id.clone(),
                    namespace: at.namespace.clone(),
                    checkpoint_id: checkpoint_id.to_owned(),
                    task_id: task.task_id.clone(),
                    task_path: task.task_path.clone(),
                    channel: write.channel.clone(),
                    index: write.index,
                    type_tag: write.value.type_tag.clone(),
                    bytes: write.value.bytes.clone(),
                };
                let value = self.room.seal(&keys, Collection::CheckpointWrites, &key, &stored)?;
                operations.push(Operation::Put {
                    collection: Collection::CheckpointWrites,
                    key,
                    value,
                    expires_at: None,
                });
            }
            if operations.is_empty() {
                return Ok(());
            }
            let quotas = vec![
                Quota::Records {
                    collection: Collection::CheckpointWrites,
                    max: self.room.limits().checkpoints_per_room_max,
                },
                self.room.room_bytes_quota(),
            ];
            match self.room.commit(&keys, checks, operations, quotas).await {
                Ok(_) => return Ok(()),
                // A write that appeared meanwhile is kept, not replaced: read again.
                Err(WriteFailure::Retry) => continue,
                Err(WriteFailure::Failed(error)) => return Err(error),
            }
        }
        Err(RoomError::Conflict)
    }

    /// A checkpoint with its pending writes: the one named, or the thread's latest.
    pub async fn get(
        &self,
        at: &CheckpointThread,
        checkpoint_id: Option<&str>,
    ) -> Result<Option<CheckpointTuple>, RoomError> {
        in_one_generation!(self.room, self.get_once(at, checkpoint_id))
    }

    async fn get_once(
        &self,
        at: &CheckpointThread,
        checkpoint_id: Option<&str>,
    ) -> Result<Option<CheckpointTuple>, RoomError> {
        let Some(keys) = self.room.read_keys().await? else { return Ok(None) };
        let checkpoint_id = match checkpoint_id {
            Some(id) => id.to_owned(),
            None => match self.head(&keys, at).await? {
                Some((latest, _)) => latest,
                None => return Ok(None),
            },
        };
        let key = record_key(KeyMaker(&keys).checkpoint(at, &checkpoint_id));
        let Some(record) = self.room.get_record(&keys, Collection::Checkpoints, &key).await? else {
            return Ok(None);
        };
        let stored = self.open_checkpoint(&keys, &record).await?;
        let mut tuple = tuple_of(stored)?;
        tuple.pending_writes = self.writes_of(&keys, at, &checkpoint_id).await?;
        Ok(Some(tuple))
    }

    /// Checkpoints matching `query`, greatest checkpoint id first (ties: thread, then
    /// namespace, also descending), after `after`, with their pending writes.
    pub async fn list(
        &self,
        query: &CheckpointQuery,
        after: Option<&CheckpointCursor>,
        limit: PageSize,
    ) -> Result<Page<CheckpointTuple, CheckpointCursor>, RoomError> {
        in_one_generation!(self.room, self.list_once(query, after, limit))
    }

    async fn list_once(
        &self,
        query: &CheckpointQuery,
        after: Option<&CheckpointCursor>,
        limit: PageSize,
    ) -> Result<Page<CheckpointTuple, CheckpointCursor>, RoomError> {
        let Some(keys) = self.room.read_keys().await? else {
            return Ok(Page { entries: Vec::new(), next: None });
        };
        let make = KeyMaker(&keys);
        let prefix = match (&query.thread_id, &query.namespace) {
            (Some(thread_id), Some(namespace)) => {
                make.head(&CheckpointThread { thread_id: thread_id.clone(), namespace: namespace.clone() })
            }
            (Some(thread_id), None) => make.thread(thread_id),
            (None, _) => Vec::new(),
        };
        let order =
            |tuple: &StoredCheckpoint| (tuple.checkpoint_id.clone(), tuple.thread_id.clone(), tuple.namespace.clone());
        let after = after.map(|cursor| {
            (cursor.checkpoint_id.clone(), cursor.thread.thread_id.clone(), cursor.thread.namespace.clone())
        });
        let mut matching = Vec::new();
        for record in self.scan(&keys, Collection::Checkpoints, prefix).await? {
            let stored = self.open_checkpoint(&keys, &record).await?;
            let wanted = query.thread_id.as_ref().is_none_or(|thread_id| *thread_id == stored.thread_id)
                && query.namespace.as_ref().is_none_or(|namespace| *namespace == stored.namespace)
                && query.checkpoint_id.as_ref().is_none_or(|id| *id == stored.checkpoint_id)
                && query.before.as_ref().is_none_or(|before| stored.checkpoint_id < *before)
                && after.as_ref().is_none_or(|after| order(&stored) < *after)
                && metadata_of(&stored)?.matches(&query.filter);
            if wanted {
                matching.push(stored);
            }
        }
        matching.sort_by_key(|stored| std::cmp::Reverse(order(stored)));
        let mut has_more = matching.len() > limit.get();
        matching.truncate(limit.get());
        let mut entries = Vec::with_capacity(matching.len());
        let mut page_bytes = 0;
        let count = matching.len();
        for (index, stored) in matching.into_iter().enumerate() {
            let at = CheckpointThread { thread_id: stored.thread_id.clone(), namespace: stored.namespace.clone() };
            let checkpoint_id = stored.checkpoint_id.clone();
            let mut tuple = tuple_of(stored)?;
            tuple.pending_writes = self.writes_of(&keys, &at, &checkpoint_id).await?;
            page_bytes += tuple.checkpoint.bytes.len()
                + tuple.pending_writes.iter().map(|write| write.value.bytes.len()).sum::<usize>();
            entries.push(tuple);
            // A page stops at a byte budget too (at least one checkpoint is always returned).
            if page_bytes > CHECKPOINT_PAGE_BYTES_MAX && index + 1 < count {
                has_more = true;
                break;
            }
        }
        let next = if has_more {
            entries
                .last()
                .map(|last| CheckpointCursor { checkpoint_id: last.checkpoint_id.clone(), thread: last.thread.clone() })
        } else {
            None
        };
        Ok(Page { entries, next })
    }

    /// Deletes every checkpoint, pending write and head of a thread, in every namespace.
    pub async fn delete_thread(&self, thread_id: &str) -> Result<(), RoomError> {
        in_one_generation!(self.room, self.delete_threads_once(std::slice::from_ref(&thread_id.to_owned())))
    }

    async fn delete_threads_once(&self, thread_ids: &[String]) -> Result<(), RoomError> {
        self.room.require_write()?;
        for _ in 0..WRITE_CONFLICT_RETRIES_MAX {
            let Some(keys) = self.room.read_keys().await? else { return Ok(()) };
            let make = KeyMaker(&keys);
            let operations: Vec<Operation> = thread_ids
                .iter()
                .flat_map(|thread_id| {
                    let prefix = make.thread(thread_id);
                    [Collection::Checkpoints, Collection::CheckpointWrites, Collection::CheckpointHeads]
                        .map(|collection| Operation::DeletePrefix { collection, prefix: prefix.clone() })
                })
                .collect();
            match self.commit_in_batches(&keys, operations, Vec::new()).await {
                Ok(()) => return Ok(()),
                Err(WriteFailure::Retry) => continue,
                Err(WriteFailure::Failed(error)) => return Err(error),
            }
        }
        Err(RoomError::Conflict)
    }

    /// Deletes the checkpoints whose metadata names one of `run_ids` as its `run_id`, in every
    /// thread and namespace, with their pending writes; checkpoints of other runs stay, also
    /// those whose parent goes.
    pub async fn delete_for_runs(&self, run_ids: &[String]) -> Result<(), RoomError> {
        in_one_generation!(self.room, self.delete_for_runs_once(run_ids))
    }

    async fn delete_for_runs_once(&self, run_ids: &[String]) -> Result<(), RoomError> {
        self.room.require_write()?;
        if run_ids.is_empty() {
            return Ok(());
        }
        let Some(keys) = self.room.read_keys().await? else { return Ok(()) };
        let runs: HashSet<&str> = run_ids.iter().map(String::as_str).collect();
        let mut doomed: BTreeMap<CheckpointThread, Vec<String>> = BTreeMap::new();
        for record in self.scan(&keys, Collection::Checkpoints, Vec::new()).await? {
            let stored = self.open_checkpoint(&keys, &record).await?;
            let metadata = metadata_of(&stored)?;
            let run = metadata.as_map().get("run_id").and_then(Value::as_str);
            if run.is_some_and(|run| runs.contains(run)) {
                let at = CheckpointThread { thread_id: stored.thread_id, namespace: stored.namespace };
                doomed.entry(at).or_default().push(stored.checkpoint_id);
            }
        }
        for (at, ids) in doomed {
            self.remove_from(&at, &ids).await?;
        }
        Ok(())
    }

    /// Copies every checkpoint, pending write and head of a thread to another thread id, with
    /// the same checkpoint ids (what the target had stays unless the copy replaces it).
    pub async fn copy_thread(&self, source: &str, target: &str) -> Result<(), RoomError> {
        in_one_generation!(self.room, self.copy_thread_once(source, target))
    }

    async fn copy_thread_once(&self, source: &str, target: &str) -> Result<(), RoomError> {
        self.room.require_write()?;
        let Some(keys) = self.room.read_keys().await? else { return Ok(()) };
        let make = KeyMaker(&keys);
        // Per namespace: the records to put, and the greatest id copied.
        let mut copies: BTreeMap<String, (Vec<Operation>, String)> = BTreeMap::new();
        for record in self.scan(&keys, Collection::Checkpoints, make.thread(source)).await? {
            let mut stored = self.open_checkpoint(&keys, &record).await?;
            if stored.thread_id != source {
                continue;
            }
            stored.thread_id = target.to_owned();
            let at = CheckpointThread { thread_id: target.to_owned(), namespace: stored.namespace.clone() };
            let key = record_key(make.checkpoint(&at, &stored.checkpoint_id));
            let value = self.room.seal(&keys, Collection::Checkpoints, &key, &stored)?;
            let (operations, newest) = copies.entry(stored.namespace.clone()).or_default();
            if stored.checkpoint_id > *newest {
                newest.clone_from(&stored.checkpoint_id);
            }
            operations.push(Operation::Put { collection: Collection::Checkpoints, key, value, expires_at: None });
        }
        for record in self.scan(&keys, Collection::CheckpointWrites, make.thread(source)).await? {
            let mut stored = self.open_write(&keys, &record).await?;
            if stored.thread_id != source {
                continue;
            }
            stored.thread_id = target.to_owned();
            let at = CheckpointThread { thread_id: target.to_owned(), namespace: stored.namespace.clone() };
            let key = record_key(make.write(&at, &stored.checkpoint_id, &stored.task_id, stored.index));
            let value = self.room.seal(&keys, Collection::CheckpointWrites, &key, &stored)?;
            let (operations, _) = copies.entry(stored.namespace.clone()).or_default();
            operations.push(Operation::Put { collection: Collection::CheckpointWrites, key, value, expires_at: None });
        }
        let quotas = vec![
            Quota::Records { collection: Collection::Checkpoints, max: self.room.limits().checkpoints_per_room_max },
            Quota::Records {
                collection: Collection::CheckpointWrites,
                max: self.room.limits().checkpoints_per_room_max,
            },
            self.room.room_bytes_quota(),
        ];
        for (namespace, (operations, newest)) in copies {
            self.commit_in_batches(&keys, operations, quotas.clone()).await.map_err(failed)?;
            if !newest.is_empty() {
                let at = CheckpointThread { thread_id: target.to_owned(), namespace };
                self.raise_head(&at, &newest).await?;
            }
        }
        Ok(())
    }

    /// Moves a thread's head to `checkpoint_id` unless it already names a greater one (under
    /// the head's lock and version check, so a concurrent `put` is never undone).
    async fn raise_head(&self, at: &CheckpointThread, checkpoint_id: &str) -> Result<(), RoomError> {
        for attempt in 0..WRITE_CONFLICT_RETRIES_MAX {
            if attempt > 0 {
                conflict_backoff(attempt).await;
            }
            let keys = self.room.write_keys().await?;
            let head_key = record_key(KeyMaker(&keys).head(at));
            let _guard = self.room.lock_record(Collection::CheckpointHeads, &head_key).await;
            let head = self.head(&keys, at).await?;
            if head.as_ref().is_some_and(|(latest, _)| latest.as_str() >= checkpoint_id) {
                return Ok(());
            }
            let (check, operation) = self.head_update(&keys, at, head.as_ref(), Some(checkpoint_id))?;
            match self.room.commit(&keys, vec![check], vec![operation], Vec::new()).await {
                Ok(_) => return Ok(()),
                Err(WriteFailure::Retry) => continue,
                Err(WriteFailure::Failed(error)) => return Err(error),
            }
        }
        Err(RoomError::Conflict)
    }

    /// The precondition on a head as read, and the operation that sets it to `latest` (or
    /// removes it).
    fn head_update(
        &self,
        keys: &Arc<RoomKeys>,
        at: &CheckpointThread,
        read: Option<&(String, i64)>,
        latest: Option<&str>,
    ) -> Result<(Check, Operation), RoomError> {
        let key = record_key(KeyMaker(keys).head(at));
        let check = match read {
            Some((_, version)) => Check::Version(Collection::CheckpointHeads, key.clone(), *version),
            None => Check::Absent(Collection::CheckpointHeads, key.clone()),
        };
        let operation = match latest {
            Some(latest) => {
                let head = StoredCheckpointHead {
                    owner: *self.room.id().as_bytes(),
                    thread_id: at.thread_id.clone(),
                    namespace: at.namespace.clone(),
                    latest: latest.to_owned(),
                };
                let value = self.room.seal(keys, Collection::CheckpointHeads, &key, &head)?;
                Operation::Put { collection: Collection::CheckpointHeads, key, value, expires_at: None }
            }
            None => Operation::Delete { collection: Collection::CheckpointHeads, key },
        };
        Ok((check, operation))
    }

    /// Prunes threads: keeps only each namespace's latest checkpoint (and its pending writes),
    /// or, with `keep_latest` false, deletes the threads.
    pub async fn prune(&self, thread_ids: &[String], keep_latest: bool) -> Result<(), RoomError> {
        if !keep_latest {
            return in_one_generation!(self.room, self.delete_threads_once(thread_ids));
        }
        in_one_generation!(self.room, self.keep_latest_once(thread_ids))
    }

    async fn keep_latest_once(&self, thread_ids: &[String]) -> Result<(), RoomError> {
        self.room.require_write()?;
        let Some(keys) = self.room.read_keys().await? else { return Ok(()) };
        let make = KeyMaker(&keys);
        for thread_id in thread_ids {
            let mut by_namespace: BTreeMap<CheckpointThread, Vec<String>> = BTreeMap::new();
            for record in self.scan(&keys, Collection::Checkpoints, make.thread(thread_id)).await? {
                let stored = self.open_checkpoint(&keys, &record).await?;
                if stored.thread_id == *thread_id {
                    let at = CheckpointThread { thread_id: stored.thread_id, namespace: stored.namespace };
                    by_namespace.entry(at).or_default().push(stored.checkpoint_id);
                }
            }
            for (at, mut ids) in by_namespace {
                ids.sort_unstable();
                ids.pop();
                if !ids.is_empty() {
                    self.remove_from(&at, &ids).await?;
                }
            }
        }
        Ok(())
    }

    /// Deletes checkpoints of one thread and namespace with their pending writes; if the head
    /// named one of them, it moves to the greatest id left (under its lock and version check,
    /// in the batch that deletes the last of them).
    async fn remove_from(&self, at: &CheckpointThread, doomed: &[String]) -> Result<(), RoomError> {
        let doomed_set: HashSet<&str> = doomed.iter().map(String::as_str).collect();
        for attempt in 0..WRITE_CONFLICT_RETRIES_MAX {
            if attempt > 0 {
                conflict_backoff(attempt).await;
            }
            let Some(keys) = self.room.read_keys().await? else { return Ok(()) };
            let make = KeyMaker(&keys);
            let head_key = record_key(make.head(at));
            let _guard = self.room.lock_record(Collection::CheckpointHeads, &head_key).await;
            let mut operations = Vec::with_capacity(2 * doomed.len() + 1);
            for checkpoint_id in doomed {
                let key = make.checkpoint(at, checkpoint_id);
                operations
                    .push(Operation::DeletePrefix { collection: Collection::CheckpointWrites, prefix: key.clone() });
                operations.push(Operation::Delete { collection: Collection::Checkpoints, key: record_key(key) });
            }
            let head = self.head(&keys, at).await?;
            let mut checks = Vec::new();
            if let Some((latest, _)) = &head
                && doomed_set.contains(latest.as_str())
            {
                let mut left = Vec::new();
                for record in self.scan(&keys, Collection::Checkpoints, make.head(at)).await? {
                    let stored = self.open_checkpoint(&keys, &record).await?;
                    if stored.thread_id == at.thread_id
                        && stored.namespace == at.namespace
                        && !doomed_set.contains(stored.checkpoint_id.as_str())
                    {
                        left.push(stored.checkpoint_id);
                    }
                }
                let newest = left.iter().max().map(String::as_str);
                let (check, operation) = self.head_update(&keys, at, head.as_ref(), newest)?;
                checks.push(check);
                operations.push(operation);
            }
            // Earlier batches only delete (repeating them is harmless); the last carries the
            // head and its check.
            let split = operations.len().saturating_sub(CHECKPOINT_RECORDS_PER_BATCH_MAX);
            let last = operations.split_off(split);
            match self.commit_in_batches(&keys, operations, Vec::new()).await {
                Ok(()) => {}
                Err(WriteFailure::Retry) => continue,
                Err(WriteFailure::Failed(error)) => return Err(error),
            }
            match self.room.commit(&keys, checks, last, Vec::new()).await {
                Ok(_) => return Ok(()),
                Err(WriteFailure::Retry) => continue,
                Err(WriteFailure::Failed(error)) => return Err(error),
            }
        }
        Err(RoomError::Conflict)
    }

    /// A page of the room's checkpoints (without their writes) in record order, for export.
    pub async fn export_checkpoints(
        &self,
        after: Option<&CheckpointExportCursor>,
        limit: PageSize,
    ) -> Result<Page<CheckpointTuple, CheckpointExportCursor>, RoomError> {
        let Some(keys) = self.room.read_keys().await? else {
            return Ok(Page { entries: Vec::new(), next: None });
        };
        let records = self.export_range(&keys, Collection::Checkpoints, after, limit).await?;
        let next = next_export_cursor(&records, limit);
        let mut entries = Vec::with_capacity(records.len());
        for record in &records {
            entries.push(tuple_of(self.open_checkpoint(&keys, record).await?)?);
        }
        Ok(Page { entries, next })
    }

    /// A page of the room's pending writes in record order, for export: each with the thread
    /// and checkpoint it belongs to.
    pub async fn export_writes(
        &self,
        after: Option<&CheckpointExportCursor>,
        limit: PageSize,
    ) -> Result<Page<(CheckpointThread, String, PendingWrite), CheckpointExportCursor>, RoomError> {
        let Some(keys) = self.room.read_keys().await? else {
            return Ok(Page { entries: Vec::new(), next: None });
        };
        let records = self.export_range(&keys, Collection::CheckpointWrites, after, limit).await?;
        let next = next_export_cursor(&records, limit);
        let mut entries = Vec::with_capacity(records.len());
        for record in &records {
            let stored = self.open_write(&keys, record).await?;
            let at = CheckpointThread { thread_id: stored.thread_id.clone(), namespace: stored.namespace.clone() };
            let checkpoint_id = stored.checkpoint_id.clone();
            entries.push((at, checkpoint_id, pending_write_of(stored)));
        }
        Ok(Page { entries, next })
    }

    async fn export_range(
        &self,
        keys: &RoomKeys,
        collection: Collection,
        after: Option<&CheckpointExportCursor>,
        limit: PageSize,
    ) -> Result<Vec<StoredRecord>, RoomError> {
        let range = Range {
            collection,
            prefix: Vec::new(),
            start: None,
            end: None,
            after: after.map(|cursor| cursor.0.as_bytes().to_vec()),
            reverse: false,
            limit: limit.get(),
        };
        self.room.range_records(keys, &range).await
    }

    /// The thread's latest checkpoint id and the head record's version.
    async fn head(&self, keys: &Arc<RoomKeys>, at: &CheckpointThread) -> Result<Option<(String, i64)>, RoomError> {
        let key = record_key(KeyMaker(keys).head(at));
        let Some(record) = self.room.get_record(keys, Collection::CheckpointHeads, &key).await? else {
            return Ok(None);
        };
        let head: StoredCheckpointHead = self.room.open(keys, Collection::CheckpointHeads, &record).await?;
        if head.thread_id != at.thread_id || head.namespace != at.namespace {
            self.room.raise(Collection::CheckpointHeads, AlarmKind::NameMismatch);
            return Err(RoomError::IsolationAlarm);
        }
        Ok(Some((head.latest, record.version)))
    }

    /// The pending writes of one checkpoint, sorted by task path, task id and index.
    async fn writes_of(
        &self,
        keys: &Arc<RoomKeys>,
        at: &CheckpointThread,
        checkpoint_id: &str,
    ) -> Result<Vec<PendingWrite>, RoomError> {
        let prefix = KeyMaker(keys).checkpoint(at, checkpoint_id);
        let mut writes = Vec::new();
        for record in self.scan(keys, Collection::CheckpointWrites, prefix).await? {
            let stored = self.open_write(keys, &record).await?;
            if stored.thread_id == at.thread_id
                && stored.namespace == at.namespace
                && stored.checkpoint_id == checkpoint_id
            {
                writes.push(pending_write_of(stored));
            }
        }
        writes.sort_by(|left, right| {
            (&left.task_path, &left.task_id, left.index).cmp(&(&right.task_path, &right.task_id, right.index))
        });
        Ok(writes)
    }

    /// Every live record of `collection` whose key starts with `prefix`, page by page.
    async fn scan(
        &self,
        keys: &RoomKeys,
        collection: Collection,
        prefix: Vec<u8>,
    ) -> Result<Vec<StoredRecord>, RoomError> {
        let mut records: Vec<StoredRecord> = Vec::new();
        loop {
            let range = Range {
                collection,
                prefix: prefix.clone(),
                start: None,
                end: None,
                after: records.last().map(|record| record.key.as_bytes().to_vec()),
                reverse: false,
                limit: CHECKPOINT_SCAN_PAGE,
            };
            let page = self.room.range_records(keys, &range).await?;
            let full = page.len() == CHECKPOINT_SCAN_PAGE;
            records.extend(page);
            if !full {
                return Ok(records);
            }
        }
    }

    /// Opens a checkpoint and checks that its names are the ones its record key was made of.
    async fn open_checkpoint(
        &self,
        keys: &Arc<RoomKeys>,
        record: &StoredRecord,
    ) -> Result<StoredCheckpoint, RoomError> {
        let stored: StoredCheckpoint = self.room.open(keys, Collection::Checkpoints, record).await?;
        let at = CheckpointThread { thread_id: stored.thread_id.clone(), namespace: stored.namespace.clone() };
        if KeyMaker(keys).checkpoint(&at, &stored.checkpoint_id) != record.key.as_bytes() {
            self.room.raise(Collection::Checkpoints, AlarmKind::NameMismatch);
            return Err(RoomError::IsolationAlarm);
        }
        Ok(stored)
    }

    /// Opens a pending write and checks its names against its record key.
    async fn open_write(
        &self,
        keys: &Arc<RoomKeys>,
        record: &StoredRecord,
    ) -> Result<StoredCheckpointWrite, RoomError> {
        let stored: StoredCheckpointWrite = self.room.open(keys, Collection::CheckpointWrites, record).await?;
        let at = CheckpointThread { thread_id: stored.thread_id.clone(), namespace: stored.namespace.clone() };
        if KeyMaker(keys).write(&at, &stored.checkpoint_id, &stored.task_id, stored.index) != record.key.as_bytes() {
            self.room.raise(Collection::CheckpointWrites, AlarmKind::NameMismatch);
            return Err(RoomError::IsolationAlarm);
        }
        Ok(stored)
    }

    /// Commits `operations` in bounded batches (one atomic batch when they fit).
    async fn commit_in_batches(
        &self,
        keys: &Arc<RoomKeys>,
        operations: Vec<Operation>,
        quotas: Vec<Quota>,
    ) -> Result<(), WriteFailure> {
        for chunk in operations.chunks(CHECKPOINT_RECORDS_PER_BATCH_MAX) {
            self.room.commit(keys, Vec::new(), chunk.to_vec(), quotas.clone()).await?;
        }
        Ok(())
    }
}

/// Test-only: plants a checkpoint in `victim`'s room, sealed with the victim's key under the
/// record key of (`filed_at`, `checkpoint_id`) but stamped with `claimed`'s room as owner and
/// naming `named_at`: what a bug that filed a payload under the wrong names or room would leave.
/// Every read path must refuse it.
#[cfg(feature = "test-hooks")]
pub async fn plant_checkpoint(
    victim: &Room,
    claimed: &Room,
    filed_at: &CheckpointThread,
    named_at: &CheckpointThread,
    checkpoint_id: &str,
) -> Result<(), RoomError> {
    let keys = victim.write_keys().await?;
    let stored = StoredCheckpoint {
        owner: *claimed.id().as_bytes(),
        thread_id: named_at.thread_id.clone(),
        namespace: named_at.namespace.clone(),
        checkpoint_id: checkpoint_id.to_owned(),
        parent_checkpoint_id: None,
        type_tag: "msgpack".into(),
        bytes: b"planted".to_vec(),
        metadata_json: "{}".into(),
        created_at: unix_now_secs(),
    };
    let key = record_key(KeyMaker(&keys).checkpoint(filed_at, checkpoint_id));
    victim.plant_record(&keys, Collection::Checkpoints, key, &stored, None).await
}

/// Where an export of checkpoints or their writes continues: after this record (opaque).
#[derive(Clone, Debug)]
pub struct CheckpointExportCursor(RecordKey);

fn next_export_cursor(records: &[StoredRecord], limit: PageSize) -> Option<CheckpointExportCursor> {
    (records.len() == limit.get()).then(|| records.last().map(|record| CheckpointExportCursor(record.key.clone())))?
}

fn failed(failure: WriteFailure) -> RoomError {
    match failure {
        WriteFailure::Retry => RoomError::Conflict,
        WriteFailure::Failed(error) => error,
    }
}

fn metadata_of(stored: &StoredCheckpoint) -> Result<CheckpointMetadata, RoomError> {
    match serde_json::from_str::<Map<String, Value>>(&stored.metadata_json) {
        Ok(map) => Ok(CheckpointMetadata::from_stored(map)),
        // Sealed by this room, so not a client's doing: damage.
        Err(_) => Err(RoomError::IsolationAlarm),
    }
}

fn tuple_of(stored: StoredCheckpoint) -> Result<CheckpointTuple, RoomError> {
    let metadata = metadata_of(&stored)?;
    Ok(CheckpointTuple {
        thread: CheckpointThread { thread_id: stored.thread_id, namespace: stored.namespace },
        checkpoint_id: stored.checkpoint_id,
        parent_checkpoint_id: stored.parent_checkpoint_id,
        checkpoint: TypedBlob { type_tag: stored.type_tag, bytes: stored.bytes },
        metadata,
        pending_writes: Vec::new(),
        created_at: stored.created_at,
    })
}

fn pending_write_of(stored: StoredCheckpointWrite) -> PendingWrite {
    PendingWrite {
        task_id: stored.task_id,
        task_path: stored.task_path,
        channel: stored.channel,
        index: stored.index,
        value: TypedBlob { type_tag: stored.type_tag, bytes: stored.bytes },
    }
}
