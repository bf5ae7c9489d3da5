"""Serve the simulator over real HTTP: in the foreground (``pipeline simulate``) or in a
background thread on a free port (tests, benchmarks, ``pipeline run --simulate``).

The background server binds and listens before its thread starts, so its URL takes
connections the moment ``start()`` returns: the kernel queues them until uvicorn accepts.
Stopped, it refuses connections; started again, it listens on the same port with the same
simulator (its stats, buckets and fault history): a server that went away and came back.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from pipeline.core.limits import Clock
from pipeline.simulator.app import create_app, quiet_intentional_drops
from pipeline.simulator.config import SimulatorConfig
from pipeline.simulator.service import Simulator


def _uvicorn_config(sim: Simulator, *, log_level: str) -> uvicorn.Config:
    quiet_intentional_drops()
    return uvicorn.Config(
        create_app(sim),
        log_level=log_level,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
        # Benchmarks open many connections at once; keep them alive between requests.
        backlog=4096,
        timeout_keep_alive=30,
    )


def serve(sim: Simulator, *, host: str, port: int, log_level: str = "info") -> None:
    """Run until interrupted (Ctrl-C), in the foreground."""
    config = _uvicorn_config(sim, log_level=log_level)
    config.host, config.port = host, port
    uvicorn.Server(config).run()


class SimulatorServer:
    """A simulator on ``127.0.0.1`` and a free port, served from a background thread.
    ``stop()`` then ``start()`` again brings it back on the same port and state.

    >>> with SimulatorServer(SimulatorConfig()) as server:
    ...     server.url  # doctest: +SKIP
    'http://127.0.0.1:50123'
    """

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        clock: Clock | None = None,
        wall: Clock | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
    ) -> None:
        extra = {"clock": clock} if clock is not None else {}
        if wall is not None:
            extra["wall"] = wall
        self.simulator = Simulator(config, **extra)
        self._host, self._port = host, port
        self._log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def url(self) -> str:
        if self._socket is None:
            raise RuntimeError("the simulator is not started")
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}"

    @property
    def api_key(self) -> str:
        """A key the simulator accepts."""
        return sorted(self.simulator.config.api_keys)[0]

    def start(self) -> SimulatorServer:
        # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY only on sockets that say
        # so, and without it every reply waits ~40 ms on a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        sock.listen(4096)
        self._socket = sock
        self._port = sock.getsockname()[1]  # a restart comes back on the same port
        self._server = uvicorn.Server(_uvicorn_config(self.simulator, log_level=self._log_level))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="simulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None and self._server is not None:
            self._server.should_exit = True
            self._thread.join()
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def stats(self) -> dict[str, Any]:
        """The simulator's stats, fetched over HTTP like any client would."""
        # Plain HTTP on loopback: no certificate store to load (httpx loads one for each
        # call that does not say so, ~50-100 ms of CPU, paid on every poll of a test waiting).
        url = f"{self.url}/_simulator/stats"
        data: dict[str, Any] = httpx.get(url, timeout=10, verify=False).json()
        return data

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
