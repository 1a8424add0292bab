//! Relaying a streamed (SSE) answer to the client while collecting the assistant's text, so
//! the answer can be appended to the thread once the stream completes.
//!
//! Each request has its own upstream response and its own channel to its client: chunks of two
//! users' streams can never meet. If the client goes away, the relay stops reading the upstream
//! and nothing is stored.
//!
//! The relay forwards whole lines, never raw chunks: an error event the upstream sends in the
//! middle of a stream is replaced by the proxy's own (the upstream's text is never echoed, as
//! for answers that are not streamed).
//!
//! Pseudonyms of the model boundary are rehydrated per choice as the text streams: the end of
//! a delta that may begin a placeholder is held back and sent with the next delta of that
//! choice, with its finishing event, or in an event of its own before `[DONE]`.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use sealroom::boundary::{Rehydrator, StreamRehydrator};
use serde_json::Value;

/// The error event that replaces an upstream's own in a stream.
const STREAM_ERROR_EVENT: &str = r#"data: {"error":{"message":"the model upstream failed","type":"upstream_error","code":"upstream_failed","param":null}}"#;

/// Text collected from a stream's `data:` events.
#[derive(Default)]
pub struct Collected {
    /// Bytes of a line not yet complete (a line may be split across chunks, and a character
    /// across lines' chunks, so bytes are kept until the newline).
    pending: Vec<u8>,
    /// The first choice's text as the client received it (rehydrated).
    pub content: String,
    pub finished: bool,
    rehydrator: Rehydrator,
    /// Each choice's rehydration state, by choice index.
    choices: BTreeMap<u64, StreamRehydrator>,
    /// The last event with choices, as the template of an event that flushes held-back text.
    last_event: Option<Value>,
}

impl Collected {
    /// A collector that rehydrates the pseudonyms `rehydrator` knows.
    pub fn new(rehydrator: Rehydrator) -> Collected {
        Collected { rehydrator, ..Collected::default() }
    }

    /// Feeds raw bytes; returns the complete lines to forward, each with its newline. `data:`
    /// events are parsed for the answer's text; an error event is replaced by the proxy's own.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(chunk);
        let Some(last_newline) = self.pending.iter().rposition(|byte| *byte == b'\n') else { return Vec::new() };
        let complete: Vec<u8> = self.pending.drain(..=last_newline).collect();
        let mut forwarded = Vec::with_capacity(complete.len());
        for line in complete.split_inclusive(|byte| *byte == b'\n') {
            match self.read_line(line) {
                Some(replacement) => {
                    forwarded.extend_from_slice(replacement.as_bytes());
                    forwarded.push(b'\n');
                }
                None => forwarded.extend_from_slice(line),
            }
        }
        forwarded
    }

    /// The bytes left when the stream ends without a final newline, handled as a last line.
    pub fn finish(&mut self) -> Vec<u8> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        self.pending.push(b'\n');
        self.feed(&[])
    }

    /// Reads one line; returns its replacement if it must not be forwarded as it is.
    fn read_line(&mut self, line: &[u8]) -> Option<String> {
        let line = std::str::from_utf8(line).ok()?.trim_end_matches(['\r', '\n']);
        let data = line.strip_prefix("data:")?.trim();
        if data == "[DONE]" {
            self.finished = true;
            return self.flush_before_done();
        }
        let mut event = serde_json::from_str::<Value>(data).ok()?;
        if event.get("error").is_some() {
            return Some(STREAM_ERROR_EVENT.to_owned());
        }
        let rewritten = !self.rehydrator.is_empty() && self.rehydrate(&mut event);
        if let Some(text) = event["choices"][0]["delta"]["content"].as_str() {
            self.content.push_str(text);
        }
        if event.get("choices").is_some() {
            self.last_event = Some(event.clone());
        }
        rewritten.then(|| format!("data: {event}"))
    }

    /// Rehydrates each choice's delta in `event`; returns whether anything changed.
    fn rehydrate(&mut self, event: &mut Value) -> bool {
        let mut changed = false;
        for choice in event.get_mut("choices").and_then(Value::as_array_mut).into_iter().flatten() {
            let index = choice["index"].as_u64().unwrap_or(0);
            let stream = self.choices.entry(index).or_insert_with(|| self.rehydrator.stream());
            let finishing = choice.get("finish_reason").is_some_and(|reason| !reason.is_null());
            let Some(delta) = choice.get_mut("delta").and_then(Value::as_object_mut) else { continue };
            let original = delta.get("content").and_then(Value::as_str).map(str::to_owned);
            let mut text = original.as_deref().map(|piece| stream.push(piece)).unwrap_or_default();
            if finishing {
                text.push_str(&stream.finish());
            }
            if original.as_deref() != Some(text.as_str()) && !(original.is_none() && text.is_empty()) {
                delta.insert("content".into(), Value::String(text));
                changed = true;
            }
        }
        changed
    }

    /// Text still held back when the stream says `[DONE]` (an upstream that never finished a
    /// choice): an event of its own, then `[DONE]`.
    fn flush_before_done(&mut self) -> Option<String> {
        let mut choices = Vec::new();
        for (index, stream) in &mut self.choices {
            let rest = stream.finish();
            if !rest.is_empty() {
                if *index == 0 {
                    self.content.push_str(&rest);
                }
                choices.push(serde_json::json!({"index": index, "delta": {"content": rest}, "finish_reason": null}));
            }
        }
        if choices.is_empty() {
            return None;
        }
        let mut event =
            self.last_event.clone().unwrap_or_else(|| serde_json::json!({"object": "chat.completion.chunk"}));
        event["choices"] = Value::Array(choices);
        Some(format!("data: {event}\n\ndata: [DONE]"))
    }
}

/// Relays `upstream` into `sender`; returns what was collected, or `None` if the client went
/// away or the upstream failed before finishing.
pub async fn relay(
    upstream: reqwest::Response,
    mut sender: futures::channel::mpsc::Sender<Result<Bytes, std::io::Error>>,
    rehydrator: Rehydrator,
) -> Option<Collected> {
    let mut collected = Collected::new(rehydrator);
    let mut chunks = upstream.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let Ok(chunk) = chunk else {
            let _ = sender.send(Err(std::io::Error::other("the upstream stream failed"))).await;
            return None;
        };
        let forwarded = collected.feed(&chunk);
        if !forwarded.is_empty() && sender.send(Ok(Bytes::from(forwarded))).await.is_err() {
            return None;
        }
    }
    let rest = collected.finish();
    if !rest.is_empty() && sender.send(Ok(Bytes::from(rest))).await.is_err() {
        return None;
    }
    collected.finished.then_some(collected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_collected_across_split_chunks() {
        let mut collected = Collected::default();
        let first = collected.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\ndata: {\"choi");
        let second = collected.feed(b"ces\":[{\"delta\":{\"content\":\"lo\"}}]}\n\ndata: [DONE]\n\n");
        assert_eq!(collected.content, "Hello");
        assert!(collected.finished);
        let forwarded = String::from_utf8([first, second].concat()).expect("utf-8");
        assert_eq!(forwarded.matches("data:").count(), 3, "every event is forwarded whole: {forwarded}");
    }

    #[test]
    fn an_upstream_error_event_is_replaced_never_echoed() {
        let mut collected = Collected::default();
        let forwarded =
            collected.feed(b"data: {\"error\":{\"message\":\"internal-detail sk-abc\",\"type\":\"x\"}}\n\n");
        let forwarded = String::from_utf8(forwarded).expect("utf-8");
        assert!(!forwarded.contains("internal-detail") && !forwarded.contains("sk-abc"), "{forwarded}");
        assert!(forwarded.contains("upstream_failed"));
    }
}
