//! Pseudonymous room ids: an HMAC over an injective encoding of who owns the room.
//!
//! The database only ever sees room ids, so an operator reading it learns neither subjects nor
//! tenant names. The encoding is versioned, tags the kind of room, and length-prefixes every
//! field, so no choice of issuer, subject or tenant strings can make two different owners encode
//! to the same bytes (the "delimiter trick": `("a|b", "c")` against `("a", "b|c")`).
//!
//! Architecture invariant: room ids are derived here and nowhere else, and only from a verified
//! [`crate::Principal`] (plus the admin erasure path, which returns no content).

use aws_lc_rs::hmac;

use crate::secrets::Secret32;

/// Domain separation for room ids; changing it would move every room, so it carries a version.
const ROOM_ID_DOMAIN: &[u8] = b"sealroom.room-id.v1";

/// The 32-byte pseudonymous id of one room.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomId([u8; 32]);

impl RoomId {
    /// The raw bytes, as the store keys rows by them.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The id as 64 lowercase hexadecimal characters (how it appears in logs and on PostgreSQL).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses an id an operator copied from a listing (admin tooling only: a client never
    /// names a room).
    pub(crate) fn from_hex(text: &str) -> Option<RoomId> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(RoomId(bytes))
    }

    /// Rebuilds an id read back from the store. Crate-private: a client never names a room.
    pub(crate) fn from_stored_bytes(bytes: [u8; 32]) -> RoomId {
        RoomId(bytes)
    }
}

impl std::fmt::Debug for RoomId {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "RoomId({})", self.to_hex())
    }
}

impl std::fmt::Display for RoomId {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.to_hex())
    }
}

/// Which kind of owner a room belongs to. The tag is part of the encoding, so a user whose
/// subject equals a tenant's name never shares that tenant's room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RoomKind {
    /// One person: `(issuer, subject)`.
    User,
    /// State shared by the members of one tenant: `(issuer, tenant)`.
    Tenant,
}

impl RoomKind {
    fn tag(self) -> u8 {
        match self {
            RoomKind::User => 1,
            RoomKind::Tenant => 2,
        }
    }
}

/// Derives room ids with the per-deployment secret.
pub struct RoomIdDeriver {
    key: hmac::Key,
}

impl std::fmt::Debug for RoomIdDeriver {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("RoomIdDeriver([redacted])")
    }
}

impl RoomIdDeriver {
    /// Keys the deriver with the deployment's room-id secret.
    pub fn new(secret: &Secret32) -> RoomIdDeriver {
        RoomIdDeriver { key: hmac::Key::new(hmac::HMAC_SHA256, secret.expose()) }
    }

    /// The room id of an owner. Crate-private: public callers go through a `Principal`.
    pub(crate) fn derive(&self, kind: RoomKind, issuer: &str, name: &str) -> RoomId {
        let encoded = encode_owner(kind, issuer, name);
        let tag = hmac::sign(&self.key, &encoded);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(tag.as_ref());
        RoomId(bytes)
    }

    /// A per-room label under the deployment secret, for identifiers sent to third parties
    /// (upstream prompt-cache keys): stable per room, unrelated across rooms, and revealing
    /// neither the room id nor the subject.
    pub(crate) fn room_label(&self, domain: &[u8], room: &RoomId) -> [u8; 32] {
        let mut message = Vec::with_capacity(domain.len() + 40);
        message.extend_from_slice(b"sealroom.room-label.v1");
        message.extend_from_slice(&(domain.len() as u32).to_be_bytes());
        message.extend_from_slice(domain);
        message.extend_from_slice(room.as_bytes());
        let tag = hmac::sign(&self.key, &message);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(tag.as_ref());
        bytes
    }

    /// A value derived from the secret that identifies the deployment without revealing the
    /// secret: stored in the data directory so a store opened with another deployment's secret
    /// (whose room ids would all differ) is refused instead of silently showing empty rooms.
    pub fn fingerprint(&self) -> [u8; 32] {
        let tag = hmac::sign(&self.key, b"sealroom.deployment-fingerprint.v1");
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(tag.as_ref());
        bytes
    }
}

/// The injective encoding: domain, kind tag, then each field as a big-endian u32 length and its
/// bytes. Lengths are bounded far below `u32::MAX` by the identity limits; the assertion keeps
/// the encoding injective even if a caller forgot them.
pub(crate) fn encode_owner(kind: RoomKind, issuer: &str, name: &str) -> Vec<u8> {
    let mut encoded = Vec::with_capacity(ROOM_ID_DOMAIN.len() + 9 + issuer.len() + name.len());
    encoded.extend_from_slice(ROOM_ID_DOMAIN);
    encoded.push(kind.tag());
    for field in [issuer.as_bytes(), name.as_bytes()] {
        let length = u32::try_from(field.len()).expect("identity fields are bounded far below 4 GiB");
        encoded.extend_from_slice(&length.to_be_bytes());
        encoded.extend_from_slice(field);
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn deriver() -> RoomIdDeriver {
        RoomIdDeriver::new(&Secret32::from_bytes([9u8; 32]))
    }

    #[test]
    fn same_subject_under_two_issuers_is_two_rooms() {
        let rooms = deriver();
        let a = rooms.derive(RoomKind::User, "https://idp-a.example", "alice");
        let b = rooms.derive(RoomKind::User, "https://idp-b.example", "alice");
        assert_ne!(a, b);
    }

    #[test]
    fn delimiter_tricks_do_not_collide() {
        let rooms = deriver();
        let pairs = [
            (("a|b", "c"), ("a", "b|c")),
            (("ab", "c"), ("a", "bc")),
            (("a\0", "b"), ("a", "\0b")),
            (("", "ab"), ("a", "b")),
        ];
        for ((issuer_1, subject_1), (issuer_2, subject_2)) in pairs {
            assert_ne!(
                rooms.derive(RoomKind::User, issuer_1, subject_1),
                rooms.derive(RoomKind::User, issuer_2, subject_2),
                "{issuer_1:?}/{subject_1:?} against {issuer_2:?}/{subject_2:?}"
            );
        }
    }

    #[test]
    fn user_named_like_a_tenant_is_not_the_tenant_room() {
        let rooms = deriver();
        assert_ne!(rooms.derive(RoomKind::User, "iss", "acme"), rooms.derive(RoomKind::Tenant, "iss", "acme"));
    }

    #[test]
    fn a_different_secret_moves_every_room() {
        let other = RoomIdDeriver::new(&Secret32::from_bytes([8u8; 32]));
        assert_ne!(deriver().derive(RoomKind::User, "iss", "alice"), other.derive(RoomKind::User, "iss", "alice"));
        assert_ne!(deriver().fingerprint(), other.fingerprint());
    }

    proptest! {
        /// The encoding is injective: distinct owners never share encoded bytes, whatever
        /// characters (delimiters, NULs, Unicode) the strings hold.
        #[test]
        fn encoding_is_injective(
            issuer_1 in ".{0,12}", name_1 in ".{0,12}", tenant_1 in any::<bool>(),
            issuer_2 in ".{0,12}", name_2 in ".{0,12}", tenant_2 in any::<bool>(),
        ) {
            let kind = |tenant: bool| if tenant { RoomKind::Tenant } else { RoomKind::User };
            let same_owner = (issuer_1.as_str(), name_1.as_str(), tenant_1)
                == (issuer_2.as_str(), name_2.as_str(), tenant_2);
            let encoded_1 = encode_owner(kind(tenant_1), &issuer_1, &name_1);
            let encoded_2 = encode_owner(kind(tenant_2), &issuer_2, &name_2);
            prop_assert_eq!(same_owner, encoded_1 == encoded_2);
        }

        /// Splitting one string across issuer and subject at every position gives distinct rooms.
        #[test]
        fn every_split_is_a_distinct_room(joined in "[a-z|:/]{2,16}") {
            let rooms = deriver();
            let mut seen = std::collections::HashSet::new();
            for split in 0..=joined.len() {
                if !joined.is_char_boundary(split) { continue; }
                let (issuer, subject) = joined.split_at(split);
                prop_assert!(seen.insert(rooms.derive(RoomKind::User, issuer, subject)));
            }
        }
    }
}
