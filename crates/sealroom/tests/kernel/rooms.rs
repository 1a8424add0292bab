//! Room behaviour on every backend: threads, items, tenant rooms, quotas, erasure.

use sealroom::RoomError;
use sealroom::limits::RoomLimits;
use sealroom::rooms::RoomsSettings;
use sealroom::rooms::{
    ItemCursor, ItemInput, ItemKey, Metadata, Namespace, NamespacePrefix, NewMessage, PageSize, ThreadPatch, Title,
    TokenBudget,
};
use serde_json::json;

use crate::support::{BACKENDS, member, store, user};

fn message(role: &str, content: &str) -> NewMessage {
    NewMessage::parse(role, content.to_owned(), None, None).unwrap()
}

fn namespace(path: &[&str]) -> Namespace {
    Namespace::parse(path.iter().map(|segment| (*segment).to_owned()).collect()).unwrap()
}

fn item(value: serde_json::Value, text: Option<&str>) -> ItemInput {
    ItemInput::parse(&value, text.map(str::to_owned), None, None, None).unwrap()
}

#[tokio::test]
async fn thread_lifecycle() {
    for kind in BACKENDS {
        let store = store(kind, RoomsSettings::standard()).await;
        let room = store.rooms.room(&user("iss", "alice"));
        let threads = room.threads();
        let created = threads.create(Some(Title::parse("trip").unwrap()), Metadata::default()).await.unwrap();
        assert_eq!(threads.get(&created.id).await.unwrap().title.as_deref(), Some("trip"));

        let appended =
            threads.append(&created.id, vec![message("user", "one"), message("assistant", "two")]).await.unwrap();
        assert_eq!(appended.iter().map(|m| m.sequence).collect::<Vec<_>>(), vec![1, 2]);
        threads.append(&created.id, vec![message("user", "three")]).await.unwrap();
        assert_eq!(threads.get(&created.id).await.unwrap().message_count, 3);

        let first = threads.messages(&created.id, None, PageSize::parse(Some(2)).unwrap()).await.unwrap();
        assert_eq!(first.entries.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(), vec!["one", "two"]);
        assert_eq!(first.next, Some(2));
        let second = threads.messages(&created.id, first.next, PageSize::parse(Some(2)).unwrap()).await.unwrap();
        assert_eq!(second.entries.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(), vec!["three"]);
        assert_eq!(second.next, None);

        // "two" costs 1 + 4 tokens and "three" 2 + 4: a budget of 11 holds exactly the last two.
        let context = threads.context(&created.id, TokenBudget::parse(11).unwrap()).await.unwrap();
        assert_eq!(context.messages.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(), vec!["two", "three"]);
        assert!(context.truncated);

        let patched = threads
            .update(
                &created.id,
                ThreadPatch { title: Some(None), metadata: Some(Metadata::parse(Some(json!({"k": 1}))).unwrap()) },
            )
            .await
            .unwrap();
        assert_eq!(patched.title, None);
        assert_eq!(patched.metadata.as_map().get("k"), Some(&json!(1)));

        threads.delete(&created.id).await.unwrap();
        assert!(matches!(threads.get(&created.id).await, Err(RoomError::NotFound)));
        assert!(matches!(
            threads.messages(&created.id, None, PageSize::parse(None).unwrap()).await,
            Err(RoomError::NotFound)
        ));
        assert!(matches!(threads.delete(&created.id).await, Err(RoomError::NotFound)));
    }
}

#[tokio::test]
async fn thread_listing_pages_in_creation_order() {
    for kind in BACKENDS {
        let store = store(kind, RoomsSettings::standard()).await;
        let room = store.rooms.room(&user("iss", "alice"));
        let mut created = Vec::new();
        for _ in 0..5 {
            created.push(room.threads().create(None, Metadata::default()).await.unwrap().id);
        }
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = room.threads().list(cursor, PageSize::parse(Some(2)).unwrap()).await.unwrap();
            seen.extend(page.entries.iter().map(|thread| thread.id));
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, created);
    }
}

#[tokio::test]
async fn concurrent_appends_lose_nothing() {
    for kind in BACKENDS {
        let store = store(kind, RoomsSettings::standard()).await;
        let room = store.rooms.room(&user("iss", "alice"));
        let thread = room.threads().create(None, Metadata::default()).await.unwrap();
        let mut tasks = Vec::new();
        for index in 0..20 {
            let room = room.clone();
            let id = thread.id;
            tasks.push(tokio::spawn(async move {
                room.threads().append(&id, vec![message("user", &format!("m{index}"))]).await
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let page = room.threads().messages(&thread.id, None, PageSize::parse(Some(100)).unwrap()).await.unwrap();
        assert_eq!(page.entries.iter().map(|m| m.sequence).collect::<Vec<_>>(), (1..=20).collect::<Vec<_>>());
        let mut contents: Vec<_> = page.entries.iter().map(|m| m.content.clone()).collect();
        contents.sort();
        contents.dedup();
        assert_eq!(contents.len(), 20);
    }
}

#[tokio::test]
async fn item_lifecycle_and_listing() {
    for kind in BACKENDS {
        let store = store(kind, RoomsSettings::standard()).await;
        let room = store.rooms.room(&user("iss", "alice"));
        let items = room.items();
        let travel = namespace(&["memories", "travel"]);
        let work = namespace(&["memories", "work"]);
        let first = items
            .put(&travel, &ItemKey::parse("flight").unwrap(), item(json!({"seat": "12A"}), Some("window seat")))
            .await
            .unwrap();
        items.put(&travel, &ItemKey::parse("hotel").unwrap(), item(json!("quiet room"), None)).await.unwrap();
        items.put(&work, &ItemKey::parse("desk").unwrap(), item(json!(1), None)).await.unwrap();
        let replaced =
            items.put(&travel, &ItemKey::parse("flight").unwrap(), item(json!({"seat": "1A"}), None)).await.unwrap();
        assert_eq!(replaced.created_at, first.created_at);
        assert_eq!(items.get(&travel, &ItemKey::parse("flight").unwrap()).await.unwrap().value, json!({"seat": "1A"}));

        let everything =
            items.list(&NamespacePrefix::everything(), None, PageSize::parse(Some(2)).unwrap()).await.unwrap();
        assert_eq!(everything.entries.len(), 2);
        let cursor = ItemCursor::parse(&everything.next.as_ref().unwrap().encode()).unwrap();
        let rest =
            items.list(&NamespacePrefix::everything(), Some(&cursor), PageSize::parse(Some(2)).unwrap()).await.unwrap();
        assert_eq!(rest.entries.len(), 1);
        assert!(rest.next.is_none());

        let travel_only = items
            .list(&NamespacePrefix::parse_path("memories/travel").unwrap(), None, PageSize::parse(None).unwrap())
            .await
            .unwrap();
        assert_eq!(travel_only.entries.iter().map(|i| i.key.as_str()).collect::<Vec<_>>(), vec!["flight", "hotel"]);

        items.delete(&travel, &ItemKey::parse("hotel").unwrap()).await.unwrap();
        assert!(matches!(items.get(&travel, &ItemKey::parse("hotel").unwrap()).await, Err(RoomError::NotFound)));
        assert!(matches!(items.delete(&travel, &ItemKey::parse("hotel").unwrap()).await, Err(RoomError::NotFound)));
    }
}

#[tokio::test]
async fn item_export_pages_through_every_item_once_with_its_embedding() {
    for kind in BACKENDS {
        let store = store(kind, RoomsSettings::standard()).await;
        let room = store.rooms.room(&user("iss", "alice"));
        let bob = store.rooms.room(&user("iss", "bob"));
        let path = namespace(&["docs"]);
        for index in 0..23 {
            let input = ItemInput::parse(&json!(index), None, Some(vec![index as f32, 1.0]), None, None).unwrap();
            room.items().put(&path, &ItemKey::parse(&format!("d{index:02}")).unwrap(), input).await.unwrap();
        }
        bob.items().put(&path, &ItemKey::parse("bobs").unwrap(), item(json!("bob"), None)).await.unwrap();
        let (mut seen, mut after, mut pages) = (Vec::new(), None, 0);
        loop {
            let page = room.items().export_page(after.as_ref(), PageSize::parse(Some(10)).unwrap()).await.unwrap();
            assert!(page.entries.len() <= 10, "a page holds at most its size");
            for item in page.entries {
                let index = item.value.as_u64().unwrap();
                assert_eq!(item.embedding, Some(vec![index as f32, 1.0]));
                seen.push(index);
            }
            pages += 1;
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..23).collect::<Vec<u64>>(), "every item once, and no other room's");
        assert_eq!(pages, 3);
    }
}

#[tokio::test]
async fn expired_items_are_gone() {
    for kind in BACKENDS {
        let store = store(kind, RoomsSettings::standard()).await;
        let room = store.rooms.room(&user("iss", "alice"));
        let path = namespace(&["scratch"]);
        let key = ItemKey::parse("soon").unwrap();
        let input = ItemInput::parse(&json!("x"), None, None, None, Some(1)).unwrap();
        room.items().put(&path, &key, input).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        assert!(matches!(room.items().get(&path, &key).await, Err(RoomError::NotFound)));
        assert!(
            room.items()
                .list(&NamespacePrefix::everything(), None, PageSize::parse(None).unwrap())
                .await
                .unwrap()
                .entries
                .is_empty()
        );
        assert_eq!(store.backend.sweep_expired(100).await.unwrap(), 1);
    }
}

#[tokio::test]
async fn other_rooms_ids_are_not_found() {
    for kind in BACKENDS {
        let store = store(kind, RoomsSettings::standard()).await;
        let alice = store.rooms.room(&user("iss", "alice"));
        let bob = store.rooms.room(&user("iss", "bob"));
        let thread = alice.threads().create(None, Metadata::default()).await.unwrap();
        alice.threads().append(&thread.id, vec![message("user", "canary-alice")]).await.unwrap();
        let path = namespace(&["notes"]);
        let key = ItemKey::parse("secret").unwrap();
        alice.items().put(&path, &key, item(json!("canary-alice"), None)).await.unwrap();

        // Bob's room is empty (no key yet): every lookup of Alice's ids is "not found".
        assert!(matches!(bob.threads().get(&thread.id).await, Err(RoomError::NotFound)));
        assert!(matches!(bob.items().get(&path, &key).await, Err(RoomError::NotFound)));
        // Once Bob has a room of his own, still not found, and nothing of Alice's changes.
        bob.items().put(&path, &key, item(json!("canary-bob"), None)).await.unwrap();
        bob.threads().create(None, Metadata::default()).await.unwrap();
        assert!(matches!(bob.threads().get(&thread.id).await, Err(RoomError::NotFound)));
        assert!(matches!(bob.threads().append(&thread.id, vec![message("user", "x")]).await, Err(RoomError::NotFound)));
        assert!(matches!(bob.threads().delete(&thread.id).await, Err(RoomError::NotFound)));
        assert!(matches!(bob.threads().update(&thread.id, ThreadPatch::default()).await, Err(RoomError::NotFound)));
        assert_eq!(bob.items().get(&path, &key).await.unwrap().value, json!("canary-bob"));
        assert_eq!(alice.items().get(&path, &key).await.unwrap().value, json!("canary-alice"));
        assert_eq!(alice.threads().get(&thread.id).await.unwrap().message_count, 1);
        assert_eq!(store.rooms.isolation_alarms(), 0);
    }
}

#[tokio::test]
async fn tenant_rooms_are_shared_by_members_only() {
    for kind in BACKENDS {
        let store = store(kind, RoomsSettings::standard()).await;
        let writer = member("iss", "w", "acme", &["tenant-writer"]);
        let reader = member("iss", "r", "acme", &[]);
        let outsider = member("iss", "o", "globex", &["tenant-writer"]);
        let other_issuer = member("iss-2", "x", "acme", &["tenant-writer"]);
        let path = namespace(&["policies"]);
        let key = ItemKey::parse("travel").unwrap();
        store.rooms.tenant_room(&writer).unwrap().items().put(&path, &key, item(json!("economy"), None)).await.unwrap();
        assert_eq!(
            store.rooms.tenant_room(&reader).unwrap().items().get(&path, &key).await.unwrap().value,
            json!("economy")
        );
        assert!(matches!(
            store.rooms.tenant_room(&reader).unwrap().items().put(&path, &key, item(json!("first"), None)).await,
            Err(RoomError::Forbidden(_))
        ));
        assert!(matches!(
            store.rooms.tenant_room(&outsider).unwrap().items().get(&path, &key).await,
            Err(RoomError::NotFound)
        ));
        assert!(matches!(
            store.rooms.tenant_room(&other_issuer).unwrap().items().get(&path, &key).await,
            Err(RoomError::NotFound)
        ));
        assert!(matches!(store.rooms.tenant_room(&user("iss", "loner")), Err(RoomError::NoTenant)));
        // The tenant room is not the writer's own room.
        assert!(matches!(store.rooms.room(&writer).items().get(&path, &key).await, Err(RoomError::NotFound)));
    }
}

#[tokio::test]
async fn quotas_bound_one_room_only() {
    for kind in BACKENDS {
        let settings = RoomsSettings {
            limits: RoomLimits { items_per_room_max: 3, ..RoomLimits::standard() },
            ..RoomsSettings::standard()
        };
        let store = store(kind, settings).await;
        let alice = store.rooms.room(&user("iss", "alice"));
        let bob = store.rooms.room(&user("iss", "bob"));
        let path = namespace(&["n"]);
        for index in 0..3 {
            alice
                .items()
                .put(&path, &ItemKey::parse(&format!("k{index}")).unwrap(), item(json!(index), None))
                .await
                .unwrap();
        }
        assert!(matches!(
            alice.items().put(&path, &ItemKey::parse("k3").unwrap(), item(json!(3), None)).await,
            Err(RoomError::QuotaExceeded("items"))
        ));
        // Replacing an existing item does not grow the room and is allowed.
        alice.items().put(&path, &ItemKey::parse("k0").unwrap(), item(json!("again"), None)).await.unwrap();
        bob.items().put(&path, &ItemKey::parse("k3").unwrap(), item(json!(3), None)).await.unwrap();
    }
}

#[tokio::test]
async fn erasure_empties_the_room_for_good() {
    for kind in BACKENDS {
        let store = store(kind, RoomsSettings::standard()).await;
        let alice = store.rooms.room(&user("iss", "alice"));
        let path = namespace(&["n"]);
        let key = ItemKey::parse("k").unwrap();
        alice.items().put(&path, &key, item(json!("canary"), None)).await.unwrap();
        let thread = alice.threads().create(None, Metadata::default()).await.unwrap();
        alice.threads().append(&thread.id, vec![message("user", "canary")]).await.unwrap();
        let receipt = alice.erase().await.unwrap();
        assert!(receipt.existed);
        assert_eq!(receipt.records, 3);
        assert_eq!(receipt.room, alice.id());
        let again = store.rooms.room(&user("iss", "alice"));
        assert!(matches!(again.items().get(&path, &key).await, Err(RoomError::NotFound)));
        assert!(matches!(again.threads().get(&thread.id).await, Err(RoomError::NotFound)));
        again.items().put(&path, &key, item(json!("fresh"), None)).await.unwrap();
        assert_eq!(again.items().get(&path, &key).await.unwrap().value, json!("fresh"));
        let erasures = store.backend.erasures_page(0, 10).await.unwrap();
        assert_eq!(erasures.len(), 1);
        assert!(erasures[0].purged);
        assert_eq!(store.rooms.isolation_alarms(), 0);
    }
}

/// Listings page through a room in (namespace, key) order under a prefix, with writes and
/// deletes between pages, skipping expired items; every live item is seen exactly once.
#[tokio::test]
async fn listings_page_in_order_through_writes_and_expiry() {
    for kind in BACKENDS {
        let store = store(kind, RoomsSettings::standard()).await;
        let room = store.rooms.room(&user("iss", "alice"));
        let items = room.items();
        for index in 0..60 {
            let path = namespace(&["notes", ["a", "b", "c"][index % 3]]);
            items
                .put(&path, &ItemKey::parse(&format!("k{index:03}")).unwrap(), item(json!(index), Some("x")))
                .await
                .unwrap();
        }
        items.put(&namespace(&["other"]), &ItemKey::parse("outside").unwrap(), item(json!(0), None)).await.unwrap();
        let expiring = ItemInput::parse(&json!(1), None, None, None, Some(1)).unwrap();
        items.put(&namespace(&["notes", "a"]), &ItemKey::parse("expiring").unwrap(), expiring).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;

        let prefix = NamespacePrefix::parse_path("notes").unwrap();
        let mut seen: Vec<(Vec<String>, String)> = Vec::new();
        let mut cursor: Option<ItemCursor> = None;
        let mut pages = 0;
        loop {
            let page = items.list(&prefix, cursor.as_ref(), PageSize::parse(Some(7)).unwrap()).await.unwrap();
            assert!(page.entries.len() <= 7);
            seen.extend(
                page.entries.iter().map(|item| (item.namespace.segments().to_vec(), item.key.as_str().to_owned())),
            );
            if pages == 1 {
                // Between pages: a new item after the cursor, one before it, and a delete ahead.
                items
                    .put(&namespace(&["notes", "c"]), &ItemKey::parse("k999").unwrap(), item(json!(1), None))
                    .await
                    .unwrap();
                items
                    .put(&namespace(&["notes", "a"]), &ItemKey::parse("k000a").unwrap(), item(json!(1), None))
                    .await
                    .unwrap();
                items.delete(&namespace(&["notes", "c"]), &ItemKey::parse("k059").unwrap()).await.unwrap();
            }
            pages += 1;
            match page.next {
                Some(next) => cursor = Some(ItemCursor::parse(&next.encode()).unwrap()),
                None => break,
            }
        }
        let mut expected = seen.clone();
        expected.sort();
        expected.dedup();
        assert_eq!(seen, expected, "{kind:?}: in order, each once");
        assert!(seen.iter().all(|(namespace, _)| namespace[0] == "notes"), "{kind:?}: only under the prefix");
        assert!(!seen.iter().any(|(_, key)| key == "expiring"), "{kind:?}: expired items are not listed");
        assert!(!seen.iter().any(|(_, key)| key == "k059"), "{kind:?}: deleted ahead of the cursor");
        assert!(seen.iter().any(|(_, key)| key == "k999"), "{kind:?}: written ahead of the cursor");
        assert!(!seen.iter().any(|(_, key)| key == "k000a"), "{kind:?}: written behind the cursor");
        assert_eq!(seen.len(), 60 - 1 + 1, "{kind:?}: 60 written, one deleted, one added after the cursor");
    }
}
