"""What the commands share: the exit statuses, loading the job the arguments name, the
endpoint a run would use, logging set up to match the options."""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from typing import TYPE_CHECKING

from pipeline.config.endpoint import KEY_VARIABLES, Endpoint
from pipeline.core import logs
from pipeline.core.errors import Transient

if TYPE_CHECKING:
    from rich.console import Console

    from pipeline.config.spec import Job
    from pipeline.output.progress import Display

# What a command needs is imported in the function that runs it: ``pipeline --help`` and the
# start of a run do not pay for the simulator (uvicorn, starlette), polars or pypdf.

EXIT_OK = 0
EXIT_DOCUMENTS_FAILED = 1
EXIT_USAGE = 2
EXIT_FATAL = 3
EXIT_INCOMPLETE = 4
EXIT_BUSY = 75
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for ``yes | head``

log = logging.getLogger("pipeline.cli")

_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?")


def duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``45m``, ``8h`` or ``1h30m``."""
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None:
        raise argparse.ArgumentTypeError(f"expected a duration like 45m, 8h or 1h30m, got {text!r}")
    hours, minutes, seconds = (float(part or 0) for part in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise argparse.ArgumentTypeError(f"the duration must be more than zero, got {text!r}")
    return total


def load(args: argparse.Namespace) -> Job:
    from pipeline.config.load import load_job

    return load_job(
        args.job,
        overrides=args.set,
        inputs=args.paths or None,
        output=getattr(args, "output", None),
        base_url=getattr(args, "base_url", None),
        log_file=getattr(args, "log_file", None),
    )


def job_endpoint(job: Job) -> Endpoint | None:
    """The endpoint a run of ``job`` would use, or None when no key is set (then the model
    cannot be checked, and is not: ``validate`` and ``plan`` work without a key)."""
    spec = job.spec.endpoint
    names = (spec.api_key_env, *KEY_VARIABLES) if spec.api_key_env else KEY_VARIABLES
    if not any(os.environ.get(name, "").strip() for name in names):
        return None
    from pipeline.api import endpoint_for

    return endpoint_for(job)


def check_model(job: Job) -> str:
    """Check the job's model (and batches) against the endpoint; say what was checked."""
    endpoint = job_endpoint(job)
    if endpoint is None:
        return "not checked against the endpoint: no API key set"
    from pipeline.engine import preflight  # the HTTP client: only when there is a key

    try:
        served = preflight.check_job(job, endpoint)
    except Transient as exc:  # busy: a run would retry; this is only a check
        log.warning("warning: %s did not answer (%s)", endpoint.host, exc.message)
        return f"not checked: {endpoint.host} did not answer ({exc.message})"
    if served is None:
        return f"not checked: {endpoint.host} has no /v1/models"
    return f"served by {endpoint.host}"


def start_logging(args: argparse.Namespace) -> Display | None:
    """Logging to match the options; returns the progress display to use, if any."""
    from pipeline.output.progress import Bar, PlainLines

    # a live bar only on a terminal, never with --quiet or --log-json (then rich is not loaded)
    console = None if args.quiet or args.log_json else _terminal()
    logs.configure(
        stream=sys.stderr,
        console=console,
        json_lines=args.log_json,
        quiet=args.quiet,
        log_file=args.log_file,
    )
    if args.quiet:
        return None
    return Bar(console) if console is not None else PlainLines(args.progress_every)


def _terminal() -> Console | None:
    """rich's console on stderr when rich takes it for a terminal, else None."""
    from rich.console import Console

    console = Console(stderr=True)
    return console if console.is_terminal else None
