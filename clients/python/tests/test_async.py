"""The async client against a real server: every method once, isolation, and an async token."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sealroom import AsyncSealroom, Forbidden, NotFound

from .conftest import Server, unique

pytestmark = pytest.mark.anyio

MakeClient = Callable[..., AsyncSealroom]


async def test_every_method(make_async_client: MakeClient) -> None:
    async with make_async_client("alice") as client:
        me = await client.me()
        assert me["tenant"] is None

        thread = await client.threads.create("trip", metadata={"n": 1})
        assert (await client.threads.get(thread["id"]))["title"] == "trip"
        assert (await client.threads.update(thread["id"], title=None))["title"] is None
        assert [listed["id"] for listed in (await client.threads.list(limit=5))["threads"]] == [thread["id"]]
        second = await client.threads.create("second")
        assert [listed["id"] async for listed in client.threads.iter(limit=1)] == [thread["id"], second["id"]]
        await client.threads.delete(second["id"])
        with pytest.raises(NotFound):
            await client.threads.get(second["id"])

        appended = await client.messages.append(thread["id"], [{"role": "user", "content": f"m{n}"} for n in range(5)])
        assert [message["sequence"] for message in appended] == [1, 2, 3, 4, 5]
        page = await client.messages.list(thread["id"], after=1, limit=2)
        assert [message["sequence"] for message in page["messages"]] == [2, 3] and page["next_after"] == 3
        assert [m["content"] async for m in client.messages.iter(thread["id"], limit=2)] == [f"m{n}" for n in range(5)]
        context = await client.threads.context(thread["id"], max_tokens=1000)
        assert len(context["messages"]) == 5 and context["truncated"] is False

        for n in range(5):
            await client.items.put(("memories", "travel"), f"k{n}", {"n": n}, text=f"note number {n} about trains")
        assert (await client.items.get(("memories", "travel"), "k0"))["value"] == {"n": 0}
        first = await client.items.list(("memories",), limit=2)
        assert len(first["items"]) == 2 and first["next_cursor"]
        assert [item["key"] async for item in client.items.iter(("memories",), limit=2)] == [f"k{n}" for n in range(5)]
        hits = await client.items.search("trains", limit=10)
        assert {hit["item"]["key"] for hit in hits} == {f"k{n}" for n in range(5)}
        await client.items.delete(("memories", "travel"), "k0")
        with pytest.raises(NotFound):
            await client.items.get(("memories", "travel"), "k0")
        with pytest.raises(Forbidden):
            await client.tenant.get(("memories",), "k1")

        await client.tool_cache.put("weather", {"city": "Lisbon"}, {"forecast": "sunny"}, ttl_secs=60)
        assert (await client.tool_cache.lookup("weather", {"city": "Lisbon"}))["result"] == {"forecast": "sunny"}
        await client.tool_cache.delete("weather")
        assert (await client.tool_cache.lookup("weather", {"city": "Lisbon"}))["hit"] is False

        audit_page = await client.audit.list(limit=3)
        assert [entry["sequence"] for entry in audit_page["entries"]] == [1, 2, 3]
        sequences = [entry["sequence"] async for entry in client.audit.iter(limit=4)]
        assert sequences == list(range(1, len(sequences) + 1)) and len(sequences) > 20

        kinds = [record["type"] async for record in client.export()]
        assert kinds[0] == "room" and kinds[-1] == "end" and kinds.count("item") == 4

        receipt = await client.erase()
        assert receipt["existed"] is True and receipt["room_id"] == me["room_id"]
        assert [item async for item in client.items.iter()] == []


async def test_isolation_and_tenant(server: Server, make_async_client: MakeClient) -> None:
    tenant = unique("acme")
    async with (
        make_async_client("alice", tenant=tenant, roles=["tenant-writer"]) as alice,
        make_async_client("bob", tenant=tenant) as bob,
    ):
        thread = await alice.threads.create("private")
        await alice.items.put(("memories",), "seat", "window", text="window seat")
        await alice.tenant.put(("shared",), "policy", {"days": 30}, text="refunds within thirty days")
        with pytest.raises(NotFound):
            await bob.threads.get(thread["id"])
        with pytest.raises(NotFound):
            await bob.items.get(("memories",), "seat")
        assert await bob.items.search("window seat") == []
        assert (await bob.tenant.get(("shared",), "policy"))["value"] == {"days": 30}
        assert [item["key"] async for item in bob.tenant.iter()] == ["policy"]
        assert [hit["item"]["key"] for hit in await bob.tenant.search("refunds", prefix=("shared",))] == ["policy"]
        assert await bob.items.search("refunds") == []
        with pytest.raises(Forbidden):
            await bob.tenant.delete(("shared",), "policy")
        await alice.tenant.delete(("shared",), "policy")


async def test_async_token_callable(server: Server) -> None:
    sub = unique("alice")
    token = server.token(sub)
    calls = 0

    async def fresh_token() -> str:
        nonlocal calls
        calls += 1
        return token

    async with AsyncSealroom(server.url, fresh_token) as client:
        assert (await client.me())["subject"] == sub
        await client.items.put(("a",), "b", 1)
    assert calls == 2
    async with AsyncSealroom(server.url, lambda: token) as client:
        assert (await client.items.get(("a",), "b"))["value"] == 1
