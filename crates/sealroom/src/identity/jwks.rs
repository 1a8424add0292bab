//! JWKS key sets fetched from an identity provider, with bounded refresh.
//!
//! The rules, each a defence: keys are fetched only from the configured URL (never from a
//! token's `jku`/`x5u`), with a timeout, no redirects and a size cap; an unknown `kid` triggers
//! at most one fetch per cooldown, so a flood of garbage key ids cannot turn sealroom into a
//! traffic amplifier against the identity provider; unknown ids are remembered in a bounded
//! negative cache; and when a fetch fails, the last good key set keeps working.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::Jwk;

use super::keys::{VerifyingKey, from_jwk};
use crate::limits::{JWKS_BYTES_MAX, JWKS_FETCH_TIMEOUT_SECS, JWKS_KEYS_MAX, JWKS_NEGATIVE_CACHE_ENTRIES_MAX};

/// One issuer's remote key set.
pub(crate) struct JwksKeySet {
    url: String,
    allowed: Vec<Algorithm>,
    cooldown: Duration,
    client: reqwest::Client,
    /// The last key set that parsed; replaced only by a successful fetch.
    current: RwLock<Arc<Vec<VerifyingKey>>>,
    /// When the last fetch was attempted. Its lock is also the single-flight guard: concurrent
    /// requests with unknown ids wait for one fetch instead of starting their own.
    last_attempt: tokio::sync::Mutex<Option<Instant>>,
    /// Key ids that were not in the key set after the last refresh.
    unknown_key_ids: moka::sync::Cache<String, ()>,
    /// Fetches attempted, for tests and metrics.
    fetches: AtomicU64,
}

impl JwksKeySet {
    pub(crate) fn new(url: String, allowed: Vec<Algorithm>, cooldown: Duration) -> JwksKeySet {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(JWKS_FETCH_TIMEOUT_SECS))
            .connect_timeout(Duration::from_secs(JWKS_FETCH_TIMEOUT_SECS))
            .build()
            .expect("a client without custom TLS settings always builds");
        JwksKeySet {
            url,
            allowed,
            cooldown,
            client,
            current: RwLock::new(Arc::new(Vec::new())),
            last_attempt: tokio::sync::Mutex::new(None),
            unknown_key_ids: moka::sync::Cache::builder()
                .max_capacity(JWKS_NEGATIVE_CACHE_ENTRIES_MAX)
                .time_to_live(cooldown.max(Duration::from_secs(1)))
                .build(),
            fetches: AtomicU64::new(0),
        }
    }

    pub(crate) fn current(&self) -> Arc<Vec<VerifyingKey>> {
        self.current.read().expect("key set lock").clone()
    }

    pub(crate) fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Whether `key_id` was recently looked for and not found.
    pub(crate) fn known_unknown(&self, key_id: &str) -> bool {
        self.unknown_key_ids.contains_key(key_id)
    }

    pub(crate) fn remember_unknown(&self, key_id: &str) {
        self.unknown_key_ids.insert(key_id.to_owned(), ());
    }

    /// Fetches the key set unless a fetch was attempted within the cooldown.
    pub(crate) async fn refresh_if_due(&self) {
        let mut last_attempt = self.last_attempt.lock().await;
        if last_attempt.is_some_and(|at| at.elapsed() < self.cooldown) {
            return;
        }
        *last_attempt = Some(Instant::now());
        self.fetches.fetch_add(1, Ordering::Relaxed);
        match self.fetch().await {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), "refreshed JWKS key set");
                *self.current.write().expect("key set lock") = Arc::new(keys);
                self.unknown_key_ids.invalidate_all();
            }
            Err(problem) => {
                tracing::warn!(%problem, "JWKS fetch failed; keeping the last good key set");
            }
        }
    }

    async fn fetch(&self) -> Result<Vec<VerifyingKey>, String> {
        let mut response =
            self.client.get(&self.url).send().await.map_err(|error| format!("request failed: {error}"))?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(format!("status {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|error| format!("read failed: {error}"))? {
            if body.len() + chunk.len() > JWKS_BYTES_MAX {
                return Err(format!("document larger than {JWKS_BYTES_MAX} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        let keys = parse_key_set(&body, &self.allowed)?;
        if keys.is_empty() {
            return Err("no usable signing key in the document".into());
        }
        Ok(keys)
    }
}

/// Parses a JWKS document, keeping the usable keys and skipping (with a log line) the rest:
/// one unusable key, such as an HMAC key, must not disable the issuer's good keys.
pub(crate) fn parse_key_set(body: &[u8], allowed: &[Algorithm]) -> Result<Vec<VerifyingKey>, String> {
    let document: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| "the document is not JSON".to_owned())?;
    let Some(entries) = document.get("keys").and_then(serde_json::Value::as_array) else {
        return Err("the document has no \"keys\" array".into());
    };
    let mut keys = Vec::new();
    for entry in entries.iter().take(JWKS_KEYS_MAX) {
        let parsed = serde_json::from_value::<Jwk>(entry.clone()).map_err(|_| "malformed".to_owned());
        match parsed.and_then(|jwk| from_jwk(&jwk, allowed).map_err(|rejected| rejected.to_string())) {
            Ok(key) => keys.push(key),
            Err(reason) => tracing::warn!(%reason, "skipping a JWKS key"),
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_keys_in_a_key_set_are_skipped_not_fatal() {
        let document = serde_json::json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "mac"},
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "ed"},
        ]});
        let keys = parse_key_set(document.to_string().as_bytes(), &[Algorithm::EdDSA]).expect("parse");
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].key_id.as_deref(), Some("ed"));
    }

    #[test]
    fn garbage_documents_are_errors() {
        assert!(parse_key_set(b"not json", &[Algorithm::EdDSA]).is_err());
        assert!(parse_key_set(b"{\"keys\": 5}", &[Algorithm::EdDSA]).is_err());
    }
}
