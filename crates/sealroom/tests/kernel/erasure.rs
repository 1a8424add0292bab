//! Erasure against time (ATTACKS.md 48, 49): other nodes that still hold an erased room in
//! memory, and requests that were already working in the room when it was erased.
//!
//! The rule under test (ARCHITECTURE.md, "one generation per request"): every read and write of
//! a room's records names the room-key generation, and the store answers only while the room's
//! key is that generation; a request works in the first generation the store answers it under.

use sealroom::rooms::{ItemInput, ItemKey, Metadata, Namespace, NamespacePrefix, PageSize, Room, RoomsSettings};
use sealroom::rooms::{NewMessage, ToolName, Ttl};
use sealroom::search::SearchRequest;
use sealroom::{RoomError, Rooms};
use serde_json::json;

fn tool_args(value: &serde_json::Value) -> sealroom::rooms::ToolArgs {
    sealroom::rooms::ToolArgs::from_value(value).unwrap()
}

use crate::support::{BACKENDS, another_node, postgres_store, store, user};

fn path() -> Namespace {
    Namespace::parse(vec!["notes".to_owned()]).unwrap()
}

fn key(index: usize) -> ItemKey {
    ItemKey::parse(&format!("k{index}")).unwrap()
}

async fn put(room: &Room, index: usize, text: &str) {
    let input = ItemInput::parse(&json!({"text": text}), Some(text.to_owned()), None, None, None).unwrap();
    room.items().put(&path(), &key(index), input).await.unwrap();
}

fn lexical(query: &str) -> SearchRequest {
    SearchRequest::parse(Some(query.to_owned()), None, NamespacePrefix::everything(), None, Some(50), None).unwrap()
}

async fn listed_texts(room: &Room) -> Vec<String> {
    let page = room.items().list(&NamespacePrefix::everything(), None, PageSize::parse(Some(100)).unwrap()).await;
    page.unwrap().entries.into_iter().filter_map(|item| item.text).collect()
}

/// Everything node `rooms` can tell about Alice's state, as text, for a canary check.
async fn everything_alice_sees(rooms: &Rooms) -> String {
    let alice = user("iss", "alice");
    let room = rooms.room(&alice);
    let mut seen = format!("{:?}", listed_texts(&room).await);
    seen.push_str(&format!("{:?}", room.items().search(&lexical("canary")).await.unwrap()));
    for index in 0..4 {
        seen.push_str(&format!("{:?}", room.items().get(&path(), &key(index)).await));
    }
    let weather = ToolName::parse("weather").unwrap();
    seen.push_str(&format!(
        "{:?}",
        room.tool_cache().lookup(&weather, &tool_args(&json!({"city": "Lisbon"}))).await.unwrap()
    ));
    seen
}

/// Regression (issue 14, finding 1): node two kept the erased room's key, index and cache front
/// stamped with (key id, version); the successor room's versions restarted from zero, and once
/// they reached the old numbers node two served the erased items and cache entries again.
#[tokio::test]
async fn attack_48_another_node_never_serves_an_erased_room_from_memory() {
    for erase_as_admin in [false, true] {
        let (node_one, database) = postgres_store(RoomsSettings::standard(), 2).await;
        let node_two = another_node(&database, 2).await;
        let alice = user("iss", "alice");
        let weather = ToolName::parse("weather").unwrap();
        // Alice writes and reads through node two: it holds her key, index and cache front.
        let on_two = node_two.room(&alice);
        for index in 0..3 {
            put(&on_two, index, &format!("canary-erased item {index}")).await;
        }
        on_two
            .tool_cache()
            .put(&weather, &tool_args(&json!({"city": "Lisbon"})), &json!("canary-erased"), ttl())
            .await
            .unwrap();
        assert_eq!(node_two.room(&alice).items().search(&lexical("canary")).await.unwrap().len(), 3);
        assert!(
            node_two
                .room(&alice)
                .tool_cache()
                .lookup(&weather, &tool_args(&json!({"city": "Lisbon"})))
                .await
                .unwrap()
                .is_some()
        );
        // Alice is erased through node one.
        if erase_as_admin {
            node_one.rooms.erase_principal_for_admin("iss", "alice").await.unwrap();
        } else {
            node_one.rooms.room(&alice).erase().await.unwrap();
        }
        // A fresh token writes again until every collection is back at its old version.
        let fresh = node_one.rooms.room(&alice);
        for index in 0..3 {
            put(&fresh, index + 10, &format!("after item {index}")).await;
        }
        fresh.tool_cache().put(&weather, &tool_args(&json!({"city": "Porto"})), &json!("after"), ttl()).await.unwrap();
        for rooms in [&node_two, &node_one.rooms] {
            let seen = everything_alice_sees(rooms).await;
            assert!(!seen.contains("canary-erased"), "an erased value was served again: {seen}");
            assert_eq!(listed_texts(&rooms.room(&alice)).await.len(), 3, "the successor room holds its own items");
        }
    }
}

fn ttl() -> Ttl {
    Ttl::parse(600).unwrap()
}

/// Regression (issue 14, finding 4): a request that had read the room before it was erased
/// stored what it derived (a cached answer) after the erasure returned, under a new room key.
#[tokio::test]
async fn attack_49_a_request_in_flight_during_erasure_never_recreates_the_room() {
    for kind in BACKENDS {
        let store = store(kind, RoomsSettings::standard()).await;
        let alice = user("iss", "alice");
        put(&store.rooms.room(&alice), 0, "canary-erased memory").await;
        let thread = store.rooms.room(&alice).threads().create(None, Metadata::default()).await.unwrap();
        // The slow request reads the room (a recall), then waits for its model answer ...
        let slow = store.rooms.room(&alice);
        assert_eq!(slow.items().search(&lexical("canary")).await.unwrap().len(), 1);
        // ... while another request of Alice's erases her room.
        store.rooms.room(&alice).erase().await.unwrap();
        // Everything the slow request still tries is refused; nothing recreates the room.
        let weather = ToolName::parse("weather").unwrap();
        let attempts: Vec<Result<(), RoomError>> = vec![
            slow.tool_cache().put(&weather, &tool_args(&json!(1)), &json!("canary-erased answer"), ttl()).await,
            slow.response_cache().put(&json!({"q": 1}), &json!("canary-erased answer"), ttl()).await,
            put_result(&slow, "canary-erased derived").await,
            slow.threads().append(&thread.id, vec![message()]).await.map(|_| ()),
            slow.items().search(&lexical("canary")).await.map(|_| ()),
        ];
        for attempt in attempts {
            assert!(matches!(attempt, Err(RoomError::Erased)), "{kind:?}: {attempt:?}");
        }
        // Its audit entry is dropped with the room rather than recreating it.
        let entry = slow.audit().event("GET /v1/items/{*path}", "/v1/items/notes/k0", "200", None);
        assert_eq!(slow.audit().record(vec![entry]).await.unwrap(), 1, "{kind:?}: the entry was dropped");
        assert!(store.backend.room_key(&slow.id()).await.unwrap().is_none(), "{kind:?}: the room was recreated");
        // A new request works in a new, empty room.
        let fresh = store.rooms.room(&alice);
        assert!(listed_texts(&fresh).await.is_empty());
        put(&fresh, 1, "after").await;
        assert_eq!(listed_texts(&fresh).await, ["after"]);
        // The old request stays in its generation: it never sees the successor room either.
        assert!(matches!(slow.items().get(&path(), &key(1)).await, Err(RoomError::Erased)));
    }
}

fn message() -> NewMessage {
    NewMessage::parse("user", "canary-erased message".into(), None, None).unwrap()
}

async fn put_result(room: &Room, text: &str) -> Result<(), RoomError> {
    let input = ItemInput::parse(&json!(text), Some(text.to_owned()), None, None, None).unwrap();
    room.items().put(&path(), &key(7), input).await.map(|_| ())
}

/// A node whose memory holds a key the store no longer has (the room was erased and recreated
/// through another node) answers a new request from the current room, without an error: keys
/// from memory are checked by the store's first answer, not trusted.
#[tokio::test]
async fn a_stale_key_in_memory_costs_a_retry_not_an_error() {
    let (node_one, database) = postgres_store(RoomsSettings::standard(), 2).await;
    let node_two = another_node(&database, 2).await;
    let alice = user("iss", "alice");
    put(&node_two.room(&alice), 0, "before").await;
    node_one.rooms.room(&alice).erase().await.unwrap();
    put(&node_one.rooms.room(&alice), 1, "after").await;
    // Node two still holds the old key; each kind of first operation recovers on its own.
    let thread = node_two.room(&alice).threads().create(None, Metadata::default()).await.unwrap();
    node_one.rooms.room(&alice).erase().await.unwrap();
    put(&node_one.rooms.room(&alice), 2, "again").await;
    assert!(matches!(node_two.room(&alice).threads().get(&thread.id).await, Err(RoomError::NotFound)));
    node_one.rooms.room(&alice).erase().await.unwrap();
    put(&node_one.rooms.room(&alice), 3, "third").await;
    assert_eq!(listed_texts(&node_two.room(&alice)).await, ["third"]);
    node_one.rooms.room(&alice).erase().await.unwrap();
    put(&node_two.room(&alice), 4, "fourth").await;
    assert_eq!(listed_texts(&node_one.rooms.room(&alice)).await, ["fourth"]);
}

/// Regression (review of issue 14): erasure is two steps (destroy the key, then purge), and a
/// request of the same user between them creates the room's next generation and writes to it.
/// The purge must leave that generation alone: deleting its records would lose acknowledged
/// writes, and deleting its usage rows would restart its versions under the same key id.
#[tokio::test]
async fn a_purge_never_touches_the_generation_that_followed_the_erasure() {
    for kind in BACKENDS {
        let store = store(kind, RoomsSettings::standard()).await;
        let alice = user("iss", "alice");
        put(&store.rooms.room(&alice), 0, "before").await;
        let room = store.rooms.room(&alice).id();
        assert!(store.backend.destroy_room_key(&room).await.unwrap());
        // The next generation, written between the two steps of the erasure.
        let next = store.rooms.room(&alice);
        put(&next, 1, "after").await;
        assert_eq!(listed_texts(&next).await, ["after"]);
        let purged = store.backend.purge_room(&room).await.unwrap();
        assert_eq!(purged.records, 0, "{kind:?}: the purge removed the next generation's records");
        assert_eq!(listed_texts(&store.rooms.room(&alice)).await, ["after"], "{kind:?}");
        put(&store.rooms.room(&alice), 2, "later").await;
        assert_eq!(listed_texts(&store.rooms.room(&alice)).await.len(), 2, "{kind:?}");
    }
}
