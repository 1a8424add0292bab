"""Drives sealroom's /mcp endpoint with the official MCP Python SDK (PyPI `mcp`) and raw HTTP.

Run by `tests/api/mcp.rs` against servers on port 0. It reads one JSON object on stdin:

    {"url": ".../mcp", "alice": {"token", "canary"}, "bob": {...}, "forged": "<token>",
     "audience": {"url": ".../mcp", "api_token", "mcp_token"}}

and prints one JSON object: every result each user's client received (so the caller can run the
canary oracle over them). Any broken expectation raises, which exits non-zero with a traceback.
"""

import asyncio
import json
import sys
import uuid

import httpx2
import jsonschema
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

TOOLS = {
    "memory_put", "memory_get", "memory_delete", "memory_list", "memory_search",
    "thread_create", "thread_list", "thread_append", "thread_context",
    "tool_cache_lookup", "tool_cache_put",
}
IDENTITY_FIELDS = {
    "user", "user_id", "userid", "subject", "sub", "tenant", "tenant_id", "org", "room", "room_id",
    "owner", "principal", "account", "account_id", "iss", "issuer",
}
SSE_ACCEPT = "application/json, text/event-stream"


def dump(result):
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


def http(token):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0))


async def session(url, token, mode, work):
    async with http(token) as client:
        async with Client(streamable_http_client(url, http_client=client), mode=mode) as mcp:
            return await work(mcp)


def check_tool_list(tools):
    names = {tool.name for tool in tools}
    assert names == TOOLS, f"tools/list gave {sorted(names)}"
    for tool in tools:
        schema = tool.input_schema
        jsonschema.Draft202012Validator.check_schema(schema)
        jsonschema.Draft202012Validator.check_schema(tool.output_schema)
        assert schema.get("type") == "object", tool.name
        assert schema.get("additionalProperties") is False, f"{tool.name} accepts unknown fields"
        fields = {name.lower() for name in schema.get("properties", {})}
        assert not fields & IDENTITY_FIELDS, f"{tool.name} has identity fields {fields & IDENTITY_FIELDS}"
        for name, nested in schema.get("$defs", {}).items():
            if nested.get("type") == "object":
                assert nested.get("additionalProperties") is False, f"{tool.name}/{name} accepts unknown fields"
        annotations = tool.annotations
        assert annotations is not None and annotations.read_only_hint is not None, tool.name
        assert annotations.destructive_hint is not None and annotations.idempotent_hint is not None, tool.name


def structured(result, what):
    assert not result.is_error, f"{what} failed: {dump(result)}"
    return result.structured_content


async def use_memory(mcp, user, seen):
    """Stores the user's canary under the same names as the other user, then reads it back."""
    tools = (await mcp.list_tools()).tools
    check_tool_list(tools)
    seen.append([tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools])

    async def call(name, arguments):
        result = await mcp.call_tool(name, arguments)
        seen.append(dump(result))
        return result

    canary = user["canary"]
    put = await call("memory_put", {
        "namespace": ["notes"], "key": "secret", "value": {"note": canary},
        "text": f"diary entry {canary}", "metadata": {"kind": "diary"},
    })
    assert structured(put, "memory_put")["value"] == {"note": canary}
    got = structured(await call("memory_get", {"namespace": ["notes"], "key": "secret"}), "memory_get")
    assert got["value"] == {"note": canary}, got
    text = (await call("memory_get", {"namespace": ["notes"], "key": "secret"})).content[0].text
    assert "untrusted data" in text and canary in text, "text results wrap stored content as untrusted data"
    found = structured(await call("memory_search", {"query": "diary entry", "limit": 10}), "memory_search")
    assert [hit["item"]["value"] for hit in found["results"]] == [{"note": canary}], found
    listed = structured(await call("memory_list", {"prefix": ["notes"]}), "memory_list")
    assert [item["key"] for item in listed["items"]] == ["secret"], listed

    thread = structured(await call("thread_create", {"title": "chat"}), "thread_create")
    appended = await call("thread_append", {
        "thread_id": thread["id"], "messages": [{"role": "user", "content": f"my secret is {canary}"}],
    })
    structured(appended, "thread_append")
    context = structured(await call("thread_context", {"thread_id": thread["id"], "max_tokens": 500}), "thread_context")
    assert [message["content"] for message in context["messages"]] == [f"my secret is {canary}"], context
    threads = structured(await call("thread_list", {}), "thread_list")
    assert [listed["id"] for listed in threads["threads"]] == [thread["id"]], threads

    args = {"city": "Paris", "units": "metric"}
    structured(await call("tool_cache_put", {"tool": "weather", "args": args, "result": {"forecast": canary}, "ttl_secs": 600}), "tool_cache_put")
    hit = structured(await call("tool_cache_lookup", {"tool": "weather", "args": {"units": "metric", "city": "Paris"}}), "tool_cache_lookup")
    assert hit["hit"] and hit["result"] == {"forecast": canary}, hit

    # Identity never comes from arguments: an identity field is refused, whatever its value.
    for name, arguments in [
        ("memory_get", {"namespace": ["notes"], "key": "secret", "user_id": "bob"}),
        ("memory_search", {"query": "diary", "tenant": "acme"}),
        ("memory_put", {"namespace": ["notes"], "key": "x", "value": 1, "subject": "bob"}),
        ("thread_list", {"room_id": "0" * 64}),
    ]:
        refused = await call(name, arguments)
        assert refused.is_error, f"{name} accepted an identity field: {dump(refused)}"
    deleted = structured(await call("memory_delete", {"namespace": ["notes"], "key": "secret"}), "memory_delete")
    assert deleted == {"done": True}, deleted
    gone = await call("memory_get", {"namespace": ["notes"], "key": "secret"})
    assert gone.is_error, "a deleted memory is gone"
    structured(await call("memory_put", {"namespace": ["notes"], "key": "secret", "value": {"note": canary}, "text": f"diary entry {canary}"}), "memory_put again")
    return mcp.protocol_version


def sse_messages(text):
    messages = []
    for event in text.split("\n\n"):
        data = "\n".join(line[5:].lstrip() for line in event.splitlines() if line.startswith("data:"))
        if data.strip():
            messages.append(json.loads(data))
    return messages


def legacy_headers(token, session_id=None):
    headers = {"Accept": SSE_ACCEPT, "Content-Type": "application/json", "MCP-Protocol-Version": "2025-11-25"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if session_id:
        headers["Mcp-Session-Id"] = session_id
    return headers


async def hijack(url, alice, bob, seen_alice, seen_bob):
    """Bob presents Alice's session id: answered exactly like an unknown session."""
    async with httpx2.AsyncClient(timeout=30.0) as client:
        initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "hijack-test", "version": "0"}}}
        opened = await client.post(url, headers=legacy_headers(alice["token"]), json=initialize)
        assert opened.status_code == 200, opened.text
        session_id = opened.headers["mcp-session-id"]
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        assert (await client.post(url, headers=legacy_headers(alice["token"], session_id), json=initialized)).status_code == 202
        call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                "params": {"name": "memory_get", "arguments": {"namespace": ["notes"], "key": "secret"}}}
        own = await client.post(url, headers=legacy_headers(alice["token"], session_id), json=call)
        seen_alice.append(own.text)
        assert own.status_code == 200 and alice["canary"] in own.text, own.text

        def shape(response):
            return response.status_code, response.content, response.headers.get("content-type")

        for method in ["POST", "GET", "DELETE"]:
            headers = legacy_headers(bob["token"], session_id)
            unknown_headers = legacy_headers(bob["token"], str(uuid.uuid4()))
            if method == "GET":
                headers["Accept"] = unknown_headers["Accept"] = "text/event-stream"
            body = json.dumps(call) if method == "POST" else None
            foreign = await client.request(method, url, headers=headers, content=body)
            unknown = await client.request(method, url, headers=unknown_headers, content=body)
            seen_bob.append(foreign.text)
            assert shape(foreign) == shape(unknown), f"{method}: {shape(foreign)} != {shape(unknown)}"
            assert foreign.status_code == (202 if method == "DELETE" else 404), (method, foreign.status_code)
        # Bob's DELETE did not end Alice's session.
        again = await client.post(url, headers=legacy_headers(alice["token"], session_id), json=call)
        seen_alice.append(again.text)
        assert again.status_code == 200 and alice["canary"] in again.text, again.text
        assert (await client.delete(url, headers=legacy_headers(alice["token"], session_id))).status_code == 202
        ended = await client.post(url, headers=legacy_headers(alice["token"], session_id), json=call)
        assert ended.status_code == 404, "a session its owner ended is gone"


async def challenge(url, forged):
    """No token or a forged one: 401 with the resource_metadata challenge, and the metadata."""
    async with httpx2.AsyncClient(timeout=30.0) as client:
        initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}
        metadata_url = None
        for token in [None, forged, "not-a-jwt"]:
            response = await client.post(url, headers=legacy_headers(token), json=initialize)
            assert response.status_code == 401, (token is None, response.status_code)
            header = response.headers["www-authenticate"]
            assert header.startswith("Bearer ") and 'resource_metadata="' in header, header
            metadata_url = header.split('resource_metadata="')[1].split('"')[0]
            assert response.json()["error"]["code"] == "invalid_token"
        assert metadata_url.endswith("/.well-known/oauth-protected-resource/mcp"), metadata_url
        metadata = (await client.get(metadata_url)).json()
        assert metadata["resource"] == url, metadata
        assert metadata["bearer_methods_supported"] == ["header"], metadata
        assert metadata["authorization_servers"], metadata
        # The SDK itself is refused too, and for the token: the refusal it reports is a 401.
        statuses = []

        async def record(response):
            statuses.append(response.status_code)

        refused = httpx2.AsyncClient(headers={"Authorization": f"Bearer {forged}"}, event_hooks={"response": [record]})
        try:
            async with refused, Client(streamable_http_client(url, http_client=refused), mode="legacy") as mcp:
                await mcp.list_tools()
        except BaseException:  # the SDK raises an ExceptionGroup or an HTTP error
            pass
        else:
            raise AssertionError("a forged token was served")
        assert statuses and set(statuses) == {401}, statuses
        return metadata


async def audience(settings):
    """With [mcp] resource set, a token for the API's audience is refused; one for the resource works."""
    url = settings["url"]
    async with httpx2.AsyncClient(timeout=30.0) as client:
        initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}
        refused = await client.post(url, headers=legacy_headers(settings["api_token"]), json=initialize)
        assert refused.status_code == 401, refused.status_code
        assert settings["resource_metadata"] in refused.headers["www-authenticate"], refused.headers["www-authenticate"]
    tools = await session(url, settings["mcp_token"], "legacy", lambda mcp: mcp.list_tools())
    assert {tool.name for tool in tools.tools} == TOOLS


async def main():
    given = json.load(sys.stdin)
    url, alice, bob = given["url"], given["alice"], given["bob"]
    seen = {"alice": [], "bob": []}
    # Alice speaks the handshake-era protocol (initialize, a session); Bob lets the SDK choose.
    versions = {
        "alice": await session(url, alice["token"], "legacy", lambda mcp: use_memory(mcp, alice, seen["alice"])),
        "bob": await session(url, bob["token"], "auto", lambda mcp: use_memory(mcp, bob, seen["bob"])),
    }
    await hijack(url, alice, bob, seen["alice"], seen["bob"])
    metadata = await challenge(url, given["forged"])
    await audience(given["audience"])
    print(json.dumps({"seen": seen, "versions": versions, "metadata": metadata}))


if __name__ == "__main__":
    asyncio.run(main())
