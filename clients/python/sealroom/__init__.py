"""A Python client for sealroom: each user's agent state in a sealed room of their own.

``Sealroom`` (sync) and ``AsyncSealroom`` (async) cover every ``/v1`` route except the
OpenAI-compatible chat proxy, for which the ``openai`` SDK is the client. The LangGraph
adapters live in ``sealroom.langgraph`` (install the ``langgraph`` extra); they are not
imported here, so this package needs nothing but ``httpx``.
"""

from ._async import (
    AsyncAudit,
    AsyncCheckpoints,
    AsyncItems,
    AsyncMessages,
    AsyncSealroom,
    AsyncSecrets,
    AsyncThreads,
    AsyncToolCache,
)
from ._core import UNSET
from ._sync import Audit, Checkpoints, Items, Messages, Sealroom, Secrets, Threads, ToolCache
from .errors import (
    AuthError,
    Conflict,
    ExportIncomplete,
    Forbidden,
    InvalidRequest,
    NotFound,
    RateLimited,
    SealroomError,
    ServerError,
    TransportError,
)

__version__ = "0.1.0"

__all__ = [
    "Sealroom",
    "AsyncSealroom",
    "Threads",
    "Messages",
    "Items",
    "ToolCache",
    "Secrets",
    "Audit",
    "Checkpoints",
    "AsyncThreads",
    "AsyncMessages",
    "AsyncItems",
    "AsyncToolCache",
    "AsyncSecrets",
    "AsyncAudit",
    "AsyncCheckpoints",
    "UNSET",
    "SealroomError",
    "InvalidRequest",
    "AuthError",
    "Forbidden",
    "NotFound",
    "Conflict",
    "RateLimited",
    "ServerError",
    "TransportError",
    "ExportIncomplete",
    "__version__",
]
