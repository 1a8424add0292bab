//! What sealroom sends to the upstreams it is configured with (the model proxy, the embeddings
//! service): an HTTP client that never follows a redirect, since a redirect could carry the
//! request and its key elsewhere, and the API key, read only from configuration.

use std::time::Duration;

use sealroom::secrets::{SecretError, SecretSource};
use secrecy::SecretString;

/// A client for one upstream.
pub fn client(timeout: Duration, connect_timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client without custom TLS settings always builds")
}

/// The upstream's API key, if one is configured.
pub fn api_key(source: Option<&SecretSource>) -> Result<Option<SecretString>, SecretError> {
    source.map(SecretSource::read).transpose()
}
