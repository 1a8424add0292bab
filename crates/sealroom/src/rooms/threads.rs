//! Threads: ordered conversation messages, appended in batches, read in pages or as a context
//! view that fits a token budget.
//!
//! A thread header holds the next message sequence number; appends update it with an
//! optimistic-concurrency check, so concurrent appends (from one node or several) never reuse a
//! sequence number or lose a message: the loser rebuilds its batch and tries again.

use super::codec::{self, StoredMessage, StoredThread};
use super::{Room, RoomError, WriteFailure, conflict_backoff};
use crate::limits::{CONTEXT_CHUNK_MESSAGES, MESSAGES_PER_APPEND_MAX, WRITE_CONFLICT_RETRIES_MAX};
use crate::store::{Check, Operation, Quota, Range};
use crate::vocabulary::clock::unix_now_secs;
use crate::vocabulary::item::Origin;
use crate::vocabulary::names::{MessageRole, Metadata, NewMessage, PageSize, ThreadId, Title, TokenBudget};
use crate::vocabulary::records::{Collection, RecordKey};

/// Tokens counted per message for role and framing, on top of its content.
const MESSAGE_OVERHEAD_TOKENS: usize = 4;

/// A thread's header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadInfo {
    pub id: ThreadId,
    pub title: Option<String>,
    pub metadata: Metadata,
    pub created_at: i64,
    pub updated_at: i64,
    pub message_count: u64,
}

/// One stored message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub thread_id: ThreadId,
    /// Position in the thread, from 1; the `after` cursor of message pages.
    pub sequence: u64,
    pub role: MessageRole,
    pub content: String,
    pub name: Option<String>,
    pub metadata: Metadata,
    pub created_at: i64,
    /// Who wrote it (`None`: stored before origins were recorded).
    pub origin: Option<Origin>,
}

/// The most recent messages that fit a token budget, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextView {
    pub messages: Vec<Message>,
    /// Estimated tokens of the returned messages (about four characters a token).
    pub tokens_estimated: usize,
    /// Whether older messages were left out.
    pub truncated: bool,
}

/// Changes to a thread header: absent fields stay, `Some(None)` clears the title.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ThreadPatch {
    pub title: Option<Option<Title>>,
    pub metadata: Option<Metadata>,
}

/// A page of results and the cursor for the next page, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T, C> {
    pub entries: Vec<T>,
    pub next: Option<C>,
}

/// Thread operations of one room.
pub struct Threads<'room> {
    room: &'room Room,
}

fn thread_key(id: &ThreadId) -> RecordKey {
    RecordKey::new(id.as_bytes().to_vec())
}

fn message_key(id: &ThreadId, sequence: u64) -> RecordKey {
    let mut bytes = id.as_bytes().to_vec();
    bytes.extend_from_slice(&sequence.to_be_bytes());
    RecordKey::new(bytes)
}

/// A rough token estimate: about four characters per token, plus framing per message.
pub(crate) fn estimate_tokens(content: &str) -> usize {
    content.chars().count().div_ceil(4) + MESSAGE_OVERHEAD_TOKENS
}

impl<'room> Threads<'room> {
    pub(crate) fn new(room: &'room Room) -> Threads<'room> {
        Threads { room }
    }

    /// Creates a thread.
    pub async fn create(&self, title: Option<Title>, metadata: Metadata) -> Result<ThreadInfo, RoomError> {
        in_one_generation!(self.room, self.create_once(title.clone(), metadata.clone()))
    }

    async fn create_once(&self, title: Option<Title>, metadata: Metadata) -> Result<ThreadInfo, RoomError> {
        let id = ThreadId::generate();
        let now = unix_now_secs();
        let stored = StoredThread {
            owner: *self.room.id().as_bytes(),
            id: *id.as_bytes(),
            title: title.map(|title| title.as_str().to_owned()),
            metadata_json: serde_json::Value::Object(metadata.as_map().clone()).to_string(),
            created_at: now,
            updated_at: now,
            next_sequence: 1,
            message_count: 0,
        };
        let key = thread_key(&id);
        for _ in 0..WRITE_CONFLICT_RETRIES_MAX {
            let keys = self.room.write_keys().await?;
            let value = self.room.seal(&keys, Collection::Threads, &key, &stored)?;
            let operations =
                vec![Operation::Put { collection: Collection::Threads, key: key.clone(), value, expires_at: None }];
            let quotas = vec![
                Quota::Records { collection: Collection::Threads, max: self.room.limits().threads_per_room_max },
                self.room.room_bytes_quota(),
            ];
            match self
                .room
                .commit(&keys, vec![Check::Absent(Collection::Threads, key.clone())], operations, quotas)
                .await
            {
                Ok(_) => return Ok(info_of(&stored)),
                Err(WriteFailure::Retry) => continue,
                Err(WriteFailure::Failed(error)) => return Err(error),
            }
        }
        Err(RoomError::Conflict)
    }

    /// Reads a thread header with its version (for optimistic concurrency).
    async fn load(&self, id: &ThreadId) -> Result<Option<(StoredThread, i64)>, RoomError> {
        let Some(keys) = self.room.read_keys().await? else {
            return Ok(None);
        };
        let key = thread_key(id);
        let Some(record) = self.room.get_record(&keys, Collection::Threads, &key).await? else {
            return Ok(None);
        };
        let stored: StoredThread = self.room.open(&keys, Collection::Threads, &record).await?;
        if stored.id != *id.as_bytes() {
            self.room.raise(Collection::Threads, super::AlarmKind::NameMismatch);
            return Err(RoomError::IsolationAlarm);
        }
        Ok(Some((stored, record.version)))
    }

    /// One thread's header.
    pub async fn get(&self, id: &ThreadId) -> Result<ThreadInfo, RoomError> {
        in_one_generation!(self.room, self.get_once(id))
    }

    async fn get_once(&self, id: &ThreadId) -> Result<ThreadInfo, RoomError> {
        let (stored, _) = self.load(id).await?.ok_or(RoomError::NotFound)?;
        Ok(info_of(&stored))
    }

    /// Threads in creation order, after the cursor.
    pub async fn list(
        &self,
        after: Option<ThreadId>,
        limit: PageSize,
    ) -> Result<Page<ThreadInfo, ThreadId>, RoomError> {
        in_one_generation!(self.room, self.list_once(after, limit))
    }

    async fn list_once(
        &self,
        after: Option<ThreadId>,
        limit: PageSize,
    ) -> Result<Page<ThreadInfo, ThreadId>, RoomError> {
        let Some(keys) = self.room.read_keys().await? else {
            return Ok(Page { entries: Vec::new(), next: None });
        };
        let range = Range {
            start: None,
            end: None,
            collection: Collection::Threads,
            prefix: Vec::new(),
            after: after.map(|id| id.as_bytes().to_vec()),
            reverse: false,
            limit: limit.get() + 1,
        };
        let records = self.room.range_records(&keys, &range).await?;
        let mut entries = Vec::with_capacity(records.len().min(limit.get()));
        for record in records.iter().take(limit.get()) {
            let stored: StoredThread = self.room.open(&keys, Collection::Threads, record).await?;
            entries.push(info_of(&stored));
        }
        let next = (records.len() > limit.get()).then(|| entries.last().map(|last| last.id)).flatten();
        Ok(Page { entries, next })
    }

    /// Changes a thread's title or metadata.
    pub async fn update(&self, id: &ThreadId, patch: ThreadPatch) -> Result<ThreadInfo, RoomError> {
        in_one_generation!(self.room, self.update_once(id, &patch))
    }

    async fn update_once(&self, id: &ThreadId, patch: &ThreadPatch) -> Result<ThreadInfo, RoomError> {
        self.room.require_write()?;
        let _guard = self.room.lock_record(Collection::Threads, &thread_key(id)).await;
        for attempt in 0..WRITE_CONFLICT_RETRIES_MAX {
            if attempt > 0 {
                conflict_backoff(attempt).await;
            }
            let (mut stored, version) = self.load(id).await?.ok_or(RoomError::NotFound)?;
            if let Some(title) = &patch.title {
                stored.title = title.as_ref().map(|title| title.as_str().to_owned());
            }
            if let Some(metadata) = &patch.metadata {
                stored.metadata_json = serde_json::Value::Object(metadata.as_map().clone()).to_string();
            }
            stored.updated_at = unix_now_secs();
            let keys = self.room.write_keys().await?;
            let key = thread_key(id);
            let value = self.room.seal(&keys, Collection::Threads, &key, &stored)?;
            let checks = vec![Check::Version(Collection::Threads, key.clone(), version)];
            let operations = vec![Operation::Put { collection: Collection::Threads, key, value, expires_at: None }];
            match self.room.commit(&keys, checks, operations, vec![self.room.room_bytes_quota()]).await {
                Ok(_) => return Ok(info_of(&stored)),
                Err(WriteFailure::Retry) => continue,
                Err(WriteFailure::Failed(error)) => return Err(error),
            }
        }
        Err(RoomError::Conflict)
    }

    /// Deletes a thread and all its messages.
    pub async fn delete(&self, id: &ThreadId) -> Result<(), RoomError> {
        in_one_generation!(self.room, self.delete_once(id))
    }

    async fn delete_once(&self, id: &ThreadId) -> Result<(), RoomError> {
        self.room.require_write()?;
        let _guard = self.room.lock_record(Collection::Threads, &thread_key(id)).await;
        for attempt in 0..WRITE_CONFLICT_RETRIES_MAX {
            if attempt > 0 {
                conflict_backoff(attempt).await;
            }
            let Some(keys) = self.room.read_keys().await? else {
                return Err(RoomError::NotFound);
            };
            let key = thread_key(id);
            if self.room.get_record(&keys, Collection::Threads, &key).await?.is_none() {
                return Err(RoomError::NotFound);
            }
            let checks = vec![Check::Exists(Collection::Threads, key.clone())];
            // What was cached may derive from this thread: the room's caches go with it.
            let operations = vec![
                Operation::Delete { collection: Collection::Threads, key },
                Operation::DeletePrefix { collection: Collection::Messages, prefix: id.as_bytes().to_vec() },
                Operation::DeletePrefix { collection: Collection::ToolCache, prefix: Vec::new() },
                Operation::DeletePrefix { collection: Collection::ResponseCache, prefix: Vec::new() },
            ];
            match self.room.commit(&keys, checks, operations, Vec::new()).await {
                Ok(_) => {
                    self.room.shared().fronts.forget(&self.room.id());
                    return Ok(());
                }
                Err(WriteFailure::Retry) => continue,
                Err(WriteFailure::Failed(error)) => return Err(error),
            }
        }
        Err(RoomError::Conflict)
    }

    /// Appends messages to a thread atomically, in order.
    pub async fn append(&self, id: &ThreadId, messages: Vec<NewMessage>) -> Result<Vec<Message>, RoomError> {
        in_one_generation!(self.room, self.append_once(id, &messages))
    }

    async fn append_once(&self, id: &ThreadId, messages: &[NewMessage]) -> Result<Vec<Message>, RoomError> {
        self.room.require_write()?;
        if messages.is_empty() || messages.len() > MESSAGES_PER_APPEND_MAX {
            return Err(super::InputError::new(
                "messages",
                format!("must hold 1 to {MESSAGES_PER_APPEND_MAX} messages"),
            )
            .into());
        }
        let _guard = self.room.lock_record(Collection::Threads, &thread_key(id)).await;
        for attempt in 0..WRITE_CONFLICT_RETRIES_MAX {
            if attempt > 0 {
                conflict_backoff(attempt).await;
            }
            let (mut thread, version) = self.load(id).await?.ok_or(RoomError::NotFound)?;
            let count = u64::try_from(messages.len()).unwrap_or(u64::MAX);
            if thread.message_count.saturating_add(count) > self.room.limits().messages_per_thread_max {
                return Err(RoomError::QuotaExceeded("messages per thread"));
            }
            let now = unix_now_secs();
            let stored: Vec<StoredMessage> = messages
                .iter()
                .enumerate()
                .map(|(offset, message)| StoredMessage {
                    owner: *self.room.id().as_bytes(),
                    thread: *id.as_bytes(),
                    sequence: thread.next_sequence + offset as u64,
                    role: message.role().as_str().to_owned(),
                    content: message.content().to_owned(),
                    name: message.name().map(str::to_owned),
                    metadata_json: serde_json::Value::Object(message.metadata().as_map().clone()).to_string(),
                    created_at: now,
                    // Through the user's own API, an assistant turn is the model's and a tool turn
                    // a tool's; through MCP (a model-driven client) everything is `mcp`.
                    origin: Some(match (self.room.origin(), message.role().as_str()) {
                        (Origin::User, "assistant") => Origin::Model,
                        (Origin::User, "tool") => Origin::Tool,
                        (origin, _) => origin,
                    }),
                })
                .collect();
            thread.next_sequence += count;
            thread.message_count += count;
            thread.updated_at = now;
            let keys = self.room.write_keys().await?;
            let key = thread_key(id);
            let mut operations = Vec::with_capacity(stored.len() + 1);
            operations.push(Operation::Put {
                collection: Collection::Threads,
                key: key.clone(),
                value: self.room.seal(&keys, Collection::Threads, &key, &thread)?,
                expires_at: None,
            });
            for message in &stored {
                let message_key = message_key(id, message.sequence);
                let value = self.room.seal(&keys, Collection::Messages, &message_key, message)?;
                operations.push(Operation::Put {
                    collection: Collection::Messages,
                    key: message_key,
                    value,
                    expires_at: None,
                });
            }
            let checks = vec![Check::Version(Collection::Threads, key, version)];
            match self.room.commit(&keys, checks, operations, vec![self.room.room_bytes_quota()]).await {
                Ok(_) => return Ok(stored.iter().filter_map(message_of).collect()),
                Err(WriteFailure::Retry) => continue,
                Err(WriteFailure::Failed(error)) => return Err(error),
            }
        }
        Err(RoomError::Conflict)
    }

    /// Messages of a thread in order, after sequence number `after`.
    pub async fn messages(
        &self,
        id: &ThreadId,
        after: Option<u64>,
        limit: PageSize,
    ) -> Result<Page<Message, u64>, RoomError> {
        in_one_generation!(self.room, self.messages_once(id, after, limit))
    }

    async fn messages_once(
        &self,
        id: &ThreadId,
        after: Option<u64>,
        limit: PageSize,
    ) -> Result<Page<Message, u64>, RoomError> {
        if self.load(id).await?.is_none() {
            return Err(RoomError::NotFound);
        }
        let keys = self.room.read_keys().await?.ok_or(RoomError::NotFound)?;
        let range = Range {
            start: None,
            end: None,
            collection: Collection::Messages,
            prefix: id.as_bytes().to_vec(),
            after: after.map(|sequence| message_key(id, sequence).as_bytes().to_vec()),
            reverse: false,
            limit: limit.get() + 1,
        };
        let records = self.room.range_records(&keys, &range).await?;
        let mut entries = Vec::with_capacity(records.len().min(limit.get()));
        for record in records.iter().take(limit.get()) {
            entries.push(self.open_message(&keys, id, record).await?);
        }
        let next = (records.len() > limit.get()).then(|| entries.last().map(|last| last.sequence)).flatten();
        Ok(Page { entries, next })
    }

    async fn open_message(
        &self,
        keys: &std::sync::Arc<crate::seal::RoomKeys>,
        id: &ThreadId,
        record: &crate::store::StoredRecord,
    ) -> Result<Message, RoomError> {
        let stored: StoredMessage = self.room.open(keys, Collection::Messages, record).await?;
        if stored.thread != *id.as_bytes() || record.key != message_key(id, stored.sequence) {
            self.room.raise(Collection::Messages, super::AlarmKind::NameMismatch);
            return Err(RoomError::IsolationAlarm);
        }
        message_of(&stored).ok_or(RoomError::IsolationAlarm)
    }

    /// The most recent messages that fit `budget` tokens, oldest first.
    pub async fn context(&self, id: &ThreadId, budget: TokenBudget) -> Result<ContextView, RoomError> {
        in_one_generation!(self.room, self.context_once(id, budget))
    }

    async fn context_once(&self, id: &ThreadId, budget: TokenBudget) -> Result<ContextView, RoomError> {
        if self.load(id).await?.is_none() {
            return Err(RoomError::NotFound);
        }
        let keys = self.room.read_keys().await?.ok_or(RoomError::NotFound)?;
        let mut newest_first = Vec::new();
        let mut tokens = 0usize;
        let mut before: Option<Vec<u8>> = None;
        loop {
            let range = Range {
                start: None,
                end: None,
                collection: Collection::Messages,
                prefix: id.as_bytes().to_vec(),
                after: before.clone(),
                reverse: true,
                limit: CONTEXT_CHUNK_MESSAGES,
            };
            let records = self.room.range_records(&keys, &range).await?;
            let exhausted = records.len() < CONTEXT_CHUNK_MESSAGES;
            for record in &records {
                let message = self.open_message(&keys, id, record).await?;
                let cost = estimate_tokens(&message.content);
                if tokens + cost > budget.get() {
                    newest_first.reverse();
                    return Ok(ContextView { messages: newest_first, tokens_estimated: tokens, truncated: true });
                }
                tokens += cost;
                newest_first.push(message);
            }
            if exhausted {
                newest_first.reverse();
                return Ok(ContextView { messages: newest_first, tokens_estimated: tokens, truncated: false });
            }
            before = records.last().map(|record| record.key.as_bytes().to_vec());
        }
    }
}

fn info_of(stored: &StoredThread) -> ThreadInfo {
    ThreadInfo {
        id: ThreadId::from_bytes(stored.id),
        title: stored.title.clone(),
        metadata: Metadata::from_stored(codec::json_map(&stored.metadata_json)),
        created_at: stored.created_at,
        updated_at: stored.updated_at,
        message_count: stored.message_count,
    }
}

fn message_of(stored: &StoredMessage) -> Option<Message> {
    Some(Message {
        thread_id: ThreadId::from_bytes(stored.thread),
        sequence: stored.sequence,
        role: MessageRole::parse(&stored.role).ok()?,
        content: stored.content.clone(),
        name: stored.name.clone(),
        metadata: Metadata::from_stored(codec::json_map(&stored.metadata_json)),
        created_at: stored.created_at,
        origin: stored.origin,
    })
}
