"""`socle serve --workers 2`: each worker listens on a socket of its own, and a burst of keep-alive
connections is spread over both.

With uvicorn's shared listening socket, the first worker to wake accepted every connection of a
burst and the other stayed idle (socle.serving). Each worker now listens on its own SO_REUSEPORT
socket, and the kernel spreads the connections.
"""

from __future__ import annotations

import os
import socket
import time

import psutil
import pytest

from socle.serving import serve_workers
from tests.server import LiveServer, free_port, running_server

CONNECTIONS = 16  # the kernel hashes each to a worker: all 16 on one has odds 2 / 65,536


def _workers(server: LiveServer) -> list[psutil.Process]:
    children = psutil.Process(server.process.pid).children(recursive=True)
    return [p for p in children if "resource_tracker" not in " ".join(p.cmdline())]


def _listening_sockets(server: LiveServer, port: int) -> list[str]:
    """The inode of each worker's listening socket, once every worker listens (start-up is staggered)."""
    deadline = time.monotonic() + 60
    while True:
        found = []
        for worker in _workers(server):
            for conn in worker.net_connections("tcp"):
                if conn.status == "LISTEN" and conn.laddr.port == port:
                    found.append(os.readlink(f"/proc/{worker.pid}/fd/{conn.fd}"))
        if len(found) == 2 or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_a_burst_of_connections_reaches_both_workers(database_url: str) -> None:
    with running_server(database_url, workers=2) as server:
        port = int(server.url.split(":")[2].split("/")[0])
        listening = _listening_sockets(server, port)
        assert len(listening) == 2 and listening[0] != listening[1], listening  # not one shared socket
        # Connected before any is served: the burst a pool of keep-alive connections opens.
        burst = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(CONNECTIONS)]
        try:
            for sock in burst:
                sock.sendall(b"GET /fhir/metadata HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            for sock in burst:
                assert sock.recv(64).startswith(b"HTTP/1.1 200")
            held = [
                sum(1 for c in w.net_connections("tcp") if c.status == "ESTABLISHED" and c.laddr.port == port)
                for w in _workers(server)
            ]
        finally:
            for sock in burst:
                sock.close()
        assert sum(held) == CONNECTIONS
        assert min(held) > 0, f"connections per worker: {held}"


def test_a_port_held_by_other_workers_is_refused_before_any_worker_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another `socle serve --workers N` listens with SO_REUSEPORT: a second one must not join its group."""

    def no_worker(method: str) -> None:
        raise AssertionError("a worker was about to start on a port another server holds")

    monkeypatch.setattr("socle.serving.multiprocessing.get_context", no_worker)
    port = free_port()
    other = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    other.bind(("127.0.0.1", port))
    other.listen()
    try:
        with pytest.raises(OSError, match="in use"):
            serve_workers("127.0.0.1", port, 2)
    finally:
        other.close()
