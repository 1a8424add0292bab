//! Agent-framework checkpoints as the kernel speaks of them (LangGraph's model): a checkpoint is
//! an opaque serialized blob addressed by thread id, namespace and checkpoint id, with JSON
//! metadata the server can filter on, and pending writes of the tasks that ran after it.
//!
//! The blobs are the client serializer's bytes and type tag; the kernel seals and returns them
//! and never parses them.

use serde_json::{Map, Value};

use crate::limits::{
    CHECKPOINT_BLOB_BYTES_MAX, CHECKPOINT_LABEL_BYTES_MAX, CHECKPOINT_METADATA_BYTES_MAX, CHECKPOINT_TYPE_TAG_BYTES_MAX,
};
use crate::vocabulary::names::InputError;

/// A label a client chose (thread id, namespace, checkpoint id, task id, task path, channel):
/// at most [`CHECKPOINT_LABEL_BYTES_MAX`] bytes without control characters. Only the namespace
/// may be empty (the root namespace is `""`).
fn label(field: &'static str, text: &str, may_be_empty: bool) -> Result<String, InputError> {
    if text.is_empty() && !may_be_empty {
        return Err(InputError::new(field, "must not be empty"));
    }
    if text.len() > CHECKPOINT_LABEL_BYTES_MAX {
        return Err(InputError::new(field, format!("must be at most {CHECKPOINT_LABEL_BYTES_MAX} bytes")));
    }
    if text.chars().any(char::is_control) {
        return Err(InputError::new(field, "must not contain control characters"));
    }
    Ok(text.to_owned())
}

/// Where a checkpoint lives: its thread and namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CheckpointThread {
    pub thread_id: String,
    pub namespace: String,
}

impl CheckpointThread {
    pub fn parse(thread_id: &str, namespace: &str) -> Result<CheckpointThread, InputError> {
        Ok(CheckpointThread {
            thread_id: label("thread_id", thread_id, false)?,
            namespace: label("checkpoint_ns", namespace, true)?,
        })
    }
}

/// A thread id alone (for operations on every namespace of a thread).
pub fn parse_thread_id(field: &'static str, text: &str) -> Result<String, InputError> {
    label(field, text, false)
}

/// A checkpoint id (LangGraph's are UUIDv6 strings; compared as strings, newest greatest).
pub fn parse_checkpoint_id(field: &'static str, text: &str) -> Result<String, InputError> {
    label(field, text, false)
}

/// A serialized value: the serializer's type tag and its bytes (possibly empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypedBlob {
    pub type_tag: String,
    pub bytes: Vec<u8>,
}

impl TypedBlob {
    pub fn parse(field: &'static str, type_tag: &str, bytes: Vec<u8>) -> Result<TypedBlob, InputError> {
        if type_tag.is_empty()
            || type_tag.len() > CHECKPOINT_TYPE_TAG_BYTES_MAX
            || !type_tag.bytes().all(|byte| byte.is_ascii_graphic())
        {
            return Err(InputError::new(
                field,
                format!("type must be 1 to {CHECKPOINT_TYPE_TAG_BYTES_MAX} printable ASCII characters"),
            ));
        }
        if bytes.len() > CHECKPOINT_BLOB_BYTES_MAX {
            return Err(InputError::new(field, format!("must be at most {CHECKPOINT_BLOB_BYTES_MAX} bytes")));
        }
        Ok(TypedBlob { type_tag: type_tag.to_owned(), bytes })
    }
}

/// Checkpoint metadata: a JSON object the server filters on (`source`, `step`, `run_id`, …).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct CheckpointMetadata(Map<String, Value>);

impl CheckpointMetadata {
    pub fn parse(value: Option<Value>) -> Result<CheckpointMetadata, InputError> {
        let map = match value {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map,
            Some(_) => return Err(InputError::new("metadata", "must be a JSON object")),
        };
        if Value::Object(map.clone()).to_string().len() > CHECKPOINT_METADATA_BYTES_MAX {
            return Err(InputError::new("metadata", format!("must be at most {CHECKPOINT_METADATA_BYTES_MAX} bytes")));
        }
        Ok(CheckpointMetadata(map))
    }

    pub(crate) fn from_stored(map: Map<String, Value>) -> CheckpointMetadata {
        CheckpointMetadata(map)
    }

    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// Whether every key of `filter` has an equal value (numbers compared by value, so `1`
    /// equals `1.0`; objects and arrays compared whole; a missing key is `null`, as in
    /// LangGraph's own savers).
    pub fn matches(&self, filter: &Map<String, Value>) -> bool {
        filter.iter().all(|(key, wanted)| json_equal(self.0.get(key).unwrap_or(&Value::Null), wanted))
    }
}

fn json_equal(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(left), Value::Number(right)) => match (left.as_i64(), right.as_i64()) {
            (Some(left), Some(right)) => left == right,
            _ => left.as_f64() == right.as_f64(),
        },
        (Value::Array(left), Value::Array(right)) => {
            left.len() == right.len() && left.iter().zip(right).all(|(left, right)| json_equal(left, right))
        }
        (Value::Object(left), Value::Object(right)) => {
            left.len() == right.len()
                && left.iter().all(|(key, value)| right.get(key).is_some_and(|other| json_equal(value, other)))
        }
        _ => left == right,
    }
}

/// A pending write of a task, as a client sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPendingWrite {
    pub channel: String,
    /// The write's index within its task (negative for LangGraph's special channels: an error,
    /// an interrupt, a resume). A write at a non-negative index is stored only if none is there
    /// yet (a retried task does not duplicate it); a negative one replaces what is there.
    pub index: i64,
    pub value: TypedBlob,
}

impl NewPendingWrite {
    pub fn parse(channel: &str, index: i64, value: TypedBlob) -> Result<NewPendingWrite, InputError> {
        Ok(NewPendingWrite { channel: label("channel", channel, false)?, index, value })
    }
}

/// The task that made a set of pending writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WritingTask {
    pub task_id: String,
    pub task_path: String,
}

impl WritingTask {
    pub fn parse(task_id: &str, task_path: &str) -> Result<WritingTask, InputError> {
        Ok(WritingTask { task_id: label("task_id", task_id, false)?, task_path: label("task_path", task_path, true)? })
    }
}

/// A stored pending write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingWrite {
    pub task_id: String,
    pub task_path: String,
    pub channel: String,
    pub index: i64,
    pub value: TypedBlob,
}

/// A stored checkpoint with its pending writes, sorted by task path, task id and index.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointTuple {
    pub thread: CheckpointThread,
    pub checkpoint_id: String,
    pub parent_checkpoint_id: Option<String>,
    pub checkpoint: TypedBlob,
    pub metadata: CheckpointMetadata,
    pub pending_writes: Vec<PendingWrite>,
    pub created_at: i64,
}

/// Which checkpoints a listing returns (newest checkpoint id first).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CheckpointQuery {
    /// Only this thread (every thread of the room when absent).
    pub thread_id: Option<String>,
    /// Only this namespace (every namespace when absent).
    pub namespace: Option<String>,
    /// Only this checkpoint id.
    pub checkpoint_id: Option<String>,
    /// Only ids strictly less than this one.
    pub before: Option<String>,
    /// Metadata every returned checkpoint has (see [`CheckpointMetadata::matches`]).
    pub filter: Map<String, Value>,
}

/// Where a checkpoint listing continues: after this (checkpoint id, thread, namespace), in the
/// listing's order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointCursor {
    pub checkpoint_id: String,
    pub thread: CheckpointThread,
}

impl CheckpointCursor {
    /// An opaque URL-safe string.
    pub fn encode(&self) -> String {
        use base64::Engine;
        let parts = [&self.checkpoint_id, &self.thread.thread_id, &self.thread.namespace];
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&parts).unwrap_or_default())
    }

    pub fn parse(text: &str) -> Result<CheckpointCursor, InputError> {
        use base64::Engine;
        let invalid = || InputError::new("cursor", "is not a cursor this server issued");
        // Three labels at their longest, as JSON (escapes at most sixfold) in base64.
        if text.len() > 3 * 6 * CHECKPOINT_LABEL_BYTES_MAX * 4 / 3 + 64 {
            return Err(invalid());
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let [checkpoint_id, thread_id, namespace]: [String; 3] =
            serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        Ok(CheckpointCursor {
            checkpoint_id: parse_checkpoint_id("cursor", &checkpoint_id).map_err(|_| invalid())?,
            thread: CheckpointThread::parse(&thread_id, &namespace).map_err(|_| invalid())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_filters_compare_numbers_by_value_and_need_every_key() {
        let metadata = CheckpointMetadata::parse(Some(json!({"step": 1, "source": "loop", "score": 4.0})))
            .expect("valid in the test");
        let filter = |value: Value| value.as_object().expect("valid in the test").clone();
        assert!(metadata.matches(&filter(json!({"step": 1.0, "source": "loop"}))));
        assert!(metadata.matches(&filter(json!({"score": 4}))));
        assert!(!metadata.matches(&filter(json!({"step": 2}))));
        assert!(metadata.matches(&filter(json!({"missing": null}))));
        assert!(!metadata.matches(&filter(json!({"missing": 0}))));
        assert!(metadata.matches(&filter(json!({}))));
    }

    #[test]
    fn labels_refuse_control_characters_and_only_namespaces_may_be_empty() {
        assert!(CheckpointThread::parse("t", "").is_ok());
        assert!(CheckpointThread::parse("", "ns").is_err());
        assert!(CheckpointThread::parse("t\u{0}", "").is_err());
        assert!(CheckpointThread::parse(&"x".repeat(CHECKPOINT_LABEL_BYTES_MAX + 1), "").is_err());
        let cursor = CheckpointCursor {
            checkpoint_id: "1ef".into(),
            thread: CheckpointThread::parse("thread é", "a:b|c").expect("valid in the test"),
        };
        assert_eq!(CheckpointCursor::parse(&cursor.encode()).expect("valid in the test"), cursor);
        let longest = "\"".repeat(CHECKPOINT_LABEL_BYTES_MAX); // each quote is escaped in the JSON
        let cursor = CheckpointCursor {
            checkpoint_id: longest.clone(),
            thread: CheckpointThread::parse(&longest, &longest).expect("valid in the test"),
        };
        assert_eq!(CheckpointCursor::parse(&cursor.encode()).expect("the longest cursor parses"), cursor);
        assert!(CheckpointCursor::parse("not a cursor").is_err());
    }
}
