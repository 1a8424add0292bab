"""The asynchronous client, :class:`AsyncSealroom`, over ``httpx.AsyncClient``.

The same methods as :class:`~sealroom.Sealroom`, awaited; listings and the export are async
iterators. Calls are built by :mod:`sealroom._core`, exactly as for the sync client.
"""

from __future__ import annotations

import asyncio
import builtins
import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
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

AsyncToken = str | Callable[[], str | Awaitable[str]]
"""A bearer token, or a function (plain or async) returning one, called before every request."""

_sleep = asyncio.sleep  # replaced by the retry tests


class AsyncSealroom:
    """The asynchronous client: :class:`~sealroom.Sealroom`'s methods, awaited.

    ``token`` may also be an async function. Listings (``iter``) and :meth:`export` are async
    iterators::

        async with AsyncSealroom("http://localhost:7878", token) as client:
            async for thread in client.threads.iter():
                ...

    The arguments and attributes are those of :class:`~sealroom.Sealroom`; ``transport`` is an
    ``httpx.AsyncBaseTransport``.
    """

    def __init__(
        self,
        base_url: str | httpx.URL,
        token: AsyncToken,
        *,
        timeout: float = 30.0,
        max_retries: int = 3,
        max_retry_wait: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._token = token
        self._retry = _core.RetryPolicy(max_retries=max_retries, max_wait_secs=max_retry_wait)
        self._http = httpx.AsyncClient(base_url=_core.base_url(base_url), timeout=timeout, transport=transport)
        self.threads = AsyncThreads(self)
        self.messages = AsyncMessages(self)
        self.items = AsyncItems(self, _core.ITEMS)
        self.tenant = AsyncItems(self, _core.TENANT_ITEMS)
        self.tool_cache = AsyncToolCache(self)
        self.secrets = AsyncSecrets(self)
        self.audit = AsyncAudit(self)
        self.checkpoints = AsyncCheckpoints(self)

    def __repr__(self) -> str:
        return f"AsyncSealroom({str(self._http.base_url)!r})"

    async def __aenter__(self) -> AsyncSealroom:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Closes the connections."""
        await self._http.aclose()

    # -- the account ----------------------------------------------------------------------

    async def me(self) -> Me:
        """Who the token says the caller is, and their room ids (``GET /v1/me``)."""
        return await self._run(_core.me())

    async def export(self) -> AsyncGenerator[dict[str, Any], None]:
        """Everything in the caller's room, streamed as records; see
        :meth:`Sealroom.export <sealroom.Sealroom.export>`. Iterate to the end or ``aclose()``
        the iterator to release the connection."""
        response = await self._send(_core.export())
        reader = _core.ExportReader()
        try:
            async for line in response.aiter_lines():
                record = reader.record(line)
                if record is not None:
                    yield record
            reader.finish()
        finally:
            await response.aclose()

    async def erase(self) -> ErasureReceipt:
        """Erases the caller's room for good (``DELETE /v1/me``)."""
        return await self._run(_core.erase())

    # -- sending ----------------------------------------------------------------------------

    async def _run(self, call: Call[T]) -> T:
        return call.read(await self._send(call))

    async def _send(self, call: Call[Any]) -> httpx.Response:
        """Sends `call` with retries; the successful answer, read whole unless it streams."""
        attempt = 0
        while True:
            token = self._token() if callable(self._token) else self._token
            if inspect.isawaitable(token):
                token = await token
            request = self._http.build_request(
                call.method, call.path, params=call.params, json=call.json, headers=_core.authorization(token)
            )
            try:
                response = await self._http.send(request, stream=True)
                if not (call.stream and response.is_success):
                    try:
                        await response.aread()
                    finally:
                        await response.aclose()
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
            await _sleep(wait)

    async def _iterate(self, pages: Pages[E]) -> AsyncIterator[E]:
        cursor = pages.start
        while True:
            page = await self._run(pages.page(cursor))
            for entry in pages.entries_of(page):
                yield entry
            cursor = pages.next_of(page, cursor)
            if cursor is None:
                return


class _AsyncResource:
    def __init__(self, client: AsyncSealroom) -> None:
        self._client = client


class AsyncThreads(_AsyncResource):
    """Conversation threads; see :class:`~sealroom.Threads`."""

    async def create(self, title: str | None = None, *, metadata: dict[str, Any] | None = None) -> Thread:
        """Creates a thread."""
        return await self._client._run(_core.create_thread(title, metadata))

    async def list(self, *, limit: int | None = None, cursor: str | None = None) -> ThreadPage:
        """One page of threads; pass ``next_cursor`` as ``cursor`` for the next."""
        return await self._client._run(_core.thread_page(limit=limit, cursor=cursor))

    def iter(self, *, limit: int | None = None) -> AsyncIterator[Thread]:
        """Every thread, fetching pages of ``limit`` as needed."""
        return self._client._iterate(_core.thread_pages(limit))

    async def get(self, thread_id: str) -> Thread:
        """One thread; :class:`~sealroom.NotFound` if the caller has no such thread."""
        return await self._client._run(_core.get_thread(thread_id))

    async def update(
        self, thread_id: str, *, title: str | None | _Unset = UNSET, metadata: dict[str, Any] | None = None
    ) -> Thread:
        """Changes the title (``None`` clears it) and/or replaces the metadata."""
        return await self._client._run(_core.update_thread(thread_id, title, metadata))

    async def delete(self, thread_id: str) -> None:
        """Deletes a thread and its messages."""
        await self._client._run(_core.delete_thread(thread_id))

    async def context(self, thread_id: str, *, max_tokens: int | None = None) -> Context:
        """The latest messages that fit ``max_tokens``, oldest first."""
        return await self._client._run(_core.thread_context(thread_id, max_tokens=max_tokens))


class AsyncMessages(_AsyncResource):
    """The messages of a thread; see :class:`~sealroom.Messages`."""

    async def append(self, thread_id: str, messages: Sequence[MessageInput]) -> builtins.list[Message]:
        """Appends a batch of messages; returns them with their sequence numbers."""
        return await self._client._run(_core.append_messages(thread_id, messages))

    async def list(self, thread_id: str, *, after: int | None = None, limit: int | None = None) -> MessagePage:
        """One page of messages after ``after``; pass ``next_after`` as ``after`` for the next."""
        return await self._client._run(_core.message_page(thread_id, after=after, limit=limit))

    def iter(self, thread_id: str, *, after: int | None = None, limit: int | None = None) -> AsyncIterator[Message]:
        """Every message after ``after``, fetching pages of ``limit`` as needed."""
        return self._client._iterate(_core.message_pages(thread_id, after, limit))


class AsyncItems(_AsyncResource):
    """Items of one room: ``client.items`` or ``client.tenant``; see :class:`~sealroom.Items`."""

    def __init__(self, client: AsyncSealroom, routes: ItemRoutes) -> None:
        super().__init__(client)
        self._routes = routes

    async def put(
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
        """Stores ``value`` under ``namespace`` and ``key``, replacing what was there."""
        call = self._routes.put(
            namespace, key, value, text=text, embedding=embedding, metadata=metadata, ttl_secs=ttl_secs
        )
        return await self._client._run(call)

    async def get(self, namespace: Namespace, key: str) -> Item:
        """One item; :class:`~sealroom.NotFound` if there is none."""
        return await self._client._run(self._routes.get(namespace, key))

    async def delete(self, namespace: Namespace, key: str) -> None:
        """Deletes one item; :class:`~sealroom.NotFound` if there is none."""
        await self._client._run(self._routes.delete(namespace, key))

    async def list(self, prefix: Namespace = (), *, limit: int | None = None, cursor: str | None = None) -> ItemPage:
        """One page of the items under a namespace prefix; pass ``next_cursor`` as ``cursor``."""
        return await self._client._run(self._routes.page(prefix, limit=limit, cursor=cursor))

    def iter(self, prefix: Namespace = (), *, limit: int | None = None) -> AsyncIterator[Item]:
        """Every item under a namespace prefix, fetching pages of ``limit`` as needed."""
        return self._client._iterate(_core.item_pages(self._routes, prefix, limit))

    async def batch(self, changes: Sequence[dict[str, Any]]) -> builtins.list[dict[str, Any]]:
        """Puts and deletes items in one commit, all or nothing (at most 100): each change is
        ``{"op": "put", "namespace", "key", "value", "text"?, "embedding"?, "metadata"?,
        "ttl_secs"?}`` or ``{"op": "delete", "namespace", "key"}``. Returns what each did, in
        order: ``{"op": "put", "item"}`` or ``{"op": "delete", ..., "existed"}``."""
        return await self._client._run(self._routes.batch(changes))

    async def namespaces(
        self,
        *,
        prefix: Namespace | None = None,
        suffix: Namespace | None = None,
        max_depth: int | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> builtins.list[builtins.list[str]]:
        """The namespaces holding items; see :meth:`sealroom.Items.namespaces`."""
        call = self._routes.namespaces(prefix=prefix, suffix=suffix, max_depth=max_depth, limit=limit, offset=offset)
        return await self._client._run(call)

    async def search(
        self,
        query: str | None = None,
        *,
        embedding: Sequence[float] | None = None,
        prefix: Namespace = (),
        filter: dict[str, Any] | None = None,
        limit: int | None = None,
        metric: str | None = None,
    ) -> builtins.list[SearchResult]:
        """Searches the room's items by text, by ``embedding``, or both."""
        call = self._routes.search(query, embedding=embedding, prefix=prefix, filter=filter, limit=limit, metric=metric)
        return await self._client._run(call)


class AsyncCheckpoints(_AsyncResource):
    """Checkpoints; see :class:`~sealroom.Checkpoints`. An agent framework's checkpoints (``/v1/checkpoints``; LangGraph's checkpointer model):
    addressed by thread id, namespace (``""`` is the root) and checkpoint id, inside the
    caller's room only. Blobs (:func:`sealroom._core.blob`) are stored as they come."""

    async def put(
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
        return await self._client._run(call)

    async def put_writes(
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
        await self._client._run(call)

    async def get(self, thread_id: str, checkpoint_ns: str = "", checkpoint_id: str | None = None) -> Checkpoint | None:
        """A checkpoint with its pending writes (the thread's latest without ``checkpoint_id``),
        or ``None``."""
        try:
            return await self._client._run(_core.get_checkpoint(thread_id, checkpoint_ns, checkpoint_id))
        except NotFound:
            return None

    async def list(
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
        return await self._client._run(call)

    def iter(
        self,
        *,
        thread_id: str | None = None,
        checkpoint_ns: str | None = None,
        checkpoint_id: str | None = None,
        before: str | None = None,
        filter: dict[str, Any] | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[Checkpoint]:
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

    async def delete_thread(self, thread_id: str) -> None:
        """Deletes a thread's checkpoints and writes in every namespace."""
        await self._client._run(_core.delete_checkpoint_thread(thread_id))

    async def delete_runs(self, run_ids: Sequence[str]) -> None:
        """Deletes the checkpoints whose metadata ``run_id`` is one of these."""
        await self._client._run(_core.delete_checkpoint_runs(run_ids))

    async def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copies a thread's checkpoints and writes to another thread id."""
        await self._client._run(_core.copy_checkpoint_thread(source_thread_id, target_thread_id))

    async def prune(self, thread_ids: Sequence[str], strategy: str = "keep_latest") -> None:
        """``keep_latest`` keeps each namespace's latest checkpoint; ``delete`` deletes."""
        await self._client._run(_core.prune_checkpoints(thread_ids, strategy))


class AsyncToolCache(_AsyncResource):
    """Cached tool results; see :class:`~sealroom.ToolCache`."""

    async def put(self, tool: str, args: Any, result: Any, *, ttl_secs: int) -> None:
        """Caches ``result`` for ``tool`` called with ``args``, for ``ttl_secs`` seconds."""
        await self._client._run(_core.put_tool_result(tool, args, result, ttl_secs))

    async def lookup(self, tool: str, args: Any) -> ToolLookup:
        """The cached result for these arguments: ``hit`` says whether there is one."""
        return await self._client._run(_core.lookup_tool_result(tool, args))

    async def delete(self, tool: str) -> None:
        """Deletes every cached result of ``tool``."""
        await self._client._run(_core.delete_tool_results(tool))


class AsyncSecrets(_AsyncResource):
    """Named secrets of the caller's room (``/v1/secrets``). Model-bound text carries
    ``{{secret:NAME}}`` instead of a value (the proxy replaces any stored value it finds); an
    application's tool runtime resolves a reference with a token carrying the resolve role.
    Values are never returned by any other read."""

    async def put(self, name: str, value: str) -> bool:
        """Stores or replaces ``name``; whether it is new."""
        return await self._client._run(_core.put_secret(name, value))

    async def list(self) -> builtins.list[SecretInfo]:
        """Names and dates of the room's secrets (never their values)."""
        return await self._client._run(_core.list_secrets())

    async def delete(self, name: str) -> None:
        """Deletes ``name`` (:class:`~sealroom.NotFound` if there is none)."""
        await self._client._run(_core.delete_secret(name))

    async def resolve(self, name: str) -> str:
        """The value of ``name``, for a tool runtime: the token needs the resolve role
        (``secrets-resolve`` by default), or this raises :class:`~sealroom.Forbidden`."""
        return await self._client._run(_core.resolve_secret(name))


class AsyncAudit(_AsyncResource):
    """The room's audit trail; see :class:`~sealroom.Audit`."""

    async def list(self, *, after: int | None = None, limit: int | None = None) -> AuditPage:
        """One page of entries after ``after``; pass ``next_after`` as ``after`` for the next."""
        return await self._client._run(_core.audit_page(after=after, limit=limit))

    def iter(self, *, after: int | None = None, limit: int | None = None) -> AsyncIterator[AuditEntry]:
        """Every entry after ``after``, fetching pages of ``limit`` as needed."""
        return self._client._iterate(_core.audit_pages(after, limit))
