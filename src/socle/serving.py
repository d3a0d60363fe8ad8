"""`socle serve --workers N`: N uvicorn processes, each accepting on its own SO_REUSEPORT socket.

uvicorn's multi-worker mode shares one listening socket, and a worker's asyncio loop accepts every
connection pending when it wakes up. A client opening its keep-alive connections in a burst got
them all accepted by one worker while the others stayed idle: measured with `bench/search.py`
(8 connections, `--workers 2`), one worker at 100 % of a core, the other at 0 %. Here each worker
binds its own socket with SO_REUSEPORT and the kernel spreads the new connections over them.

The parent only supervises: it stops every worker on SIGINT/SIGTERM, and stops the others (with
an error) if one dies. The workers are spawned, not forked: no database connection or thread of
the parent crosses over.
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
import sys
import threading

__all__ = ["serve_workers"]

APP = "socle.app:create_app"


def serve_workers(host: str, port: int, workers: int) -> None:
    # The port is free, or raise at once, before any worker starts. Checked without SO_REUSEPORT:
    # with it, the bind would succeed beside another server's workers and ours would join its group.
    _bind(host, port, shared=False).close()
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_worker, args=(host, port), name=f"socle-worker-{n}") for n in range(workers)
    ]
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    for process in processes:
        process.start()
    failed = False
    while not stop.wait(0.5):
        if any(process.exitcode is not None for process in processes):
            failed = True
            break
    for process in processes:
        process.terminate()  # SIGTERM: uvicorn finishes the requests in flight, then exits
    for process in processes:
        process.join()
    if failed:
        sys.exit("a worker process stopped unexpectedly; the others were stopped")


def _bind(host: str, port: int, *, shared: bool = True) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _worker(host: str, port: int) -> None:
    import uvicorn

    config = uvicorn.Config(APP, factory=True, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[_bind(host, port)])
