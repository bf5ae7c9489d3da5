"""Async batch document processing for the Anthropic Messages API and compatible gateways.

The public API is the names in ``__all__`` (``pipeline.api``); every other module is
internal and may change between versions. They are loaded on first use, so ``import
pipeline`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.core.version import __version__

if TYPE_CHECKING:
    from pipeline.api import Progress, endpoint_for, load_job, run_job, run_job_async
    from pipeline.config.spec import Job
    from pipeline.core.errors import ConfigError, PipelineError
    from pipeline.run.runner import RunOutcome

_PUBLIC = {
    "load_job": "pipeline.api",
    "run_job": "pipeline.api",
    "run_job_async": "pipeline.api",
    "endpoint_for": "pipeline.api",
    "Progress": "pipeline.api",
    "Job": "pipeline.config.spec",
    "RunOutcome": "pipeline.run.runner",
    "PipelineError": "pipeline.core.errors",
    "ConfigError": "pipeline.core.errors",
}

__all__ = [
    "ConfigError",
    "Job",
    "PipelineError",
    "Progress",
    "RunOutcome",
    "__version__",
    "endpoint_for",
    "load_job",
    "run_job",
    "run_job_async",
]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
