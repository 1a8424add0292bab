//! Relaying a streamed (SSE) answer to the client while collecting the assistant's text, so
//! the answer can be appended to the thread once the stream completes.
//!
//! Each request has its own upstream response and its own channel to its client: chunks of two
//! users' streams can never meet. If the client goes away, the relay stops reading the upstream
//! and nothing is stored.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};

/// Chunks buffered between the upstream and the client.
pub const RELAY_BUFFER_CHUNKS: usize = 32;

/// Text collected from a stream's `data:` events.
#[derive(Default)]
pub struct Collected {
    pending: String,
    pub content: String,
    pub finished: bool,
}

impl Collected {
    /// Feeds raw bytes; complete lines are parsed as SSE events.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.pending.push_str(&String::from_utf8_lossy(chunk));
        while let Some(end) = self.pending.find('\n') {
            let line: String = self.pending.drain(..=end).collect();
            let line = line.trim_end_matches(['\r', '\n']);
            let Some(data) = line.strip_prefix("data:") else { continue };
            let data = data.trim();
            if data == "[DONE]" {
                self.finished = true;
                continue;
            }
            if let Ok(event) = serde_json::from_str::<serde_json::Value>(data)
                && let Some(text) = event["choices"][0]["delta"]["content"].as_str()
            {
                self.content.push_str(text);
            }
        }
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
        collected.feed(&chunk);
        if sender.send(Ok(chunk)).await.is_err() {
            return None;
        }
    }
    collected.finished.then_some(collected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_is_collected_across_split_chunks() {
        let mut collected = Collected::default();
        collected.feed(b"data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\ndata: {\"choi");
        collected.feed(b"ces\":[{\"delta\":{\"content\":\"lo\"}}]}\n\ndata: [DONE]\n\n");
        assert_eq!(collected.content, "Hello");
        assert!(collected.finished);
    }
}
