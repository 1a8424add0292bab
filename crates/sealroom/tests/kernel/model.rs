//! The model-based isolation property: random operations by many principals against a plain
//! in-memory model; every read must equal the model's view of that principal.
//!
//! The principals include the same subject under two issuers, a delimiter-collision pair
//! (`"a|b"`+`"c"` against `"a"`+`"b|c"`), tenant members with and without the writer role, a
//! member of another tenant, the same tenant name under another issuer, and a user without a
//! tenant. Threads are addressed by index into every thread ever created, so operations
//! constantly try other rooms' thread ids.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use sealroom::rooms::{
    ItemInput, ItemKey, Metadata, Namespace, NamespacePrefix, NewMessage, PageSize, RoomsSettings, ThreadId,
};
use sealroom::{Principal, RoomError};

use crate::support::{BACKENDS, BackendKind, member, store, user};

/// (issuer, subject, tenant, roles)
const PRINCIPALS: [(&str, &str, Option<&str>, &[&str]); 9] = [
    ("https://idp-a", "alice", None, &[]),
    ("https://idp-b", "alice", None, &[]),
    ("a|b", "c", None, &[]),
    ("a", "b|c", None, &[]),
    ("https://idp-a", "writer", Some("acme"), &["tenant-writer"]),
    ("https://idp-a", "reader", Some("acme"), &[]),
    ("https://idp-a", "rival", Some("globex"), &["tenant-writer"]),
    ("https://idp-b", "namesake", Some("acme"), &["tenant-writer"]),
    ("https://idp-a", "acme", None, &[]),
];
const NAMESPACES: [&[&str]; 3] = [&["m"], &["m", "travel"], &["docs"]];
const KEYS: [&str; 3] = ["k1", "k2", "k|1"];

fn principal(index: usize) -> Principal {
    let (issuer, subject, tenant, roles) = PRINCIPALS[index];
    match tenant {
        Some(tenant) => member(issuer, subject, tenant, roles),
        None => user(issuer, subject),
    }
}

/// Which room the model files an operation under.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum ModelRoom {
    User(&'static str, &'static str),
    Tenant(&'static str, &'static str),
}

#[derive(Clone, Debug)]
enum Op {
    PutItem { who: usize, tenant: bool, namespace: usize, key: usize, value: u32 },
    GetItem { who: usize, tenant: bool, namespace: usize, key: usize },
    DeleteItem { who: usize, tenant: bool, namespace: usize, key: usize },
    ListItems { who: usize, tenant: bool, prefix: usize },
    CreateThread { who: usize, tenant: bool },
    Append { who: usize, tenant: bool, thread: usize, content: u32 },
    ReadThread { who: usize, tenant: bool, thread: usize },
    DeleteThread { who: usize, tenant: bool, thread: usize },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let who = 0..PRINCIPALS.len();
    let tenant = prop::bool::weighted(0.3);
    prop_oneof![
        4 => (who.clone(), tenant, 0..NAMESPACES.len(), 0..KEYS.len(), any::<u32>())
            .prop_map(|(who, tenant, namespace, key, value)| Op::PutItem { who, tenant, namespace, key, value }),
        3 => (who.clone(), tenant, 0..NAMESPACES.len(), 0..KEYS.len())
            .prop_map(|(who, tenant, namespace, key)| Op::GetItem { who, tenant, namespace, key }),
        1 => (who.clone(), tenant, 0..NAMESPACES.len(), 0..KEYS.len())
            .prop_map(|(who, tenant, namespace, key)| Op::DeleteItem { who, tenant, namespace, key }),
        2 => (who.clone(), tenant, 0..3usize).prop_map(|(who, tenant, prefix)| Op::ListItems { who, tenant, prefix }),
        2 => (who.clone(), tenant).prop_map(|(who, tenant)| Op::CreateThread { who, tenant }),
        3 => (who.clone(), tenant, 0..16usize, any::<u32>())
            .prop_map(|(who, tenant, thread, content)| Op::Append { who, tenant, thread, content }),
        3 => (who.clone(), tenant, 0..16usize).prop_map(|(who, tenant, thread)| Op::ReadThread { who, tenant, thread }),
        1 => (who, tenant, 0..16usize).prop_map(|(who, tenant, thread)| Op::DeleteThread { who, tenant, thread }),
    ]
}

#[derive(Default)]
struct Model {
    items: HashMap<ModelRoom, BTreeMap<(Vec<String>, String), String>>,
    threads: HashMap<ModelRoom, BTreeMap<ThreadId, Vec<String>>>,
    /// Every thread ever created, with its room: operations address threads by index here.
    created: Vec<(ThreadId, ModelRoom)>,
}

/// What the model expects of access to a room: the room, or the error the system must give.
fn model_room(who: usize, tenant: bool, write: bool) -> Result<ModelRoom, &'static str> {
    let (issuer, subject, tenant_name, roles) = PRINCIPALS[who];
    if !tenant {
        return Ok(ModelRoom::User(issuer, subject));
    }
    let tenant_name = tenant_name.ok_or("no tenant")?;
    if write && !roles.contains(&"tenant-writer") {
        return Err("forbidden");
    }
    Ok(ModelRoom::Tenant(issuer, tenant_name))
}

fn error_name(error: &RoomError) -> &'static str {
    match error {
        RoomError::NotFound => "not found",
        RoomError::NoTenant => "no tenant",
        RoomError::Forbidden(_) => "forbidden",
        _ => "other",
    }
}

fn namespace(index: usize) -> Namespace {
    Namespace::parse(NAMESPACES[index].iter().map(|segment| (*segment).to_owned()).collect()).unwrap()
}

async fn run(kind: BackendKind, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let store = store(kind, RoomsSettings::standard()).await;
    let mut model = Model::default();
    for op in ops {
        apply(&store.rooms, &mut model, &op)
            .await
            .map_err(|failure| TestCaseError::fail(format!("{op:?}: {failure}")))?;
    }
    prop_assert_eq!(store.rooms.isolation_alarms(), 0);
    Ok(())
}

fn room_for(rooms: &sealroom::Rooms, who: usize, tenant: bool) -> Result<sealroom::Room, RoomError> {
    let principal = principal(who);
    if tenant { rooms.tenant_room(&principal) } else { Ok(rooms.room(&principal)) }
}

/// Applies one operation to system and model and compares the outcomes.
async fn apply(rooms: &sealroom::Rooms, model: &mut Model, op: &Op) -> Result<(), String> {
    let check_error = |expected: &str, actual: Result<(), RoomError>| match actual {
        Err(error) if error_name(&error) == expected => Ok(()),
        other => Err(format!("expected {expected}, got {other:?}")),
    };
    match op.clone() {
        Op::PutItem { who, tenant, namespace: ns, key, value } => {
            let outcome = async {
                let room = room_for(rooms, who, tenant)?;
                let input = ItemInput::parse(&serde_json::json!(value.to_string()), None, None, None, None)?;
                room.items().put(&namespace(ns), &ItemKey::parse(KEYS[key])?, input).await.map(|_| ())
            }
            .await;
            match model_room(who, tenant, true) {
                Ok(room) => {
                    outcome.map_err(|error| format!("put failed: {error}"))?;
                    let path = (NAMESPACES[ns].iter().map(|s| (*s).to_owned()).collect(), KEYS[key].to_owned());
                    model.items.entry(room).or_default().insert(path, value.to_string());
                }
                Err(expected) => check_error(expected, outcome)?,
            }
        }
        Op::GetItem { who, tenant, namespace: ns, key } => {
            let outcome = async {
                let room = room_for(rooms, who, tenant)?;
                room.items().get(&namespace(ns), &ItemKey::parse(KEYS[key])?).await
            }
            .await;
            match model_room(who, tenant, false) {
                Ok(room) => {
                    let path =
                        (NAMESPACES[ns].iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(), KEYS[key].to_owned());
                    let expected = model.items.get(&room).and_then(|items| items.get(&path)).cloned();
                    match (expected, outcome) {
                        (Some(value), Ok(item)) if item.value == serde_json::json!(value) => {}
                        (None, Err(RoomError::NotFound)) => {}
                        (expected, actual) => return Err(format!("expected {expected:?}, got {actual:?}")),
                    }
                }
                Err(expected) => check_error(expected, outcome.map(|_| ()))?,
            }
        }
        Op::DeleteItem { who, tenant, namespace: ns, key } => {
            let outcome = async {
                let room = room_for(rooms, who, tenant)?;
                room.items().delete(&namespace(ns), &ItemKey::parse(KEYS[key])?).await
            }
            .await;
            match model_room(who, tenant, true) {
                Ok(room) => {
                    let path =
                        (NAMESPACES[ns].iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(), KEYS[key].to_owned());
                    let existed = model.items.get_mut(&room).and_then(|items| items.remove(&path)).is_some();
                    match (existed, outcome) {
                        (true, Ok(())) | (false, Err(RoomError::NotFound)) => {}
                        (existed, actual) => return Err(format!("existed={existed}, got {actual:?}")),
                    }
                }
                Err(expected) => check_error(expected, outcome)?,
            }
        }
        Op::ListItems { who, tenant, prefix } => {
            let prefix_segments: Vec<String> = match prefix {
                0 => Vec::new(),
                1 => vec!["m".into()],
                _ => vec!["m".into(), "travel".into()],
            };
            let outcome = async {
                let room = room_for(rooms, who, tenant)?;
                let prefix = NamespacePrefix::parse(prefix_segments.clone())?;
                room.items().list(&prefix, None, PageSize::parse(Some(200)).unwrap()).await
            }
            .await;
            match model_room(who, tenant, false) {
                Ok(room) => {
                    let expected: Vec<(Vec<String>, String, String)> = model
                        .items
                        .get(&room)
                        .map(|items| {
                            items
                                .iter()
                                .filter(|((ns, _), _)| ns.starts_with(&prefix_segments))
                                .map(|((ns, key), value)| (ns.clone(), key.clone(), value.clone()))
                                .collect()
                        })
                        .unwrap_or_default();
                    let page = outcome.map_err(|error| format!("list failed: {error}"))?;
                    let actual: Vec<(Vec<String>, String, String)> = page
                        .entries
                        .iter()
                        .map(|item| {
                            (
                                item.namespace.segments().to_vec(),
                                item.key.as_str().to_owned(),
                                item.value.as_str().unwrap_or("").to_owned(),
                            )
                        })
                        .collect();
                    if expected != actual {
                        return Err(format!("expected {expected:?}, got {actual:?}"));
                    }
                }
                Err(expected) => check_error(expected, outcome.map(|_| ()))?,
            }
        }
        Op::CreateThread { who, tenant } => {
            let outcome =
                async { room_for(rooms, who, tenant)?.threads().create(None, Metadata::default()).await }.await;
            match model_room(who, tenant, true) {
                Ok(room) => {
                    let thread = outcome.map_err(|error| format!("create failed: {error}"))?;
                    model.threads.entry(room.clone()).or_default().insert(thread.id, Vec::new());
                    model.created.push((thread.id, room));
                }
                Err(expected) => check_error(expected, outcome.map(|_| ()))?,
            }
        }
        Op::Append { who, tenant, thread, content } => {
            let Some((id, _)) = model.created.get(thread % model.created.len().max(1)).cloned() else {
                return Ok(());
            };
            let outcome = async {
                let message = NewMessage::parse("user", content.to_string(), None, None)?;
                room_for(rooms, who, tenant)?.threads().append(&id, vec![message]).await.map(|_| ())
            }
            .await;
            match model_room(who, tenant, true) {
                Ok(room) => match model.threads.get_mut(&room).and_then(|threads| threads.get_mut(&id)) {
                    Some(messages) => {
                        outcome.map_err(|error| format!("append failed: {error}"))?;
                        messages.push(content.to_string());
                    }
                    None => check_error("not found", outcome)?,
                },
                Err(expected) => check_error(expected, outcome)?,
            }
        }
        Op::ReadThread { who, tenant, thread } => {
            let Some((id, _)) = model.created.get(thread % model.created.len().max(1)).cloned() else {
                return Ok(());
            };
            let outcome = async {
                room_for(rooms, who, tenant)?.threads().messages(&id, None, PageSize::parse(Some(200)).unwrap()).await
            }
            .await;
            match model_room(who, tenant, false) {
                Ok(room) => match model.threads.get(&room).and_then(|threads| threads.get(&id)) {
                    Some(expected) => {
                        let page = outcome.map_err(|error| format!("read failed: {error}"))?;
                        let actual: Vec<String> = page.entries.iter().map(|message| message.content.clone()).collect();
                        if &actual != expected {
                            return Err(format!("expected {expected:?}, got {actual:?}"));
                        }
                    }
                    None => check_error("not found", outcome.map(|_| ()))?,
                },
                Err(expected) => check_error(expected, outcome.map(|_| ()))?,
            }
        }
        Op::DeleteThread { who, tenant, thread } => {
            let Some((id, _)) = model.created.get(thread % model.created.len().max(1)).cloned() else {
                return Ok(());
            };
            let outcome = async { room_for(rooms, who, tenant)?.threads().delete(&id).await }.await;
            match model_room(who, tenant, true) {
                Ok(room) => match model.threads.get_mut(&room).and_then(|threads| threads.remove(&id)) {
                    Some(_) => outcome.map_err(|error| format!("delete failed: {error}"))?,
                    None => check_error("not found", outcome)?,
                },
                Err(expected) => check_error(expected, outcome)?,
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_read_equals_the_model(ops in prop::collection::vec(op_strategy(), 1..60)) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        for kind in BACKENDS {
            runtime.block_on(run(kind, ops.clone()))?;
        }
    }
}
