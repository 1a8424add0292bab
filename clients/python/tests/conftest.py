"""Fixtures: a real sealroom server (the binary named by ``SEALROOM_BIN``) on a fresh data
directory, tokens minted by its development issuer, and clients for fresh users.

Without ``SEALROOM_BIN`` the tests that need the server fail, never skip.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from sealroom import AsyncSealroom, Sealroom

STARTUP_SECS_MAX = 30.0
LISTENING = re.compile(r"sealroom: listening on (http://\S+)")


def binary() -> str:
    path = os.environ.get("SEALROOM_BIN")
    if not path:
        pytest.fail("SEALROOM_BIN is not set: point it at a built sealroom binary (target/debug/sealroom)")
    if not os.access(path, os.X_OK):
        pytest.fail(f"SEALROOM_BIN={path} is not an executable file")
    return path


@dataclass
class Server:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log: Path

    def token(self, sub: str, *, tenant: str | None = None, roles: Sequence[str] = ()) -> str:
        """A development token for `sub`, minted with ``sealroom token``."""
        command = [binary(), "token", "--sub", sub, "--data-dir", str(self.data_dir)]
        if tenant is not None:
            command += ["--tenant", tenant]
        if roles:
            command += ["--roles", ",".join(roles)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            pytest.fail(f"sealroom token failed: {done.stderr}")
        return done.stdout.strip()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_server(directory: Path, config: str | None = None) -> Server:
    """Starts ``sealroom serve`` on port 0 and waits for the address it prints."""
    data_dir = directory / "data"
    log = directory / "server.log"
    command = [binary(), "serve", "--data-dir", str(data_dir), "--listen", "127.0.0.1:0"]
    if config is not None:
        config_file = directory / "sealroom.toml"
        config_file.write_text(config)
        command += ["--config", str(config_file)]
    with open(log, "wb") as output:  # a file, not a pipe: nobody drains a pipe during the tests
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + STARTUP_SECS_MAX
    while time.monotonic() < deadline:
        found = LISTENING.search(log.read_text(errors="replace"))
        if found:
            return Server(found.group(1), data_dir, process, log)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    process.wait()
    pytest.fail(f"sealroom did not start; its output:\n{log.read_text(errors='replace')[-4000:]}")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("sealroom"))
    yield running
    running.stop()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def unique(name: str) -> str:
    """A name no other test uses: every test gets rooms of its own."""
    return f"{name}-{uuid.uuid4().hex[:10]}"


class Recorder(httpx.BaseTransport):
    """A transport that keeps every response body a client received."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.received: list[bytes] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        body = response.read()
        self.received.append(body)
        return httpx.Response(response.status_code, headers=response.headers, content=body)

    def close(self) -> None:
        self.inner.close()


@dataclass
class User:
    sub: str
    token: str
    client: Sealroom
    recorder: Recorder


@pytest.fixture
def make_user(server: Server) -> Iterator[Callable[..., User]]:
    """Makes a client for a fresh user: ``make_user("alice", tenant=..., roles=...)``."""
    made: list[User] = []

    def make(name: str, *, tenant: str | None = None, roles: Sequence[str] = ()) -> User:
        sub = unique(name)
        token = server.token(sub, tenant=tenant, roles=roles)
        recorder = Recorder()
        user = User(sub, token, Sealroom(server.url, token, transport=recorder), recorder)
        made.append(user)
        return user

    yield make
    for user in made:
        user.client.close()


@pytest.fixture
def make_async_client(server: Server) -> Callable[..., AsyncSealroom]:
    def make(name: str, **token_options: object) -> AsyncSealroom:
        return AsyncSealroom(server.url, server.token(unique(name), **token_options))  # type: ignore[arg-type]

    return make
