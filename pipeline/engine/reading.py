"""Where a run's files are read: the interface both readings implement.

``pipeline.run.inputs.local_reading`` reads in this process's threads (PDFs' text in a
``PdfTextPool``); ``pipeline.engine.cluster.executor.cluster_reading`` in Ray tasks on a
cluster's nodes, which plan each document's first round too (a ``Planned``).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol

from pipeline.config.spec import Job
from pipeline.core.errors import InputProblem
from pipeline.core.models import Document
from pipeline.readers import Candidate, InputOptions
from pipeline.shaping.planner import Planned

# A file read: its document (planned or not), or its source and what went wrong.
Item = Document | Planned | tuple[str, InputProblem]


class Reading(Protocol):
    """Where files are read: ``slots`` batches at once, each by ``read``."""

    slots: int

    async def read(self, candidates: list[Candidate]) -> list[Item]: ...


# Opens a run's reading for (job, its input options, the chunk budget if the reading may plan
# each document's first round, else None); closing it stops what it started.
ReadingFactory = Callable[[Job, InputOptions, int | None], AbstractContextManager[Reading]]
