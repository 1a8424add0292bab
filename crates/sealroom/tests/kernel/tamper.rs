//! Attacks on the sealed store (ATTACKS.md 24): records moved between rooms in the database
//! file must fail to open, be refused, and be counted as isolation alarms.

use sealroom::RoomError;
use sealroom::rooms::{ItemInput, ItemKey, Metadata, Namespace, NamespacePrefix, NewMessage, PageSize, RoomsSettings};
use serde_json::json;

use crate::support::{sqlite_store, user};

fn database(store: &crate::support::TestStore) -> rusqlite::Connection {
    rusqlite::Connection::open(store.sqlite.as_ref().unwrap().path()).unwrap()
}

#[tokio::test]
async fn record_copied_from_another_room_is_refused_and_counted() {
    let store = sqlite_store(RoomsSettings::standard()).await;
    let alice = store.rooms.room(&user("iss", "alice"));
    let bob = store.rooms.room(&user("iss", "bob"));
    let path = Namespace::parse(vec!["notes".into()]).unwrap();
    let key = ItemKey::parse("diary").unwrap();
    let input = |text: &str| ItemInput::parse(&json!(text), None, None, None, None).unwrap();
    alice.items().put(&path, &key, input("alice-plain")).await.unwrap();
    bob.items().put(&path, &key, input("canary-bob-diary")).await.unwrap();

    // The operator (or an attacker with the file) overwrites Alice's row with Bob's sealed bytes.
    let connection = database(&store);
    let bob_value: Vec<u8> = connection
        .query_row("SELECT value FROM records WHERE room = ?1 AND collection = 3", [&bob.id().as_bytes()[..]], |row| {
            row.get(0)
        })
        .unwrap();
    let changed = connection
        .execute(
            "UPDATE records SET value = ?1 WHERE room = ?2 AND collection = 3",
            rusqlite::params![bob_value, &alice.id().as_bytes()[..]],
        )
        .unwrap();
    assert_eq!(changed, 1);

    let before = store.rooms.isolation_alarms();
    let read = alice.items().get(&path, &key).await;
    assert!(matches!(read, Err(RoomError::IsolationAlarm)), "{read:?}");
    assert_eq!(store.rooms.isolation_alarms(), before + 1);
    let listed = alice.items().list(&NamespacePrefix::everything(), None, PageSize::parse(None).unwrap()).await;
    assert!(matches!(listed, Err(RoomError::IsolationAlarm)), "{listed:?}");
    // Listings are served from the room's index: the build refuses the record and counts it.
    assert_eq!(store.rooms.isolation_alarms(), before + 2);
    // Bob's own record is untouched and still his.
    assert_eq!(bob.items().get(&path, &key).await.unwrap().value, json!("canary-bob-diary"));
}

#[tokio::test]
async fn message_moved_between_threads_is_refused() {
    let store = sqlite_store(RoomsSettings::standard()).await;
    let alice = store.rooms.room(&user("iss", "alice"));
    let first = alice.threads().create(None, Metadata::default()).await.unwrap();
    let second = alice.threads().create(None, Metadata::default()).await.unwrap();
    alice
        .threads()
        .append(&first.id, vec![NewMessage::parse("user", "in first".into(), None, None).unwrap()])
        .await
        .unwrap();
    alice
        .threads()
        .append(&second.id, vec![NewMessage::parse("user", "in second".into(), None, None).unwrap()])
        .await
        .unwrap();
    let connection = database(&store);
    let mut first_key = first.id.to_string().replace('-', "");
    first_key.push_str("0000000000000001");
    let first_value: Vec<u8> = connection
        .query_row("SELECT value FROM records WHERE collection = 2 AND hex(key) = upper(?1)", [&first_key], |row| {
            row.get(0)
        })
        .unwrap();
    let mut second_key = second.id.to_string().replace('-', "");
    second_key.push_str("0000000000000001");
    connection
        .execute(
            "UPDATE records SET value = ?1 WHERE collection = 2 AND hex(key) = upper(?2)",
            rusqlite::params![first_value, second_key],
        )
        .unwrap();
    let read = alice.threads().messages(&second.id, None, PageSize::parse(None).unwrap()).await;
    assert!(matches!(read, Err(RoomError::IsolationAlarm)), "{read:?}");
    assert_eq!(store.rooms.isolation_alarms(), 1);
}

#[tokio::test]
async fn room_key_copied_from_another_room_does_not_open() {
    let store = sqlite_store(RoomsSettings::standard()).await;
    let alice = store.rooms.room(&user("iss", "alice"));
    let bob = store.rooms.room(&user("iss", "bob"));
    let path = Namespace::parse(vec!["notes".into()]).unwrap();
    let key = ItemKey::parse("k").unwrap();
    alice.items().put(&path, &key, ItemInput::parse(&json!("a"), None, None, None, None).unwrap()).await.unwrap();
    bob.items().put(&path, &key, ItemInput::parse(&json!("b"), None, None, None, None).unwrap()).await.unwrap();
    let connection = database(&store);
    connection
        .execute(
            "UPDATE rooms SET wrapped_key = (SELECT wrapped_key FROM rooms WHERE room = ?1), key_id = (SELECT key_id FROM rooms WHERE room = ?1) WHERE room = ?2",
            rusqlite::params![&bob.id().as_bytes()[..], &alice.id().as_bytes()[..]],
        )
        .unwrap();
    // A fresh process (no keys in memory) reads Alice's room with Bob's wrapped key.
    drop(store.rooms);
    let reopened = sealroom::Rooms::new(
        store.backend.clone(),
        crate::support::master(),
        None,
        crate::support::deriver(),
        RoomsSettings::standard(),
    )
    .await
    .unwrap();
    let read = reopened.room(&user("iss", "alice")).items().get(&path, &key).await;
    assert!(matches!(read, Err(RoomError::IsolationAlarm)), "{read:?}");
    assert_eq!(reopened.isolation_alarms(), 1);
}

/// A count or version that cannot be (negative) is damage: it fails the operation loudly
/// instead of being read as zero, which would make an index or cache front look current.
#[tokio::test]
async fn an_impossible_stored_version_fails_loudly_and_is_never_read_as_zero() {
    let store = sqlite_store(RoomsSettings::standard()).await;
    let alice = store.rooms.room(&user("iss", "alice"));
    let path = Namespace::parse(vec!["notes".into()]).unwrap();
    let input = ItemInput::parse(&json!("note"), Some("lighthouse".into()), None, None, None).unwrap();
    alice.items().put(&path, &ItemKey::parse("k").unwrap(), input).await.unwrap();
    let changed = database(&store)
        .execute(
            "UPDATE usage SET version = -5 WHERE room = ?1 AND collection = 3",
            rusqlite::params![&alice.id().as_bytes()[..]],
        )
        .unwrap();
    assert_eq!(changed, 1);
    let listed = store
        .rooms
        .room(&user("iss", "alice"))
        .items()
        .list(&NamespacePrefix::everything(), None, PageSize::parse(None).unwrap())
        .await;
    assert!(matches!(listed, Err(RoomError::Unavailable(_))), "{listed:?}");
    let usage = store.backend.usage(&alice.id()).await;
    assert!(usage.is_ok(), "the records count is untouched: {usage:?}");
}

#[tokio::test]
async fn checkpoints_copied_between_rooms_or_filed_under_other_names_are_refused() {
    use sealroom::rooms::plant_checkpoint;
    use sealroom::vocabulary::checkpoint::{CheckpointMetadata, CheckpointQuery, CheckpointThread, TypedBlob};

    let store = sqlite_store(RoomsSettings::standard()).await;
    let alice = store.rooms.room(&user("iss", "alice"));
    let bob = store.rooms.room(&user("iss", "bob"));
    let main = CheckpointThread::parse("thread", "").unwrap();
    let blob = |text: &str| TypedBlob::parse("checkpoint", "msgpack", text.as_bytes().to_vec()).unwrap();
    alice.checkpoints().put(&main, "1", None, &blob("alice"), &CheckpointMetadata::default()).await.unwrap();
    bob.checkpoints().put(&main, "1", None, &blob("canary-bob"), &CheckpointMetadata::default()).await.unwrap();

    // Bob's sealed checkpoint copied over Alice's row: it does not open in her room.
    let connection = database(&store);
    let bob_value: Vec<u8> = connection
        .query_row("SELECT value FROM records WHERE room = ?1 AND collection = 8", [&bob.id().as_bytes()[..]], |row| {
            row.get(0)
        })
        .unwrap();
    connection
        .execute(
            "UPDATE records SET value = ?1 WHERE room = ?2 AND collection = 8",
            rusqlite::params![bob_value, &alice.id().as_bytes()[..]],
        )
        .unwrap();
    let before = store.rooms.isolation_alarms();
    assert!(matches!(alice.checkpoints().get(&main, None).await, Err(RoomError::IsolationAlarm)));
    assert_eq!(store.rooms.isolation_alarms(), before + 1);

    // A payload stamped with another owner, or naming another thread than its key was made of,
    // is refused by every read path.
    let carol = store.rooms.room(&user("iss", "carol"));
    let other = CheckpointThread::parse("other", "").unwrap();
    carol.checkpoints().put(&other, "0", None, &blob("carol"), &CheckpointMetadata::default()).await.unwrap();
    plant_checkpoint(&carol, &bob, &main, &main, "2").await.unwrap();
    assert!(matches!(carol.checkpoints().get(&main, Some("2")).await, Err(RoomError::IsolationAlarm)));
    let misfiled = store.rooms.room(&user("iss", "dave"));
    misfiled.checkpoints().put(&other, "0", None, &blob("dave"), &CheckpointMetadata::default()).await.unwrap();
    plant_checkpoint(&misfiled, &misfiled, &main, &other, "3").await.unwrap();
    assert!(matches!(misfiled.checkpoints().get(&main, Some("3")).await, Err(RoomError::IsolationAlarm)));
    let listed = misfiled.checkpoints().list(&CheckpointQuery::default(), None, PageSize::parse(None).unwrap()).await;
    assert!(matches!(listed, Err(RoomError::IsolationAlarm)), "{listed:?}");
    assert_eq!(store.rooms.isolation_alarms(), before + 4);
}
