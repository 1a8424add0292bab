//! The model upstream: where the proxy sends requests, with which key. Both come from
//! configuration only. Nothing of the upstream's answers to a failed request is passed back to
//! clients (the proxy answers with its own codes), so they never carry the key or the URL.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::config::{UpstreamConfig, UpstreamFlavour};

/// The configured upstream.
pub struct Upstream {
    client: reqwest::Client,
    url: String,
    api_key: Option<SecretString>,
    pub config: UpstreamConfig,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "Upstream(flavour={:?})", self.config.flavour)
    }
}

/// Why the upstream could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("the model upstream did not answer in time")]
    Timeout,
    #[error("the model upstream is unreachable")]
    Unreachable,
}

impl Upstream {
    pub fn new(config: &UpstreamConfig) -> Result<Upstream, sealroom::secrets::SecretError> {
        Ok(Upstream {
            client: crate::outbound::client(Duration::from_secs(config.timeout_secs), Duration::from_secs(10)),
            url: format!("{}/chat/completions", config.base_url),
            api_key: crate::outbound::api_key(config.api_key.as_ref())?,
            config: config.clone(),
        })
    }

    pub fn flavour(&self) -> UpstreamFlavour {
        self.config.flavour
    }

    /// The upstream name of a client-facing model, if the client may use it.
    pub fn resolve_model(&self, requested: &str) -> Option<&str> {
        self.config.models.get(requested).map(String::as_str)
    }

    /// Sends a chat completion request.
    pub async fn send(&self, body: &serde_json::Value) -> Result<reqwest::Response, UpstreamError> {
        let mut request = self.client.post(&self.url).json(body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        request
            .send()
            .await
            .map_err(|error| if error.is_timeout() { UpstreamError::Timeout } else { UpstreamError::Unreachable })
    }
}
