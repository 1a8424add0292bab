"""LangGraph adapters: a checkpointer and a long-term store kept in the end user's sealed room.

Build them per end user, from that user's token, and hand them to the compiled graph for the
request::

    saver = SealroomSaver("http://localhost:7878", user_token)
    store = SealroomStore("http://localhost:7878", user_token)
    result = graph.invoke(inputs, {"configurable": {"thread_id": "chat-1"}},
                          checkpointer=saver, store=store)   # or compile(checkpointer=..., store=...)

The token, not the graph code, decides whose state is read: two users of one graph with the
same ``thread_id`` and the same store namespaces never see each other's checkpoints or items.

:class:`SealroomSaver` stores each checkpoint whole (serialized by the saver's ``serde``, so
the server only ever holds opaque bytes) with its metadata as JSON the server can filter on.
:class:`SealroomStore` keeps items in the room's items: ``index`` fields become the item's
searchable text. Needs the ``langgraph`` extra (``pip install "sealroom[langgraph]"``).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    validate_op_namespace,
)
from langgraph.store.base.embed import get_text_at_path

from . import _core
from ._async import AsyncSealroom, AsyncToken
from ._sync import Sealroom, Token
from .errors import NotFound
from .types import Checkpoint as CheckpointRecord

__all__ = ["SealroomSaver", "SealroomStore"]

#: Checkpoints listed per request while iterating, ids sent per request, namespaces listed per
#: request: the server's largest page.
_LIST_PAGE = 200


def _chunks(values: Sequence[Any]) -> Iterator[list[str]]:
    """Ids as the server takes them: strings, at most a page per request."""
    texts = [str(value) for value in values]
    for start in range(0, len(texts), _LIST_PAGE):
        yield texts[start : start + _LIST_PAGE]


class _Clients:
    """A sync client, and an async one per event loop (an ``httpx.AsyncClient`` belongs to the
    loop it first ran in)."""

    def __init__(
        self, base_url: str, token: Token | AsyncToken, timeout: float, client: Sealroom | None
    ) -> None:
        self._base_url = base_url
        self._token = token
        self._timeout = timeout
        self._sync = client
        self._async: tuple[asyncio.AbstractEventLoop, AsyncSealroom] | None = None

    def sync(self) -> Sealroom:
        if self._sync is None:
            token = self._token
            if not isinstance(token, str) and asyncio.iscoroutinefunction(token):
                raise TypeError("an async token function works with the async methods only")
            self._sync = Sealroom(self._base_url, token, timeout=self._timeout)  # type: ignore[arg-type]
        return self._sync

    def async_(self) -> AsyncSealroom:
        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:
            self._async = (loop, AsyncSealroom(self._base_url, self._token, timeout=self._timeout))
        return self._async[1]

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()

    async def aclose(self) -> None:
        if self._async is not None:
            await self._async[1].aclose()
            self._async = None


def _json_safe(value: Any) -> Any:
    """`value` as plain JSON: tuples as lists, non-finite floats and other types as strings."""
    if isinstance(value, dict):
        return {str(key): _json_safe(inner) for key, inner in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(inner) for inner in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _json_metadata(metadata: CheckpointMetadata) -> dict[str, Any]:
    """Metadata as JSON (the server filters on it); values JSON cannot hold become strings."""
    value = _json_safe(metadata)
    return value if isinstance(value, dict) else {}


class SealroomSaver(BaseCheckpointSaver[str]):
    """A LangGraph checkpointer whose checkpoints live in the end user's sealroom room.

    Args:
        base_url: the sealroom server.
        token: the end user's token, or a function returning a fresh one (the async methods
            also accept an async function).
        serde: the serializer for checkpoints and writes (LangGraph's default otherwise).
        timeout: seconds per request.
        client: an existing :class:`~sealroom.Sealroom` to use for the sync methods.

    Every capability of LangGraph's checkpointer conformance suite is implemented: put, writes,
    get, list (filters on top-level metadata keys, numbers compared by value), delete_thread,
    delete_for_runs, copy_thread and prune.
    """

    def __init__(
        self,
        base_url: str,
        token: Token | AsyncToken,
        *,
        serde: SerializerProtocol | None = None,
        timeout: float = 30.0,
        client: Sealroom | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self._clients = _Clients(base_url, token, timeout, client)

    def close(self) -> None:
        """Closes the sync client's connections."""
        self._clients.close()

    async def aclose(self) -> None:
        """Closes the async client's connections (of the running event loop)."""
        await self._clients.aclose()

    # -- conversions --------------------------------------------------------------------------

    def _dumps(self, value: Any) -> _core.Blob:
        type_tag, data = self.serde.dumps_typed(value)
        return _core.blob(type_tag, data)

    def _loads(self, value: _core.Blob) -> Any:
        return self.serde.loads_typed(_core.blob_bytes(value))

    def _tuple(self, record: CheckpointRecord, config: RunnableConfig | None = None) -> CheckpointTuple:
        address = {
            "thread_id": record["thread_id"],
            "checkpoint_ns": record["checkpoint_ns"],
            "checkpoint_id": record["checkpoint_id"],
        }
        parent = record["parent_checkpoint_id"]
        return CheckpointTuple(
            config=config if config is not None else {"configurable": address},
            checkpoint=self._loads(record["checkpoint"]),
            metadata=record["metadata"],  # type: ignore[arg-type]
            parent_config=(
                {"configurable": {**address, "checkpoint_id": parent}} if parent is not None else None
            ),
            pending_writes=[
                (write["task_id"], write["channel"], self._loads(write["value"])) for write in record["pending_writes"]
            ],
        )

    @staticmethod
    def _thread(config: RunnableConfig) -> tuple[str, str]:
        configurable = config["configurable"]
        return str(configurable["thread_id"]), str(configurable.get("checkpoint_ns", ""))

    def _put_args(
        self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata
    ) -> tuple[tuple[Any, ...], RunnableConfig]:
        thread_id, namespace = self._thread(config)
        parent = config["configurable"].get("checkpoint_id")
        metadata_json = _json_metadata(get_serializable_checkpoint_metadata(config, metadata))
        arguments = (thread_id, namespace, checkpoint["id"], self._dumps(checkpoint))
        keywords = {"parent_checkpoint_id": parent, "metadata": metadata_json}
        saved: RunnableConfig = {
            "configurable": {"thread_id": thread_id, "checkpoint_ns": namespace, "checkpoint_id": checkpoint["id"]}
        }
        return (arguments, keywords), saved

    def _writes_args(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        thread_id, namespace = self._thread(config)
        checkpoint_id = str(config["configurable"]["checkpoint_id"])
        encoded = [
            {"channel": channel, "index": WRITES_IDX_MAP.get(channel, index), "value": self._dumps(value)}
            for index, (channel, value) in enumerate(writes)
        ]
        return (thread_id, namespace, checkpoint_id, task_id, encoded), {"task_path": task_path}

    @staticmethod
    def _list_args(
        config: RunnableConfig | None, filter: dict[str, Any] | None, before: RunnableConfig | None
    ) -> dict[str, Any]:
        configurable = (config or {}).get("configurable", {})
        thread_id = configurable.get("thread_id")
        namespace = configurable.get("checkpoint_ns")
        return {
            "thread_id": None if thread_id is None else str(thread_id),
            "checkpoint_ns": None if namespace is None else str(namespace),
            "checkpoint_id": configurable.get("checkpoint_id"),
            "before": get_checkpoint_id(before) if before else None,
            "filter": filter or None,
        }

    # -- sync ---------------------------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        thread_id, namespace = self._thread(config)
        checkpoint_id = get_checkpoint_id(config)
        record = self._clients.sync().checkpoints.get(thread_id, namespace, checkpoint_id)
        if record is None:
            return None
        return self._tuple(record, config if checkpoint_id else None)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        if limit is not None and limit <= 0:
            return
        page_size = min(limit or _LIST_PAGE, _LIST_PAGE)
        records = self._clients.sync().checkpoints.iter(**self._list_args(config, filter, before), limit=page_size)
        for count, record in enumerate(records, start=1):
            yield self._tuple(record)
            if limit is not None and count >= limit:
                return

    def put(
        self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata, new_versions: ChannelVersions
    ) -> RunnableConfig:
        (arguments, keywords), saved = self._put_args(config, checkpoint, metadata)
        self._clients.sync().checkpoints.put(*arguments, **keywords)
        return saved

    def put_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        arguments, keywords = self._writes_args(config, writes, task_id, task_path)
        self._clients.sync().checkpoints.put_writes(*arguments, **keywords)

    def delete_thread(self, thread_id: str) -> None:
        self._clients.sync().checkpoints.delete_thread(str(thread_id))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        for chunk in _chunks(run_ids):
            self._clients.sync().checkpoints.delete_runs(chunk)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        self._clients.sync().checkpoints.copy_thread(str(source_thread_id), str(target_thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        for chunk in _chunks(thread_ids):
            self._clients.sync().checkpoints.prune(chunk, strategy)

    # -- async --------------------------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        thread_id, namespace = self._thread(config)
        checkpoint_id = get_checkpoint_id(config)
        record = await self._clients.async_().checkpoints.get(thread_id, namespace, checkpoint_id)
        if record is None:
            return None
        return self._tuple(record, config if checkpoint_id else None)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        if limit is not None and limit <= 0:
            return
        page_size = min(limit or _LIST_PAGE, _LIST_PAGE)
        records = self._clients.async_().checkpoints.iter(**self._list_args(config, filter, before), limit=page_size)
        count = 0
        async for record in records:
            yield self._tuple(record)
            count += 1
            if limit is not None and count >= limit:
                return

    async def aput(
        self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata, new_versions: ChannelVersions
    ) -> RunnableConfig:
        (arguments, keywords), saved = self._put_args(config, checkpoint, metadata)
        await self._clients.async_().checkpoints.put(*arguments, **keywords)
        return saved

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        arguments, keywords = self._writes_args(config, writes, task_id, task_path)
        await self._clients.async_().checkpoints.put_writes(*arguments, **keywords)

    async def adelete_thread(self, thread_id: str) -> None:
        await self._clients.async_().checkpoints.delete_thread(str(thread_id))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        for chunk in _chunks(run_ids):
            await self._clients.async_().checkpoints.delete_runs(chunk)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await self._clients.async_().checkpoints.copy_thread(str(source_thread_id), str(target_thread_id))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        for chunk in _chunks(thread_ids):
            await self._clients.async_().checkpoints.prune(chunk, strategy)

    def get_next_version(self, current: str | None, channel: None) -> str:
        """Versions as LangGraph's own savers make them: a counter, then a random suffix (two
        forks of one checkpoint never share a version)."""
        if current is None:
            number = 0
        elif isinstance(current, int):
            number = current
        else:
            number = int(str(current).split(".")[0])
        return f"{number + 1:032}.{random.random():016}"


# ---------------------------------------------------------------------------------------------
# The store


def _matches(value: Any, wanted: Any) -> bool:
    """LangGraph's filter semantics: a dict of operators (``$eq``, ``$ne``, ``$gt``, ``$gte``,
    ``$lt``, ``$lte``) applies them; another dict matches nested keys partially; a list matches
    element by element; anything else by equality."""
    if isinstance(wanted, dict):
        if any(key.startswith("$") for key in wanted):
            return all(_operator(value, operator, operand) for operator, operand in wanted.items())
        return isinstance(value, dict) and all(_matches(value.get(key), inner) for key, inner in wanted.items())
    if isinstance(wanted, (list, tuple)):
        return (
            isinstance(value, (list, tuple))
            and len(value) == len(wanted)
            and all(_matches(inner, expected) for inner, expected in zip(value, wanted, strict=True))
        )
    return bool(value == wanted)


def _operator(value: Any, operator: str, operand: Any) -> bool:
    if operator == "$eq":
        return bool(value == operand)
    if operator == "$ne":
        return bool(value != operand)
    if operator in ("$gt", "$gte", "$lt", "$lte"):
        left, right = float(value), float(operand)
        return {"$gt": left > right, "$gte": left >= right, "$lt": left < right, "$lte": left <= right}[operator]
    raise ValueError(f"unsupported filter operator: {operator}")


def _time(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


class SealroomStore(BaseStore):
    """A LangGraph long-term store whose items live in the end user's sealroom room.

    Args:
        base_url: the sealroom server.
        token: the end user's token, or a function returning a fresh one.
        index: ``{"fields": ["$.text", ...]}``: the fields whose text is indexed for search
            (sealroom ranks by BM25, and by vectors when the server has an embeddings upstream);
            without it, a search's ``query`` is ignored and every item matching the prefix and
            filter is returned, as with LangGraph's own stores without an index.
        ttl: ``{"default_ttl": minutes}``. A read does not extend an item's time to live
            (``refresh_on_read`` is always false).
        timeout: seconds per request.

    Semantics follow LangGraph's ``InMemoryStore``: within one ``batch``, every read sees the
    state before the batch's writes, and of several puts to one key the last wins. Filters are
    evaluated by the adapter over the candidates the server returns. Namespaces hold 1 to 8
    labels of 1 to 64 bytes without ``/``; keys up to 256 bytes.
    """

    supports_ttl = True

    def __init__(
        self,
        base_url: str,
        token: Token | AsyncToken,
        *,
        index: IndexConfig | dict[str, Any] | None = None,
        ttl: TTLConfig | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._clients = _Clients(base_url, token, timeout, None)
        fields = (index or {}).get("fields") or (["$"] if index else None)
        self._index_fields: list[str] | None = list(fields) if fields else None
        self.ttl_config = {**(ttl or {}), "refresh_on_read": False}  # type: ignore[typeddict-item]

    def close(self) -> None:
        """Closes the sync client's connections."""
        self._clients.close()

    async def aclose(self) -> None:
        """Closes the async client's connections (of the running event loop)."""
        await self._clients.aclose()

    # -- op plans, shared by batch and abatch -------------------------------------------------

    def _text(self, op: PutOp) -> str | None:
        fields = self._index_fields if op.index is None else (None if op.index is False else list(op.index))
        if not fields or op.value is None:
            return None
        texts = [text for field in fields for text in get_text_at_path(op.value, field)]
        return "\n".join(texts) or None

    def _ttl_secs(self, op: PutOp) -> int | None:
        minutes = op.ttl if op.ttl is not None else self.ttl_config.get("default_ttl")
        return None if minutes is None else max(1, math.ceil(float(minutes) * 60))

    @staticmethod
    def _item(record: dict[str, Any]) -> Item:
        return Item(
            value=record["value"],
            key=record["key"],
            namespace=tuple(record["namespace"]),
            created_at=_time(record["created_at"]),
            updated_at=_time(record["updated_at"]),
        )

    def _search_results(self, op: SearchOp, records: Iterable[tuple[dict[str, Any], float | None]]) -> list[SearchItem]:
        kept = [
            (record, score)
            for record, score in records
            if isinstance(record["value"], dict)
            and all(_matches(record["value"].get(key), wanted) for key, wanted in (op.filter or {}).items())
        ]
        page = kept[op.offset : op.offset + op.limit]
        return [
            SearchItem(
                namespace=tuple(record["namespace"]),
                key=record["key"],
                value=record["value"],
                created_at=_time(record["created_at"]),
                updated_at=_time(record["updated_at"]),
                score=score,
            )
            for record, score in page
        ]

    def _uses_query(self, op: SearchOp) -> bool:
        return bool(op.query) and self._index_fields is not None

    @staticmethod
    def _last_puts(ops: Sequence[Op]) -> list[PutOp]:
        """The batch's puts, the last one per key, in order."""
        last: dict[tuple[tuple[str, ...], str], PutOp] = {}
        for op in ops:
            if isinstance(op, PutOp):
                last.pop((op.namespace, op.key), None)
                last[(op.namespace, op.key)] = op
        return list(last.values())

    # -- sync -----------------------------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        for op in ops:
            validate_op_namespace(op)
        client = self._clients.sync()
        results: list[Result] = []
        for op in ops:
            if isinstance(op, GetOp):
                try:
                    results.append(self._item(client.items.get(op.namespace, op.key)))  # type: ignore[arg-type]
                except NotFound:
                    results.append(None)
            elif isinstance(op, SearchOp):
                if self._uses_query(op):
                    hits = client.items.search(op.query, prefix=op.namespace_prefix, limit=100)
                    found = [(hit["item"], hit["score"]) for hit in hits]
                else:
                    found = [(item, None) for item in client.items.iter(op.namespace_prefix)]  # type: ignore[misc]
                results.append(self._search_results(op, found))  # type: ignore[arg-type]
            elif isinstance(op, ListNamespacesOp):
                found: list[list[str]] = []
                for arguments in self._namespace_pages(op):
                    page = client.items.namespaces(**arguments)
                    found.extend(page)
                    if len(page) < arguments["limit"]:
                        break
                results.append(self._namespaces(op, found))
            elif isinstance(op, PutOp):
                results.append(None)
            else:
                raise ValueError(f"unknown operation {type(op).__name__}")
        for op in self._last_puts(ops):
            if op.value is None:
                try:
                    client.items.delete(op.namespace, op.key)
                except NotFound:
                    pass
            else:
                client.items.put(op.namespace, op.key, dict(op.value), text=self._text(op), ttl_secs=self._ttl_secs(op))
        return results

    # -- async ----------------------------------------------------------------------------------

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        for op in ops:
            validate_op_namespace(op)
        client = self._clients.async_()
        results: list[Result] = []
        for op in ops:
            if isinstance(op, GetOp):
                try:
                    results.append(self._item(await client.items.get(op.namespace, op.key)))  # type: ignore[arg-type]
                except NotFound:
                    results.append(None)
            elif isinstance(op, SearchOp):
                if self._uses_query(op):
                    hits = await client.items.search(op.query, prefix=op.namespace_prefix, limit=100)
                    found = [(hit["item"], hit["score"]) for hit in hits]
                else:
                    found = [(item, None) async for item in client.items.iter(op.namespace_prefix)]
                results.append(self._search_results(op, found))  # type: ignore[arg-type]
            elif isinstance(op, ListNamespacesOp):
                found = []
                for arguments in self._namespace_pages(op):
                    page = await client.items.namespaces(**arguments)
                    found.extend(page)
                    if len(page) < arguments["limit"]:
                        break
                results.append(self._namespaces(op, found))
            elif isinstance(op, PutOp):
                results.append(None)
            else:
                raise ValueError(f"unknown operation {type(op).__name__}")
        for op in self._last_puts(ops):
            if op.value is None:
                try:
                    await client.items.delete(op.namespace, op.key)
                except NotFound:
                    pass
            else:
                await client.items.put(
                    op.namespace, op.key, dict(op.value), text=self._text(op), ttl_secs=self._ttl_secs(op)
                )
        return results

    @staticmethod
    def _namespace_pages(op: ListNamespacesOp) -> Iterator[dict[str, Any]]:
        """The server requests for a listing: its first prefix and suffix conditions go to the
        server (any further ones are applied here), in pages of the server's largest size. With
        further conditions the whole listing is fetched, then cut to the op's offset and limit."""
        prefixes = [c.path for c in op.match_conditions or () if c.match_type == "prefix"]
        suffixes = [c.path for c in op.match_conditions or () if c.match_type == "suffix"]
        for condition in op.match_conditions or ():
            if condition.match_type not in ("prefix", "suffix"):
                raise ValueError(f"unsupported match type: {condition.match_type}")
        local = len(prefixes) > 1 or len(suffixes) > 1
        offset = 0 if local else op.offset
        wanted = None if local else op.limit
        while wanted is None or wanted > 0:
            size = _LIST_PAGE if wanted is None else min(wanted, _LIST_PAGE)
            yield {
                "prefix": list(prefixes[0]) if prefixes else None,
                "suffix": list(suffixes[0]) if suffixes else None,
                "max_depth": None if local else op.max_depth,
                "limit": size,
                "offset": offset,
            }
            offset += size
            if wanted is not None:
                wanted -= size

    @staticmethod
    def _namespaces(op: ListNamespacesOp, found: list[list[str]]) -> list[tuple[str, ...]]:
        conditions = list(op.match_conditions or ())
        prefixes = [c for c in conditions if c.match_type == "prefix"]
        suffixes = [c for c in conditions if c.match_type == "suffix"]
        if len(prefixes) <= 1 and len(suffixes) <= 1:
            return [tuple(namespace) for namespace in found]

        def matches(namespace: tuple[str, ...], path: tuple[str, ...], at_end: bool) -> bool:
            if len(namespace) < len(path):
                return False
            part = namespace[len(namespace) - len(path) :] if at_end else namespace[: len(path)]
            return all(want in ("*", have) for want, have in zip(path, part, strict=True))

        kept = {
            tuple(namespace)[: op.max_depth] if op.max_depth is not None else tuple(namespace)
            for namespace in found
            if all(matches(tuple(namespace), c.path, c.match_type == "suffix") for c in conditions)
        }
        return sorted(kept)[op.offset : op.offset + op.limit]
