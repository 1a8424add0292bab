"""What the sync and async clients share: every route as a :class:`Call` (method, path, query,
body, how to read the answer), the paged listings, the retry policy, item-path encoding and the
export reader. The clients only send calls; no route is written twice.

Paths are built here, and only here, from percent-encoded segments: a namespace segment, key,
thread id or tool name can never add, remove or climb a path segment (``..`` is sent encoded,
so no URL normalization can act on it). The server validates what the segments may contain.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from .errors import AuthError, ExportIncomplete, SealroomError, TransportError, error_from_response, parse_retry_after
from .types import (
    AuditEntry,
    AuditPage,
    Blob,
    Checkpoint,
    CheckpointAddress,
    CheckpointPage,
    Context,
    ErasureReceipt,
    Item,
    ItemPage,
    Me,
    Message,
    MessageInput,
    MessagePage,
    PendingWriteInput,
    SearchResult,
    SecretInfo,
    Thread,
    ThreadPage,
    ToolLookup,
)

T = TypeVar("T")
E = TypeVar("E")

Namespace = Sequence[str]
"""A namespace: a tuple or list of segments, such as ``("memories", "travel")``."""


class _Unset:
    """The type of :data:`UNSET`."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET = _Unset()
"""Marks an argument that was not given (``threads.update(title=None)`` clears the title;
leaving ``title`` out keeps it)."""

# ---------------------------------------------------------------------------------------------
# Calls


def _read_json(response: httpx.Response) -> Any:
    return response.json()


def _read_nothing(response: httpx.Response) -> None:
    return None


def _read_field(name: str) -> Callable[[httpx.Response], Any]:
    return lambda response: response.json()[name]


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API request and how to read its successful answer into a ``T``."""

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: dict[str, str | int] | None = None
    json: dict[str, Any] | None = None
    #: Whether sending it twice does no more than sending it once (so a lost answer may be
    #: retried). GET, PUT and DELETE are; the read-only POSTs (search, lookup) say so.
    idempotent: bool = False
    #: Whether the answer is streamed to the caller instead of read whole.
    stream: bool = False


def _call(
    method: str,
    path: str,
    read: Callable[[httpx.Response], Any] = _read_json,
    *,
    params: Mapping[str, str | int | None] | None = None,
    json: dict[str, Any] | None = None,
    idempotent: bool | None = None,
    stream: bool = False,
) -> Call[Any]:
    kept = {name: value for name, value in (params or {}).items() if value is not None}
    return Call(
        method=method,
        path=path,
        read=read,
        params=kept or None,
        json=json,
        idempotent=method in ("GET", "PUT", "DELETE") if idempotent is None else idempotent,
        stream=stream,
    )


def _body(**fields: Any) -> dict[str, Any]:
    """A JSON body of the fields that were given (the server refuses unknown fields, and treats
    an absent optional field like ``null``)."""
    return {name: value for name, value in fields.items() if value is not None}


def _segment(text: str, what: str) -> str:
    """One percent-encoded path segment: every byte but the unreserved ones is encoded, and the
    dot segments too, so the segment reaches the server exactly as given."""
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a str, not {type(text).__name__}")
    if text in (".", ".."):
        return text.replace(".", "%2E")
    return quote(text, safe="")


def _segments(namespace: Namespace, what: str) -> list[str]:
    if isinstance(namespace, (str, bytes)):
        raise TypeError(f"{what} must be a tuple or list of strings, such as ('memories', 'travel'), not a str")
    return list(namespace)


def _prefix(prefix: Namespace) -> str | None:
    """A namespace prefix as the query string carries it: segments joined by ``/``."""
    segments = _segments(prefix, "prefix")
    for segment in segments:
        if not isinstance(segment, str):
            raise TypeError(f"prefix segments must be str, not {type(segment).__name__}")
        if segment == "" or "/" in segment:
            # Unrepresentable in a `/`-joined prefix; the server's namespaces never hold them.
            raise ValueError("prefix segments must be non-empty and may not contain '/'")
    return "/".join(segments) or None


def _change(change: Mapping[str, Any]) -> dict[str, Any]:
    """One change of an item batch: ``{"op": "put" | "delete", "namespace", "key", ...}``."""
    if not isinstance(change, Mapping) or change.get("op") not in ("put", "delete"):
        raise ValueError("each change is a mapping with op 'put' or 'delete'")
    body = {name: value for name, value in change.items() if value is not None or name == "value"}
    body["namespace"] = _segments(change.get("namespace", ()), "namespace")
    if body.get("embedding") is not None:
        body["embedding"] = list(body["embedding"])
    return body


def _pattern(segments: Namespace, what: str) -> str:
    """A namespace pattern as the query string carries it: segments (``*`` for any one) joined
    by ``/``."""
    parts = _segments(segments, what)
    for segment in parts:
        if not isinstance(segment, str) or segment == "" or "/" in segment:
            raise ValueError(f"{what} segments must be non-empty strings without '/'")
    return "/".join(parts)


# ---------------------------------------------------------------------------------------------
# Routes: the account


def me() -> Call[Me]:
    return _call("GET", "/v1/me")


def erase() -> Call[ErasureReceipt]:
    return _call("DELETE", "/v1/me")


def export() -> Call[None]:
    return _call("GET", "/v1/me/export", _read_nothing, stream=True)


def audit_page(*, after: int | None = None, limit: int | None = None) -> Call[AuditPage]:
    return _call("GET", "/v1/me/audit", params={"after": after, "limit": limit})


# Routes: threads and messages


def _thread_path(thread_id: str, *rest: str) -> str:
    return "/".join(["/v1/threads", _segment(thread_id, "thread_id"), *rest])


def create_thread(title: str | None, metadata: dict[str, Any] | None) -> Call[Thread]:
    return _call("POST", "/v1/threads", json=_body(title=title, metadata=metadata))


def thread_page(*, limit: int | None = None, cursor: str | None = None) -> Call[ThreadPage]:
    return _call("GET", "/v1/threads", params={"limit": limit, "cursor": cursor})


def get_thread(thread_id: str) -> Call[Thread]:
    return _call("GET", _thread_path(thread_id))


def update_thread(thread_id: str, title: str | None | _Unset, metadata: dict[str, Any] | None) -> Call[Thread]:
    body = _body(metadata=metadata)
    if not isinstance(title, _Unset):
        body["title"] = title  # `null` clears the title
    # Sets fields to given values, so repeating it is harmless; retried like a PUT.
    return _call("PATCH", _thread_path(thread_id), json=body, idempotent=True)


def delete_thread(thread_id: str) -> Call[None]:
    return _call("DELETE", _thread_path(thread_id), _read_nothing)


def thread_context(thread_id: str, *, max_tokens: int | None = None) -> Call[Context]:
    return _call("GET", _thread_path(thread_id, "context"), params={"max_tokens": max_tokens})


def append_messages(thread_id: str, messages: Sequence[MessageInput]) -> Call[list[Message]]:
    if isinstance(messages, Mapping):
        raise TypeError("messages must be a list of messages; wrap a single message in a list")
    body = {"messages": [_body(**message) for message in messages]}
    return _call("POST", _thread_path(thread_id, "messages"), _read_field("messages"), json=body)


def message_page(thread_id: str, *, after: int | None = None, limit: int | None = None) -> Call[MessagePage]:
    return _call("GET", _thread_path(thread_id, "messages"), params={"after": after, "limit": limit})


# Routes: the tool cache


def _tool_path(tool: str, *rest: str) -> str:
    return "/".join(["/v1/cache/tools", _segment(tool, "tool"), *rest])


def put_tool_result(tool: str, args: Any, result: Any, ttl_secs: int) -> Call[None]:
    body = {"args": args, "result": result, "ttl_secs": ttl_secs}
    return _call("PUT", _tool_path(tool), _read_nothing, json=body)


def lookup_tool_result(tool: str, args: Any) -> Call[ToolLookup]:
    return _call("POST", _tool_path(tool, "lookup"), json={"args": args}, idempotent=True)


def delete_tool_results(tool: str) -> Call[None]:
    return _call("DELETE", _tool_path(tool), _read_nothing)


# Routes: secrets by reference


def _secret_path(name: str, *rest: str) -> str:
    return "/".join(["/v1/secrets", _segment(name, "name"), *rest])


def put_secret(name: str, value: str) -> Call[bool]:
    return _call("PUT", _secret_path(name), lambda response: bool(response.json()["created"]), json={"value": value})


def list_secrets() -> Call[list[SecretInfo]]:
    return _call("GET", "/v1/secrets", lambda response: response.json()["secrets"])


def delete_secret(name: str) -> Call[None]:
    return _call("DELETE", _secret_path(name), _read_nothing)


def resolve_secret(name: str) -> Call[str]:
    # Read-only: a lost answer may be asked for again.
    return _call(
        "POST", _secret_path(name, "resolve"), lambda response: str(response.json()["value"]), json={}, idempotent=True
    )


# Routes: items, in the caller's room or their tenant's


@dataclass(frozen=True)
class ItemRoutes:
    """The item routes under one base: ``/v1/items`` (the caller's room) or
    ``/v1/tenant/items`` (their tenant's shared room)."""

    base: str

    def path(self, namespace: Namespace, key: str) -> str:
        segments = [_segment(segment, "namespace segment") for segment in _segments(namespace, "namespace")]
        return "/".join([self.base, *segments, _segment(key, "key")])

    def put(
        self,
        namespace: Namespace,
        key: str,
        value: Any,
        *,
        text: str | None,
        embedding: Sequence[float] | None,
        metadata: dict[str, Any] | None,
        ttl_secs: int | None,
    ) -> Call[Item]:
        body = _body(text=text, embedding=None if embedding is None else list(embedding), metadata=metadata)
        body["value"] = value  # may be `null`, which is a value
        if ttl_secs is not None:
            body["ttl_secs"] = ttl_secs
        return _call("PUT", self.path(namespace, key), json=body)

    def get(self, namespace: Namespace, key: str) -> Call[Item]:
        return _call("GET", self.path(namespace, key))

    def delete(self, namespace: Namespace, key: str) -> Call[None]:
        return _call("DELETE", self.path(namespace, key), _read_nothing)

    def page(self, prefix: Namespace = (), *, limit: int | None = None, cursor: str | None = None) -> Call[ItemPage]:
        return _call("GET", self.base, params={"prefix": _prefix(prefix), "limit": limit, "cursor": cursor})

    def batch(self, changes: Sequence[Mapping[str, Any]]) -> Call[list[dict[str, Any]]]:
        body = {"changes": [_change(change) for change in changes]}
        # All or nothing, and a repeat stores the same values again: safe to retry.
        return _call("POST", self.base + "/batch", _read_field("results"), json=body, idempotent=True)

    def namespaces(
        self,
        *,
        prefix: Namespace | None,
        suffix: Namespace | None,
        max_depth: int | None,
        limit: int | None,
        offset: int | None,
    ) -> Call[list[list[str]]]:
        params = {
            "prefix": None if prefix is None else _pattern(prefix, "prefix"),
            "suffix": None if suffix is None else _pattern(suffix, "suffix"),
            "max_depth": max_depth,
            "limit": limit,
            "offset": offset,
        }
        return _call("GET", self.base + "/namespaces", _read_field("namespaces"), params=params)

    def search(
        self,
        query: str | None,
        *,
        embedding: Sequence[float] | None,
        prefix: Namespace,
        filter: dict[str, Any] | None,
        limit: int | None,
        metric: str | None,
    ) -> Call[list[SearchResult]]:
        body = _body(
            query=query,
            embedding=None if embedding is None else list(embedding),
            prefix=_prefix(prefix),
            filter=filter,
            limit=limit,
            metric=metric,
        )
        return _call("POST", self.base + "/search", _read_field("results"), json=body, idempotent=True)


ITEMS = ItemRoutes("/v1/items")
TENANT_ITEMS = ItemRoutes("/v1/tenant/items")

# Routes: checkpoints (thread ids and namespaces travel in bodies: they are free text)


def blob(type_tag: str, data: bytes) -> Blob:
    """A serialized value as the API carries it: its type tag and base64 bytes."""
    return {"type": type_tag, "data": base64.b64encode(data).decode("ascii")}


def blob_bytes(value: Blob) -> tuple[str, bytes]:
    """The type tag and bytes of a blob the API returned."""
    return value["type"], base64.b64decode(value["data"])


def put_checkpoint(
    thread_id: str,
    checkpoint_ns: str,
    checkpoint_id: str,
    parent_checkpoint_id: str | None,
    checkpoint: Blob,
    metadata: dict[str, Any],
) -> Call[CheckpointAddress]:
    body = {
        "thread_id": thread_id,
        "checkpoint_ns": checkpoint_ns,
        "checkpoint_id": checkpoint_id,
        "parent_checkpoint_id": parent_checkpoint_id,
        "checkpoint": checkpoint,
        "metadata": metadata,
    }
    # Storing the same checkpoint again replaces it with itself: safe to retry.
    return _call("POST", "/v1/checkpoints", json=body, idempotent=True)


def put_checkpoint_writes(
    thread_id: str,
    checkpoint_ns: str,
    checkpoint_id: str,
    task_id: str,
    task_path: str,
    writes: Sequence[PendingWriteInput],
) -> Call[None]:
    body = {
        "thread_id": thread_id,
        "checkpoint_ns": checkpoint_ns,
        "checkpoint_id": checkpoint_id,
        "task_id": task_id,
        "task_path": task_path,
        "writes": list(writes),
    }
    # A repeated write at the same index is kept once; a special index is replaced by itself.
    return _call("POST", "/v1/checkpoints/writes", _read_nothing, json=body, idempotent=True)


def get_checkpoint(thread_id: str, checkpoint_ns: str, checkpoint_id: str | None) -> Call[Checkpoint]:
    body = _body(thread_id=thread_id, checkpoint_ns=checkpoint_ns, checkpoint_id=checkpoint_id)
    return _call("POST", "/v1/checkpoints/get", json=body, idempotent=True)


def checkpoint_page(
    *,
    thread_id: str | None,
    checkpoint_ns: str | None,
    checkpoint_id: str | None,
    before: str | None,
    filter: dict[str, Any] | None,
    limit: int | None,
    cursor: str | None,
) -> Call[CheckpointPage]:
    body = _body(
        thread_id=thread_id,
        checkpoint_ns=checkpoint_ns,
        checkpoint_id=checkpoint_id,
        before=before,
        filter=filter,
        limit=limit,
        cursor=cursor,
    )
    return _call("POST", "/v1/checkpoints/list", json=body, idempotent=True)


def checkpoint_pages(
    *,
    thread_id: str | None,
    checkpoint_ns: str | None,
    checkpoint_id: str | None,
    before: str | None,
    filter: dict[str, Any] | None,
    limit: int | None,
) -> Pages[Checkpoint]:
    def page(cursor: str | None) -> Call[CheckpointPage]:
        return checkpoint_page(
            thread_id=thread_id,
            checkpoint_ns=checkpoint_ns,
            checkpoint_id=checkpoint_id,
            before=before,
            filter=filter,
            limit=limit,
            cursor=cursor,
        )

    return Pages(page, "checkpoints", "next_cursor")


def delete_checkpoint_thread(thread_id: str) -> Call[None]:
    return _call("POST", "/v1/checkpoints/delete-thread", _read_nothing, json={"thread_id": thread_id}, idempotent=True)


def delete_checkpoint_runs(run_ids: Sequence[str]) -> Call[None]:
    return _call("POST", "/v1/checkpoints/delete-runs", _read_nothing, json={"run_ids": list(run_ids)}, idempotent=True)


def copy_checkpoint_thread(source_thread_id: str, target_thread_id: str) -> Call[None]:
    body = {"source_thread_id": source_thread_id, "target_thread_id": target_thread_id}
    return _call("POST", "/v1/checkpoints/copy-thread", _read_nothing, json=body, idempotent=True)


def prune_checkpoints(thread_ids: Sequence[str], strategy: str) -> Call[None]:
    body = {"thread_ids": list(thread_ids), "strategy": strategy}
    return _call("POST", "/v1/checkpoints/prune", _read_nothing, json=body, idempotent=True)


# ---------------------------------------------------------------------------------------------
# Paged listings


@dataclass(frozen=True)
class Pages(Generic[E]):
    """A paged listing: the call for the page after a cursor, and where each page keeps its
    entries and the next cursor (``None`` on the last page)."""

    page: Callable[[Any], Call[Any]]
    entries: str
    next: str
    start: Any = None

    def entries_of(self, page: Mapping[str, Any]) -> list[E]:
        return list(page[self.entries])

    def next_of(self, page: Mapping[str, Any], cursor: Any) -> Any:
        """The cursor after `page`, or ``None`` when the listing is done."""
        following = page.get(self.next)
        if following is not None and following == cursor:
            raise SealroomError("the server repeated a page cursor", code="invalid_cursor")
        return following


def thread_pages(limit: int | None) -> Pages[Thread]:
    return Pages(lambda cursor: thread_page(limit=limit, cursor=cursor), "threads", "next_cursor")


def message_pages(thread_id: str, after: int | None, limit: int | None) -> Pages[Message]:
    return Pages(lambda cursor: message_page(thread_id, after=cursor, limit=limit), "messages", "next_after", after)


def audit_pages(after: int | None, limit: int | None) -> Pages[AuditEntry]:
    return Pages(lambda cursor: audit_page(after=cursor, limit=limit), "entries", "next_after", after)


def item_pages(routes: ItemRoutes, prefix: Namespace, limit: int | None) -> Pages[Item]:
    _prefix(prefix)  # checked now, not at the first page
    return Pages(lambda cursor: routes.page(prefix, limit=limit, cursor=cursor), "items", "next_cursor")


# ---------------------------------------------------------------------------------------------
# Sending: tokens, retries, errors, the export stream

#: Waits between retries without a `Retry-After`: 0.5 s, 1 s, 2 s… up to this, with jitter.
BACKOFF_SECS_MAX = 8.0
#: Transport failures after which an idempotent call is sent again.
RETRYABLE_ERRORS = (httpx.NetworkError, httpx.TimeoutException, httpx.RemoteProtocolError)


def authorization(token: object) -> dict[str, str]:
    """The ``Authorization`` header for a token. The token is checked here, never echoed: a
    header with a line break or a space would otherwise fail deep in the HTTP library with an
    error quoting it."""
    if not isinstance(token, str) or not token or not all("!" <= char <= "~" for char in token):
        raise AuthError("the token must be a non-empty string of visible ASCII characters", code="invalid_token")
    return {"authorization": "Bearer " + token}


def base_url(url: str | httpx.URL) -> str:
    """The server's root: a trailing ``/`` or ``/v1`` is dropped, so the URL given to the
    OpenAI SDK (``http://host:7878/v1``) works here too."""
    text = str(url).rstrip("/")
    return text[: -len("/v1")] if text.endswith("/v1") else text


@dataclass(frozen=True)
class RetryPolicy:
    """When to send a call again, and after how long.

    * ``429``: always (the server refuses before doing anything), after ``Retry-After``
      seconds; if the server asks for more than ``max_wait_secs``, the error is raised at once.
    * ``503``: idempotent calls only (a timed-out request may have done its work).
    * a transport failure (no answer): idempotent calls only.
    """

    max_retries: int = 3
    max_wait_secs: float = 60.0

    def backoff(self, attempt: int) -> float:
        """Exponential, capped, with jitter so that many clients do not retry in step."""
        return min(BACKOFF_SECS_MAX, 0.5 * 2.0**attempt) * (0.5 + random.random() / 2)

    def after_answer(self, call: Call[Any], attempt: int, response: httpx.Response) -> float | None:
        """Seconds to wait before sending `call` again after this error answer, or ``None``."""
        if attempt >= self.max_retries:
            return None
        status = response.status_code
        if status == 429 or (status == 503 and call.idempotent):
            wait = parse_retry_after(response.headers)
            if wait is None:
                return self.backoff(attempt)
            return wait if wait <= self.max_wait_secs else None
        return None

    def after_failure(self, call: Call[Any], attempt: int, error: httpx.TransportError) -> float | None:
        """Seconds to wait before sending `call` again after no answer arrived, or ``None``."""
        if attempt >= self.max_retries or not call.idempotent or not isinstance(error, RETRYABLE_ERRORS):
            return None
        return self.backoff(attempt)


def answer_error(response: httpx.Response) -> SealroomError:
    """The exception for an error answer whose body has been read."""
    return error_from_response(response.status_code, response.content, response.headers)


def failure_error(error: httpx.TransportError) -> TransportError:
    """The exception for a call that got no answer (chain the httpx error as its cause)."""
    code = "timeout" if isinstance(error, httpx.TimeoutException) else "connection_error"
    return TransportError(f"no answer from the server ({type(error).__name__})", code=code)


class ExportReader:
    """Reads an export's NDJSON lines into records, and makes sure the export is whole: the
    server writes an ``error`` record when it stops early and ends a complete export with an
    ``end`` record."""

    def __init__(self) -> None:
        self.ended = False

    def record(self, line: str) -> dict[str, Any] | None:
        """The record on `line` (``None`` for a blank line); raises on an ``error`` record."""
        if not line.strip():
            return None
        record = json.loads(line)
        if not isinstance(record, dict):
            raise ExportIncomplete("the export holds a line that is not a JSON object", code="invalid_export")
        if record.get("type") == "error":
            raise ExportIncomplete(str(record.get("message", "the export stopped early")), code="export_stopped")
        if record.get("type") == "end":
            self.ended = True
        return record

    def finish(self) -> None:
        if not self.ended:
            raise ExportIncomplete("the export stream ended before its end record", code="export_truncated")
