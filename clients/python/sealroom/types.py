"""The shapes of sealroom's answers and of the inputs that have structure.

Answers are plain ``dict``s parsed from JSON; these ``TypedDict``s describe them for type
checkers and editors (they mirror the server's ``http/dto.rs``). Times are unix seconds.
"""

from __future__ import annotations

from typing import Any, TypedDict

__all__ = [
    "Me",
    "Thread",
    "ThreadPage",
    "MessageInput",
    "Message",
    "MessagePage",
    "Context",
    "Item",
    "ItemPage",
    "SearchResult",
    "ToolLookup",
    "AuditEntry",
    "AuditPage",
    "ErasureReceipt",
    "Blob",
    "PendingWriteInput",
    "PendingWrite",
    "Checkpoint",
    "CheckpointAddress",
    "CheckpointPage",
]


class Me(TypedDict):
    """``GET /v1/me``: who the token says the caller is."""

    room_id: str
    issuer: str
    subject: str
    tenant: str | None
    tenant_room_id: str | None
    roles: list[str]
    tenant_writer: bool
    token_expires_at: int


class Thread(TypedDict):
    id: str
    title: str | None
    metadata: dict[str, Any]
    created_at: int
    updated_at: int
    message_count: int


class ThreadPage(TypedDict):
    threads: list[Thread]
    #: Pass as ``cursor`` for the next page; ``None`` on the last page.
    next_cursor: str | None


class _MessageInputRequired(TypedDict):
    role: str
    content: str


class MessageInput(_MessageInputRequired, total=False):
    """A message to append. ``role`` is ``system``, ``developer``, ``user``, ``assistant`` or
    ``tool``."""

    name: str | None
    metadata: dict[str, Any] | None


class Message(TypedDict):
    thread_id: str
    #: Position in the thread from 1.
    sequence: int
    role: str
    content: str
    name: str | None
    metadata: dict[str, Any]
    created_at: int
    #: Who wrote it, recorded by the server: ``user``, ``model``, ``tool``, ``tenant``, ``mcp``
    #: or ``unrecorded`` (stored before origins were recorded).
    origin: str


class MessagePage(TypedDict):
    messages: list[Message]
    #: Pass as ``after`` for the next page; ``None`` on the last page.
    next_after: int | None


class Context(TypedDict):
    """The latest messages of a thread that fit a token budget, oldest first."""

    messages: list[Message]
    tokens_estimated: int
    #: Whether older messages were left out to fit the budget.
    truncated: bool


class Item(TypedDict):
    namespace: list[str]
    key: str
    value: Any
    text: str | None
    #: Dimensions of the stored embedding, if any (the vector itself is only in exports).
    embedding_dimensions: int | None
    metadata: dict[str, Any]
    created_at: int
    updated_at: int
    expires_at: int | None
    #: Who wrote it, recorded by the server (as for messages).
    origin: str


class ItemPage(TypedDict):
    items: list[Item]
    #: Pass as ``cursor`` for the next page; ``None`` on the last page.
    next_cursor: str | None


class SearchResult(TypedDict):
    item: Item
    #: The fused score (reciprocal rank fusion when both rankings ran).
    score: float
    lexical_rank: int | None
    lexical_score: float | None
    vector_rank: int | None
    vector_score: float | None


class ToolLookup(TypedDict):
    hit: bool
    result: Any
    age_secs: int | None
    expires_at: int | None


class AuditEntry(TypedDict):
    sequence: int
    at: int
    actor_room_id: str
    token_id: str | None
    #: Method and route template, e.g. ``"PUT /v1/items/{*path}"``.
    operation: str
    #: The request path.
    target: str
    #: ``committed`` for a write (its entry is part of the write's own commit), otherwise the
    #: HTTP status as text (``"200"``, ``"404"``).
    outcome: str
    request_id: str | None
    #: The entry's chain hash (hex).
    hash: str


class AuditPage(TypedDict):
    entries: list[AuditEntry]
    #: Pass as ``after`` for the next page; ``None`` on the last page.
    next_after: int | None


class ErasureReceipt(TypedDict):
    room_id: str
    erased_at: int
    #: Whether the room had ever been written.
    existed: bool
    #: Records and bytes purged after the room's key was destroyed.
    records: int
    bytes: int


class Blob(TypedDict):
    """A serialized value: its serializer's type tag and the bytes, base64. The server stores
    and returns it as it came."""

    type: str
    data: str


class PendingWriteInput(TypedDict):
    channel: str
    #: The write's index in its task; negative for special channels (which replace).
    index: int
    value: Blob


class PendingWrite(PendingWriteInput):
    task_id: str
    task_path: str


class CheckpointAddress(TypedDict):
    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str


class Checkpoint(CheckpointAddress):
    parent_checkpoint_id: str | None
    checkpoint: Blob
    metadata: dict[str, Any]
    #: Sorted by task path, task id and index.
    pending_writes: list[PendingWrite]
    created_at: int


class CheckpointPage(TypedDict):
    #: Greatest checkpoint id first.
    checkpoints: list[Checkpoint]
    next_cursor: str | None


class SecretInfo(TypedDict):
    """A stored secret as any read shows it: its name and dates, never its value."""

    name: str
    created_at: int
    updated_at: int
