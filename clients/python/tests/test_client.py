"""The sync client against a real server: every route, isolation between users, pagination,
error codes, token callables, export and erasure."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import sealroom
from sealroom import (
    UNSET,
    AuthError,
    Forbidden,
    InvalidRequest,
    NotFound,
    Sealroom,
)

from .conftest import Server, User, unique

MakeUser = Callable[..., User]


def test_me_names_the_token_subject(make_user: MakeUser) -> None:
    alice = make_user("alice")
    me = alice.client.me()
    assert me["subject"] == alice.sub
    assert me["issuer"] == "urn:sealroom:dev"
    assert me["tenant"] is None and me["tenant_room_id"] is None
    assert len(me["room_id"]) == 64 and me["tenant_writer"] is False


def test_threads_round_trip(make_user: MakeUser) -> None:
    client = make_user("alice").client
    thread = client.threads.create("Lisbon trip", metadata={"trip": 1})
    assert thread["title"] == "Lisbon trip" and thread["metadata"] == {"trip": 1}
    assert thread["message_count"] == 0
    assert client.threads.get(thread["id"]) == thread
    assert [listed["id"] for listed in client.threads.list()["threads"]] == [thread["id"]]

    renamed = client.threads.update(thread["id"], title="Porto trip")
    assert renamed["title"] == "Porto trip" and renamed["metadata"] == {"trip": 1}
    kept = client.threads.update(thread["id"], metadata={"trip": 2})
    assert kept["title"] == "Porto trip" and kept["metadata"] == {"trip": 2}
    cleared = client.threads.update(thread["id"], title=None)
    assert cleared["title"] is None
    assert client.threads.update(thread["id"], title=UNSET)["title"] is None

    untitled = client.threads.create()
    assert untitled["title"] is None and untitled["metadata"] == {}

    client.threads.delete(thread["id"])
    with pytest.raises(NotFound):
        client.threads.get(thread["id"])
    with pytest.raises(NotFound):
        client.threads.delete(thread["id"])
    assert [listed["id"] for listed in client.threads.iter()] == [untitled["id"]]


def test_messages_round_trip_and_context(make_user: MakeUser) -> None:
    client = make_user("alice").client
    thread = client.threads.create("chat")
    appended = client.messages.append(
        thread["id"],
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Book me a hotel near the river.", "metadata": {"lang": "en"}},
            {"role": "assistant", "content": "Done.", "name": "planner"},
        ],
    )
    assert [message["sequence"] for message in appended] == [1, 2, 3]
    assert appended[1]["metadata"] == {"lang": "en"} and appended[2]["name"] == "planner"
    assert client.threads.get(thread["id"])["message_count"] == 3

    more = client.messages.append(thread["id"], [{"role": "user", "content": f"message {n}"} for n in range(4)])
    assert [message["sequence"] for message in more] == [4, 5, 6, 7]

    page = client.messages.list(thread["id"], limit=3)
    assert [message["sequence"] for message in page["messages"]] == [1, 2, 3]
    assert page["next_after"] == 3
    page = client.messages.list(thread["id"], after=page["next_after"], limit=10)
    assert [message["sequence"] for message in page["messages"]] == [4, 5, 6, 7]
    assert page["next_after"] is None

    assert [message["sequence"] for message in client.messages.iter(thread["id"], limit=2)] == list(range(1, 8))
    assert [message["sequence"] for message in client.messages.iter(thread["id"], after=5)] == [6, 7]

    whole = client.threads.context(thread["id"])
    assert [message["sequence"] for message in whole["messages"]] == list(range(1, 8))
    assert whole["truncated"] is False and whole["tokens_estimated"] > 0
    tight = client.threads.context(thread["id"], max_tokens=20)
    assert tight["truncated"] is True
    assert [message["sequence"] for message in tight["messages"]] == list(range(8 - len(tight["messages"]), 8)), (
        "the latest messages, oldest first"
    )


def test_items_round_trip(make_user: MakeUser) -> None:
    client = make_user("alice").client
    namespace = ("memories", "travel")
    stored = client.items.put(
        namespace, "seat", {"seat": "window"}, text="Alice prefers the window seat", metadata={"kind": "pref"}
    )
    assert stored["namespace"] == ["memories", "travel"] and stored["key"] == "seat"
    assert stored["value"] == {"seat": "window"} and stored["metadata"] == {"kind": "pref"}
    assert stored["expires_at"] is None and stored["embedding_dimensions"] is None
    assert client.items.get(list(namespace), "seat") == stored

    replaced = client.items.put(namespace, "seat", [1, "aisle"], ttl_secs=3600, embedding=[0.5, 0.25, 0.0])
    assert replaced["value"] == [1, "aisle"] and replaced["text"] is None
    assert replaced["embedding_dimensions"] == 3
    assert replaced["expires_at"] is not None and replaced["expires_at"] >= replaced["updated_at"] + 3500
    for scalar in ("text", 42, True):
        assert client.items.put(namespace, "scalar", scalar)["value"] == scalar

    client.items.put(("memories", "food"), "breakfast", {"tea": True})
    client.items.put(("documents",), "readme", "hello")
    everything = {(tuple(item["namespace"]), item["key"]) for item in client.items.iter()}
    assert everything == {
        (namespace, "seat"),
        (namespace, "scalar"),
        (("memories", "food"), "breakfast"),
        (("documents",), "readme"),
    }
    memories = client.items.list(("memories",))
    assert {item["key"] for item in memories["items"]} == {"seat", "scalar", "breakfast"}
    assert memories["next_cursor"] is None
    assert [item["key"] for item in client.items.list(namespace, limit=10)["items"]] == ["scalar", "seat"]

    client.items.delete(namespace, "seat")
    with pytest.raises(NotFound) as missing:
        client.items.get(namespace, "seat")
    assert missing.value.status == 404 and missing.value.code == "not_found"
    with pytest.raises(NotFound):
        client.items.delete(namespace, "seat")


@pytest.mark.parametrize(
    "segment",
    ["trä vel", "100%", "a%2Fb", "q?x=1&y", "#hash", "a+b", "semi;colon", "ü", "...", ".hidden", "~tilde", "日本"],
)
def test_item_segments_reach_the_server_verbatim(make_user: MakeUser, segment: str) -> None:
    client = make_user("alice").client
    stored = client.items.put(("odd", segment), segment, {"segment": segment})
    assert stored["namespace"] == ["odd", segment] and stored["key"] == segment
    assert client.items.get(("odd", segment), segment)["value"] == {"segment": segment}
    assert [item["key"] for item in client.items.iter(("odd", segment))] == [segment]
    client.items.delete(("odd", segment), segment)


@pytest.mark.parametrize("segment", ["a/b", "..", ".", ""])
def test_item_segments_the_server_refuses(make_user: MakeUser, segment: str) -> None:
    client = make_user("alice").client
    with pytest.raises(InvalidRequest) as refused:
        client.items.put(("ns", segment), "key", 1)
    assert refused.value.status == 400 and refused.value.code == "invalid_request"
    with pytest.raises(InvalidRequest):
        client.items.get(("ns",), segment)
    assert list(client.items.iter()) == [], "nothing was stored under another path"


def test_namespace_must_be_a_sequence_of_segments(make_user: MakeUser) -> None:
    client = make_user("alice").client
    with pytest.raises(TypeError):
        client.items.put("memories", "key", 1)
    with pytest.raises(ValueError):
        client.items.list(("memories/travel",))


def test_search(make_user: MakeUser) -> None:
    client = make_user("alice").client
    client.items.put(("memories", "travel"), "seat", {"seat": "window"}, text="Alice prefers the window seat")
    client.items.put(
        ("memories", "food"), "tea", {"tea": "green"}, text="Alice drinks green tea", metadata={"kind": "drink"}
    )
    client.items.put(("notes",), "seat", {}, text="the window seat in the office", embedding=[1.0, 0.0])
    client.items.put(("notes",), "other", {}, text="nothing relevant", embedding=[0.0, 1.0])

    results = client.items.search("window seat", limit=5)
    assert {(tuple(hit["item"]["namespace"]), hit["item"]["key"]) for hit in results} == {
        (("memories", "travel"), "seat"),
        (("notes",), "seat"),
    }
    assert all(hit["lexical_rank"] is not None and hit["score"] > 0 for hit in results)
    in_memories = client.items.search("window seat", prefix=("memories",))
    assert [hit["item"]["key"] for hit in in_memories] == ["seat"]
    assert [hit["item"]["key"] for hit in client.items.search("Alice", filter={"kind": "drink"})] == ["tea"]
    by_vector = client.items.search(embedding=[0.9, 0.1], prefix=("notes",), limit=1, metric="cosine")
    assert [hit["item"]["key"] for hit in by_vector] == ["seat"] and by_vector[0]["vector_rank"] == 1
    assert client.items.search("nonexistentword") == []


def test_tool_cache(make_user: MakeUser) -> None:
    client = make_user("alice").client
    client.tool_cache.put("weather", {"city": "Lisbon", "days": 3}, {"forecast": "sunny"}, ttl_secs=600)
    hit = client.tool_cache.lookup("weather", {"days": 3.0, "city": "Lisbon"})
    assert hit["hit"] is True and hit["result"] == {"forecast": "sunny"}
    assert hit["age_secs"] is not None and hit["expires_at"] is not None
    miss = client.tool_cache.lookup("weather", {"city": "Porto", "days": 3})
    assert miss == {"hit": False, "result": None, "age_secs": None, "expires_at": None}
    assert client.tool_cache.lookup("maps", {"city": "Lisbon", "days": 3})["hit"] is False

    client.tool_cache.delete("weather")
    assert client.tool_cache.lookup("weather", {"city": "Lisbon", "days": 3})["hit"] is False
    with pytest.raises(InvalidRequest):
        client.tool_cache.put("bad tool/name", {}, {}, ttl_secs=10)
    with pytest.raises(InvalidRequest):
        client.tool_cache.put("weather", {}, {}, ttl_secs=0)


def test_iterators_walk_every_page(make_user: MakeUser) -> None:
    client = make_user("alice").client
    keys = [f"k{n:02}" for n in range(11)]
    for key in keys:
        client.items.put(("bulk",), key, {"n": key})
    first = client.items.list(("bulk",), limit=4)
    assert len(first["items"]) == 4 and first["next_cursor"] is not None
    second = client.items.list(("bulk",), limit=4, cursor=first["next_cursor"])
    assert [item["key"] for item in second["items"]] == keys[4:8]
    assert [item["key"] for item in client.items.iter(("bulk",), limit=4)] == keys
    assert [item["key"] for item in client.items.iter(("bulk",), limit=1)] == keys

    threads = [client.threads.create(f"thread {n}")["id"] for n in range(5)]
    assert [thread["id"] for thread in client.threads.iter(limit=2)] == threads
    page = client.threads.list(limit=2)
    assert page["next_cursor"] is not None and len(page["threads"]) == 2

    entries = list(client.audit.iter(limit=3))
    sequences = [entry["sequence"] for entry in entries]
    assert sequences == list(range(1, len(sequences) + 1)) and len(sequences) > 16
    assert [entry["sequence"] for entry in client.audit.iter(after=10, limit=4)] == sequences[10:]


def test_audit_records_the_room_s_requests(make_user: MakeUser) -> None:
    client = make_user("alice").client
    client.items.put(("memories",), "seat", {"seat": "window"})
    with pytest.raises(NotFound):
        client.items.get(("memories",), "nothing")
    page = client.audit.list(limit=50)
    assert page["next_after"] is None
    operations = [(entry["operation"], entry["target"], entry["outcome"]) for entry in page["entries"]]
    assert ("PUT /v1/items/{*path}", "/v1/items/memories/seat", "committed") in operations
    assert ("GET /v1/items/{*path}", "/v1/items/memories/nothing", "404") in operations
    first = client.audit.list(limit=1)
    assert len(first["entries"]) == 1 and first["next_after"] == 1
    assert all(len(entry["hash"]) == 64 for entry in page["entries"])


def test_two_users_are_isolated(make_user: MakeUser) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    canary = "canary-" + unique("alice")
    thread = alice.client.threads.create(f"{canary} title", metadata={"secret": canary})
    alice.client.messages.append(thread["id"], [{"role": "user", "content": f"{canary} message"}])
    alice.client.items.put(("memories", "travel"), "seat", {"secret": canary}, text=f"{canary} window seat")
    alice.client.tool_cache.put("weather", {"city": "Lisbon"}, {"secret": canary}, ttl_secs=600)

    for attempt in (
        lambda: bob.client.threads.get(thread["id"]),
        lambda: bob.client.threads.update(thread["id"], title="mine now"),
        lambda: bob.client.threads.delete(thread["id"]),
        lambda: bob.client.threads.context(thread["id"]),
        lambda: bob.client.messages.list(thread["id"]),
        lambda: bob.client.messages.append(thread["id"], [{"role": "user", "content": "hi"}]),
        lambda: bob.client.items.get(("memories", "travel"), "seat"),
        lambda: bob.client.items.delete(("memories", "travel"), "seat"),
    ):
        with pytest.raises(NotFound) as refused:
            attempt()
        assert refused.value.message == "no such resource"

    assert bob.client.items.search(canary) == []
    assert bob.client.items.search("window seat") == []
    assert list(bob.client.items.iter()) == []
    assert list(bob.client.threads.iter()) == []
    assert bob.client.tool_cache.lookup("weather", {"city": "Lisbon"})["hit"] is False
    assert bob.client.me()["room_id"] != alice.client.me()["room_id"]
    bob_export = list(bob.client.export())
    assert [record["type"] for record in bob_export if record["type"] not in ("audit",)] == ["room", "end"]
    list(bob.client.audit.iter())

    # Alice's state is intact, and none of it ever reached Bob's client.
    assert alice.client.items.get(("memories", "travel"), "seat")["value"] == {"secret": canary}
    assert alice.client.threads.get(thread["id"])["title"] == f"{canary} title"
    assert any(canary.encode() in body for body in alice.recorder.received)
    assert len(bob.recorder.received) > 10
    assert not any(canary.encode() in body for body in bob.recorder.received)


def test_error_codes(server: Server, make_user: MakeUser) -> None:
    alice = make_user("alice")
    client = alice.client
    with pytest.raises(InvalidRequest) as malformed:
        client.threads.get("not-a-uuid")
    assert (malformed.value.status, malformed.value.code) == (400, "invalid_request")
    assert "thread_id" in malformed.value.message and malformed.value.request_id

    with pytest.raises(InvalidRequest) as negative:
        client.items.list(limit=0)
    assert "limit" in negative.value.message
    with pytest.raises(InvalidRequest):
        client.messages.append(client.threads.create()["id"], [{"role": "robot", "content": "hi"}])
    with pytest.raises(InvalidRequest) as too_large:
        client.items.put(("big",), "blob", "x" * (3 * 1024 * 1024))
    assert (too_large.value.status, too_large.value.code) == (413, "payload_too_large")

    with pytest.raises(Forbidden) as no_tenant:
        client.tenant.list()
    assert (no_tenant.value.status, no_tenant.value.code) == (403, "no_tenant")

    for bad_token in ("not-a-jwt", alice.token[:-4] + "AAAA"):
        with Sealroom(server.url, bad_token) as stranger, pytest.raises(AuthError) as refused:
            stranger.me()
        assert (refused.value.status, refused.value.code) == (401, "invalid_token")
        assert bad_token not in str(refused.value) and bad_token not in repr(refused.value)

    with pytest.raises(AuthError) as unusable, Sealroom(server.url, alice.token + "\r\nX-Injected: 1") as broken:
        broken.me()
    assert alice.token not in str(unusable.value) and alice.token not in repr(unusable.value)
    assert unusable.value.status is None
    assert alice.token not in repr(client)


def test_token_may_be_a_callable(server: Server) -> None:
    alice, bob = unique("alice"), unique("bob")
    tokens = {alice: server.token(alice), bob: server.token(bob)}
    current = [alice]
    calls = []

    def token() -> str:
        calls.append(current[0])
        return tokens[current[0]]

    with Sealroom(server.url, token) as client:
        assert client.me()["subject"] == alice
        client.items.put(("memories",), "seat", "window")
        current[0] = bob
        assert client.me()["subject"] == bob, "a fresh token for every request"
        with pytest.raises(NotFound):
            client.items.get(("memories",), "seat")
    assert calls == [alice, alice, bob, bob]


def test_base_url_may_name_v1(server: Server) -> None:
    sub = unique("alice")
    for url in (server.url + "/v1", server.url + "/v1/", server.url + "/"):
        with Sealroom(url, server.token(sub)) as client:
            assert client.me()["subject"] == sub


def test_tenant_room(make_user: MakeUser) -> None:
    tenant = unique("acme")
    writer = make_user("writer", tenant=tenant, roles=["tenant-writer"]).client
    reader = make_user("reader", tenant=tenant).client
    outsider = make_user("outsider", tenant=unique("globex"), roles=["tenant-writer"]).client
    assert writer.me()["tenant_writer"] is True and reader.me()["tenant_writer"] is False
    assert writer.me()["tenant_room_id"] == reader.me()["tenant_room_id"]

    stored = writer.tenant.put(("policies",), "refunds", {"days": 30}, text="refunds within thirty days")
    assert stored["value"] == {"days": 30}
    assert reader.tenant.get(("policies",), "refunds") == stored
    assert [item["key"] for item in reader.tenant.iter(("policies",), limit=1)] == ["refunds"]
    assert reader.tenant.list()["items"] == [stored]
    assert [hit["item"]["key"] for hit in reader.tenant.search("refunds")] == ["refunds"]

    with pytest.raises(Forbidden) as read_only:
        reader.tenant.put(("policies",), "refunds", {"days": 365})
    assert read_only.value.code == "forbidden"
    with pytest.raises(Forbidden):
        reader.tenant.delete(("policies",), "refunds")

    with pytest.raises(NotFound):
        outsider.tenant.get(("policies",), "refunds")
    assert outsider.tenant.search("refunds") == []
    with pytest.raises(NotFound):
        writer.items.get(("policies",), "refunds")

    writer.tenant.delete(("policies",), "refunds")
    with pytest.raises(NotFound):
        reader.tenant.get(("policies",), "refunds")


def test_export_is_ndjson_of_the_whole_room(make_user: MakeUser) -> None:
    client = make_user("alice").client
    thread = client.threads.create("trip")
    client.messages.append(thread["id"], [{"role": "user", "content": "one"}, {"role": "assistant", "content": "two"}])
    client.items.put(("memories",), "seat", {"seat": "window"}, text="window", embedding=[0.25, 0.5])
    client.tool_cache.put("weather", {"city": "Lisbon"}, {"forecast": "sunny"}, ttl_secs=60)

    records = list(client.export())
    kinds = [record["type"] for record in records]
    assert kinds[0] == "room" and kinds[-1] == "end"
    assert records[0]["format"] == "sealroom-export/v1"
    assert records[0]["room_id"] == client.me()["room_id"]
    assert kinds[1:5] == ["thread", "message", "message", "item"]
    item = records[4]
    assert item["value"] == {"seat": "window"} and item["embedding"] == [0.25, 0.5]
    assert records[-1]["counts"] == {
        "threads": 1,
        "messages": 2,
        "items": 1,
        "checkpoints": 0,
        "checkpoint_writes": 0,
        "cache_entries": 1,
        "secrets": 0,
        "audit_entries": kinds.count("audit"),
    }
    assert kinds.count("cache_entry") == 1 and kinds.count("audit") >= 4
    json.dumps(records)  # plain JSON all through

    stopped = client.export()
    assert next(stopped)["type"] == "room"
    stopped.close()  # releases the connection mid-stream
    assert client.me()["subject"]


def test_erase(server: Server, make_user: MakeUser) -> None:
    alice = make_user("alice")
    client = alice.client
    before = client.me()["room_id"]
    thread = client.threads.create("gone soon")
    client.items.put(("memories",), "seat", {"seat": "window"})
    receipt = client.erase()
    assert receipt["room_id"] == before and receipt["existed"] is True
    assert receipt["records"] > 0 and receipt["bytes"] > 0 and receipt["erased_at"] > 0

    with pytest.raises(NotFound):
        client.items.get(("memories",), "seat")
    with pytest.raises(NotFound):
        client.threads.get(thread["id"])
    assert list(client.threads.iter()) == []
    with Sealroom(server.url, server.token(alice.sub)) as again:
        assert again.me()["room_id"] == before, "the same user, the same (now empty) room"
        assert list(again.items.iter()) == []
        again.items.put(("memories",), "seat", {"seat": "aisle"})
        assert again.items.get(("memories",), "seat")["value"] == {"seat": "aisle"}


def test_public_names() -> None:
    for name in sealroom.__all__:
        assert hasattr(sealroom, name)
    # The base package needs only httpx: importing it loads nothing of LangGraph.
    code = "import sys, sealroom; sys.exit('langgraph' in sys.modules or 'sealroom.langgraph' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent.parent).returncode == 0


def test_a_batch_of_puts_and_deletes_is_one_commit(make_user: Callable[..., User]) -> None:
    alice = make_user("alice")
    alice.client.items.put(("docs",), "old", {"v": 0})
    results = alice.client.items.batch(
        [
            {"op": "put", "namespace": ("docs",), "key": "a", "value": {"v": 1}, "text": "chunk one"},
            {"op": "put", "namespace": ["docs"], "key": "b", "value": {"v": 2}},
            {"op": "delete", "namespace": ("docs",), "key": "old"},
        ]
    )
    assert [result["op"] for result in results] == ["put", "put", "delete"]
    assert results[2]["existed"] is True
    assert [item["key"] for item in alice.client.items.iter(("docs",))] == ["a", "b"]
    with pytest.raises(InvalidRequest):
        alice.client.items.batch([{"op": "put", "namespace": ("docs",), "key": "c", "value": 1}] * 2)
    with pytest.raises(ValueError):
        alice.client.items.batch([{"op": "rename", "namespace": ("docs",), "key": "c"}])


def test_secrets_are_stored_by_name_and_resolved_only_by_a_tool_runtime(server: Server, make_user: MakeUser) -> None:
    alice = make_user("alice")
    assert alice.client.secrets.put("github", "ghp-value-of-alice") is True
    assert alice.client.secrets.put("github", "ghp-value-of-alice") is False
    assert [secret["name"] for secret in alice.client.secrets.list()] == ["github"]
    # The user's ordinary token (the one a model-driven client holds) cannot read it back.
    with pytest.raises(Forbidden):
        alice.client.secrets.resolve("github")
    # The application's tool runtime, with a token for the same user carrying the role, can.
    with Sealroom(server.url, server.token(alice.sub, roles=["secrets-resolve"])) as runtime:
        assert runtime.secrets.resolve("github") == "ghp-value-of-alice"
        with pytest.raises(NotFound):
            runtime.secrets.resolve("gitlab")
    assert "ghp-value-of-alice" not in "".join(json.dumps(line) for line in alice.client.export())
    alice.client.secrets.delete("github")
    with pytest.raises(NotFound):
        alice.client.secrets.delete("github")
    # Items and messages say who wrote them.
    item = alice.client.items.put(("notes",), "a", {"n": 1})
    assert item["origin"] == "user"
