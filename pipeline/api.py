"""The Python API: what ``pipeline run`` does, for a scheduler (Airflow, Dagster, cron in
Python) or a notebook. The names here are re-exported by ``pipeline`` itself; everything else
in the package is internal.

    import pipeline

    job = pipeline.load_job("jobs/summarize.toml", overrides={"model.name": "claude-sonnet-4"})
    outcome = pipeline.run_job(job, on_progress=lambda p: print(p.done, p.total))
    print(outcome.output, outcome.by_status, outcome.ended)

A run here behaves as on the command line: the same spec checks (``ConfigError`` names the
field), the same state database (a re-run pays only for what never finished), the same files
and report. What the command line turns into an exit status is the outcome's ``ended`` and
``by_status``; what it prints as an error is a ``PipelineError`` raised here.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio

if TYPE_CHECKING:
    from pipeline.config.endpoint import Endpoint
    from pipeline.config.spec import Job
    from pipeline.core.defaults import ModelSet
    from pipeline.engine.cluster.executor import EngineFactory
    from pipeline.engine.reading import ReadingFactory
    from pipeline.output.report import Tally
    from pipeline.run.runner import RunControl, RunOutcome

log = logging.getLogger("pipeline.run")

# Where a run's calls are made: this process (the online pool or Message Batches), or the
# nodes of a Ray cluster (pipeline.engine.cluster).
Executor = Literal["local", "ray"]


@dataclass(frozen=True)
class Progress:
    """A run's progress, as the command line's progress line shows it."""

    done: int  # documents finished (reused from earlier runs included)
    total: int | None  # documents found; None while inputs are still being listed
    errors: int
    docs_per_s: float
    eta_s: int | None
    input_tokens: int
    output_tokens: int
    retries: int
    rate_limited_429: int
    elapsed_s: int


ProgressCallback = Callable[[Progress], None]


def load_job(
    path: str | Path,
    *,
    overrides: Mapping[str, Any] | Iterable[str] = (),
    inputs: Iterable[str] = (),
    output: str | None = None,
    base_url: str | None = None,
) -> Job:
    """Read and check a job spec, as ``pipeline run`` does. ``overrides``: fields to change,
    as ``{"model.name": "claude-sonnet-4"}`` or as ``--set`` takes them
    (``["model.name=claude-sonnet-4"]``); ``inputs`` and ``output``: as ``--input`` and
    ``--output``. Raises ``ConfigError`` naming the field and the fix."""
    from pipeline.config.load import load_job as load

    settings = (
        [f"{name}={_toml(value)}" for name, value in overrides.items()]
        if isinstance(overrides, Mapping)
        else list(overrides)
    )
    return load(
        Path(path),
        overrides=settings,
        inputs=list(inputs) or None,
        output=output,
        base_url=base_url,
    )


def _toml(value: Any) -> str:
    """A Python value as a TOML value (strings, numbers, booleans and lists of them are
    written the same in JSON)."""
    return json.dumps(value, ensure_ascii=False)


def endpoint_for(job: Job) -> Endpoint:
    """Where ``job`` sends its requests, with which key: the job's key variable, else
    ``$MEGALLM_API_KEY``, else ``$ANTHROPIC_API_KEY`` (``ConfigError`` if none is set)."""
    from pipeline.config.endpoint import resolve_endpoint

    spec = job.spec.endpoint
    return resolve_endpoint(
        base_url=spec.base_url,
        key_variable=spec.api_key_env,
        allow_insecure=spec.allow_insecure_http,
    )


async def run_job_async(
    job: Job,
    *,
    simulate: bool = False,
    on_progress: ProgressCallback | None = None,
    progress_every_s: float = 5.0,
    force: bool = False,
    max_duration_s: float | None = None,
    wait: bool = False,
    executor: Executor = "local",
    address: str | None = None,
) -> RunOutcome:
    """Run ``job`` to the end (or to ``max_duration_s``: it then stops as
    ``--max-duration`` does, and a later run continues). ``simulate``: against a local
    simulator with the job's limits, as ``--simulate`` (no key, no cost). ``on_progress`` is
    called every ``progress_every_s`` seconds and once at the end. ``force``: answer every
    document again, ignoring the finished ones. ``wait``: wait for another run of the same
    job to finish instead of raising ``RunBusy``. ``executor="ray"``: the calls are made from
    the nodes of the Ray cluster at ``address`` (none: Ray started on this machine) under one
    limiter for the cluster, as ``--executor ray``."""
    from pipeline.run.runner import RunControl

    display = _Callback(on_progress, progress_every_s) if on_progress else None
    control = RunControl(
        force=force,
        max_duration_s=max_duration_s,
        wait=wait,
        display=display,
        engine=executor_engine(executor, address, simulated=simulate),
        reading=executor_reading(executor, address),
    )
    outcome = await execute(job, control, simulate="gateway" if simulate else None)
    if display is not None:
        display.last()
    return outcome


def executor_engine(
    executor: Executor, address: str | None, *, simulated: bool
) -> EngineFactory | None:
    """What makes the run's engine: None for the job's own (``local``), or the Ray cluster's
    (``ray``, at ``address``). ``ConfigError`` for an executor there is not, or no Ray."""
    from pipeline.core.errors import ConfigError

    if executor == "local":
        if address is not None:
            raise ConfigError("--address is the Ray cluster's: give it with --executor ray")
        return None
    if executor != "ray":
        raise ConfigError(f"executor: local or ray, not {executor!r}")
    from pipeline.engine.cluster import require_ray

    require_ray()
    from pipeline.engine.cluster.executor import cluster_engine

    return cluster_engine(address, simulated=simulated)


def executor_reading(executor: Executor, address: str | None) -> ReadingFactory | None:
    """Where the run's files are read: None for this process (``local``), or the Ray
    cluster's tasks (``ray``, at ``address``); after ``executor_engine`` checked both."""
    if executor != "ray":
        return None
    from pipeline.engine.cluster.executor import cluster_reading

    return cluster_reading(address)


async def execute(job: Job, control: RunControl, *, simulate: ModelSet | None = None) -> RunOutcome:
    """The one path of both front doors (``pipeline run`` and ``run_job``): the endpoint (the
    job's, or a simulator serving ``simulate``'s model ids, started for this run), then the
    run."""
    if simulate is None:
        return await _run_on(job, endpoint_for(job), control)
    from pipeline.config.endpoint import ApiKey, Endpoint
    from pipeline.simulator import SimulatorServer
    from pipeline.simulator.config import Latency, SimulatorConfig

    config = SimulatorConfig(limits=job.limits, latency=Latency(0.05, 0.0005), models=simulate)
    with SimulatorServer(config) as server:
        log.info("using the local simulator at %s (no key, no cost)", server.url)
        simulator = Endpoint(server.url, ApiKey(server.api_key), key_source="the simulator")
        return await _run_on(job, simulator, control)


async def _run_on(job: Job, endpoint: Endpoint, control: RunControl) -> RunOutcome:
    from pipeline.run.runner import run_job as run

    def started() -> None:
        log.info(
            "running %s against %s",
            job.name,
            endpoint.base_url,
            extra={"event": "started", "job": job.name, "base_url": endpoint.base_url},
        )
        if control.started is not None:
            control.started()

    return await run(job, endpoint, dataclasses.replace(control, started=started))


def run_job(
    job: Job,
    *,
    simulate: bool = False,
    on_progress: ProgressCallback | None = None,
    progress_every_s: float = 5.0,
    force: bool = False,
    max_duration_s: float | None = None,
    wait: bool = False,
    executor: Executor = "local",
    address: str | None = None,
) -> RunOutcome:
    """``run_job_async`` for code that is not async (a scheduler's task, a script)."""
    run = functools.partial(
        run_job_async,
        job,
        simulate=simulate,
        on_progress=on_progress,
        progress_every_s=progress_every_s,
        force=force,
        max_duration_s=max_duration_s,
        wait=wait,
        executor=executor,
        address=address,
    )
    outcome: RunOutcome = anyio.run(run)
    return outcome


class _Callback:
    """The progress display of the API: the same counts as the command line's, handed to a
    function."""

    def __init__(self, on_progress: ProgressCallback, every_s: float) -> None:
        self.on_progress, self.every_s = on_progress, every_s
        self.tally: Tally | None = None

    async def run(self, tally: Tally) -> None:
        self.tally = tally
        while True:
            await anyio.sleep(self.every_s)
            self.last()

    def last(self) -> None:
        from pipeline.output.progress import counts

        if self.tally is not None:
            self.on_progress(Progress(**counts(self.tally)))
