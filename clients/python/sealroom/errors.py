"""The exceptions the client raises, and the mapping from an HTTP answer to one of them.

sealroom answers every failure with ``{"error": {"code": "...", "message": "..."}}``; the
client raises a :class:`SealroomError` subclass chosen by the status, carrying that code and
message. Exceptions never hold the request, its headers or the token: only the status, the
server's code and message, and the server's request id (for support requests).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

__all__ = [
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
]


class SealroomError(Exception):
    """Any failure of a sealroom call.

    Attributes:
        status: the HTTP status, or ``None`` when no answer arrived.
        code: the server's stable machine-readable code, such as ``"not_found"``.
        message: the server's human-readable explanation (never stored content).
        request_id: the server's ``x-request-id`` for this answer, when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "error",
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id

    def __str__(self) -> str:
        prefix = f"{self.status} " if self.status is not None else ""
        return f"{prefix}{self.code}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, "
            f"message={self.message!r}, request_id={self.request_id!r})"
        )


class InvalidRequest(SealroomError):
    """The server refused the request as malformed (400, 405, 413, 415 or 422)."""


class AuthError(SealroomError):
    """The token is missing, malformed, expired or not trusted (401)."""


class Forbidden(SealroomError):
    """The token is valid but may not do this: no tenant, a missing role, or a quota (403)."""


class NotFound(SealroomError):
    """No such resource (404). Also the answer for another user's resources: sealroom does
    not tell "does not exist" apart from "belongs to someone else"."""


class Conflict(SealroomError):
    """The request collided with another change (409): ``conflict`` (too many concurrent
    changes; send it again) or ``room_erased`` (the room was erased while it ran)."""


class RateLimited(SealroomError):
    """The caller sent more than their share (429) and the retries were used up.

    Attributes:
        retry_after: seconds the server asked to wait, when it said.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = 429,
        code: str = "rate_limited",
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code, request_id=request_id)
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", retry_after={self.retry_after!r})"


class ServerError(SealroomError):
    """The server failed (5xx): storage unavailable, overloaded, timed out, or a bug."""


class TransportError(SealroomError):
    """No answer arrived: the connection failed or timed out (``status`` is ``None``).

    The underlying ``httpx`` exception is chained as ``__cause__``.
    """


class ExportIncomplete(SealroomError):
    """An export stream stopped before its ``end`` record; export again."""


_BY_STATUS: dict[int, type[SealroomError]] = {
    400: InvalidRequest,
    401: AuthError,
    403: Forbidden,
    404: NotFound,
    405: InvalidRequest,
    409: Conflict,
    413: InvalidRequest,
    415: InvalidRequest,
    422: InvalidRequest,
    429: RateLimited,
}


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """The ``Retry-After`` header in seconds (delta-seconds or an HTTP date), if present."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def error_from_response(status: int, body: bytes, headers: Mapping[str, str]) -> SealroomError:
    """The exception for an error answer. Reads only the JSON error model from the body; a body
    in any other shape (say, from a proxy in between) is not quoted, only its status is named."""
    code = f"http_{status}"
    message = "the server answered with an error"
    try:
        detail = json.loads(body)["error"]
        if isinstance(detail.get("code"), str):
            code = detail["code"]
        if isinstance(detail.get("message"), str):
            message = detail["message"]
    except (ValueError, TypeError, KeyError, AttributeError):
        pass
    request_id = headers.get("x-request-id")
    if status == 429:
        return RateLimited(
            message, status=status, code=code, request_id=request_id, retry_after=parse_retry_after(headers)
        )
    kind = _BY_STATUS.get(status, ServerError if status >= 500 else SealroomError)
    return kind(message, status=status, code=code, request_id=request_id)
