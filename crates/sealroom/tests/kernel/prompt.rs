//! Prompt assembly: fragments carry the room they came from, and a builder refuses any fragment
//! that is not from the requesting room (or its tenant room), raising an isolation alarm.

use sealroom::prompt::{PromptBuilder, PromptError};
use sealroom::rooms::{ItemInput, ItemKey, Namespace, NamespacePrefix, RoomsSettings};
use sealroom::search::SearchRequest;
use serde_json::json;

use crate::support::{member, sqlite_store, user};

#[tokio::test]
async fn fragments_of_another_room_are_refused() {
    let store = sqlite_store(RoomsSettings::standard()).await;
    let alice = store.rooms.room(&user("iss", "alice"));
    let bob = store.rooms.room(&user("iss", "bob"));
    let namespace = Namespace::parse(vec!["m".into()]).unwrap();
    for room in [&alice, &bob] {
        let input = ItemInput::parse(&json!(1), Some("shared words canary".into()), None, None, None).unwrap();
        room.items().put(&namespace, &ItemKey::parse("k").unwrap(), input).await.unwrap();
    }
    let request =
        SearchRequest::parse(Some("canary".into()), None, NamespacePrefix::everything(), None, None, None).unwrap();
    let bob_fragments = sealroom::prompt::memory_fragments(&bob, &bob.items().search(&request).await.unwrap());
    let alice_fragments = sealroom::prompt::memory_fragments(&alice, &alice.items().search(&request).await.unwrap());
    let mut builder = PromptBuilder::for_rooms(&alice, None).unwrap();
    builder.add(alice_fragments[0].clone(), &alice).unwrap();
    let before = store.rooms.isolation_alarms();
    assert_eq!(builder.add(bob_fragments[0].clone(), &alice), Err(PromptError::ForeignFragment));
    assert_eq!(store.rooms.isolation_alarms(), before + 1);
    assert_eq!(builder.memory_sources(), ["m/k"]);
    // A tenant room's fragments are accepted only by a builder made for that tenant room.
    let writer = member("iss", "w", "acme", &["tenant-writer"]);
    let tenant = store.rooms.tenant_room(&writer).unwrap();
    let input = ItemInput::parse(&json!(1), Some("team canary".into()), None, None, None).unwrap();
    tenant.items().put(&namespace, &ItemKey::parse("t").unwrap(), input).await.unwrap();
    let tenant_fragments = sealroom::prompt::memory_fragments(&tenant, &tenant.items().search(&request).await.unwrap());
    let own = store.rooms.room(&writer);
    let mut with_tenant = PromptBuilder::for_rooms(&own, Some(&tenant)).unwrap();
    with_tenant.add(tenant_fragments[0].clone(), &own).unwrap();
    let mut without_tenant = PromptBuilder::for_rooms(&own, None).unwrap();
    assert_eq!(without_tenant.add(tenant_fragments[0].clone(), &own), Err(PromptError::ForeignFragment));
    assert!(with_tenant.system_message().unwrap().contains("team canary"));
    assert!(without_tenant.system_message().is_none());
}
