"""Retry-After for real: a second server with a per-user limit of 2 requests at once and 2 per
second answers 429 with ``Retry-After: 1``; the client waits and gets through, or, with no
retries left, raises :class:`~sealroom.RateLimited`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealroom import RateLimited, Sealroom

from .conftest import Server, start_server, unique

LIMITS = """
[dev_issuer]
enabled = true

[limits]
principal_requests_per_sec = 2.0
principal_burst = 2.0
"""


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(Path(tmp_path_factory.mktemp("limited")), LIMITS)
    yield running
    running.stop()


def test_the_server_s_rate_limit_is_honoured(limited_server: Server) -> None:
    alice, bob = unique("alice"), unique("bob")
    with Sealroom(limited_server.url, limited_server.token(alice), max_retries=0) as impatient:
        impatient.me()
        impatient.me()
        with pytest.raises(RateLimited) as limited:
            impatient.me()
    assert limited.value.status == 429 and limited.value.code == "rate_limited"
    assert limited.value.retry_after == 1.0

    with Sealroom(limited_server.url, limited_server.token(bob)) as patient:
        started = time.monotonic()
        thread = patient.threads.create("created once")
        for _ in range(2):
            patient.messages.append(thread["id"], [{"role": "user", "content": "hi"}])
        assert time.monotonic() - started >= 0.9, "at least one Retry-After was waited for"
        assert patient.threads.get(thread["id"])["message_count"] == 2, "refused POSTs were not applied twice"
        assert len(patient.threads.list()["threads"]) == 1
