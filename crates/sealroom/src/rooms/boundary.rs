//! What the model boundary needs of a room: the secret its pseudonyms are derived under, and
//! the room's named secrets (sealed like everything else; their values leave the room only to a
//! tool runtime that resolves a reference, and to the boundary that replaces them by reference).

use std::sync::Arc;

use aws_lc_rs::hmac;
use serde::{Deserialize, Serialize};

use super::codec::{Owned, Payload};
use super::{Room, RoomError, WriteFailure};
use crate::limits::{
    SECRET_NAME_BYTES_MAX, SECRET_VALUE_BYTES_MAX, SECRET_VALUE_CHARS_MIN, SECRETS_PER_ROOM_MAX,
    WRITE_CONFLICT_RETRIES_MAX,
};
use crate::seal::RoomKeys;
use crate::store::{Operation, Quota, Range};
use crate::vocabulary::clock::unix_now_secs;
use crate::vocabulary::names::InputError;
use crate::vocabulary::records::{Collection, RecordKey};

/// The key a room's pseudonyms are derived under: an HMAC key derived from the room's own key,
/// so pseudonyms differ between rooms and between generations of one room (an erased room's
/// pseudonyms mean nothing for its successor).
pub struct PseudonymSecret(hmac::Key);

impl std::fmt::Debug for PseudonymSecret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("PseudonymSecret(..)")
    }
}

impl PseudonymSecret {
    /// A secret from raw bytes (rooms derive theirs; tests make their own).
    pub fn from_bytes(bytes: [u8; 32]) -> PseudonymSecret {
        PseudonymSecret(hmac::Key::new(hmac::HMAC_SHA256, &bytes))
    }

    /// The tag of `parts` (length-prefixed, so no two lists of parts share a tag input).
    pub fn tag(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut context = hmac::Context::with_key(&self.0);
        for part in parts {
            context.update(&(part.len() as u64).to_be_bytes());
            context.update(part);
        }
        let mut tag = [0u8; 32];
        tag.copy_from_slice(context.sign().as_ref());
        tag
    }
}

/// A secret's name: 1 to [`SECRET_NAME_BYTES_MAX`] letters, digits, `_`, `-` or `.`, so a
/// reference `{{secret:NAME}}` is unambiguous in text.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretName(String);

impl SecretName {
    pub fn parse(name: &str) -> Result<SecretName, InputError> {
        let valid = !name.is_empty()
            && name.len() <= SECRET_NAME_BYTES_MAX
            && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.'));
        if valid {
            Ok(SecretName(name.to_owned()))
        } else {
            let problem = format!("must be 1 to {SECRET_NAME_BYTES_MAX} letters, digits, '_', '-' or '.'");
            Err(InputError::new("name", problem))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A secret's value: [`SECRET_VALUE_CHARS_MIN`] characters to [`SECRET_VALUE_BYTES_MAX`] bytes.
pub struct SecretValue(zeroize::Zeroizing<String>);

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("SecretValue(..)")
    }
}

impl SecretValue {
    pub fn parse(value: String) -> Result<SecretValue, InputError> {
        if value.chars().count() < SECRET_VALUE_CHARS_MIN || value.len() > SECRET_VALUE_BYTES_MAX {
            let problem = format!(
                "must be at least {SECRET_VALUE_CHARS_MIN} characters (so it can be found in text) and at most \
                 {SECRET_VALUE_BYTES_MAX} bytes"
            );
            return Err(InputError::new("value", problem));
        }
        Ok(SecretValue(zeroize::Zeroizing::new(value)))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// What may be said about a stored secret: its name and dates, never its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretInfo {
    pub name: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Serialize, Deserialize, Clone)]
pub(crate) struct StoredSecret {
    pub owner: [u8; 32],
    pub name: String,
    pub value: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Owned for StoredSecret {
    fn owner(&self) -> &[u8; 32] {
        &self.owner
    }
}

impl Payload for StoredSecret {}

impl Drop for StoredSecret {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.value);
    }
}

fn secret_key(keys: &RoomKeys, name: &SecretName) -> RecordKey {
    RecordKey::new(keys.index_hash(b"secret-name", &[name.as_str().as_bytes()])[..16].to_vec())
}

/// The named secrets of one room.
pub struct Secrets<'room> {
    room: &'room Room,
}

impl<'room> Secrets<'room> {
    pub(super) fn new(room: &'room Room) -> Secrets<'room> {
        Secrets { room }
    }

    /// Stores or replaces a secret; returns whether it is new.
    pub async fn put(&self, name: &SecretName, value: &SecretValue) -> Result<bool, RoomError> {
        in_one_generation!(self.room, self.put_once(name, value))
    }

    /// Removes a secret; returns whether it existed.
    pub async fn delete(&self, name: &SecretName) -> Result<bool, RoomError> {
        in_one_generation!(self.room, self.delete_once(name))
    }

    /// The names of the room's secrets, in name order; never their values.
    pub async fn list(&self) -> Result<Vec<SecretInfo>, RoomError> {
        let mut infos: Vec<SecretInfo> = in_one_generation!(self.room, self.all_once())?
            .iter()
            .map(|secret| SecretInfo {
                name: secret.name.clone(),
                created_at: secret.created_at,
                updated_at: secret.updated_at,
            })
            .collect();
        infos.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(infos)
    }

    /// A secret's value, for a tool runtime resolving a reference (the server lets only a
    /// token with the resolve role call this).
    pub async fn resolve(&self, name: &SecretName) -> Result<Option<SecretValue>, RoomError> {
        in_one_generation!(self.room, self.resolve_once(name))
    }

    /// Every secret as (name, value), for the model boundary to replace values by reference.
    pub async fn for_boundary(&self) -> Result<Vec<(String, String)>, RoomError> {
        let secrets = in_one_generation!(self.room, self.all_once())?;
        Ok(secrets.iter().map(|secret| (secret.name.clone(), secret.value.clone())).collect())
    }

    async fn put_once(&self, name: &SecretName, value: &SecretValue) -> Result<bool, RoomError> {
        for _ in 0..WRITE_CONFLICT_RETRIES_MAX {
            let keys = self.room.write_keys().await?;
            let key = secret_key(&keys, name);
            let existing = self.read(&keys, &key, name).await?;
            let now = unix_now_secs();
            let stored = StoredSecret {
                owner: *self.room.id().as_bytes(),
                name: name.as_str().to_owned(),
                value: value.expose().to_owned(),
                created_at: existing.as_ref().map_or(now, |secret| secret.created_at),
                updated_at: now,
            };
            let sealed = self.room.seal(&keys, Collection::Secrets, &key, &stored)?;
            let operations =
                vec![Operation::Put { collection: Collection::Secrets, key, value: sealed, expires_at: None }];
            let quotas = vec![
                Quota::Records { collection: Collection::Secrets, max: SECRETS_PER_ROOM_MAX },
                self.room.room_bytes_quota(),
            ];
            match self.room.commit(&keys, Vec::new(), operations, quotas).await {
                Ok(_) => return Ok(existing.is_none()),
                Err(WriteFailure::Retry) => continue,
                Err(WriteFailure::Failed(error)) => return Err(error),
            }
        }
        Err(RoomError::Conflict)
    }

    async fn delete_once(&self, name: &SecretName) -> Result<bool, RoomError> {
        self.room.require_write()?;
        let Some(keys) = self.room.read_keys().await? else { return Ok(false) };
        let key = secret_key(&keys, name);
        if self.read(&keys, &key, name).await?.is_none() {
            return Ok(false);
        }
        let operations = vec![Operation::Delete { collection: Collection::Secrets, key }];
        match self.room.commit(&keys, Vec::new(), operations, Vec::new()).await {
            Ok(_) | Err(WriteFailure::Retry) => Ok(true),
            Err(WriteFailure::Failed(error)) => Err(error),
        }
    }

    async fn resolve_once(&self, name: &SecretName) -> Result<Option<SecretValue>, RoomError> {
        let Some(keys) = self.room.read_keys().await? else { return Ok(None) };
        let key = secret_key(&keys, name);
        let Some(secret) = self.read(&keys, &key, name).await? else { return Ok(None) };
        Ok(Some(SecretValue(zeroize::Zeroizing::new(secret.value.clone()))))
    }

    async fn all_once(&self) -> Result<Vec<StoredSecret>, RoomError> {
        let Some(keys) = self.room.read_keys().await? else { return Ok(Vec::new()) };
        let range = Range {
            collection: Collection::Secrets,
            prefix: Vec::new(),
            start: None,
            end: None,
            after: None,
            reverse: false,
            limit: usize::try_from(SECRETS_PER_ROOM_MAX).unwrap_or(usize::MAX),
        };
        let mut secrets = Vec::new();
        for record in self.room.range_records(&keys, &range).await? {
            let secret: StoredSecret = self.room.open(&keys, Collection::Secrets, &record).await?;
            let name = SecretName::parse(&secret.name).map_err(|_| self.refused())?;
            if secret_key(&keys, &name) != record.key {
                return Err(self.refused());
            }
            secrets.push(secret);
        }
        Ok(secrets)
    }

    /// Reads one secret and checks it is filed under its own name.
    async fn read(
        &self,
        keys: &Arc<RoomKeys>,
        key: &RecordKey,
        name: &SecretName,
    ) -> Result<Option<StoredSecret>, RoomError> {
        let Some(record) = self.room.get_record(keys, Collection::Secrets, key).await? else { return Ok(None) };
        let secret: StoredSecret = self.room.open(keys, Collection::Secrets, &record).await?;
        if secret.name != name.as_str() {
            return Err(self.refused());
        }
        Ok(Some(secret))
    }

    /// A secret filed under another name's key: refused, and an isolation alarm.
    fn refused(&self) -> RoomError {
        self.room.raise(Collection::Secrets, super::AlarmKind::SealBroken);
        RoomError::IsolationAlarm
    }
}

impl Room {
    /// See [`Room::pseudonym_secret`]: derived from the room's key (created if the room has
    /// none yet). Unlike a cache scope, it needs no confirmation read: nothing is served from
    /// memory under it, so a key of an erased generation still in this node's memory yields only
    /// tags that mean nothing to anyone, and the request's first store read or write under that
    /// generation fails as an erasure does.
    pub(super) async fn derive_pseudonym_secret(&self) -> Result<PseudonymSecret, RoomError> {
        let keys = self.system_write_keys().await?;
        Ok(PseudonymSecret::from_bytes(keys.index_hash(b"pseudonym", &[])))
    }
}
