"""Retries, error mapping, tokens, path encoding and the export reader, with
``httpx.MockTransport`` (no server): what a real server cannot be made to do on demand."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

import sealroom._async
import sealroom._sync
from sealroom import (
    AsyncSealroom,
    AuthError,
    Conflict,
    ExportIncomplete,
    Forbidden,
    InvalidRequest,
    NotFound,
    RateLimited,
    Sealroom,
    SealroomError,
    ServerError,
    TransportError,
    _core,
)

SECRET = "eyJ.secret-token.signature"
THREAD: dict[str, Any] = {
    "id": "t1",
    "title": None,
    "metadata": {},
    "created_at": 1,
    "updated_at": 1,
    "message_count": 0,
}


def error(status: int, code: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"error": {"code": code, "message": f"{code} happened"}}
    return httpx.Response(status, json=body, headers={"x-request-id": "req-1", **(headers or {})})


class Script:
    """A mock server answering from a list, recording the requests."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(sealroom._sync, "_sleep", slept.append)

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(sealroom._async, "_sleep", sleep)
    return slept


def client(script: Script, token: Any = SECRET, **options: Any) -> Sealroom:
    return Sealroom("http://sealroom.test", token, transport=httpx.MockTransport(script), **options)


def test_429_waits_for_retry_after_then_succeeds(sleeps: list[float]) -> None:
    script = Script(error(429, "rate_limited", {"retry-after": "2"}), httpx.Response(201, json=THREAD))
    assert client(script).threads.create("trip") == THREAD
    assert sleeps == [2.0]
    assert len(script.requests) == 2, "a POST refused with 429 did nothing, so it is sent again"
    assert all(json.loads(request.content) == {"title": "trip"} for request in script.requests)


def test_429_gives_up_after_max_retries(sleeps: list[float]) -> None:
    script = Script(*[error(429, "rate_limited", {"retry-after": "1"}) for _ in range(3)])
    with pytest.raises(RateLimited) as limited:
        client(script, max_retries=2).me()
    assert limited.value.retry_after == 1.0 and limited.value.status == 429
    assert limited.value.code == "rate_limited" and limited.value.request_id == "req-1"
    assert len(script.requests) == 3 and sleeps == [1.0, 1.0]


def test_429_asking_too_long_a_wait_is_raised_at_once(sleeps: list[float]) -> None:
    script = Script(error(429, "rate_limited", {"retry-after": "120"}))
    with pytest.raises(RateLimited) as limited:
        client(script, max_retry_wait=30).me()
    assert limited.value.retry_after == 120.0 and sleeps == []


def test_429_without_retry_after_backs_off(sleeps: list[float]) -> None:
    script = Script(error(429, "rate_limited"), error(429, "rate_limited"), httpx.Response(200, json={}))
    client(script).me()
    assert len(sleeps) == 2 and 0 < sleeps[0] <= 0.5 and sleeps[0] < sleeps[1] <= 1.0


def test_no_retries_when_max_retries_is_zero(sleeps: list[float]) -> None:
    script = Script(error(429, "rate_limited", {"retry-after": "1"}))
    with pytest.raises(RateLimited):
        client(script, max_retries=0).me()
    assert sleeps == []


def test_connection_errors_are_retried_for_idempotent_calls(sleeps: list[float]) -> None:
    script = Script(
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.Response(200, json={"items": [], "next_cursor": None}),
    )
    assert client(script).items.list(("memories",)) == {"items": [], "next_cursor": None}
    assert len(script.requests) == 3 and len(sleeps) == 2


@pytest.mark.parametrize(
    "send",
    [
        lambda c: c.threads.create("trip"),
        lambda c: c.messages.append("t1", [{"role": "user", "content": "hi"}]),
    ],
)
def test_non_idempotent_posts_are_not_retried_after_a_lost_answer(
    sleeps: list[float], send: Callable[[Sealroom], Any]
) -> None:
    script = Script(httpx.ReadError("connection reset"), httpx.Response(201, json=THREAD))
    with pytest.raises(TransportError) as failed:
        send(client(script))
    assert failed.value.status is None and failed.value.code == "connection_error"
    assert isinstance(failed.value.__cause__, httpx.ReadError)
    assert len(script.requests) == 1 and sleeps == []


def test_read_only_posts_are_retried(sleeps: list[float]) -> None:
    script = Script(httpx.ReadError("reset"), httpx.Response(200, json={"results": []}))
    assert client(script).items.search("seat") == []
    script = Script(httpx.ReadError("reset"), httpx.Response(200, json={"hit": False}))
    assert client(script).tool_cache.lookup("weather", {})["hit"] is False


def test_503_is_retried_only_for_idempotent_calls(sleeps: list[float]) -> None:
    script = Script(error(503, "unavailable"), httpx.Response(200, json=THREAD))
    assert client(script).threads.get("t1") == THREAD
    script = Script(error(503, "timeout"))
    with pytest.raises(ServerError) as failed:
        client(script).threads.create()
    assert failed.value.code == "timeout" and len(script.requests) == 1


def test_timeouts_are_reported_as_such(sleeps: list[float]) -> None:
    script = Script(*[httpx.ConnectTimeout("slow") for _ in range(4)])
    with pytest.raises(TransportError) as failed:
        client(script).me()
    assert failed.value.code == "timeout" and len(script.requests) == 4


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (400, "invalid_request", InvalidRequest),
        (401, "invalid_token", AuthError),
        (403, "no_tenant", Forbidden),
        (404, "not_found", NotFound),
        (405, "method_not_allowed", InvalidRequest),
        (409, "conflict", Conflict),
        (413, "payload_too_large", InvalidRequest),
        (415, "unsupported_media_type", InvalidRequest),
        (422, "invalid_request", InvalidRequest),
        (500, "internal", ServerError),
        (502, "upstream_error", ServerError),
        (418, "teapot", SealroomError),
    ],
)
def test_error_answers_map_to_exceptions(status: int, code: str, kind: type[SealroomError]) -> None:
    with pytest.raises(kind) as raised:
        client(Script(error(status, code)), max_retries=0).items.put(("a",), "b", 1)
    assert (raised.value.status, raised.value.code) == (status, code)
    assert raised.value.message == f"{code} happened" and raised.value.request_id == "req-1"
    assert str(raised.value) == f"{status} {code}: {code} happened"


def test_an_error_body_in_another_shape_is_not_quoted() -> None:
    script = Script(httpx.Response(502, text="<html>proxy says SOMETHING</html>"))
    with pytest.raises(ServerError) as raised:
        client(script, max_retries=0).me()
    assert raised.value.code == "http_502" and "SOMETHING" not in str(raised.value)


def test_the_token_never_appears_in_errors(sleeps: list[float]) -> None:
    failures: list[SealroomError] = []
    for answer in (error(401, "invalid_token"), error(429, "rate_limited"), httpx.ConnectError("refused")):
        with pytest.raises(SealroomError) as raised:
            client(Script(answer), max_retries=0).me()
        failures.append(raised.value)
    with pytest.raises(AuthError) as bad_header:
        client(Script(), token=SECRET + "\n").me()
    failures.append(bad_header.value)
    with pytest.raises(AuthError):
        client(Script(), token=lambda: None).me()
    for failure in failures:
        for text in (str(failure), repr(failure), str(vars(failure)), str(failure.args)):
            assert SECRET not in text
    assert SECRET not in repr(client(Script()))


def test_the_token_callable_is_called_for_every_attempt(sleeps: list[float]) -> None:
    issued = iter(["first", "second"])
    script = Script(error(429, "rate_limited", {"retry-after": "0"}), httpx.Response(200, json={}))
    client(script, token=lambda: next(issued)).me()
    assert [request.headers["authorization"] for request in script.requests] == ["Bearer first", "Bearer second"]


def test_requests_carry_exactly_what_the_routes_need() -> None:
    seen: list[tuple[str, str, Any]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        seen.append((request.method, request.url.raw_path.decode(), body))
        assert request.headers["authorization"] == f"Bearer {SECRET}"
        assert body is None or request.headers["content-type"] == "application/json"
        payload: Any = {"messages": [], "results": [], "items": [], "next_cursor": None, "next_after": None}
        return httpx.Response(204 if request.method == "DELETE" else 200, json=payload)

    c = Sealroom("http://sealroom.test/v1/", SECRET, transport=httpx.MockTransport(answer))
    c.threads.update("t/1", title=None)
    c.threads.update("t1", metadata={"a": 1})
    c.threads.list(limit=5, cursor="c")
    c.threads.context("t1", max_tokens=100)
    c.messages.list("t1", after=3)
    c.messages.append("t1", [{"role": "user", "content": "hi", "name": None}])
    c.items.put(("a b", "..", "é"), "k/1", None, ttl_secs=5)
    c.tenant.list(("x", "y"), cursor="abc")
    c.tenant.search("q", prefix=("x",), embedding=(1.0, 2.0), filter={"k": "v"}, limit=3, metric="dot")
    c.items.delete((".",), "%")
    c.tool_cache.lookup("a:b", {"z": 1})
    c.audit.list(after=0)
    assert seen == [
        ("PATCH", "/v1/threads/t%2F1", {"title": None}),
        ("PATCH", "/v1/threads/t1", {"metadata": {"a": 1}}),
        ("GET", "/v1/threads?limit=5&cursor=c", None),
        ("GET", "/v1/threads/t1/context?max_tokens=100", None),
        ("GET", "/v1/threads/t1/messages?after=3", None),
        ("POST", "/v1/threads/t1/messages", {"messages": [{"role": "user", "content": "hi"}]}),
        ("PUT", "/v1/items/a%20b/%2E%2E/%C3%A9/k%2F1", {"value": None, "ttl_secs": 5}),
        ("GET", "/v1/tenant/items?prefix=x%2Fy&cursor=abc", None),
        (
            "POST",
            "/v1/tenant/items/search",
            {"query": "q", "embedding": [1.0, 2.0], "prefix": "x", "filter": {"k": "v"}, "limit": 3, "metric": "dot"},
        ),
        ("DELETE", "/v1/items/%2E/%25", None),
        ("POST", "/v1/cache/tools/a%3Ab/lookup", {"args": {"z": 1}}),
        ("GET", "/v1/me/audit?after=0", None),
    ]


def test_a_repeated_cursor_stops_the_iterator() -> None:
    page = {"items": [{"key": "k"}], "next_cursor": "same"}
    script = Script(httpx.Response(200, json=page), httpx.Response(200, json=page))
    with pytest.raises(SealroomError, match="repeated a page cursor"):
        list(client(script).items.iter())


def ndjson(*records: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, content=b"".join(json.dumps(record).encode() + b"\n" for record in records))


def test_export_reads_records_and_checks_the_end() -> None:
    whole = ndjson({"type": "room"}, {"type": "item", "key": "k"}, {"type": "end", "counts": {}})
    assert [record["type"] for record in client(Script(whole)).export()] == ["room", "item", "end"]

    stopped = ndjson({"type": "room"}, {"type": "error", "message": "the export stopped early; retry"})
    with pytest.raises(ExportIncomplete) as raised:
        list(client(Script(stopped)).export())
    assert raised.value.code == "export_stopped"

    truncated = ndjson({"type": "room"}, {"type": "item"})
    with pytest.raises(ExportIncomplete) as raised:
        list(client(Script(truncated)).export())
    assert raised.value.code == "export_truncated"


def test_paths_and_prefixes_are_checked() -> None:
    with pytest.raises(TypeError):
        _core.ITEMS.path("memories", "k")
    with pytest.raises(TypeError):
        _core.ITEMS.path(("a", 1), "k")  # type: ignore[arg-type]
    for prefix in (("a/b",), ("",), ("a", "")):
        with pytest.raises(ValueError):
            _core.ITEMS.page(prefix)
    with pytest.raises(TypeError):
        _core.append_messages("t1", {"role": "user", "content": "hi"})  # type: ignore[arg-type]
    assert _core.base_url("http://h:1/v1/") == "http://h:1"
    assert _core.base_url("http://h:1/prefix/v1") == "http://h:1/prefix"
    assert _core.base_url("http://h:1/v10") == "http://h:1/v10"


# -- async -------------------------------------------------------------------------------------


def async_client(script: Script, token: Any = SECRET, **options: Any) -> AsyncSealroom:
    return AsyncSealroom("http://sealroom.test", token, transport=httpx.MockTransport(script), **options)


@pytest.mark.anyio
async def test_async_retries_429_with_an_async_token(sleeps: list[float]) -> None:
    issued: Iterator[str] = iter(["first", "second"])

    async def token() -> str:
        return next(issued)

    script = Script(error(429, "rate_limited", {"retry-after": "3"}), httpx.Response(201, json=THREAD))
    async with async_client(script, token=token) as c:
        assert await c.threads.create("trip") == THREAD
    assert sleeps == [3.0]
    assert [request.headers["authorization"] for request in script.requests] == ["Bearer first", "Bearer second"]


@pytest.mark.anyio
async def test_async_does_not_retry_a_post_after_a_lost_answer(sleeps: list[float]) -> None:
    script = Script(httpx.ReadError("reset"), httpx.Response(201, json=THREAD))
    async with async_client(script) as c:
        with pytest.raises(TransportError):
            await c.messages.append("t1", [{"role": "user", "content": "hi"}])
    assert len(script.requests) == 1


@pytest.mark.anyio
async def test_async_errors_and_export(sleeps: list[float]) -> None:
    script = Script(error(404, "not_found"), ndjson({"type": "room"}))
    async with async_client(script) as c:
        with pytest.raises(NotFound):
            await c.items.get(("a",), "b")
        with pytest.raises(ExportIncomplete):
            [record async for record in c.export()]
