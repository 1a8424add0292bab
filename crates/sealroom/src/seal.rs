//! Per-room encryption: the master key, room data keys, and sealing records with associated data.
//!
//! Each room has its own random 32-byte data key, stored only wrapped (sealed) by the master key.
//! From the data key we derive, with HKDF, an AEAD key for records and an HMAC key for opaque
//! record keys and cache keys. Every record at rest is sealed with AES-256-GCM-SIV (nonce-misuse
//! resistant, so random nonces are safe at any volume) under associated data that binds the
//! format version, the room id, the collection and the record key. A record read under another
//! room, or copied into another row, therefore fails to open: an isolation alarm, never data.

use aws_lc_rs::aead::{AES_256_GCM_SIV, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::{hkdf, hmac};
use zeroize::Zeroizing;

use crate::room_id::RoomId;
use crate::secrets::Secret32;
use crate::vocabulary::records::{Collection, MasterKeyId, RecordKey, RoomKeyId, WrappedRoomKey};

/// Version byte at the start of every sealed record and wrapped key.
const FORMAT_V1: u8 = 1;
/// Bytes added by sealing: version, nonce and tag.
pub const SEAL_OVERHEAD_BYTES: usize = 1 + NONCE_LEN + TAG_BYTES;
const TAG_BYTES: usize = 16;

const RECORD_AAD_DOMAIN: &[u8] = b"sealroom.record.v1";
const WRAP_AAD_DOMAIN: &[u8] = b"sealroom.room-key.v1";
const HKDF_SALT: &[u8] = b"sealroom.room-key-derivation.v1";
const HKDF_INFO_SEAL: &[u8] = b"seal";
const HKDF_INFO_INDEX: &[u8] = b"index";

/// A value that failed to open. Deliberately carries no detail: the cause (wrong room, tampered
/// bytes, wrong key) must not be distinguishable to whoever triggered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("sealed value failed to open")]
pub struct OpenError;

/// Sealing failed; only possible if the system random generator fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("sealing failed")]
pub struct SealError;

/// The key that wraps every room key.
pub struct MasterKey {
    key: RandomizedNonceKey,
    id: MasterKeyId,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "MasterKey(id={})", hex::encode(self.id))
    }
}

impl MasterKey {
    /// Builds the master key from its 32 secret bytes.
    pub fn new(secret: &Secret32) -> MasterKey {
        let key = RandomizedNonceKey::new(&AES_256_GCM_SIV, secret.expose())
            .expect("a 32-byte key is valid for AES-256-GCM-SIV");
        let id_key = hmac::Key::new(hmac::HMAC_SHA256, secret.expose());
        let tag = hmac::sign(&id_key, b"sealroom.master-key-id.v1");
        let mut id = [0u8; 8];
        id.copy_from_slice(&tag.as_ref()[..8]);
        MasterKey { key, id }
    }

    /// The id stored beside every key this master wraps.
    pub fn id(&self) -> MasterKeyId {
        self.id
    }
}

/// The keys of one room, derived from its data key. Held in memory only, zeroed on drop by the
/// underlying library.
pub struct RoomKeys {
    room: RoomId,
    key_id: RoomKeyId,
    seal: RandomizedNonceKey,
    index: hmac::Key,
}

impl std::fmt::Debug for RoomKeys {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "RoomKeys(room={}, key_id={})", self.room, hex::encode(self.key_id))
    }
}

struct OutputLength(usize);

impl hkdf::KeyType for OutputLength {
    fn len(&self) -> usize {
        self.0
    }
}

fn derive_subkey(data_key: &[u8; 32], info: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT)
        .extract(data_key)
        .expand(&[info], OutputLength(32))
        .and_then(|okm| okm.fill(out.as_mut()))
        .expect("HKDF-SHA256 can always produce 32 bytes");
    out
}

fn wrap_aad(room: &RoomId, master_key_id: &MasterKeyId, key_id: &RoomKeyId) -> Vec<u8> {
    let mut aad = Vec::with_capacity(WRAP_AAD_DOMAIN.len() + 32 + 8 + 16);
    aad.extend_from_slice(WRAP_AAD_DOMAIN);
    aad.extend_from_slice(room.as_bytes());
    aad.extend_from_slice(master_key_id);
    aad.extend_from_slice(key_id);
    aad
}

fn record_aad(room: &RoomId, collection: Collection, key: &RecordKey) -> Vec<u8> {
    let key_bytes = key.as_bytes();
    let mut aad = Vec::with_capacity(RECORD_AAD_DOMAIN.len() + 32 + 3 + key_bytes.len());
    aad.extend_from_slice(RECORD_AAD_DOMAIN);
    aad.extend_from_slice(room.as_bytes());
    aad.push(collection.tag());
    let key_length = u16::try_from(key_bytes.len()).expect("record keys are bounded to 64 bytes");
    aad.extend_from_slice(&key_length.to_be_bytes());
    aad.extend_from_slice(key_bytes);
    aad
}

/// Seals `plaintext` as `[version][nonce][ciphertext][tag]`.
fn seal_with(key: &RandomizedNonceKey, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
    let header = 1 + NONCE_LEN;
    let mut out = Vec::with_capacity(header + plaintext.len() + TAG_BYTES);
    out.push(FORMAT_V1);
    out.extend_from_slice(&[0u8; NONCE_LEN]);
    out.extend_from_slice(plaintext);
    let (nonce, tag) = key.seal_in_place_separate_tag(Aad::from(aad), &mut out[header..]).map_err(|_| SealError)?;
    out[1..header].copy_from_slice(nonce.as_ref());
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

fn open_with(key: &RandomizedNonceKey, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
    let header = 1 + NONCE_LEN;
    if sealed.len() < header + TAG_BYTES || sealed[0] != FORMAT_V1 {
        return Err(OpenError);
    }
    let nonce = Nonce::try_assume_unique_for_key(&sealed[1..header]).map_err(|_| OpenError)?;
    let mut buffer = sealed[header..].to_vec();
    let plaintext_length = key.open_in_place(nonce, Aad::from(aad), &mut buffer).map_err(|_| OpenError)?.len();
    buffer.truncate(plaintext_length);
    Ok(buffer)
}

impl MasterKey {
    /// Generates a fresh data key for `room` and returns it wrapped, with the room's keys.
    pub fn generate_room_key(&self, room: &RoomId) -> Result<(WrappedRoomKey, RoomKeys), SealError> {
        let mut data_key = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(data_key.as_mut()).map_err(|_| SealError)?;
        let mut key_id = [0u8; 16];
        aws_lc_rs::rand::fill(&mut key_id).map_err(|_| SealError)?;
        let aad = wrap_aad(room, &self.id, &key_id);
        let sealed = seal_with(&self.key, &aad, data_key.as_ref())?;
        let wrapped = WrappedRoomKey { master_key_id: self.id, key_id, sealed };
        Ok((wrapped, RoomKeys::from_data_key(*room, key_id, &data_key)))
    }

    /// Opens a wrapped room key. Fails if it was wrapped by another master key or for another
    /// room (the associated data binds both).
    pub fn unwrap_room_key(&self, room: &RoomId, wrapped: &WrappedRoomKey) -> Result<RoomKeys, OpenError> {
        let data_key = self.open_data_key(room, wrapped)?;
        Ok(RoomKeys::from_data_key(*room, wrapped.key_id, &data_key))
    }

    /// Re-wraps a room key under `next` (master-key rotation). The data key, and so every
    /// record of the room, stays as it is.
    pub fn rewrap_room_key(
        &self,
        room: &RoomId,
        wrapped: &WrappedRoomKey,
        next: &MasterKey,
    ) -> Result<WrappedRoomKey, RewrapError> {
        let data_key = self.open_data_key(room, wrapped).map_err(|_| RewrapError::Open)?;
        let aad = wrap_aad(room, &next.id, &wrapped.key_id);
        let sealed = seal_with(&next.key, &aad, data_key.as_ref()).map_err(|_| RewrapError::Seal)?;
        Ok(WrappedRoomKey { master_key_id: next.id, key_id: wrapped.key_id, sealed })
    }

    fn open_data_key(&self, room: &RoomId, wrapped: &WrappedRoomKey) -> Result<Zeroizing<[u8; 32]>, OpenError> {
        if wrapped.master_key_id != self.id {
            return Err(OpenError);
        }
        let aad = wrap_aad(room, &wrapped.master_key_id, &wrapped.key_id);
        let opened = Zeroizing::new(open_with(&self.key, &aad, &wrapped.sealed)?);
        let bytes: [u8; 32] = opened.as_slice().try_into().map_err(|_| OpenError)?;
        Ok(Zeroizing::new(bytes))
    }
}

/// Why a room key could not be re-wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RewrapError {
    #[error("the room key does not open under the current master key")]
    Open,
    #[error("sealing under the new master key failed")]
    Seal,
}

impl RoomKeys {
    fn from_data_key(room: RoomId, key_id: RoomKeyId, data_key: &[u8; 32]) -> RoomKeys {
        let seal_bytes = derive_subkey(data_key, HKDF_INFO_SEAL);
        let index_bytes = derive_subkey(data_key, HKDF_INFO_INDEX);
        let seal = RandomizedNonceKey::new(&AES_256_GCM_SIV, seal_bytes.as_ref())
            .expect("a 32-byte key is valid for AES-256-GCM-SIV");
        let index = hmac::Key::new(hmac::HMAC_SHA256, index_bytes.as_ref());
        RoomKeys { room, key_id, seal, index }
    }

    /// The room these keys belong to.
    pub fn room(&self) -> &RoomId {
        &self.room
    }

    /// The generation of the room's data key.
    pub fn key_id(&self) -> &RoomKeyId {
        &self.key_id
    }

    /// Seals one record of this room. The room comes from the keys themselves, so a caller
    /// cannot seal a record of room A with room B's associated data.
    pub fn seal(&self, collection: Collection, key: &RecordKey, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        seal_with(&self.seal, &record_aad(&self.room, collection, key), plaintext)
    }

    /// Opens one record of this room; fails for a record sealed for any other room, collection
    /// or key, and for any tampered byte.
    pub fn open(&self, collection: Collection, key: &RecordKey, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        open_with(&self.seal, &record_aad(&self.room, collection, key), sealed)
    }

    /// A keyed hash under this room's index key: opaque record keys and cache keys. The output
    /// differs per room even for equal input, so equal names in two rooms never share a key.
    pub fn index_hash(&self, domain: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        let mut context = hmac::Context::with_key(&self.index);
        let domain_length = u32::try_from(domain.len()).expect("domains are short constants");
        context.update(&domain_length.to_be_bytes());
        context.update(domain);
        for part in parts {
            let length = u64::try_from(part.len()).expect("lengths fit in 64 bits");
            context.update(&length.to_be_bytes());
            context.update(part);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(context.sign().as_ref());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room_id::{RoomIdDeriver, RoomKind};

    fn rooms() -> (RoomId, RoomId) {
        let deriver = RoomIdDeriver::new(&Secret32::from_bytes([1u8; 32]));
        (deriver.derive(RoomKind::User, "iss", "a"), deriver.derive(RoomKind::User, "iss", "b"))
    }

    fn master(byte: u8) -> MasterKey {
        MasterKey::new(&Secret32::from_bytes([byte; 32]))
    }

    #[test]
    fn record_opens_only_in_its_own_room_collection_and_key() {
        let (room_a, room_b) = rooms();
        let master = master(2);
        let (_, keys_a) = master.generate_room_key(&room_a).expect("key a");
        let (_, keys_b) = master.generate_room_key(&room_b).expect("key b");
        let key = RecordKey::new(b"k1".to_vec());
        let sealed = keys_a.seal(Collection::Items, &key, b"canary-a").expect("seal");
        assert_eq!(keys_a.open(Collection::Items, &key, &sealed).expect("open"), b"canary-a");
        assert_eq!(keys_b.open(Collection::Items, &key, &sealed), Err(OpenError));
        assert_eq!(keys_a.open(Collection::Threads, &key, &sealed), Err(OpenError));
        assert_eq!(keys_a.open(Collection::Items, &RecordKey::new(b"k2".to_vec()), &sealed), Err(OpenError));
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert_eq!(keys_a.open(Collection::Items, &key, &tampered), Err(OpenError));
        assert_eq!(keys_a.open(Collection::Items, &key, &sealed[..10]), Err(OpenError));
    }

    #[test]
    fn wrapped_key_is_bound_to_room_and_master() {
        let (room_a, room_b) = rooms();
        let master = master(2);
        let (wrapped, keys) = master.generate_room_key(&room_a).expect("key");
        let reopened = master.unwrap_room_key(&room_a, &wrapped).expect("unwrap");
        let key = RecordKey::new(vec![1]);
        let sealed = keys.seal(Collection::Items, &key, b"x").expect("seal");
        assert_eq!(reopened.open(Collection::Items, &key, &sealed).expect("open"), b"x");
        assert!(master.unwrap_room_key(&room_b, &wrapped).is_err());
        assert!(self::master(3).unwrap_room_key(&room_a, &wrapped).is_err());
    }

    #[test]
    fn rotation_keeps_data_and_retires_old_master() {
        let (room, _) = rooms();
        let old = master(2);
        let new = master(3);
        let (wrapped, keys) = old.generate_room_key(&room).expect("key");
        let key = RecordKey::new(vec![7]);
        let sealed = keys.seal(Collection::Messages, &key, b"kept").expect("seal");
        let rewrapped = old.rewrap_room_key(&room, &wrapped, &new).expect("rewrap");
        assert_eq!(rewrapped.master_key_id, new.id());
        let reopened = new.unwrap_room_key(&room, &rewrapped).expect("unwrap with new");
        assert_eq!(reopened.open(Collection::Messages, &key, &sealed).expect("open"), b"kept");
        assert!(old.unwrap_room_key(&room, &rewrapped).is_err());
    }

    #[test]
    fn index_hash_differs_per_room() {
        let (room_a, room_b) = rooms();
        let master = master(2);
        let (_, keys_a) = master.generate_room_key(&room_a).expect("a");
        let (_, keys_b) = master.generate_room_key(&room_b).expect("b");
        assert_ne!(keys_a.index_hash(b"item", &[b"ns", b"k"]), keys_b.index_hash(b"item", &[b"ns", b"k"]));
        assert_ne!(keys_a.index_hash(b"item", &[b"nsk"]), keys_a.index_hash(b"item", &[b"ns", b"k"]));
    }
}
