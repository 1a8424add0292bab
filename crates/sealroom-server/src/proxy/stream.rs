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

use bytes::Bytes;
use futures::{SinkExt, StreamExt};

/// The error event that replaces an upstream's own in a stream.
const STREAM_ERROR_EVENT: &str = r#"data: {"error":{"message":"the model upstream failed","type":"upstream_error","code":"upstream_failed","param":null}}"#;

/// Text collected from a stream's `data:` events.
#[derive(Default)]
pub struct Collected {
    /// Bytes of a line not yet complete (a line may be split across chunks, and a character
    /// across lines' chunks, so bytes are kept until the newline).
    pending: Vec<u8>,
    pub content: String,
    pub finished: bool,
}

impl Collected {
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
    fn read_line(&mut self, line: &[u8]) -> Option<&'static str> {
        let line = std::str::from_utf8(line).ok()?.trim_end_matches(['\r', '\n']);
        let data = line.strip_prefix("data:")?.trim();
        if data == "[DONE]" {
            self.finished = true;
            return None;
        }
        let event = serde_json::from_str::<serde_json::Value>(data).ok()?;
        if event.get("error").is_some() {
            return Some(STREAM_ERROR_EVENT);
        }
        if let Some(text) = event["choices"][0]["delta"]["content"].as_str() {
            self.content.push_str(text);
        }
        None
    }
}

/// Relays `upstream` into `sender`; returns what was collected, or `None` if the client went
/// away or the upstream failed before finishing.
pub async fn relay(
    upstream: reqwest::Response,
    mut sender: futures::channel::mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Option<Collected> {
    let mut collected = Collected::default();
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
