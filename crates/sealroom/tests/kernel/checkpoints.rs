//! Checkpoints on every backend: the latest of a thread, pending writes (first write at an
//! index wins, special indexes replace), listings (order, `before`, filters, cursors), the
//! thread-wide operations, and two rooms with equal thread ids.

use sealroom::rooms::{PageSize, RoomsSettings};
use sealroom::vocabulary::checkpoint::{
    CheckpointMetadata, CheckpointQuery, CheckpointThread, NewPendingWrite, TypedBlob, WritingTask,
};
use serde_json::{Value, json};

use crate::support::{BACKENDS, store, user};

fn at(thread: &str, namespace: &str) -> CheckpointThread {
    CheckpointThread::parse(thread, namespace).unwrap()
}

fn blob(text: &str) -> TypedBlob {
    TypedBlob::parse("checkpoint", "msgpack", text.as_bytes().to_vec()).unwrap()
}

fn metadata(value: Value) -> CheckpointMetadata {
    CheckpointMetadata::parse(Some(value)).unwrap()
}

fn write(channel: &str, index: i64, text: &str) -> NewPendingWrite {
    NewPendingWrite::parse(channel, index, blob(text)).unwrap()
}

fn ids(page: &[sealroom::vocabulary::checkpoint::CheckpointTuple]) -> Vec<&str> {
    page.iter().map(|tuple| tuple.checkpoint_id.as_str()).collect()
}

#[tokio::test]
async fn the_latest_checkpoint_is_the_greatest_id_with_its_writes() {
    for kind in BACKENDS {
        let store = store(kind, RoomsSettings::standard()).await;
        let room = store.rooms.room(&user("iss", "alice"));
        let checkpoints = room.checkpoints();
        let main = at("thread-1", "");
        assert_eq!(checkpoints.get(&main, None).await.unwrap(), None);
        checkpoints.put(&main, "0002", None, &blob("two"), &metadata(json!({"step": 2}))).await.unwrap();
        // An older id stored later does not become the latest.
        checkpoints.put(&main, "0001", None, &blob("one"), &metadata(json!({"step": 1}))).await.unwrap();
        checkpoints.put(&main, "0003", Some("0002"), &blob("three"), &metadata(json!({"step": 3}))).await.unwrap();
        let latest = checkpoints.get(&main, None).await.unwrap().unwrap();
        assert_eq!(latest.checkpoint_id, "0003");
        assert_eq!(latest.parent_checkpoint_id.as_deref(), Some("0002"));
        assert_eq!(latest.checkpoint, blob("three"));
        assert_eq!(latest.metadata.as_map()["step"], 3);
        assert_eq!(checkpoints.get(&main, Some("0001")).await.unwrap().unwrap().checkpoint, blob("one"));
        assert_eq!(checkpoints.get(&main, Some("0009")).await.unwrap(), None);
        assert_eq!(checkpoints.get(&at("thread-1", "child:1"), None).await.unwrap(), None);

        // Writes may come before their checkpoint; a regular index keeps its first write, a
        // negative one is replaced; reads sort them by task path, task id, index.
        let task = WritingTask::parse("task-b", "~pull, b").unwrap();
        let other = WritingTask::parse("task-a", "~pull, a").unwrap();
        checkpoints.put_writes(&main, "0004", &task, &[write("x", 0, "first"), write("y", 1, "y")]).await.unwrap();
        checkpoints.put_writes(&main, "0004", &task, &[write("x", 0, "second")]).await.unwrap();
        checkpoints.put_writes(&main, "0004", &task, &[write("__error__", -1, "boom")]).await.unwrap();
        checkpoints.put_writes(&main, "0004", &task, &[write("__error__", -1, "boom again")]).await.unwrap();
        checkpoints.put_writes(&main, "0004", &other, &[write("z", 0, "z")]).await.unwrap();
        checkpoints.put(&main, "0004", Some("0003"), &blob("four"), &metadata(json!({}))).await.unwrap();
        let latest = checkpoints.get(&main, None).await.unwrap().unwrap();
        let writes: Vec<(&str, &str, i64, &[u8])> = latest
            .pending_writes
            .iter()
            .map(|w| (w.task_id.as_str(), w.channel.as_str(), w.index, w.value.bytes.as_slice()))
            .collect();
        assert_eq!(
            writes,
            [
                ("task-a", "z", 0, b"z".as_slice()),
                ("task-b", "__error__", -1, b"boom again".as_slice()),
                ("task-b", "x", 0, b"first".as_slice()),
                ("task-b", "y", 1, b"y".as_slice()),
            ]
        );
        assert!(checkpoints.get(&main, Some("0003")).await.unwrap().unwrap().pending_writes.is_empty());
    }
}

#[tokio::test]
async fn listings_are_newest_first_with_filters_before_and_cursors() {
    for kind in BACKENDS {
        let store = store(kind, RoomsSettings::standard()).await;
        let room = store.rooms.room(&user("iss", "alice"));
        let checkpoints = room.checkpoints();
        for (thread, namespace, id, source) in [
            ("t1", "", "a1", "input"),
            ("t1", "", "a2", "loop"),
            ("t1", "sub:1", "a3", "loop"),
            ("t2", "", "a4", "loop"),
            ("t2", "", "a5", "update"),
        ] {
            let step = id[1..].parse::<i64>().unwrap();
            checkpoints
                .put(&at(thread, namespace), id, None, &blob(id), &metadata(json!({"source": source, "step": step})))
                .await
                .unwrap();
        }
        let list = |query: CheckpointQuery, limit: i64| {
            let checkpoints = room.checkpoints();
            async move { checkpoints.list(&query, None, PageSize::parse(Some(limit)).unwrap()).await.unwrap() }
        };
        assert_eq!(ids(&list(CheckpointQuery::default(), 50).await.entries), ["a5", "a4", "a3", "a2", "a1"]);
        let thread_one = CheckpointQuery { thread_id: Some("t1".into()), ..Default::default() };
        assert_eq!(ids(&list(thread_one.clone(), 50).await.entries), ["a3", "a2", "a1"]);
        let root = CheckpointQuery { namespace: Some(String::new()), ..thread_one.clone() };
        assert_eq!(ids(&list(root.clone(), 50).await.entries), ["a2", "a1"]);
        let before = CheckpointQuery { before: Some("a2".into()), ..root };
        assert_eq!(ids(&list(before, 50).await.entries), ["a1"]);
        let filter = json!({"source": "loop", "step": 4.0}).as_object().unwrap().clone();
        assert_eq!(ids(&list(CheckpointQuery { filter, ..Default::default() }, 50).await.entries), ["a4"]);

        let first = list(CheckpointQuery::default(), 2).await;
        assert_eq!(ids(&first.entries), ["a5", "a4"]);
        let next = room
            .checkpoints()
            .list(&CheckpointQuery::default(), first.next.as_ref(), PageSize::parse(Some(2)).unwrap())
            .await
            .unwrap();
        assert_eq!(ids(&next.entries), ["a3", "a2"]);
    }
}

#[tokio::test]
async fn thread_operations_delete_copy_prune_and_runs() {
    for kind in BACKENDS {
        let store = store(kind, RoomsSettings::standard()).await;
        let room = store.rooms.room(&user("iss", "alice"));
        let checkpoints = room.checkpoints();
        let task = WritingTask::parse("task", "").unwrap();
        for (thread, namespace, id, run) in [
            ("t1", "", "c1", "run-1"),
            ("t1", "", "c2", "run-2"),
            ("t1", "child", "c3", "run-1"),
            ("t2", "", "c4", "run-2"),
        ] {
            checkpoints
                .put(&at(thread, namespace), id, None, &blob(id), &metadata(json!({"run_id": run})))
                .await
                .unwrap();
            checkpoints.put_writes(&at(thread, namespace), id, &task, &[write("ch", 0, id)]).await.unwrap();
        }
        checkpoints.copy_thread("t1", "copy").await.unwrap();
        let copied = CheckpointQuery { thread_id: Some("copy".into()), ..Default::default() };
        let page = checkpoints.list(&copied, None, PageSize::parse(None).unwrap()).await.unwrap();
        assert_eq!(ids(&page.entries), ["c3", "c2", "c1"]);
        assert!(page.entries.iter().all(|tuple| tuple.pending_writes.len() == 1));
        assert_eq!(checkpoints.get(&at("copy", ""), None).await.unwrap().unwrap().checkpoint_id, "c2");

        // Run 2's checkpoints go in every thread, with their writes; the root's latest moves back.
        checkpoints.delete_for_runs(&["run-2".into()]).await.unwrap();
        let all = checkpoints.list(&CheckpointQuery::default(), None, PageSize::parse(None).unwrap()).await.unwrap();
        assert_eq!(ids(&all.entries), ["c3", "c3", "c1", "c1"]);
        assert_eq!(checkpoints.get(&at("t1", ""), None).await.unwrap().unwrap().checkpoint_id, "c1");
        assert_eq!(checkpoints.get(&at("t2", ""), None).await.unwrap(), None);

        checkpoints.put(&at("t1", ""), "c5", Some("c1"), &blob("c5"), &metadata(json!({}))).await.unwrap();
        checkpoints.prune(&["t1".into()], true).await.unwrap();
        let t1 = CheckpointQuery { thread_id: Some("t1".into()), ..Default::default() };
        let pruned = checkpoints.list(&t1, None, PageSize::parse(None).unwrap()).await.unwrap();
        assert_eq!(ids(&pruned.entries), ["c5", "c3"], "the latest of each namespace stays");
        assert_eq!(pruned.entries[1].pending_writes.len(), 1);

        checkpoints.delete_thread("t1").await.unwrap();
        assert!(checkpoints.list(&t1, None, PageSize::parse(None).unwrap()).await.unwrap().entries.is_empty());
        assert_eq!(checkpoints.get(&at("t1", ""), None).await.unwrap(), None);
        let left = checkpoints.list(&CheckpointQuery::default(), None, PageSize::parse(None).unwrap()).await.unwrap();
        assert_eq!(ids(&left.entries), ["c3", "c1"], "only the copy is left");
        checkpoints.prune(&["copy".into()], false).await.unwrap();
        checkpoints.delete_thread("never existed").await.unwrap();
        checkpoints.delete_for_runs(&[]).await.unwrap();
        assert!(
            checkpoints
                .list(&CheckpointQuery::default(), None, PageSize::parse(None).unwrap())
                .await
                .unwrap()
                .entries
                .is_empty()
        );
    }
}

#[tokio::test]
async fn equal_thread_ids_in_two_rooms_never_meet() {
    for kind in BACKENDS {
        let store = store(kind, RoomsSettings::standard()).await;
        let alice = store.rooms.room(&user("iss", "alice"));
        let bob = store.rooms.room(&user("iss", "bob"));
        let main = at("shared-thread-id", "");
        alice.checkpoints().put(&main, "1", None, &blob("alice's state"), &metadata(json!({}))).await.unwrap();
        let task = WritingTask::parse("t", "").unwrap();
        alice.checkpoints().put_writes(&main, "1", &task, &[write("c", 0, "alice's write")]).await.unwrap();
        assert_eq!(bob.checkpoints().get(&main, None).await.unwrap(), None);
        assert_eq!(bob.checkpoints().get(&main, Some("1")).await.unwrap(), None);
        let listed = bob.checkpoints().list(&CheckpointQuery::default(), None, PageSize::parse(None).unwrap()).await;
        assert!(listed.unwrap().entries.is_empty());
        bob.checkpoints().put(&main, "1", None, &blob("bob's state"), &metadata(json!({}))).await.unwrap();
        bob.checkpoints().delete_thread("shared-thread-id").await.unwrap();
        let kept = alice.checkpoints().get(&main, None).await.unwrap().unwrap();
        assert_eq!(kept.checkpoint, blob("alice's state"));
        assert_eq!(kept.pending_writes.len(), 1);
    }
}
