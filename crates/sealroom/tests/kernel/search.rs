//! Per-room retrieval on every backend: ranking, exact recall, filters before ranking,
//! isolation (ATTACKS.md 30–33), deletes and expiry, index coherence and the memory budget.

use sealroom::RoomError;
use sealroom::rooms::{
    ItemInput, ItemKey, Metadata, Namespace, NamespacePrefix, PageSize, Room, RoomsSettings, plant_foreign_item,
};
use sealroom::search::SearchRequest;
use serde_json::json;

use crate::support::{BACKENDS, another_node, deriver, master, postgres_store, store, user};

fn namespace(path: &str) -> Namespace {
    Namespace::parse(path.split('/').map(str::to_owned).collect()).unwrap()
}

async fn put(room: &Room, path: &str, key: &str, text: &str, embedding: Option<Vec<f32>>, metadata: serde_json::Value) {
    let input =
        ItemInput::parse(&json!({"text": text}), Some(text.to_owned()), embedding, Some(metadata), None).unwrap();
    room.items().put(&namespace(path), &ItemKey::parse(key).unwrap(), input).await.unwrap();
}

fn lexical(query: &str, limit: i64) -> SearchRequest {
    SearchRequest::parse(Some(query.to_owned()), None, NamespacePrefix::everything(), None, Some(limit), None).unwrap()
}

fn keys_of(hits: &[sealroom::search::SearchHit]) -> Vec<String> {
    hits.iter().map(|hit| hit.item.key.as_str().to_owned()).collect()
}

/// A deterministic pseudo-random generator for test vectors.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vector(&mut self, dims: usize) -> Vec<f32> {
        (0..dims).map(|_| self.next()).collect()
    }
}

#[tokio::test]
async fn lexical_search_ranks_and_filters_before_ranking() {
    for kind in BACKENDS {
        let store = store(kind, RoomsSettings::standard()).await;
        let room = store.rooms.room(&user("iss", "alice"));
        put(&room, "notes/travel", "a", "window seat on the night train to Lisbon", None, json!({"kind": "pref"}))
            .await;
        put(&room, "notes/travel", "b", "aisle seat please", None, json!({"kind": "pref"})).await;
        put(
            &room,
            "notes/work",
            "c",
            "the window of the office faces the train station",
            None,
            json!({"kind": "fact"}),
        )
        .await;
        put(&room, "notes/work", "d", "nothing relevant here", None, json!({})).await;
        let hits = room.items().search(&lexical("window train", 10)).await.unwrap();
        assert_eq!(keys_of(&hits), ["a", "c"]);
        assert!(hits[0].lexical.is_some() && hits[0].vector.is_none());
        let travel = SearchRequest::parse(
            Some("seat".into()),
            None,
            NamespacePrefix::parse_path("notes/travel").unwrap(),
            None,
            None,
            None,
        )
        .unwrap();
        assert_eq!(keys_of(&room.items().search(&travel).await.unwrap()).len(), 2);
        let facts = SearchRequest::parse(
            Some("window".into()),
            None,
            NamespacePrefix::everything(),
            Some(json!({"kind": "fact"})),
            None,
            None,
        )
        .unwrap();
        assert_eq!(keys_of(&room.items().search(&facts).await.unwrap()), ["c"]);
        assert_eq!(room.items().search(&lexical("window train", 1)).await.unwrap().len(), 1);
        assert!(room.items().search(&lexical("zeppelin", 10)).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn vector_search_has_exact_recall() {
    for kind in BACKENDS {
        let store = store(kind, RoomsSettings::standard()).await;
        let room = store.rooms.room(&user("iss", "alice"));
        let mut random = Lcg(7);
        let dims = 24;
        let mut vectors = Vec::new();
        for index in 0..150 {
            let vector = random.vector(dims);
            put(&room, "docs", &format!("d{index:03}"), &format!("document {index}"), Some(vector.clone()), json!({}))
                .await;
            vectors.push(vector);
        }
        for _ in 0..5 {
            let query = random.vector(dims);
            let request =
                SearchRequest::parse(None, Some(query.clone()), NamespacePrefix::everything(), None, Some(10), None)
                    .unwrap();
            let found = keys_of(&room.items().search(&request).await.unwrap());
            let norm = |vector: &[f32]| vector.iter().map(|value| value * value).sum::<f32>().sqrt();
            let mut brute: Vec<(f32, String)> = vectors
                .iter()
                .enumerate()
                .map(|(index, vector)| {
                    let dot: f32 = vector.iter().zip(&query).map(|(a, b)| a * b).sum();
                    (dot / (norm(vector) * norm(&query)), format!("d{index:03}"))
                })
                .collect();
            brute.sort_by(|left, right| right.0.total_cmp(&left.0));
            let expected: Vec<String> = brute.into_iter().take(10).map(|(_, key)| key).collect();
            assert_eq!(found, expected, "recall must equal brute force");
        }
        // Dot product ranks by raw inner product.
        let query = random.vector(dims);
        let request =
            SearchRequest::parse(None, Some(query.clone()), NamespacePrefix::everything(), None, Some(3), Some("dot"))
                .unwrap();
        let hits = room.items().search(&request).await.unwrap();
        assert!(hits.windows(2).all(|pair| pair[0].vector.unwrap().1 >= pair[1].vector.unwrap().1));
    }
}

#[tokio::test]
async fn hybrid_search_fuses_both_rankings() {
    for kind in BACKENDS {
        let store = store(kind, RoomsSettings::standard()).await;
        let room = store.rooms.room(&user("iss", "alice"));
        put(&room, "m", "lexical-only", "espresso machine descaling", Some(vec![0.0, 1.0, 0.0]), json!({})).await;
        put(&room, "m", "vector-only", "unrelated words entirely", Some(vec![1.0, 0.0, 0.0]), json!({})).await;
        put(&room, "m", "both", "espresso espresso at the station", Some(vec![0.9, 0.1, 0.0]), json!({})).await;
        let request = SearchRequest::parse(
            Some("espresso".into()),
            Some(vec![1.0, 0.0, 0.0]),
            NamespacePrefix::everything(),
            None,
            Some(10),
            None,
        )
        .unwrap();
        let hits = room.items().search(&request).await.unwrap();
        assert_eq!(hits[0].item.key.as_str(), "both", "an item high in both rankings wins");
        assert!(hits[0].lexical.is_some() && hits[0].vector.is_some());
        assert_eq!(hits.len(), 3);
    }
}

#[tokio::test]
async fn searches_never_cross_rooms() {
    for kind in BACKENDS {
        let store = store(kind, RoomsSettings::standard()).await;
        let alice = store.rooms.room(&user("iss", "alice"));
        let bob = store.rooms.room(&user("iss", "bob"));
        let vector = vec![0.3, -0.2, 0.9];
        // ATTACKS 30: Bob owns documents identical to Alice's query.
        for index in 0..30 {
            put(
                &bob,
                "notes",
                &format!("b{index}"),
                "quarterly revenue forecast canary-bob",
                Some(vector.clone()),
                json!({}),
            )
            .await;
        }
        // ATTACKS 31: Alice has 3 matches inside a far larger corpus of other rooms.
        for index in 0..3 {
            put(
                &alice,
                "notes",
                &format!("a{index}"),
                &format!("quarterly revenue note {index}"),
                Some(vec![0.1, 0.2, 0.3]),
                json!({}),
            )
            .await;
        }
        let hybrid = SearchRequest::parse(
            Some("quarterly revenue forecast".into()),
            Some(vector.clone()),
            NamespacePrefix::everything(),
            None,
            Some(10),
            None,
        )
        .unwrap();
        let hits = alice.items().search(&hybrid).await.unwrap();
        assert_eq!(hits.len(), 3);
        assert!(hits.iter().all(|hit| hit.item.key.as_str().starts_with('a')));
        // ATTACKS 32: a term only Bob's data contains: no hit, no count.
        assert!(alice.items().search(&lexical("canary-bob", 10)).await.unwrap().is_empty());
        assert!(alice.items().search(&lexical("canary", 10)).await.unwrap().is_empty());
        // An empty room searches empty, without creating anything.
        let carol = store.rooms.room(&user("iss", "carol"));
        assert!(carol.items().search(&lexical("quarterly", 10)).await.unwrap().is_empty());
        assert_eq!(store.rooms.isolation_alarms(), 0);
    }
}

#[tokio::test]
async fn deleted_and_expired_items_never_come_back() {
    for kind in BACKENDS {
        let store = store(kind, RoomsSettings::standard()).await;
        let room = store.rooms.room(&user("iss", "alice"));
        put(&room, "n", "keep", "kept pelican", Some(vec![1.0, 0.0]), json!({})).await;
        put(&room, "n", "gone", "deleted pelican", Some(vec![1.0, 0.1]), json!({})).await;
        let short =
            ItemInput::parse(&json!(1), Some("expiring pelican".into()), Some(vec![0.9, 0.0]), None, Some(1)).unwrap();
        room.items().put(&namespace("n"), &ItemKey::parse("brief").unwrap(), short).await.unwrap();
        assert_eq!(room.items().search(&lexical("pelican", 10)).await.unwrap().len(), 3);
        room.items().delete(&namespace("n"), &ItemKey::parse("gone").unwrap()).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        let vector =
            SearchRequest::parse(None, Some(vec![1.0, 0.05]), NamespacePrefix::everything(), None, Some(10), None)
                .unwrap();
        assert_eq!(keys_of(&room.items().search(&lexical("pelican", 10)).await.unwrap()), ["keep"]);
        assert_eq!(keys_of(&room.items().search(&vector).await.unwrap()), ["keep"]);
        // A fresh process (no resident index) rebuilds from the store: still gone.
        let rooms = sealroom::Rooms::new(store.backend.clone(), master(), None, deriver(), RoomsSettings::standard())
            .await
            .unwrap();
        let reopened = rooms.room(&user("iss", "alice"));
        assert_eq!(keys_of(&reopened.items().search(&lexical("pelican", 10)).await.unwrap()), ["keep"]);
        assert_eq!(keys_of(&reopened.items().search(&vector).await.unwrap()), ["keep"]);
    }
}

#[tokio::test]
async fn embedding_dimensions_must_agree() {
    for kind in BACKENDS {
        let store = store(kind, RoomsSettings::standard()).await;
        let room = store.rooms.room(&user("iss", "alice"));
        put(&room, "n", "first", "x", Some(vec![1.0, 2.0, 3.0]), json!({})).await;
        let wrong = ItemInput::parse(&json!(1), None, Some(vec![1.0, 2.0]), None, None).unwrap();
        assert!(matches!(
            room.items().put(&namespace("n"), &ItemKey::parse("second").unwrap(), wrong).await,
            Err(RoomError::InvalidInput(_))
        ));
        let request =
            SearchRequest::parse(None, Some(vec![1.0; 5]), NamespacePrefix::everything(), None, None, None).unwrap();
        assert!(matches!(room.items().search(&request).await, Err(RoomError::InvalidInput(_))));
    }
}

#[tokio::test]
async fn bad_search_requests_are_refused() {
    let prefix = NamespacePrefix::everything;
    assert!(SearchRequest::parse(None, None, prefix(), None, None, None).is_err());
    assert!(SearchRequest::parse(Some("  ".into()), None, prefix(), None, None, None).is_err());
    assert!(SearchRequest::parse(Some("x".repeat(5000)), None, prefix(), None, None, None).is_err());
    assert!(SearchRequest::parse(Some("x".into()), Some(vec![f32::NAN]), prefix(), None, None, None).is_err());
    assert!(SearchRequest::parse(Some("x".into()), None, prefix(), Some(json!([1])), None, None).is_err());
    assert!(SearchRequest::parse(Some("x".into()), None, prefix(), None, Some(-1), None).is_err());
    assert!(SearchRequest::parse(Some("x".into()), None, prefix(), None, None, Some("l2")).is_err());
    let clamped = SearchRequest::parse(Some("x".into()), None, prefix(), None, Some(1_000_000_000), None).unwrap();
    assert_eq!(clamped.limit, sealroom::limits::SEARCH_RESULTS_MAX);
    let many_terms = (0..10_000).map(|index| format!("t{index}")).collect::<Vec<_>>().join(" ");
    assert!(
        SearchRequest::parse(Some(many_terms), None, prefix(), None, None, None).is_err(),
        "10,000 terms exceed the query size bound"
    );
    let _ = Metadata::default();
}

#[tokio::test]
async fn indexes_stay_coherent_across_nodes() {
    let (node_one, database) = postgres_store(RoomsSettings::standard(), 2).await;
    let node_two = another_node(&database, 2).await;
    let alice = user("iss", "alice");
    put(&node_one.rooms.room(&alice), "n", "one", "lighthouse keeper", None, json!({})).await;
    assert_eq!(node_one.rooms.room(&alice).items().search(&lexical("lighthouse", 10)).await.unwrap().len(), 1);
    assert_eq!(node_two.room(&alice).items().search(&lexical("lighthouse", 10)).await.unwrap().len(), 1);
    // Both nodes now hold an index; a write through node two must show on node one.
    put(&node_two.room(&alice), "n", "two", "second lighthouse", None, json!({})).await;
    assert_eq!(node_one.rooms.room(&alice).items().search(&lexical("lighthouse", 10)).await.unwrap().len(), 2);
    node_one.rooms.room(&alice).items().delete(&namespace("n"), &ItemKey::parse("one").unwrap()).await.unwrap();
    assert_eq!(keys_of(&node_two.room(&alice).items().search(&lexical("lighthouse", 10)).await.unwrap()), ["two"]);
    // Listings are answered from the same index, and are as fresh.
    let listed = |rooms: sealroom::Rooms| async move {
        let page = rooms
            .room(&user("iss", "alice"))
            .items()
            .list(&NamespacePrefix::everything(), None, sealroom::rooms::PageSize::parse(None).unwrap())
            .await
            .unwrap();
        page.entries.iter().map(|item| item.key.as_str().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(listed(node_two.clone()).await, ["two"]);
    put(&node_one.rooms.room(&alice), "n", "three", "third", None, json!({})).await;
    assert_eq!(listed(node_two.clone()).await, ["three", "two"]);
    // Thread writes do not invalidate the item index (its version is per collection).
    let thread = node_two.room(&alice).threads().create(None, Metadata::default()).await.unwrap();
    assert_eq!(thread.message_count, 0);
    assert_eq!(node_two.room(&alice).items().search(&lexical("lighthouse", 10)).await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_resident_set_stays_within_its_budget() {
    let settings = RoomsSettings { search_resident_bytes_max: 64 * 1024, ..RoomsSettings::standard() };
    let store = store(BACKENDS[0], settings).await;
    for index in 0..40 {
        let room = store.rooms.room(&user("iss", &format!("user{index}")));
        put(&room, "n", "k", &format!("{} unique{index}", "filler ".repeat(200)), Some(vec![1.0; 64]), json!({})).await;
        assert_eq!(room.items().search(&lexical(&format!("unique{index}"), 10)).await.unwrap().len(), 1);
    }
    let resident = store.rooms.resident_search_indexes();
    assert!(resident < 40, "{resident} rooms resident within a 64 KiB budget");
    // Evicted rooms rebuild on demand and are still right.
    let first = store.rooms.room(&user("iss", "user0"));
    assert_eq!(first.items().search(&lexical("unique0", 10)).await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_item_stamped_with_another_owner_is_never_indexed_read_or_exported() {
    for kind in BACKENDS {
        let store = store(kind, RoomsSettings::standard()).await;
        let alice = store.rooms.room(&user("iss", "alice"));
        let bob = store.rooms.room(&user("iss", "bob"));
        put(&bob, "notes", "own", "canary shared word", None, json!({})).await;
        let (path, key) = (namespace("notes"), ItemKey::parse("planted").unwrap());
        plant_foreign_item(&bob, &alice, &path, &key, "canary-alice shared word").await.unwrap();
        let before = store.rooms.isolation_alarms();
        // The cold build opens the planted record, refuses it and counts it; Bob's own item stays.
        let hits = bob.items().search(&lexical("shared word", 10)).await.unwrap();
        assert_eq!(keys_of(&hits), ["own"]);
        assert_eq!(store.rooms.isolation_alarms(), before + 1);
        let listed = bob.items().list(&NamespacePrefix::everything(), None, PageSize::parse(None).unwrap()).await;
        assert_eq!(listed.unwrap().entries.iter().map(|item| item.key.as_str()).collect::<Vec<_>>(), ["own"]);
        let read = bob.items().get(&path, &key).await;
        assert!(matches!(read, Err(RoomError::IsolationAlarm)), "{read:?}");
        let exported = bob.items().export_page(None, PageSize::parse(None).unwrap()).await;
        assert!(matches!(exported, Err(RoomError::IsolationAlarm)), "{exported:?}");
        assert_eq!(store.rooms.isolation_alarms(), before + 3);
    }
}

/// A tenant room's index is built by its writes, so whether it is warm tells members about
/// writes (which they can list), never about each other's searches (ATTACKS.md 50).
#[tokio::test]
async fn a_tenant_rooms_index_is_warmed_by_its_writes_not_by_reads() {
    let store = store(BACKENDS[0], RoomsSettings::standard()).await;
    let writer = crate::support::member("iss", "writer", "acme", &["tenant-writer"]);
    let tenant = store.rooms.tenant_room(&writer).unwrap();
    assert_eq!(store.rooms.resident_search_indexes(), 0);
    put(&tenant, "shared", "plan", "quarterly plan", None, json!({})).await;
    assert_eq!(store.rooms.resident_search_indexes(), 1, "the write built the tenant room's index");
    // A user room is still built on first use only.
    put(&store.rooms.room(&user("iss", "alice")), "n", "k", "private note", None, json!({})).await;
    assert_eq!(store.rooms.resident_search_indexes(), 1);
}
