"""A job run as the command line and the Python API start it: ``run_job``.

It checks the inputs, opens the client and the job's state (its lock: waiting for another
run with ``--wait``), then runs the job (``pipeline.run.job``) under the run's controls:
signals, the deadline, the grace period, the progress display.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from pipeline.config.endpoint import Endpoint
from pipeline.config.spec import Job
from pipeline.core.defaults import CONCURRENCY
from pipeline.core.errors import RunBusy, first_pipeline_error
from pipeline.core.limits import Clock, Sleep
from pipeline.engine.base import Engine
from pipeline.engine.client import MessagesClient
from pipeline.engine.reading import ReadingFactory
from pipeline.output.progress import Display
from pipeline.output.report import Tally
from pipeline.readers.job import check_inputs
from pipeline.run.finish import RunOutcome
from pipeline.run.job import JobRun
from pipeline.shaping.repomap import map_for
from pipeline.shaping.tokens import estimate_text
from pipeline.state.store import ResultStore

__all__ = ["RunControl", "RunOutcome", "check_inputs", "run_job"]

log = logging.getLogger("pipeline.run")


@dataclass(frozen=True)
class RunControl:
    """How the command line runs a job, beyond the job itself.

    ``handle_signals``: SIGINT or SIGTERM stops taking work and lets the calls in flight
    finish for up to ``grace_s`` seconds; a second signal, or the end of the grace period,
    stops at once. ``max_duration_s``: the same graceful stop when the time is up (counted
    from the start, waiting for the lock included). ``wait``: wait for another run of the
    job to finish instead of exiting with ``RunBusy``. ``display`` shows progress. Either
    way what finished is written and kept, and the report says how the run ended.
    ``clock`` and ``sleep`` are the engine's: retry waits and pacing run on them (tests
    pass virtual time); by default, the real ones.
    """

    force: bool = False
    handle_signals: bool = False
    grace_s: float = 30.0
    max_duration_s: float | None = None
    wait: bool = False
    lock_poll_s: float = 1.0
    display: Display | None = None
    started: Callable[[], None] | None = None
    clock: Clock | None = None
    sleep: Sleep | None = None
    # Makes the run's engine in place of the job's own (the online pool or Message Batches):
    # ``--executor ray`` gives ``pipeline.engine.cluster.executor.cluster_engine``'s.
    engine: Callable[[Job, Endpoint], Engine] | None = None
    # Where the files are read in place of this process (``run.inputs.local_reading``):
    # ``--executor ray`` gives ``pipeline.engine.cluster.executor.cluster_reading``'s.
    reading: ReadingFactory | None = None


async def _open_store(job: Job, control: RunControl) -> ResultStore:
    """Take the job's lock, waiting for another run to end if asked to."""
    waiting = False
    while True:
        try:
            return ResultStore(job.state_path, output=job.output_url or job.output_path)
        except RunBusy as busy:
            if not control.wait:
                raise
            if not waiting:
                log.info("%s; waiting for it (--wait)", busy.message.split(";")[0])
                waiting = True
            await anyio.sleep(control.lock_poll_s)


async def run_job(
    job: Job,
    endpoint: Endpoint,
    control: RunControl | None = None,
    **client_options: Any,
) -> RunOutcome:
    """Run a job end to end against ``endpoint``; returns where the results are."""
    control = control or RunControl()
    kept_columns = check_inputs(job)
    chunk_tokens = job.chunk_budget(estimate_text)  # a ConfigError before anything is made
    # A review's repository map walks and parses the inputs: built here, in a worker thread,
    # once (``map_for`` keeps it), not by the first request on the event loop.
    await anyio.to_thread.run_sync(map_for, job)
    tally = Tally()
    concurrency = job.limits.max_concurrency or CONCURRENCY
    async with MessagesClient(endpoint, concurrency=concurrency, **client_options) as client:
        with anyio.fail_after(control.max_duration_s if control.wait else None):
            try:
                store = await _open_store(job, control)
            except TimeoutError:
                raise RunBusy(
                    "another run of this job was still active when --max-duration ran out"
                ) from None
        async with store:
            if control.force:
                store.forget_all()
            run = JobRun(
                job,
                client,
                store,
                tally,
                kept_columns=kept_columns,
                chunk_tokens=chunk_tokens,
                clock=control.clock,
                sleep=control.sleep,
                engine=control.engine(job, endpoint) if control.engine else None,
                reading=control.reading,
            )
            try:
                async with anyio.create_task_group() as group:
                    await _controls(group, run, control, tally)
                    await run.run()
                    group.cancel_scope.cancel()
            except BaseExceptionGroup as grouped:
                raise first_pipeline_error(grouped) or grouped from None  # as itself
    assert run.outcome is not None  # written in run()'s finally, stopped or not
    return run.outcome


async def _controls(group: TaskGroup, run: JobRun, control: RunControl, tally: Tally) -> None:
    """Start what watches the run: signals, the deadline, the display."""

    def stop(reason: str) -> None:
        run.stop(reason)
        waiting = (
            "batches already submitted finish on the server; the next run collects them"
            if run.job.batch
            else f"requests in flight may finish within {control.grace_s:.0f} s"
        )
        log.info(
            "stopping (%s): no new requests; %s",
            reason.replace("_", "-"),
            waiting,
            extra={"event": "stopping", "reason": reason},
        )
        group.start_soon(hard_stop_after_grace)

    async def hard_stop_after_grace() -> None:
        await anyio.sleep(control.grace_s)
        group.cancel_scope.cancel()

    async def watch_signals(*, task_status: TaskStatus[None]) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for _ in signals:
                if run.stopping:
                    group.cancel_scope.cancel()  # a second signal: now
                    return
                stop("interrupted")

    async def deadline(seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds - tally.elapsed()))
        if not run.stopping:
            stop("max_duration")

    if control.handle_signals:
        await group.start(watch_signals)
    if control.max_duration_s is not None:
        group.start_soon(deadline, control.max_duration_s)
    if control.display is not None:
        group.start_soon(control.display.run, tally)
    if control.started is not None:
        control.started()
