"""The command line: parse arguments, call into the package, map failures to exit statuses.

Exit statuses (documented in the README):
  0  every document ok (or skipped on purpose)
  1  the run finished, but some documents failed: see their error rows
  2  bad usage or job spec (the message names the field and the fix); nothing was sent
  3  the run stopped: a refused key, an unknown model, an unreachable host, a spend cap,
     object storage that refused the credentials;
     what finished before is saved
  4  the run stopped at --max-duration or before passing the job's [budget]: what finished
     is saved; run again to continue
  75 another run of the same job is active (EX_TEMPFAIL: try again later, or use --wait)
  130 interrupted (SIGINT or SIGTERM): what finished is saved; run again to finish
  141 stdout's reader went away (``| head``): the rest of the output is dropped, quietly
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from pipeline.cli.common import (
    EXIT_BROKEN_PIPE,
    EXIT_BUSY,
    EXIT_DOCUMENTS_FAILED,
    EXIT_FATAL,
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    log,
)
from pipeline.cli.models import add_models, run_models
from pipeline.cli.plan import add_plan, add_validate, run_plan, run_validate
from pipeline.cli.report import add_report, run_report
from pipeline.cli.run import add_run, run_job_command
from pipeline.cli.simulate import add_simulate, run_simulate
from pipeline.core import logs
from pipeline.core.errors import ConfigError, PipelineError, RunBusy, RunFatal
from pipeline.core.version import __version__

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_BUSY",
    "EXIT_DOCUMENTS_FAILED",
    "EXIT_FATAL",
    "EXIT_INCOMPLETE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "build_parser",
    "main",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipeline",
        description="Batch document processing for the Anthropic Messages API.",
    )
    parser.add_argument("--version", action="version", version=f"pipeline {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_run(commands)
    add_plan(commands)
    add_report(commands)
    add_validate(commands)
    add_models(commands)
    add_simulate(commands)
    return parser


# What a run-wide fault stopped, as each command says it (validate and plan run nothing).
_STOPPED = {"run": "the run stopped", "models": "cannot list the models"}


def _reader_gone() -> int:
    """stdout's reader went away (``| head``): drop the rest of the output and end quietly
    (Python's "Note on SIGPIPE": stdout to devnull, so the exit's flush cannot fail too)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {
        "simulate": run_simulate,
        "run": run_job_command,
        "validate": run_validate,
        "report": run_report,
        "plan": run_plan,
        "models": run_models,
    }
    logs.configure(stream=sys.stderr)
    stopped = _STOPPED.get(args.command, "the job cannot run")
    try:
        code = commands[args.command](args)
        sys.stdout.flush()  # a reader gone (``| head``) shows here, not at the exit
        return code
    except BrokenPipeError:
        return _reader_gone()
    except ConfigError as exc:
        log.error("%s", exc)
        return EXIT_USAGE
    except RunBusy as exc:
        log.error("%s", exc)
        return EXIT_BUSY
    except RunFatal as exc:
        log.error("%s: %s", stopped, exc, extra={"event": "fatal", "error_type": exc.kind})
        return EXIT_FATAL
    except PipelineError as exc:  # a check or a count that found the host busy or unreachable
        log.error("%s: %s", stopped, exc, extra={"event": "fatal", "error_type": exc.kind})
        return EXIT_FATAL
    except KeyboardInterrupt:
        log.error("interrupted")
        return EXIT_INTERRUPTED
    finally:
        logs.reset()
