//! PostgreSQL as a line of defence of its own (ATTACKS.md 18–23): the catalog audit, queries
//! without a room, writes into another room, a pool of one connection under thousands of
//! cancellations, and two nodes over one database.

use std::time::Duration;

use sealroom::RoomError;
use sealroom::rooms::{ItemInput, ItemKey, Metadata, Namespace, NewMessage, PageSize, RoomsSettings};
use sealroom::store::postgres::ROOM_TABLES;
use sealroom::store::postgres::testing::APP_ROLE;
use sealroom::{Principal, Rooms};
use serde_json::json;

use crate::support::{another_node, app_backend, deriver, master, postgres_store, user};

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

fn path() -> (Namespace, ItemKey) {
    (Namespace::parse(vec!["memories".into()]).unwrap(), ItemKey::parse("note").unwrap())
}

fn value(text: &str) -> ItemInput {
    ItemInput::parse(&json!(text), None, None, None, None).unwrap()
}

#[tokio::test]
async fn attack_18_catalog_audit_of_the_application_role() {
    let (_store, database) = postgres_store(RoomsSettings::standard(), 2).await;
    let app = connect(&database.app_url).await;
    let role = app
        .query_one("SELECT rolsuper, rolbypassrls, rolcreaterole FROM pg_roles WHERE rolname = current_user", &[])
        .await
        .unwrap();
    assert!(!role.get::<_, bool>(0), "the application role must not be a superuser");
    assert!(!role.get::<_, bool>(1), "the application role must not bypass row-level security");
    assert!(!role.get::<_, bool>(2));
    let owned: i64 = app
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE r.rolname = current_user",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owned, 0, "the application role owns nothing");
    for table in ROOM_TABLES {
        let row = app
            .query_one(
                "SELECT c.relrowsecurity, c.relforcerowsecurity FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'sealroom' AND c.relname = $1",
                &[&table],
            )
            .await
            .unwrap();
        assert!(
            row.get::<_, bool>(0) && row.get::<_, bool>(1),
            "{table}: row-level security must be enabled and forced"
        );
        let policies = app
            .query(
                "SELECT qual, with_check, roles::text[] FROM pg_policies WHERE schemaname = 'sealroom' AND tablename = $1",
                &[&table],
            )
            .await
            .unwrap();
        let for_everyone: Vec<_> =
            policies.iter().filter(|row| row.get::<_, Vec<String>>(2) == vec!["public".to_owned()]).collect();
        assert_eq!(for_everyone.len(), 1, "{table}: exactly one policy applies to the application role");
        let expected = "(room = NULLIF(current_setting('sealroom.room'::text, true), ''::text))";
        assert_eq!(for_everyone[0].get::<_, String>(0), expected, "{table} USING");
        assert_eq!(for_everyone[0].get::<_, String>(1), expected, "{table} WITH CHECK");
        let truncate = app.batch_execute(&format!("TRUNCATE sealroom.{table}")).await;
        assert!(truncate.is_err(), "{table}: the application role must not be able to TRUNCATE");
    }
    let privileges = app.query_one("SELECT has_table_privilege('sealroom.records', 'TRUNCATE')", &[]).await.unwrap();
    assert!(!privileges.get::<_, bool>(0));
}

#[tokio::test]
async fn attack_19_and_21_no_room_sees_nothing_and_no_room_writes_elsewhere() {
    let (store, database) = postgres_store(RoomsSettings::standard(), 2).await;
    let alice = store.rooms.room(&user("iss", "alice"));
    let bob = store.rooms.room(&user("iss", "bob"));
    let (namespace, key) = path();
    alice.items().put(&namespace, &key, value("canary-a")).await.unwrap();
    bob.items().put(&namespace, &key, value("canary-b")).await.unwrap();

    let app = connect(&database.app_url).await;
    for table in ROOM_TABLES {
        let rows: i64 = app.query_one(&format!("SELECT count(*) FROM sealroom.{table}"), &[]).await.unwrap().get(0);
        assert_eq!(rows, 0, "{table} without a room set");
    }
    app.batch_execute("SET sealroom.room = ''").await.unwrap();
    let rows: i64 = app.query_one("SELECT count(*) FROM sealroom.records", &[]).await.unwrap().get(0);
    assert_eq!(rows, 0, "an empty room setting sees nothing");
    app.batch_execute("RESET sealroom.room").await.unwrap();

    // A transaction scoped to Alice's room sees only her rows and cannot write Bob's.
    let alice_room = alice.id().to_hex();
    let bob_room = bob.id().to_hex();
    let mut app = connect(&database.app_url).await;
    let transaction = app.transaction().await.unwrap();
    transaction.execute("SELECT set_config('sealroom.room', $1, true)", &[&alice_room]).await.unwrap();
    let rooms: Vec<String> = transaction
        .query("SELECT DISTINCT room FROM sealroom.records", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(rooms, vec![alice_room.clone()]);
    let insert = transaction
        .execute(
            "INSERT INTO sealroom.records (room, collection, key, value, version, updated_at) VALUES ($1, 3, '\\x01', '\\x00', 1, 0)",
            &[&bob_room],
        )
        .await;
    let error = insert.unwrap_err();
    assert!(error.as_db_error().unwrap().message().contains("row-level security"), "{error:?}");
    drop(transaction);
    let transaction = app.transaction().await.unwrap();
    transaction.execute("SELECT set_config('sealroom.room', $1, true)", &[&alice_room]).await.unwrap();
    let moved = transaction.execute("UPDATE sealroom.records SET room = $1", &[&bob_room]).await;
    assert!(moved.is_err(), "moving a row into another room must violate the policy");
    drop(transaction);
    let bob_updates = {
        let transaction = app.transaction().await.unwrap();
        transaction.execute("SELECT set_config('sealroom.room', $1, true)", &[&alice_room]).await.unwrap();
        transaction.execute("DELETE FROM sealroom.records WHERE room = $1", &[&bob_room]).await.unwrap()
    };
    assert_eq!(bob_updates, 0, "Bob's rows are invisible, so not deletable, from Alice's room");
    assert_eq!(bob.items().get(&namespace, &key).await.unwrap().value, json!("canary-b"));
}

#[tokio::test]
async fn attack_20_pool_of_one_after_a_failed_transaction() {
    let settings = RoomsSettings {
        limits: sealroom::limits::RoomLimits { items_per_room_max: 1, ..sealroom::limits::RoomLimits::standard() },
        ..RoomsSettings::standard()
    };
    let (store, database) = postgres_store(settings, 1).await;
    let alice = store.rooms.room(&user("iss", "alice"));
    let bob = store.rooms.room(&user("iss", "bob"));
    let (namespace, key) = path();
    alice.items().put(&namespace, &key, value("canary-a")).await.unwrap();
    // Alice's next write fails inside its transaction (quota): the transaction is rolled back.
    let failed = alice.items().put(&namespace, &ItemKey::parse("second").unwrap(), value("x")).await;
    assert!(matches!(failed, Err(RoomError::QuotaExceeded(_))));
    // The one connection now serves Bob: he sees nothing of Alice's.
    assert!(matches!(bob.items().get(&namespace, &key).await, Err(RoomError::NotFound)));
    bob.items().put(&namespace, &key, value("canary-b")).await.unwrap();
    assert_eq!(bob.items().get(&namespace, &key).await.unwrap().value, json!("canary-b"));
    let backend = app_backend(&database, 1).await;
    assert_eq!(backend.room_setting_seen_by_next_request().await.unwrap(), None);
}

#[tokio::test]
async fn attack_22_thousands_of_cancellations_on_a_pool_of_one() {
    let (store, database) = postgres_store(RoomsSettings::standard(), 1).await;
    let backend = app_backend(&database, 1).await;
    let rooms = Rooms::new(backend.clone(), master(), None, deriver(), RoomsSettings::standard()).await.unwrap();
    drop(store);
    let people: Vec<(Principal, String)> =
        ["alice", "bob"].iter().map(|name| (user("iss", name), format!("canary-{name}"))).collect();
    let (namespace, key) = path();
    let mut threads = Vec::new();
    for (principal, canary) in &people {
        let room = rooms.room(principal);
        room.items().put(&namespace, &key, value(canary)).await.unwrap();
        threads.push(room.threads().create(None, Metadata::default()).await.unwrap().id);
    }
    let mut seed = 0x2545_f491_u64;
    let mut cancelled = 0;
    for round in 0..2000u32 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let who = usize::try_from(seed % 2).unwrap();
        let (principal, canary) = &people[who];
        let room = rooms.room(principal);
        let deadline = Duration::from_micros(seed % 1500);
        let thread = threads[who];
        let operation = async {
            match seed % 4 {
                0 => room.items().get(&namespace, &key).await.map(|item| assert_eq!(item.value, json!(canary))),
                1 => room.items().put(&namespace, &key, value(canary)).await.map(|_| ()),
                2 => room
                    .threads()
                    .append(&thread, vec![NewMessage::parse("user", format!("{canary} {round}"), None, None).unwrap()])
                    .await
                    .map(|_| ()),
                _ => room.threads().messages(&thread, None, PageSize::parse(Some(5)).unwrap()).await.map(|page| {
                    for message in page.entries {
                        assert!(message.content.starts_with(canary.as_str()), "a message of another room was served");
                    }
                }),
            }
        };
        match tokio::time::timeout(deadline, operation).await {
            Ok(result) => result.unwrap(),
            Err(_) => cancelled += 1,
        }
    }
    assert!(cancelled > 100, "the test must actually cancel requests ({cancelled})");
    // After all that, every read still belongs to its requester and the connection is clean.
    for (principal, canary) in &people {
        let room = rooms.room(principal);
        assert_eq!(room.items().get(&namespace, &key).await.unwrap().value, json!(canary));
    }
    assert_eq!(backend.room_setting_seen_by_next_request().await.unwrap(), None);
    assert_eq!(rooms.isolation_alarms(), 0);
}

#[tokio::test]
async fn attack_23_concurrent_users_with_cancellations() {
    let (store, _database) = postgres_store(RoomsSettings::standard(), 4).await;
    let rooms = store.rooms.clone();
    let mut tasks = Vec::new();
    for index in 0..1000u64 {
        let rooms = rooms.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("user{}", index % 50);
            let canary = format!("canary-{name}");
            let room = rooms.room(&user("iss", &name));
            let (namespace, _) = path();
            let key = ItemKey::parse(&format!("k{}", index % 3)).unwrap();
            let deadline = Duration::from_micros((index * 7919) % 4000);
            let work = async {
                room.items().put(&namespace, &key, value(&canary)).await?;
                let item = room.items().get(&namespace, &key).await?;
                assert_eq!(item.value, json!(canary));
                let page = room
                    .items()
                    .list(&sealroom::rooms::NamespacePrefix::everything(), None, PageSize::parse(None).unwrap())
                    .await?;
                for item in page.entries {
                    assert_eq!(item.value, json!(canary), "another user's item was listed");
                }
                Ok::<(), RoomError>(())
            };
            if let Ok(result) = tokio::time::timeout(deadline, work).await {
                result.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(rooms.isolation_alarms(), 0);
}

#[tokio::test]
async fn two_nodes_over_one_database_stay_coherent() {
    let (node_one, database) = postgres_store(RoomsSettings::standard(), 2).await;
    let node_two = another_node(&database, 2).await;
    let alice = user("iss", "alice");
    let (namespace, key) = path();
    node_one.rooms.room(&alice).items().put(&namespace, &key, value("first")).await.unwrap();
    assert_eq!(node_two.room(&alice).items().get(&namespace, &key).await.unwrap().value, json!("first"));
    node_two.room(&alice).items().put(&namespace, &key, value("second")).await.unwrap();
    assert_eq!(node_one.rooms.room(&alice).items().get(&namespace, &key).await.unwrap().value, json!("second"));
    // Appends through both nodes interleave without losing or duplicating a message.
    let thread = node_one.rooms.room(&alice).threads().create(None, Metadata::default()).await.unwrap().id;
    let mut tasks = Vec::new();
    for index in 0..20 {
        let room = if index % 2 == 0 { node_one.rooms.room(&alice) } else { node_two.room(&alice) };
        tasks.push(tokio::spawn(async move {
            room.threads()
                .append(&thread, vec![NewMessage::parse("user", format!("m{index}"), None, None).unwrap()])
                .await
                .unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let page =
        node_two.room(&alice).threads().messages(&thread, None, PageSize::parse(Some(100)).unwrap()).await.unwrap();
    assert_eq!(page.entries.iter().map(|m| m.sequence).collect::<Vec<_>>(), (1..=20).collect::<Vec<_>>());
    // Erasure through one node: the other (holding the old key in memory) sees an empty room,
    // and its next write starts the room again under a new key.
    node_one.rooms.room(&alice).erase().await.unwrap();
    assert!(matches!(node_two.room(&alice).items().get(&namespace, &key).await, Err(RoomError::NotFound)));
    node_two.room(&alice).items().put(&namespace, &key, value("after erasure")).await.unwrap();
    assert_eq!(node_one.rooms.room(&alice).items().get(&namespace, &key).await.unwrap().value, json!("after erasure"));
    assert_eq!(node_one.rooms.isolation_alarms() + node_two.isolation_alarms(), 0);
    let _ = APP_ROLE;
}
