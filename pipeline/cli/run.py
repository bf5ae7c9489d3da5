"""``pipeline run``: run a job over its documents, against the endpoint or the simulator."""

from __future__ import annotations

import argparse
import functools
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.cli.common import (
    EXIT_DOCUMENTS_FAILED,
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    duration,
    load,
    log,
    start_logging,
)
from pipeline.config import paths
from pipeline.core import logs
from pipeline.core.defaults import MODEL_SETS

if TYPE_CHECKING:
    from pipeline.config.spec import Job
    from pipeline.output.progress import Display
    from pipeline.run.runner import RunOutcome


def add_run(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = commands.add_parser(
        "run",
        help="run a job spec over its documents",
        description="Run a job: one Parquet row per input document.",
    )
    run.add_argument("job", type=Path, help="the job spec (TOML), e.g. jobs/summarize.toml")
    run.add_argument(
        "paths",
        nargs="*",
        help="inputs to use instead of the job's inputs.paths (files or folders)",
    )
    run.add_argument("--output", help="where to write the Parquet file (output.path)")
    run.add_argument("--base-url", help="the API's base URL (endpoint.base_url)")
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="override any field of the job, e.g. --set model.max_tokens=2048 (repeatable)",
    )
    run.add_argument(
        "--force",
        action="store_true",
        help="send every document again, even those an earlier run finished",
    )
    run.add_argument(
        "--simulate",
        action="store_true",
        help="run against a local simulator of the API started for this run: no key, no cost",
    )
    run.add_argument(
        "--simulate-models",
        choices=MODEL_SETS,
        default="gateway",
        help="with --simulate: the model ids it serves (default gateway: MegaLLM's four)",
    )
    run.add_argument(
        "--max-duration",
        type=duration,
        metavar="TIME",
        help="stop taking work after TIME (e.g. 6h, 45m), finish what is in flight, save "
        "and exit 4; the next run continues",
    )
    run.add_argument(
        "--wait",
        action="store_true",
        help="if another run of this job is active, wait for it instead of exiting 75",
    )
    _add_groups(run)


def _add_groups(run: argparse.ArgumentParser) -> None:
    _add_executor(run)
    _add_progress(run)


def _add_executor(run: argparse.ArgumentParser) -> None:
    where = run.add_argument_group("where the calls are made")
    where.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="ray: make the calls from every node of a Ray cluster, under one rate limiter "
        "for the cluster (the ray extra; the key must be in each node's environment)",
    )
    where.add_argument(
        "--address",
        metavar="HOST:PORT",
        help="with --executor ray: the cluster's head (default: start Ray on this machine)",
    )


def _add_progress(run: argparse.ArgumentParser) -> None:
    shown = run.add_argument_group("progress and logs")
    shown.add_argument(
        "-q", "--quiet", action="store_true", help="no progress and no report: warnings only"
    )
    shown.add_argument(
        "--log-json", action="store_true", help="log JSON lines (progress and report included)"
    )
    shown.add_argument("--log-file", type=Path, metavar="PATH", help="also log everything here")
    shown.add_argument(
        "--progress-every",
        type=duration,
        default=60.0,
        metavar="TIME",
        help="without a terminal, a progress line this often (default 60s)",
    )


def run_job_command(args: argparse.Namespace) -> int:
    from pipeline.output import report

    job = load(args)
    spec = job.spec
    display = start_logging(args)
    outcome = _run(job, args, display)
    if args.log_json:
        log.info("run report", extra={"event": "report", "report": outcome.report})
    elif not args.quiet:
        logs.echo(report.render(outcome.report))
        logs.echo(f"  report     {paths.report_path(outcome.output)}")
        if spec.output.html_report:
            logs.echo(f"  page       {paths.page_path(outcome.output)}")
    if outcome.ended == "interrupted":
        log.warning("interrupted; run the same command again to finish")
        return EXIT_INTERRUPTED
    if outcome.ended in ("max_duration", "budget"):
        reason = "at --max-duration" if outcome.ended == "max_duration" else "by the budget"
        log.warning("stopped %s; run the same command again to continue", reason)
        return EXIT_INCOMPLETE
    return EXIT_DOCUMENTS_FAILED if outcome.by_status.get("error") else EXIT_OK


def _run(job: Job, args: argparse.Namespace, display: Display | None) -> RunOutcome:
    import anyio

    from pipeline.api import execute, executor_engine, executor_reading
    from pipeline.run.runner import RunControl

    control = RunControl(
        force=args.force,
        handle_signals=True,
        max_duration_s=args.max_duration,
        wait=args.wait,
        display=display,
        engine=executor_engine(args.executor, args.address, simulated=args.simulate),
        reading=executor_reading(args.executor, args.address),
    )
    simulate = args.simulate_models if args.simulate else None
    outcome: RunOutcome = anyio.run(functools.partial(execute, job, control, simulate=simulate))
    return outcome
