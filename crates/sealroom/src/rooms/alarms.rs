//! Isolation alarms: the runtime detector of the one failure sealroom exists to prevent.
//!
//! An alarm means a read found something that does not belong to the room that asked: a record
//! that fails to open under the room's key, a payload whose owner stamp names another room, a
//! record whose stored name differs from the one requested. The data is never served; the alarm
//! is counted (a metric that must stay at zero), logged with the room id only, and kept for the
//! audit trail.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::room_id::RoomId;
use crate::vocabulary::records::Collection;

/// Name of the Prometheus counter.
pub const ISOLATION_ALARMS_METRIC: &str = "sealroom_isolation_alarms_total";

/// What tripped the alarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlarmKind {
    /// A sealed record did not open under the room's current key.
    SealBroken,
    /// A payload's owner stamp names another room.
    OwnerMismatch,
    /// A record's stored name is not the one it is filed under.
    NameMismatch,
    /// The room's wrapped key did not open under the master key.
    RoomKeyBroken,
}

impl AlarmKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmKind::SealBroken => "seal_broken",
            AlarmKind::OwnerMismatch => "owner_mismatch",
            AlarmKind::NameMismatch => "name_mismatch",
            AlarmKind::RoomKeyBroken => "room_key_broken",
        }
    }
}

/// Counts alarms for this process (tests read it directly; operators read the metric).
#[derive(Debug, Default)]
pub struct IsolationAlarms {
    raised: AtomicU64,
}

impl IsolationAlarms {
    /// Records one alarm.
    pub fn raise(&self, room: &RoomId, collection: Collection, kind: AlarmKind) {
        self.raised.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(ISOLATION_ALARMS_METRIC, "kind" => kind.as_str(), "collection" => collection.name())
            .increment(1);
        tracing::error!(room = %room, collection = collection.name(), kind = kind.as_str(), "isolation alarm: record refused");
    }

    /// Alarms raised so far.
    pub fn count(&self) -> u64 {
        self.raised.load(Ordering::Relaxed)
    }
}
