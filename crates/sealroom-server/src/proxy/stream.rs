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
    /// The rehydration state of each streamed text: a choice's content (`None`) or one of its
    /// tool calls' arguments (`Some(tool call index)`), by choice index.
    streams: BTreeMap<(u64, Option<u64>), StreamRehydrator>,
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
        let first_choice = event["choices"]
            .as_array()
            .and_then(|choices| choices.iter().find(|choice| choice["index"].as_u64().unwrap_or(0) == 0));
        if let Some(text) = first_choice.and_then(|choice| choice["delta"]["content"].as_str()) {
            self.content.push_str(text);
        }
        if event.get("choices").is_some() {
            self.last_event = Some(event.clone());
        }
        rewritten.then(|| format!("data: {event}"))
    }

    /// Rehydrates each choice's delta in `event` (its text and its tool calls' arguments);
    /// returns whether anything changed. A finishing choice gets everything held back for it.
    fn rehydrate(&mut self, event: &mut Value) -> bool {
        let mut changed = false;
        for choice in event.get_mut("choices").and_then(Value::as_array_mut).into_iter().flatten() {
            let Some(choice) = choice.as_object_mut() else { continue };
            let index = choice.get("index").and_then(Value::as_u64).unwrap_or(0);
            let finishing = choice.get("finish_reason").is_some_and(|reason| !reason.is_null());
            if !choice.get("delta").is_some_and(Value::is_object) {
                if !finishing {
                    continue;
                }
                choice.insert("delta".into(), Value::Object(serde_json::Map::new()));
            }
            let Some(delta) = choice.get_mut("delta").and_then(Value::as_object_mut) else { continue };
            let stream = self.streams.entry((index, None)).or_insert_with(|| self.rehydrator.stream());
            changed |= rehydrate_piece(delta, "content", stream, finishing);
            let mut calls_seen = Vec::new();
            for call in delta.get_mut("tool_calls").and_then(Value::as_array_mut).into_iter().flatten() {
                let call_index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
                calls_seen.push(call_index);
                let Some(function) = call.get_mut("function").and_then(Value::as_object_mut) else { continue };
                let stream = self
                    .streams
                    .entry((index, Some(call_index)))
                    .or_insert_with(|| self.rehydrator.stream_json_escaped());
                changed |= rehydrate_piece(function, "arguments", stream, finishing);
            }
            if finishing {
                // Arguments held back for tool calls this event does not name.
                let held: Vec<(u64, String)> = self
                    .streams
                    .iter_mut()
                    .filter(|((choice_index, call), _)| {
                        *choice_index == index && call.is_some_and(|call| !calls_seen.contains(&call))
                    })
                    .map(|((_, call), stream)| (call.unwrap_or(0), stream.finish()))
                    .filter(|(_, rest)| !rest.is_empty())
                    .collect();
                if !held.is_empty() {
                    let calls = delta.entry("tool_calls").or_insert_with(|| Value::Array(Vec::new()));
                    if let Some(calls) = calls.as_array_mut() {
                        for (call_index, rest) in held {
                            calls.push(serde_json::json!({"index": call_index, "function": {"arguments": rest}}));
                        }
                        changed = true;
                    }
                }
            }
        }
        changed
    }

    /// Text still held back when the stream says `[DONE]` (an upstream that never finished a
    /// choice): an event of its own, then `[DONE]`.
    fn flush_before_done(&mut self) -> Option<String> {
        let mut deltas: BTreeMap<u64, serde_json::Map<String, Value>> = BTreeMap::new();
        for ((index, call), stream) in &mut self.streams {
            let rest = stream.finish();
            if rest.is_empty() {
                continue;
            }
            let delta = deltas.entry(*index).or_default();
            match call {
                None => {
                    if *index == 0 {
                        self.content.push_str(&rest);
                    }
                    delta.insert("content".into(), Value::String(rest));
                }
                Some(call) => {
                    let calls = delta.entry("tool_calls").or_insert_with(|| Value::Array(Vec::new()));
                    if let Some(calls) = calls.as_array_mut() {
                        calls.push(serde_json::json!({"index": call, "function": {"arguments": rest}}));
                    }
                }
            }
        }
        if deltas.is_empty() {
            return None;
        }
        let choices: Vec<Value> = deltas
            .into_iter()
            .map(|(index, delta)| serde_json::json!({"index": index, "delta": delta, "finish_reason": null}))
            .collect();
        let mut event =
            self.last_event.clone().unwrap_or_else(|| serde_json::json!({"object": "chat.completion.chunk"}));
        if let Some(event) = event.as_object_mut() {
            // The template is only for the event's identity; its usage was reported already.
            event.remove("usage");
        }
        event["choices"] = Value::Array(choices);
        Some(format!("data: {event}\n\ndata: [DONE]"))
    }
}

/// Rehydrates `object[field]` (a piece of streamed text) through `stream`, adding what it held
/// back if `finishing`; returns whether the field changed.
fn rehydrate_piece(
    object: &mut serde_json::Map<String, Value>,
    field: &str,
    stream: &mut StreamRehydrator,
    finishing: bool,
) -> bool {
    let original = object.get(field).and_then(Value::as_str).map(str::to_owned);
    let mut text = original.as_deref().map(|piece| stream.push(piece)).unwrap_or_default();
    if finishing {
        text.push_str(&stream.finish());
    }
    let unchanged = original.as_deref() == Some(text.as_str()) || (original.is_none() && text.is_empty());
    if !unchanged {
        object.insert(field.to_owned(), Value::String(text));
    }
    !unchanged
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

    /// A rehydrator that knows the pseudonym of `value`, and that pseudonym.
    fn rehydrator_for(value: &str) -> (Rehydrator, String) {
        let policies = sealroom::boundary::Policies::default();
        let mut masker = sealroom::boundary::Masker::new(
            &policies,
            sealroom::rooms::PseudonymSecret::from_bytes([9; 32]),
            Vec::new(),
        );
        let masked = masker.mask(value).expect("masked");
        (masker.rehydrator(), masked)
    }

    fn event(choices: serde_json::Value) -> String {
        format!("data: {}\n\n", serde_json::json!({"id": "c", "object": "chat.completion.chunk", "choices": choices}))
    }

    fn streamed_text(forwarded: &[u8], pointer: &str) -> String {
        String::from_utf8_lossy(forwarded)
            .lines()
            .filter_map(|line| line.strip_prefix("data: "))
            .filter_map(|data| serde_json::from_str::<serde_json::Value>(data).ok())
            .filter(|event| event.pointer("/choices/0/index").and_then(|index| index.as_u64()).unwrap_or(0) == 0)
            .filter_map(|event| event.pointer(pointer).and_then(|text| text.as_str()).map(str::to_owned))
            .collect()
    }

    /// Regressions from the review: tool-call arguments are rehydrated in streams too (escaped
    /// for JSON), text held back is flushed by a finishing event without a delta, only the
    /// first choice is collected for the thread, and the flushing event repeats no usage.
    #[test]
    fn streamed_tool_calls_other_choices_and_finishing_events_are_rehydrated() {
        let (rehydrator, placeholder) = rehydrator_for("ana@example.org");
        let (head, tail) = placeholder.split_at(5);
        let mut collected = Collected::new(rehydrator);
        let mut forwarded = Vec::new();
        for line in [
            event(
                serde_json::json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": format!("{{\"to\": \"{head}")}}]}}]),
            ),
            event(
                serde_json::json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": format!("{tail}\"}}")}}]}}]),
            ),
            event(serde_json::json!([{"index": 1, "delta": {"content": "other choice"}}])),
            event(serde_json::json!([{"index": 0, "delta": {"content": format!("mail {head}")}}])),
            event(serde_json::json!([{"index": 0, "delta": {"content": format!("{tail} or [EM")}}])),
            event(serde_json::json!([{"index": 0, "finish_reason": "stop"}])),
            "data: [DONE]\n\n".to_owned(),
        ] {
            forwarded.extend(collected.feed(line.as_bytes()));
        }
        let arguments = streamed_text(&forwarded, "/choices/0/delta/tool_calls/0/function/arguments");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&arguments).expect("JSON"),
            serde_json::json!({"to": "ana@example.org"})
        );
        let expected = "mail ana@example.org or [EM";
        assert_eq!(
            streamed_text(&forwarded, "/choices/0/delta/content"),
            expected,
            "held back until the finishing event"
        );
        assert_eq!(collected.content, expected, "only the first choice is the stored answer");

        let mut collected = Collected::new(rehydrator_for("ana@example.org").0);
        let usage = format!(
            "data: {}\n\n",
            serde_json::json!({"id": "c", "choices": [{"index": 0, "delta": {"content": head}}], "usage": {"total_tokens": 3}})
        );
        let mut forwarded = collected.feed(usage.as_bytes());
        forwarded.extend(collected.feed(b"data: [DONE]\n\n"));
        let text = String::from_utf8(forwarded).expect("utf-8");
        assert_eq!(text.matches("total_tokens").count(), 1, "{text}");
        assert_eq!(collected.content, head, "held-back text that never became a placeholder is sent as it is");
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
