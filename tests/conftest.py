"""Fixtures shared by the whole suite: a simulator on a free port, and a clock tests move."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pipeline.simulator import SimulatorConfig, SimulatorServer


class FakeClock:
    """A monotonic clock that moves only when a test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


StartSimulator = Callable[..., SimulatorServer]


def wait_for_stats(
    server: SimulatorServer,
    ready: Callable[[dict[str, Any]], bool],
    *,
    process: subprocess.Popen[str] | None = None,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """The simulator's stats once ``ready(stats)`` holds (or ``process`` has ended): how a
    test makes a signal or a kill land at a known point of a run, never after a guessed
    sleep. Fails the test if neither happens within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        stats = server.stats()
        if ready(stats) or (process is not None and process.poll() is not None):
            return stats
        assert time.monotonic() < deadline, f"the simulator never got there: {stats}"
        time.sleep(0.005)  # polling a condition, not waiting for it to come true by itself


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def start_simulator() -> Iterator[StartSimulator]:
    """Start simulators for a test; each is stopped when the test ends."""
    servers: list[SimulatorServer] = []

    def start(config: SimulatorConfig | None = None, **kwargs: object) -> SimulatorServer:
        server = SimulatorServer(config or SimulatorConfig(), **kwargs).start()  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def simulator() -> Iterator[SimulatorServer]:
    """One simulator for the session, default settings: no limits, faults or latency.

    Shared, so its stats mix many tests' traffic: a test that reads stats, or needs limits
    or faults, starts its own with ``start_simulator``.
    """
    with SimulatorServer(SimulatorConfig()) as server:
        yield server
