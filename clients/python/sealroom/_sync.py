"""The synchronous client, :class:`Sealroom`, over ``httpx.Client``.

Each method builds its call with :mod:`sealroom._core` and sends it with :meth:`Sealroom._send`,
which adds the token (fresh for every attempt when it is a callable), retries by the
:class:`~sealroom._core.RetryPolicy` and turns error answers into exceptions.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx

from . import _core
from ._core import UNSET, Call, ItemRoutes, Namespace, Pages, _Unset
from .errors import NotFound
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
    Thread,
    ThreadPage,
    SecretInfo,
    ToolLookup,
)

T = TypeVar("T")
E = TypeVar("E")

Token = str | Callable[[], str]
"""A bearer token, or a function returning one (called before every request)."""

_sleep = time.sleep  # replaced by the retry tests


class Sealroom:
    """A client of one sealroom server, acting as the user whose token it holds.

    ``token`` is the end user's bearer token, or a callable returning it: it is called before
    every request (and every retry), so it can return a refreshed token. Use as a context
    manager, or call :meth:`close`::

        with Sealroom("http://localhost:7878", token) as client:
            client.items.put(("memories", "travel"), "seat", {"seat": "window"})

    Attributes:
        threads: conversation threads (:class:`Threads`).
        messages: the messages of a thread (:class:`Messages`).
        items: items of the caller's own room (:class:`Items`).
        tenant: items of the caller's tenant's shared room (:class:`Items`); reading needs a
            token naming a tenant, writing also the ``tenant-writer`` role.
        tool_cache: cached tool results (:class:`ToolCache`).
        secrets: named secrets, resolved by reference (:class:`Secrets`).
        checkpoints: an agent framework's checkpoints (:class:`Checkpoints`).
        audit: the room's audit trail (:class:`Audit`).

    Args:
        base_url: the server, e.g. ``http://localhost:7878`` (a trailing ``/v1`` is accepted).
        timeout: seconds for each request (connect, read, write and pool each).
        max_retries: how many times one call is sent again: after a ``429`` always (after its
            ``Retry-After``); after a ``503`` or a connection failure only if the call is
            idempotent (never a thread creation or a message append).
        max_retry_wait: the longest ``Retry-After`` honoured, in seconds; a longer one raises
            :class:`~sealroom.RateLimited` at once.
        transport: an ``httpx`` transport, for tests (``httpx.MockTransport``) or custom networking.
    """

    def __init__(
        self,
        base_url: str | httpx.URL,
        token: Token,
        *,
        timeout: float = 30.0,
        max_retries: int = 3,
        max_retry_wait: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._token = token
        self._retry = _core.RetryPolicy(max_retries=max_retries, max_wait_secs=max_retry_wait)
        self._http = httpx.Client(base_url=_core.base_url(base_url), timeout=timeout, transport=transport)
        self.threads = Threads(self)
        self.messages = Messages(self)
        self.items = Items(self, _core.ITEMS)
        self.tenant = Items(self, _core.TENANT_ITEMS)
        self.tool_cache = ToolCache(self)
        self.secrets = Secrets(self)
        self.audit = Audit(self)
        self.checkpoints = Checkpoints(self)

    def __repr__(self) -> str:
        return f"Sealroom({str(self._http.base_url)!r})"

    def __enter__(self) -> Sealroom:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Closes the connections."""
        self._http.close()

    # -- the account ----------------------------------------------------------------------

    def me(self) -> Me:
        """Who the token says the caller is, and their room ids (``GET /v1/me``)."""
        return self._run(_core.me())

    def export(self) -> Generator[dict[str, Any], None, None]:
        """Everything in the caller's room, streamed as records (``GET /v1/me/export``).

        Records have a ``type``: ``room`` first, then ``thread``, ``message``, ``item`` (with its
        ``embedding``), ``cache_entry`` and ``audit`` records, and ``end`` last (with counts).
        Raises :class:`~sealroom.ExportIncomplete` if the export stops before its ``end``.
        The request is sent when iteration starts; iterate to the end or ``close()`` the
        iterator to release the connection.
        """
        response = self._send(_core.export())
        reader = _core.ExportReader()
        try:
            for line in response.iter_lines():
                record = reader.record(line)
                if record is not None:
                    yield record
            reader.finish()
        finally:
            response.close()

    def erase(self) -> ErasureReceipt:
        """Erases the caller's room for good (``DELETE /v1/me``): its key first, then every record.
        A later request by the same user finds an empty room."""
        return self._run(_core.erase())

    # -- sending ----------------------------------------------------------------------------

    def _run(self, call: Call[T]) -> T:
        return call.read(self._send(call))

    def _send(self, call: Call[Any]) -> httpx.Response:
        """Sends `call` with retries; the successful answer, read whole unless it streams."""
        attempt = 0
        while True:
            token = self._token() if callable(self._token) else self._token
            request = self._http.build_request(
                call.method, call.path, params=call.params, json=call.json, headers=_core.authorization(token)
            )
            try:
                response = self._http.send(request, stream=True)
                if not (call.stream and response.is_success):
                    try:
                        response.read()
                    finally:
                        response.close()
            except httpx.TransportError as error:
                wait = self._retry.after_failure(call, attempt, error)
                if wait is None:
                    raise _core.failure_error(error) from error
            else:
                if response.is_success:
                    return response
                wait = self._retry.after_answer(call, attempt, response)
                if wait is None:
                    raise _core.answer_error(response)
            attempt += 1
            _sleep(wait)

    def _iterate(self, pages: Pages[E]) -> Iterator[E]:
        cursor = pages.start
        while True:
            page = self._run(pages.page(cursor))
            yield from pages.entries_of(page)
            cursor = pages.next_of(page, cursor)
            if cursor is None:
                return


class _Resource:
    def __init__(self, client: Sealroom) -> None:
        self._client = client


class Threads(_Resource):
    """Conversation threads (``/v1/threads``)."""

    def create(self, title: str | None = None, *, metadata: dict[str, Any] | None = None) -> Thread:
        """Creates a thread."""
        return self._client._run(_core.create_thread(title, metadata))

    def list(self, *, limit: int | None = None, cursor: str | None = None) -> ThreadPage:
        """One page of threads, oldest first; pass ``next_cursor`` as ``cursor`` for the next."""
        return self._client._run(_core.thread_page(limit=limit, cursor=cursor))

    def iter(self, *, limit: int | None = None) -> Iterator[Thread]:
        """Every thread, fetching pages of ``limit`` as needed."""
        return self._client._iterate(_core.thread_pages(limit))

    def get(self, thread_id: str) -> Thread:
        """One thread; :class:`~sealroom.NotFound` if the caller has no such thread."""
        return self._client._run(_core.get_thread(thread_id))

    def update(
        self, thread_id: str, *, title: str | None | _Unset = UNSET, metadata: dict[str, Any] | None = None
    ) -> Thread:
        """Changes the title (``None`` clears it) and/or replaces the metadata; what is not
        given stays."""
        return self._client._run(_core.update_thread(thread_id, title, metadata))

    def delete(self, thread_id: str) -> None:
        """Deletes a thread and its messages."""
        self._client._run(_core.delete_thread(thread_id))

    def context(self, thread_id: str, *, max_tokens: int | None = None) -> Context:
        """The latest messages that fit ``max_tokens`` (server default 4,000), oldest first."""
        return self._client._run(_core.thread_context(thread_id, max_tokens=max_tokens))


class Messages(_Resource):
    """The messages of a thread (``/v1/threads/{id}/messages``)."""

    def append(self, thread_id: str, messages: Sequence[MessageInput]) -> builtins.list[Message]:
        """Appends a batch of messages (``{"role", "content", "name"?, "metadata"?}``) at once;
        returns them with their sequence numbers."""
        return self._client._run(_core.append_messages(thread_id, messages))

    def list(self, thread_id: str, *, after: int | None = None, limit: int | None = None) -> MessagePage:
        """One page of messages with a sequence number above ``after``; pass ``next_after`` as
        ``after`` for the next."""
        return self._client._run(_core.message_page(thread_id, after=after, limit=limit))

    def iter(self, thread_id: str, *, after: int | None = None, limit: int | None = None) -> Iterator[Message]:
        """Every message after ``after``, fetching pages of ``limit`` as needed."""
        return self._client._iterate(_core.message_pages(thread_id, after, limit))


class Items(_Resource):
    """Items of one room: the caller's own (``client.items``) or their tenant's
    (``client.tenant``). A namespace is a tuple of strings, such as ``("memories", "travel")``."""

    def __init__(self, client: Sealroom, routes: ItemRoutes) -> None:
        super().__init__(client)
        self._routes = routes

    def put(
        self,
        namespace: Namespace,
        key: str,
        value: Any,
        *,
        text: str | None = None,
        embedding: Sequence[float] | None = None,
        metadata: dict[str, Any] | None = None,
        ttl_secs: int | None = None,
    ) -> Item:
        """Stores ``value`` (any JSON) under ``namespace`` and ``key``, replacing what was there.
        ``text`` is indexed for search, with ``embedding`` for vector search; ``ttl_secs`` makes
        the item expire."""
        call = self._routes.put(
            namespace, key, value, text=text, embedding=embedding, metadata=metadata, ttl_secs=ttl_secs
        )
        return self._client._run(call)

    def get(self, namespace: Namespace, key: str) -> Item:
        """One item; :class:`~sealroom.NotFound` if there is none."""
        return self._client._run(self._routes.get(namespace, key))

    def delete(self, namespace: Namespace, key: str) -> None:
        """Deletes one item; :class:`~sealroom.NotFound` if there is none."""
        self._client._run(self._routes.delete(namespace, key))

    def list(self, prefix: Namespace = (), *, limit: int | None = None, cursor: str | None = None) -> ItemPage:
        """One page of the items under a namespace prefix (``()`` for all); pass ``next_cursor``
        as ``cursor`` for the next."""
        return self._client._run(self._routes.page(prefix, limit=limit, cursor=cursor))

    def iter(self, prefix: Namespace = (), *, limit: int | None = None) -> Iterator[Item]:
        """Every item under a namespace prefix, fetching pages of ``limit`` as needed."""
        return self._client._iterate(_core.item_pages(self._routes, prefix, limit))

    def batch(self, changes: Sequence[dict[str, Any]]) -> builtins.list[dict[str, Any]]:
        """Puts and deletes items in one commit, all or nothing (at most 100): each change is
        ``{"op": "put", "namespace", "key", "value", "text"?, "embedding"?, "metadata"?,
        "ttl_secs"?}`` or ``{"op": "delete", "namespace", "key"}``. Returns what each did, in
        order: ``{"op": "put", "item"}`` or ``{"op": "delete", ..., "existed"}``."""
        return self._client._run(self._routes.batch(changes))

    def namespaces(
        self,
        *,
        prefix: Namespace | None = None,
        suffix: Namespace | None = None,
        max_depth: int | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> builtins.list[builtins.list[str]]:
        """The namespaces holding items, sorted, matching ``prefix`` and ``suffix`` (``"*"``
        matches any one segment), cut to ``max_depth`` segments (each listed once)."""
        call = self._routes.namespaces(prefix=prefix, suffix=suffix, max_depth=max_depth, limit=limit, offset=offset)
        return self._client._run(call)

    def search(
        self,
        query: str | None = None,
        *,
        embedding: Sequence[float] | None = None,
        prefix: Namespace = (),
        filter: dict[str, Any] | None = None,
        limit: int | None = None,
        metric: str | None = None,
    ) -> builtins.list[SearchResult]:
        """Searches the room's items by text (BM25), by ``embedding``, or both (fused by rank).
        ``filter`` holds metadata values that must all match; ``metric`` is ``cosine`` (the
        default) or ``dot``; ``limit`` defaults to 10."""
        call = self._routes.search(query, embedding=embedding, prefix=prefix, filter=filter, limit=limit, metric=metric)
        return self._client._run(call)


class Checkpoints(_Resource):
    """An agent framework's checkpoints (``/v1/checkpoints``; LangGraph's checkpointer model):
    addressed by thread id, namespace (``""`` is the root) and checkpoint id, inside the
    caller's room only. Blobs (:func:`sealroom._core.blob`) are stored as they come."""

    def put(
        self,
        thread_id: str,
        checkpoint_ns: str,
        checkpoint_id: str,
        checkpoint: Blob,
        *,
        parent_checkpoint_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> CheckpointAddress:
        """Stores (or replaces) a checkpoint."""
        call = _core.put_checkpoint(
            thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint, metadata or {}
        )
        return self._client._run(call)

    def put_writes(
        self,
        thread_id: str,
        checkpoint_ns: str,
        checkpoint_id: str,
        task_id: str,
        writes: Sequence[PendingWriteInput],
        *,
        task_path: str = "",
    ) -> None:
        """Stores a task's pending writes for a checkpoint."""
        call = _core.put_checkpoint_writes(thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, writes)
        self._client._run(call)

    def get(self, thread_id: str, checkpoint_ns: str = "", checkpoint_id: str | None = None) -> Checkpoint | None:
        """A checkpoint with its pending writes (the thread's latest without ``checkpoint_id``),
        or ``None``."""
        try:
            return self._client._run(_core.get_checkpoint(thread_id, checkpoint_ns, checkpoint_id))
        except NotFound:
            return None

    def list(
        self,
        *,
        thread_id: str | None = None,
        checkpoint_ns: str | None = None,
        checkpoint_id: str | None = None,
        before: str | None = None,
        filter: dict[str, Any] | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> CheckpointPage:
        """One page of checkpoints, greatest id first; pass ``next_cursor`` as ``cursor``."""
        call = _core.checkpoint_page(
            thread_id=thread_id,
            checkpoint_ns=checkpoint_ns,
            checkpoint_id=checkpoint_id,
            before=before,
            filter=filter,
            limit=limit,
            cursor=cursor,
        )
        return self._client._run(call)

    def iter(
        self,
        *,
        thread_id: str | None = None,
        checkpoint_ns: str | None = None,
        checkpoint_id: str | None = None,
        before: str | None = None,
        filter: dict[str, Any] | None = None,
        limit: int | None = None,
    ) -> Iterator[Checkpoint]:
        """Every matching checkpoint, greatest id first, fetching pages of ``limit`` as needed."""
        pages = _core.checkpoint_pages(
            thread_id=thread_id,
            checkpoint_ns=checkpoint_ns,
            checkpoint_id=checkpoint_id,
            before=before,
            filter=filter,
            limit=limit,
        )
        return self._client._iterate(pages)

    def delete_thread(self, thread_id: str) -> None:
        """Deletes a thread's checkpoints and writes in every namespace."""
        self._client._run(_core.delete_checkpoint_thread(thread_id))

    def delete_runs(self, run_ids: Sequence[str]) -> None:
        """Deletes the checkpoints whose metadata ``run_id`` is one of these."""
        self._client._run(_core.delete_checkpoint_runs(run_ids))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copies a thread's checkpoints and writes to another thread id."""
        self._client._run(_core.copy_checkpoint_thread(source_thread_id, target_thread_id))

    def prune(self, thread_ids: Sequence[str], strategy: str = "keep_latest") -> None:
        """``keep_latest`` keeps each namespace's latest checkpoint; ``delete`` deletes."""
        self._client._run(_core.prune_checkpoints(thread_ids, strategy))


class ToolCache(_Resource):
    """Cached tool results (``/v1/cache/tools``), keyed by tool name and canonical arguments
    (key order and number spelling do not matter)."""

    def put(self, tool: str, args: Any, result: Any, *, ttl_secs: int) -> None:
        """Caches ``result`` for ``tool`` called with ``args``, for ``ttl_secs`` seconds."""
        self._client._run(_core.put_tool_result(tool, args, result, ttl_secs))

    def lookup(self, tool: str, args: Any) -> ToolLookup:
        """The cached result for these arguments: ``hit`` says whether there is one."""
        return self._client._run(_core.lookup_tool_result(tool, args))

    def delete(self, tool: str) -> None:
        """Deletes every cached result of ``tool``."""
        self._client._run(_core.delete_tool_results(tool))


class Secrets(_Resource):
    """Named secrets of the caller's room (``/v1/secrets``). Model-bound text carries
    ``{{secret:NAME}}`` instead of a value (the proxy replaces any stored value it finds); an
    application's tool runtime resolves a reference with a token carrying the resolve role.
    Values are never returned by any other read."""

    def put(self, name: str, value: str) -> bool:
        """Stores or replaces ``name``; whether it is new."""
        return self._client._run(_core.put_secret(name, value))

    def list(self) -> builtins.list[SecretInfo]:
        """Names and dates of the room's secrets (never their values)."""
        return self._client._run(_core.list_secrets())

    def delete(self, name: str) -> None:
        """Deletes ``name`` (:class:`~sealroom.NotFound` if there is none)."""
        self._client._run(_core.delete_secret(name))

    def resolve(self, name: str) -> str:
        """The value of ``name``, for a tool runtime: the token needs the resolve role
        (``secrets-resolve`` by default), or this raises :class:`~sealroom.Forbidden`."""
        return self._client._run(_core.resolve_secret(name))


class Audit(_Resource):
    """The room's tamper-evident audit trail (``/v1/me/audit``), oldest first."""

    def list(self, *, after: int | None = None, limit: int | None = None) -> AuditPage:
        """One page of entries with a sequence number above ``after``; pass ``next_after`` as
        ``after`` for the next."""
        return self._client._run(_core.audit_page(after=after, limit=limit))

    def iter(self, *, after: int | None = None, limit: int | None = None) -> Iterator[AuditEntry]:
        """Every entry after ``after``, fetching pages of ``limit`` as needed."""
        return self._client._iterate(_core.audit_pages(after, limit))
