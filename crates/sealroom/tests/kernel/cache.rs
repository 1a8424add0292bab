//! Per-room caches on every backend (ATTACKS.md 25–29): separate entries per room, owner checks,
//! invalidation on deletes and erasure (also after a restart), quotas that evict only the same
//! room's entries, expiry, and coherence of the in-memory front across nodes.

use sealroom::RoomError;
use sealroom::limits::RoomLimits;
use sealroom::rooms::{
    ItemInput, ItemKey, Metadata, Namespace, RoomsSettings, ToolName, Ttl, plant_foreign_front_entry,
    plant_foreign_tool_entry,
};
use serde_json::json;

fn tool_args(value: &serde_json::Value) -> sealroom::rooms::ToolArgs {
    sealroom::rooms::ToolArgs::from_value(value).unwrap()
}

use crate::support::{BACKENDS, another_node, deriver, master, postgres_store, store, user};

fn tool(name: &str) -> ToolName {
    ToolName::parse(name).unwrap()
}

fn ttl(secs: i64) -> Ttl {
    Ttl::parse(secs).unwrap()
}

#[tokio::test]
async fn hits_misses_expiry_and_canonical_arguments() {
    for kind in BACKENDS {
        let store = store(kind, RoomsSettings::standard()).await;
        let room = store.rooms.room(&user("iss", "alice"));
        let cache = room.tool_cache();
        let weather = tool("weather");
        assert!(
            cache.lookup(&weather, &tool_args(&json!({"city": "Lisbon"}))).await.unwrap().is_none(),
            "empty room: miss"
        );
        cache
            .put(
                &weather,
                &tool_args(&json!({"city": "Lisbon", "units": {"t": "C", "w": "kmh"}})),
                &json!({"temp": 21}),
                ttl(60),
            )
            .await
            .unwrap();
        // The same arguments spelled differently (key order, escapes, number form) hit.
        let respelled: serde_json::Value =
            serde_json::from_str(r#"{"units":{"w":"kmh","t":"\u0043"},"city":"Lisbon"}"#).unwrap();
        let hit = cache.lookup(&weather, &tool_args(&respelled)).await.unwrap().expect("hit");
        assert_eq!(hit.value, json!({"temp": 21}));
        assert!(hit.age_secs >= 0);
        assert!(cache.lookup(&weather, &tool_args(&json!({"city": "Porto"}))).await.unwrap().is_none());
        assert!(cache.lookup(&tool("other"), &tool_args(&json!({"city": "Lisbon"}))).await.unwrap().is_none());
        // Expiry.
        cache.put(&weather, &tool_args(&json!({"city": "Faro"})), &json!({"temp": 25}), ttl(1)).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        assert!(cache.lookup(&weather, &tool_args(&json!({"city": "Faro"}))).await.unwrap().is_none());
        // TTLs are bounded.
        assert!(matches!(
            cache.put(&weather, &tool_args(&json!({})), &json!(1), ttl(30 * 24 * 3600)).await,
            Err(RoomError::InvalidInput(_))
        ));
        // Deleting a tool's entries.
        cache.delete_tool(&weather).await.unwrap();
        assert!(cache.lookup(&weather, &tool_args(&json!({"city": "Lisbon"}))).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn equal_requests_from_two_users_never_share_an_entry() {
    for kind in BACKENDS {
        let store = store(kind, RoomsSettings::standard()).await;
        let alice = store.rooms.room(&user("iss", "alice"));
        let bob = store.rooms.room(&user("iss", "bob"));
        let request = json!({"model": "m", "messages": [{"role": "user", "content": "What is on my calendar?"}]});
        // 25: byte-identical responses-cache requests.
        alice.response_cache().put(&request, &json!({"answer": "canary-alice dentist at 3"}), ttl(60)).await.unwrap();
        assert!(bob.response_cache().lookup(&request).await.unwrap().is_none());
        // 26: same tool and arguments: separate entries.
        let search = tool("search");
        alice.tool_cache().put(&search, &tool_args(&json!({"q": "x"})), &json!("canary-alice"), ttl(60)).await.unwrap();
        assert!(bob.tool_cache().lookup(&search, &tool_args(&json!({"q": "x"}))).await.unwrap().is_none());
        bob.tool_cache().put(&search, &tool_args(&json!({"q": "x"})), &json!("canary-bob"), ttl(60)).await.unwrap();
        assert_eq!(
            alice.tool_cache().lookup(&search, &tool_args(&json!({"q": "x"}))).await.unwrap().unwrap().value,
            json!("canary-alice")
        );
        assert_eq!(
            bob.tool_cache().lookup(&search, &tool_args(&json!({"q": "x"}))).await.unwrap().unwrap().value,
            json!("canary-bob")
        );
        // The same subject under another issuer is another room.
        let namesake = store.rooms.room(&user("iss-2", "alice"));
        assert!(namesake.response_cache().lookup(&request).await.unwrap().is_none());
        assert_eq!(store.rooms.isolation_alarms(), 0);
    }
}

#[tokio::test]
async fn an_entry_planted_under_the_wrong_room_is_refused_and_counted() {
    for kind in BACKENDS {
        let store = store(kind, RoomsSettings::standard()).await;
        let alice = store.rooms.room(&user("iss", "alice"));
        let bob = store.rooms.room(&user("iss", "bob"));
        let search = tool("search");
        plant_foreign_tool_entry(&bob, &alice, &search, &tool_args(&json!({"q": "x"})), &json!("canary-alice"))
            .await
            .unwrap();
        let before = store.rooms.isolation_alarms();
        let read = bob.tool_cache().lookup(&search, &tool_args(&json!({"q": "x"}))).await;
        assert!(matches!(read, Err(RoomError::IsolationAlarm)), "{read:?}");
        assert_eq!(store.rooms.isolation_alarms(), before + 1);
    }
}

#[tokio::test]
async fn an_entry_of_another_room_in_the_in_memory_front_is_refused_and_counted() {
    for kind in BACKENDS {
        let store = store(kind, RoomsSettings::standard()).await;
        let alice = store.rooms.room(&user("iss", "alice"));
        let bob = store.rooms.room(&user("iss", "bob"));
        let search = tool("search");
        bob.tool_cache().put(&search, &tool_args(&json!({"q": "y"})), &json!("bob's own"), ttl(600)).await.unwrap();
        plant_foreign_front_entry(&bob, &alice, &search, &tool_args(&json!({"q": "x"})), &json!("canary-alice"))
            .await
            .unwrap();
        let before = store.rooms.isolation_alarms();
        let read = bob.tool_cache().lookup(&search, &tool_args(&json!({"q": "x"}))).await;
        assert!(matches!(read, Err(RoomError::IsolationAlarm)), "{read:?}");
        assert_eq!(store.rooms.isolation_alarms(), before + 1);
        // Bob's own entry in the same front is still served.
        assert_eq!(
            bob.tool_cache().lookup(&search, &tool_args(&json!({"q": "y"}))).await.unwrap().unwrap().value,
            json!("bob's own")
        );
    }
}

#[tokio::test]
async fn deletes_and_erasure_invalidate_cached_entries_also_after_restart() {
    for kind in BACKENDS {
        let store = store(kind, RoomsSettings::standard()).await;
        let alice = user("iss", "alice");
        let room = store.rooms.room(&alice);
        let request = json!({"prompt": "summarize my diary"});
        let namespace = Namespace::parse(vec!["diary".into()]).unwrap();
        let key = ItemKey::parse("today").unwrap();
        room.items()
            .put(&namespace, &key, ItemInput::parse(&json!("canary"), None, None, None, None).unwrap())
            .await
            .unwrap();
        room.response_cache().put(&request, &json!("summary with canary"), ttl(600)).await.unwrap();
        room.tool_cache().put(&tool("t"), &tool_args(&json!(1)), &json!("derived canary"), ttl(600)).await.unwrap();
        assert!(room.response_cache().lookup(&request).await.unwrap().is_some(), "warm the front");
        room.items().delete(&namespace, &key).await.unwrap();
        assert!(room.response_cache().lookup(&request).await.unwrap().is_none(), "item delete invalidates");
        assert!(room.tool_cache().lookup(&tool("t"), &tool_args(&json!(1))).await.unwrap().is_none());
        let fresh = sealroom::Rooms::new(store.backend.clone(), master(), None, deriver(), RoomsSettings::standard())
            .await
            .unwrap();
        assert!(fresh.room(&alice).response_cache().lookup(&request).await.unwrap().is_none(), "also after a restart");
        // A thread delete does the same.
        let thread = room.threads().create(None, Metadata::default()).await.unwrap();
        room.response_cache().put(&request, &json!("again"), ttl(600)).await.unwrap();
        room.threads().delete(&thread.id).await.unwrap();
        assert!(room.response_cache().lookup(&request).await.unwrap().is_none(), "thread delete invalidates");
        // And erasing the account.
        room.response_cache().put(&request, &json!("again"), ttl(600)).await.unwrap();
        room.erase().await.unwrap();
        assert!(store.rooms.room(&alice).response_cache().lookup(&request).await.unwrap().is_none());
        let fresh = sealroom::Rooms::new(store.backend.clone(), master(), None, deriver(), RoomsSettings::standard())
            .await
            .unwrap();
        assert!(fresh.room(&alice).response_cache().lookup(&request).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn a_full_cache_evicts_only_its_own_oldest_entries() {
    for kind in BACKENDS {
        let settings = RoomsSettings {
            limits: RoomLimits { cache_entries_per_room_max: 20, ..RoomLimits::standard() },
            ..RoomsSettings::standard()
        };
        let store = store(kind, settings).await;
        let alice = store.rooms.room(&user("iss", "alice"));
        let bob = store.rooms.room(&user("iss", "bob"));
        let calc = tool("calc");
        for index in 0..10 {
            bob.tool_cache()
                .put(&calc, &tool_args(&json!(index)), &json!(format!("bob {index}")), ttl(600))
                .await
                .unwrap();
        }
        // 29: Alice writes five times her quota.
        for index in 0..100 {
            alice.tool_cache().put(&calc, &tool_args(&json!(index)), &json!(index), ttl(600)).await.unwrap();
        }
        for index in 0..10 {
            assert_eq!(
                bob.tool_cache().lookup(&calc, &tool_args(&json!(index))).await.unwrap().unwrap().value,
                json!(format!("bob {index}")),
                "Bob's entries stay"
            );
        }
        assert!(
            alice.tool_cache().lookup(&calc, &tool_args(&json!(99))).await.unwrap().is_some(),
            "the newest entry is there"
        );
        let usage = store.backend.usage(&alice.id()).await.unwrap();
        let records = usage
            .iter()
            .find(|usage| usage.collection == sealroom::vocabulary::records::Collection::ToolCache)
            .unwrap()
            .records;
        assert!(records <= 20, "{records} entries for a quota of 20");
    }
}

#[tokio::test]
async fn the_front_never_hides_a_change_made_through_another_node() {
    let (node_one, database) = postgres_store(RoomsSettings::standard(), 2).await;
    let node_two = another_node(&database, 2).await;
    let alice = user("iss", "alice");
    let search = tool("search");
    node_one.rooms.room(&alice).tool_cache().put(&search, &tool_args(&json!(1)), &json!("v1"), ttl(600)).await.unwrap();
    assert_eq!(
        node_one.rooms.room(&alice).tool_cache().lookup(&search, &tool_args(&json!(1))).await.unwrap().unwrap().value,
        json!("v1")
    );
    node_two.room(&alice).tool_cache().put(&search, &tool_args(&json!(1)), &json!("v2"), ttl(600)).await.unwrap();
    assert_eq!(
        node_one.rooms.room(&alice).tool_cache().lookup(&search, &tool_args(&json!(1))).await.unwrap().unwrap().value,
        json!("v2")
    );
    node_two.room(&alice).tool_cache().delete_tool(&search).await.unwrap();
    assert!(node_one.rooms.room(&alice).tool_cache().lookup(&search, &tool_args(&json!(1))).await.unwrap().is_none());
}
