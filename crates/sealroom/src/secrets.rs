//! Deployment secrets: loading them from a file or an environment variable, and generating them
//! into a fresh development data directory.
//!
//! A secret is 32 random bytes written as 64 hexadecimal characters. The bytes live in a
//! [`secrecy::SecretBox`] so they are zeroed on drop and never printed by `Debug`.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretBox};

/// Where a secret comes from. Production configures a file (mounted from a secret store) or an
/// environment variable; development generates a file in the data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// A file holding 64 hexadecimal characters (surrounding whitespace ignored).
    File(PathBuf),
    /// An environment variable holding 64 hexadecimal characters.
    Environment(String),
}

impl SecretSource {
    /// The text the source holds, without surrounding whitespace (a file's trailing newline is
    /// not part of a secret). For secrets that are not 32-byte keys, such as upstream API keys.
    pub fn read(&self) -> Result<secrecy::SecretString, SecretError> {
        let text = match self {
            SecretSource::File(path) => {
                std::fs::read_to_string(path).map_err(|source| SecretError::Read { path: path.clone(), source })?
            }
            SecretSource::Environment(name) => {
                std::env::var(name).map_err(|_| SecretError::MissingVariable(name.clone()))?
            }
        };
        let text = zeroize::Zeroizing::new(text);
        Ok(secrecy::SecretString::from(text.trim()))
    }

    /// How error messages name the source: the file's path or the variable's name.
    fn name(&self) -> String {
        match self {
            SecretSource::File(path) => path.display().to_string(),
            SecretSource::Environment(name) => name.clone(),
        }
    }
}

/// Why a secret could not be loaded. Messages name the source, never the content.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read secret file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write secret file {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("environment variable {0} is not set")]
    MissingVariable(String),
    #[error("{0} must hold exactly 64 hexadecimal characters (32 bytes)")]
    Malformed(String),
    #[error("cannot generate random bytes")]
    Random,
}

/// Thirty-two secret bytes.
pub struct Secret32 {
    bytes: SecretBox<[u8; 32]>,
}

impl std::fmt::Debug for Secret32 {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Secret32([redacted])")
    }
}

impl Secret32 {
    /// Wraps bytes the caller already holds (used for keys derived in memory).
    pub fn from_bytes(bytes: [u8; 32]) -> Secret32 {
        Secret32 { bytes: SecretBox::new(Box::new(bytes)) }
    }

    /// Fresh random bytes from the system generator.
    pub fn random() -> Result<Secret32, SecretError> {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| SecretError::Random)?;
        Ok(Secret32::from_bytes(bytes))
    }

    /// The secret bytes. Callers must not log or copy them into long-lived plain buffers.
    pub fn expose(&self) -> &[u8; 32] {
        self.bytes.expose_secret()
    }

    /// Loads a secret from its source.
    pub fn load(source: &SecretSource) -> Result<Secret32, SecretError> {
        parse_hex(source.read()?.expose_secret(), &source.name())
    }

    /// Loads the secret in `path`, or generates one there (mode 0600) when the file does not
    /// exist. Returns the secret and whether it was generated.
    pub fn load_or_generate(path: &Path) -> Result<(Secret32, bool), SecretError> {
        match Secret32::load(&SecretSource::File(path.to_path_buf())) {
            Ok(secret) => Ok((secret, false)),
            Err(SecretError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                let secret = Secret32::random()?;
                write_private_file(path, hex::encode(secret.expose()).as_bytes())?;
                Ok((secret, true))
            }
            Err(error) => Err(error),
        }
    }
}

fn parse_hex(text: &str, source_name: &str) -> Result<Secret32, SecretError> {
    let trimmed = text.trim();
    let mut bytes = [0u8; 32];
    if trimmed.len() != 64 || hex::decode_to_slice(trimmed, &mut bytes).is_err() {
        return Err(SecretError::Malformed(source_name.to_owned()));
    }
    Ok(Secret32::from_bytes(bytes))
}

/// Writes a new file readable only by its owner. Fails if the file exists, so a generated secret
/// never silently replaces one an operator put there.
pub fn write_private_file(path: &Path, contents: &[u8]) -> Result<(), SecretError> {
    let write = || -> std::io::Result<()> {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
        file.write_all(contents)?;
        file.sync_all()
    };
    write().map_err(|source| SecretError::Write { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secret_is_private_and_reloads() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("secret");
        let (first, generated) = Secret32::load_or_generate(&path).expect("generate");
        assert!(generated);
        let (second, generated_again) = Secret32::load_or_generate(&path).expect("reload");
        assert!(!generated_again);
        assert_eq!(first.expose(), second.expose());
        let mode = std::fs::metadata(&path).expect("metadata").permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
    }

    #[test]
    fn malformed_secret_names_its_source_not_its_content() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("secret");
        std::fs::write(&path, "not-hex-at-all").expect("write");
        let error = Secret32::load(&SecretSource::File(path.clone())).expect_err("malformed");
        let message = error.to_string();
        assert!(message.contains(&path.display().to_string()));
        assert!(!message.contains("not-hex-at-all"));
    }

    #[test]
    fn debug_never_shows_bytes() {
        let secret = Secret32::from_bytes([7u8; 32]);
        assert_eq!(format!("{secret:?}"), "Secret32([redacted])");
    }
}
