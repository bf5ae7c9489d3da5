"""Fixtures shared by the whole suite: a simulator on a free port, a clock tests move, a clock
that skips the engine's sleeps, and
tests of permission errors that run as root too (without root's permission capabilities)."""

from __future__ import annotations

import ctypes
import subprocess
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio.lowlevel
import pytest

from pipeline.simulator import SimulatorConfig, SimulatorServer
from pipeline.simulator.config import ModelSet


class FakeClock:
    """A monotonic clock that moves only when a test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class SkipClock:
    """Monotonic time that jumps ahead by whatever the engine sleeps: retry waits, the
    pause after a 429 and pacing cost no real time, while the retry budget still counts
    them. ``on_sleep`` runs after each jump (a test's way to act at a virtual moment)."""

    def __init__(self, on_sleep: Callable[[float], Awaitable[None]] | None = None) -> None:
        self.skipped = 0.0
        self.waits: list[float] = []
        self._on_sleep = on_sleep

    def __call__(self) -> float:
        return time.monotonic() + self.skipped

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.skipped += max(0.0, seconds)
        if self._on_sleep is not None:
            await self._on_sleep(self.skipped)
        await anyio.lowlevel.checkpoint()


StartSimulator = Callable[..., SimulatorServer]
# The shared simulators serve every model the project knows: Anthropic's ids (which most
# tests use) and the gateway's (which the shipped jobs use). A simulator as shipped serves
# the gateway's alone; tests of that start one with SimulatorConfig().
TEST_MODELS: ModelSet = "both"


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


class Stopping:
    """Simulators stopping on threads of their own: uvicorn takes ~0.15 s to wind down (its
    0.1 s tick, then a 0.1 s pause for the connections), which the next test need not wait
    for. ``join`` waits for every one asked so far and raises what a stop raised."""

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []
        self._failures: list[BaseException] = []

    def stop(self, server: SimulatorServer) -> None:
        def run() -> None:
            try:
                server.stop()
            except BaseException as exc:  # raised by the next join, in the main thread
                self._failures.append(exc)

        thread = threading.Thread(target=run, name="simulator-stop", daemon=True)
        thread.start()
        self._threads.append(thread)

    def join(self) -> None:
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        if self._failures:
            raise self._failures.pop()


@pytest.fixture(scope="session")
def stopping_simulators() -> Iterator[Stopping]:
    """The simulators the tests' ``start_simulator`` started, all stopped by the session's end."""
    stopping = Stopping()
    yield stopping
    stopping.join()


@pytest.fixture
def start_simulator(stopping_simulators: Stopping) -> Iterator[StartSimulator]:
    """Start simulators for a test; each is told to stop when the test ends, and has stopped
    by the end of the next test that starts one (or of the session)."""
    servers: list[SimulatorServer] = []

    def start(config: SimulatorConfig | None = None, **kwargs: object) -> SimulatorServer:
        config = config or SimulatorConfig(models=TEST_MODELS)
        server = SimulatorServer(config, **kwargs).start()  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield start
    stopping_simulators.join()  # the earlier tests' simulators: stopped long ago
    for server in servers:
        stopping_simulators.stop(server)


@pytest.fixture(scope="session")
def simulator() -> Iterator[SimulatorServer]:
    """One simulator for the session, default settings but every model: no limits, faults
    or latency.

    Shared, so its stats mix many tests' traffic: a test that reads stats, or needs limits
    or faults, starts its own with ``start_simulator``.
    """
    with SimulatorServer(SimulatorConfig(models=TEST_MODELS)) as server:
        yield server


# ---- tests of permission errors, as root too ------------------------------------------------

# What lets root ignore file modes: CAP_DAC_OVERRIDE (read, write, list anything) and
# CAP_DAC_READ_SEARCH (read and list anything). Capabilities belong to a thread on Linux.
_DAC = (1 << 1) | (1 << 2)
_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def permissions_bypassed() -> bool:
    """Does this thread read a file whatever its mode (root with CAP_DAC_OVERRIDE)?"""
    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder) / "probe"
        probe.write_bytes(b"x")
        probe.chmod(0)
        try:
            probe.read_bytes()
        except PermissionError:
            return False
        return True


def _drop_dac_capabilities() -> None:
    """Take CAP_DAC_* from the calling thread for good (capset(2), as setpriv does)."""
    libc = ctypes.CDLL(None, use_errno=True)
    header, data = _CapHeader(_CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget failed")
    for name in ("effective", "permitted", "inheritable"):
        setattr(data[0], name, getattr(data[0], name) & ~_DAC)
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


def _run_without_dac(item: pytest.Function) -> None:
    """Run the test in a thread of its own that gave up CAP_DAC_* (the others keep them)."""
    failures: list[BaseException] = []
    skipped: list[str] = []

    def run() -> None:
        try:
            _drop_dac_capabilities()
        except (AttributeError, OSError) as exc:  # no capget (not Linux), or refused
            skipped.append(f"runs as root and cannot drop CAP_DAC_OVERRIDE here ({exc})")
            return
        if permissions_bypassed():
            skipped.append("runs as root and still reads any file without CAP_DAC_*")
            return
        arguments = {name: item.funcargs[name] for name in item._fixtureinfo.argnames}
        try:
            item.obj(**arguments)
        except BaseException as exc:  # handed to the main thread, raised there
            failures.append(exc)

    thread = threading.Thread(target=run, name=f"without-dac {item.name}")
    thread.start()
    thread.join()
    if skipped:
        pytest.skip(skipped[0])
    if failures:
        raise failures[0]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "unprivileged: tests permission errors; as root it runs in a thread that gave up "
        "CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, or skips saying why it cannot",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if pyfuncitem.get_closest_marker("unprivileged") is None or not permissions_bypassed():
        return None  # file modes bind this process: the test runs as usual
    _run_without_dac(pyfuncitem)
    return True
