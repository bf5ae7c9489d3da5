"""``--executor ray``: the engine a run on a Ray cluster uses, made from the job and endpoint.

``cluster_engine(address, limiter=...)`` returns what ``RunControl.engine`` takes: given the
job and its endpoint, it connects to the cluster (``address``; none: a Ray started on this
machine for the run), joins the limiter of the organisation's tier (by default named after
the endpoint's host: every job sending to the same host through the same cluster shares it)
and returns a ``RayEngine``. The key goes nowhere: each caller reads it from its own
environment, under the variable the endpoint was found by. ``cluster_reading(address)``
returns what ``RunControl.reading`` takes: the run's files read in tasks on the cluster
(``pipeline.engine.cluster.reading``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import ray

from pipeline.config.endpoint import Endpoint
from pipeline.config.spec import Job
from pipeline.core.defaults import CONCURRENCY
from pipeline.core.errors import ConfigError
from pipeline.engine.base import Engine
from pipeline.engine.cluster.caller import CallerSpec
from pipeline.engine.cluster.engine import RayEngine
from pipeline.engine.cluster.limiter import connect_limiter
from pipeline.engine.cluster.reading import RayReading
from pipeline.engine.reading import ReadingFactory
from pipeline.engine.retry import RetryPolicy
from pipeline.readers import InputOptions

log = logging.getLogger("pipeline.cluster")

EngineFactory = Callable[[Job, Endpoint], Engine]


def connect(address: str | None) -> None:
    """Join the cluster at ``address`` (or start Ray on this machine), once a process."""
    if ray.is_initialized():
        return
    if address is None:
        ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    else:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    log.info("connected to the Ray cluster at %s", address or "this machine")


def caller_spec(job: Job, endpoint: Endpoint, *, simulated: bool) -> CallerSpec:
    """What the callers need: the key's variable (``$NAME``), never the key."""
    spec = job.spec
    source = endpoint.key_source
    return CallerSpec(
        base_url=endpoint.base_url,
        key_variable=source[1:] if source.startswith("$") else None,
        simulated=simulated,
        concurrency=job.limits.max_concurrency or CONCURRENCY,
        retry=RetryPolicy(
            max_attempts=spec.retry.max_attempts, max_elapsed_s=spec.retry.max_elapsed_s
        ),
        stream=spec.endpoint.stream,
        model=spec.model.name,
        allow_insecure=spec.endpoint.allow_insecure_http,
    )


def cluster_engine(
    address: str | None = None, *, limiter: str | None = None, simulated: bool = False
) -> EngineFactory:
    """The ``RunControl.engine`` of a run on the Ray cluster at ``address``; ``simulated``:
    the endpoint is a simulator started for the run (its callers use its public key)."""

    def make(job: Job, endpoint: Endpoint) -> Engine:
        if job.batch:
            raise ConfigError(
                "--executor ray makes online calls: a Message Batches job (endpoint.mode = "
                '"batch") runs from one machine; drop --executor or set endpoint.mode = "online"'
            )
        connect(address)
        link = connect_limiter(limiter or endpoint.host, job.limits)
        return RayEngine(caller_spec(job, endpoint, simulated=simulated), link)

    return make


def cluster_reading(address: str | None = None) -> ReadingFactory:
    """The ``RunControl.reading`` of a run on the Ray cluster at ``address``."""

    @contextmanager
    def open_reading(
        job: Job, options: InputOptions, plan_tokens: int | None
    ) -> Iterator[RayReading]:
        connect(address)
        reading = RayReading(job, options, plan_tokens)
        try:
            yield reading
        finally:
            reading.close()

    return open_reading
