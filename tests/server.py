"""A real `socle serve` process for the tests that need one: concurrency, crashes, real clients, fuzzing.

The in-process ASGI transport cannot show what these tests look for: two HTTP requests racing in
separate threads of a real server, a process killed by the kernel in the middle of a transaction,
or the bytes a third-party client really puts on the wire. So the server is started exactly as an
operator starts it, on a free port, and always stopped at the end, even when the test fails.

The FHIR API needs a bearer token (`Settings.auth_required`), so once the server answers, a token is
obtained the way an operator does: `socle clients add socle-tests --scope system/*.cruds` then
`socle token --client-id socle-tests --scope system/*.cruds` against the server's database. Its
principal is the platform itself (`kind: system`), as every request was before protection. The
commands run in-process through Typer's runner: the same code as the console script, without a
second interpreter start-up. `LiveServer.headers` carries the token. The master key of the signing
keys is one per test session.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
from cryptography.fernet import Fernet
from typer.testing import CliRunner

STARTUP_TIMEOUT = 90.0  # generous: the machine running the suite is often shared and loaded
STOP_TIMEOUT = 10.0
TEST_CLIENT = "socle-tests"
SYSTEM_SCOPE = "system/*.cruds"
# One master key (encrypting the signing keys at rest) for every server of this test session, so
# that a server restarted on the same database can still sign; never the operator's var/ key file.
MASTER_KEY = os.environ.get("SOCLE_AUTH_MASTER_KEY") or Fernet.generate_key().decode()
# Operator tokens for tests outlive the longest test (the default lifetime is 10 minutes).
TOKEN_TTL = "86400"


def socle_command() -> list[str]:
    """The `socle` console script of the interpreter running the tests (the project's virtualenv)."""
    script = Path(sys.executable).parent / "socle"
    if script.exists():
        return [str(script)]
    found = shutil.which("socle")
    if found is None:
        raise RuntimeError("the `socle` command is not installed in this environment")
    return [found]


def free_port() -> int:
    # The port can be taken between close() and the server's bind(): `start` retries on that.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    """A running server: `url` is the FHIR base (`http://127.0.0.1:P/fhir`), `process` the Popen."""

    url: str
    database_url: str
    process: subprocess.Popen[bytes]
    _stderr: IO[bytes]
    token: str = ""

    @property
    def origin(self) -> str:
        """`http://127.0.0.1:P`: the issuer of the tokens (the FHIR base is `{origin}/fhir`)."""
        return self.url.removesuffix("/fhir")

    @property
    def headers(self) -> dict[str, str]:
        """`Authorization: Bearer …` with the operator's system token."""
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def pid(self) -> int:
        return self.process.pid

    def stderr_text(self, since: int = 0) -> str:
        """What the server wrote to stdout/stderr, from byte offset `since` (see `stderr_size`)."""
        self._stderr.flush()
        self._stderr.seek(since)
        return self._stderr.read().decode("utf-8", errors="replace")

    def stderr_size(self) -> int:
        return os.fstat(self._stderr.fileno()).st_size

    def kill(self) -> None:
        """SIGKILL: no shutdown handler, no rollback, no flush; what a power cut does to the process."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=STOP_TIMEOUT)

    def stop(self) -> None:
        """SIGTERM (uvicorn's graceful shutdown), then SIGKILL if it lingers; closes the stderr file."""
        try:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=STOP_TIMEOUT)
        finally:
            self._stderr.close()


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a test server and of the operator commands run against its database."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", "SOCLE_AUTH_MASTER_KEY": MASTER_KEY, **(extra or {})}


def operator_token(database_url: str, issuer: str, scope: str = SYSTEM_SCOPE) -> str:
    """`socle clients add socle-tests` (once per database), then `socle token`: the token."""
    from socle.cli import app
    from socle.config import get_settings

    env = {
        "SOCLE_AUTH_MASTER_KEY": MASTER_KEY,
        "SOCLE_ACCESS_TOKEN_TTL": TOKEN_TTL,
        # The client's secret is never used: hash it at the lowest cost.
        "SOCLE_ARGON2_TIME_COST": "1",
        "SOCLE_ARGON2_MEMORY_KIB": "1024",
    }
    runner = CliRunner()
    get_settings.cache_clear()  # the commands read their settings from `env`
    try:
        added = runner.invoke(
            app, ["clients", "add", TEST_CLIENT, "--scope", scope, "--database", database_url], env=env
        )
        assert added.exit_code == 0 or "already exists" in added.output, added.output  # a restart
        minted = runner.invoke(
            app,
            [
                "token",
                "--client-id",
                TEST_CLIENT,
                "--scope",
                scope,
                "--issuer",
                issuer,
                "--database",
                database_url,
            ],
            env=env,
        )
        assert minted.exit_code == 0, minted.output
    finally:
        get_settings.cache_clear()
    return minted.output.strip().splitlines()[-1]


def start_server(
    database_url: str,
    *,
    timeout: float = STARTUP_TIMEOUT,
    attempts: int = 3,
    env: dict[str, str] | None = None,
    workers: int = 1,
) -> LiveServer:
    """Start `socle serve` on a free port; return once `GET /fhir/metadata` answers 200, with a token."""
    last_error = ""
    for _ in range(attempts):
        port = free_port()
        stderr = tempfile.TemporaryFile()
        process = subprocess.Popen(
            [
                *socle_command(),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--database",
                database_url,
                "--workers",
                str(workers),
            ],
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            env=server_env(env),
        )
        server = LiveServer(f"http://127.0.0.1:{port}/fhir", database_url, process, stderr)
        try:
            _wait_ready(server, timeout)
            server.token = operator_token(database_url, server.origin)
            return server
        except _PortTaken:
            last_error = server.stderr_text()
            server.stop()
            continue
        except BaseException:
            server.stop()
            raise
    raise RuntimeError(f"socle serve could not bind a free port after {attempts} attempts:\n{last_error}")


class _PortTaken(Exception):
    pass


def _wait_ready(server: LiveServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while True:
            code = server.process.poll()
            if code is not None:
                output = server.stderr_text()
                if "address already in use" in output.lower():
                    raise _PortTaken(output)
                raise RuntimeError(f"socle serve exited with code {code} before answering:\n{output}")
            try:
                status = client.get(f"{server.url}/metadata").status_code
            except httpx.TransportError:
                status = None
            if status == 200:
                return
            if status is not None and status >= 500:  # a bug, not a slow start: say so at once
                raise RuntimeError(f"GET /fhir/metadata answered {status}:\n{server.stderr_text()}")
            if time.monotonic() > deadline:
                message = f"socle serve did not answer GET /fhir/metadata within {timeout:.0f} s"
                raise RuntimeError(f"{message}:\n{server.stderr_text()}")
            time.sleep(0.1)


@contextmanager
def running_server(
    database_url: str,
    *,
    timeout: float = STARTUP_TIMEOUT,
    env: dict[str, str] | None = None,
    workers: int = 1,
) -> Iterator[LiveServer]:
    """A server for the duration of the block, stopped (or reaped, if a test killed it) on exit."""
    server = start_server(database_url, timeout=timeout, env=env, workers=workers)
    try:
        yield server
    finally:
        server.stop()
