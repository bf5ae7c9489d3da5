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
import dataclasses
import functools
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.config import paths
from pipeline.core import logs
from pipeline.core.errors import (
    ConfigError,
    HostUnreachable,
    PipelineError,
    RunBusy,
    RunFatal,
    Transient,
)
from pipeline.core.limits import TIERS, Limits
from pipeline.core.version import __version__
from pipeline.output import report
from pipeline.simulator.config import DEFAULT_API_KEY, MODEL_SETS, SimulatorConfig

if TYPE_CHECKING:
    from pipeline.config.endpoint import Endpoint
    from pipeline.config.spec import Job
    from pipeline.output.progress import Display
    from pipeline.run.runner import RunOutcome

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

SIMULATOR_KEY_ENV = "PIPELINE_SIMULATOR_KEY"

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


def _reply_tokens(text: str) -> tuple[int, int]:
    low, _, high = text.partition(",")
    try:
        return int(low), int(high or low)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH (e.g. 40,120), got {text!r}") from exc


def _add_simulate(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sim = commands.add_parser(
        "simulate",
        help="run the local Messages API simulator",
        description="Serve a local Messages API simulator (validation, rate limits, faults).",
    )
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8765)
    sim.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help=f"a key to accept (repeatable; default ${SIMULATOR_KEY_ENV} or {DEFAULT_API_KEY})",
    )
    limits = sim.add_argument_group("rate limits (default: none)")
    limits.add_argument(
        "--tier", choices=sorted(TIERS), help="start from a tier's published limits"
    )
    limits.add_argument("--rpm", type=int, help="requests per minute")
    limits.add_argument("--tpm", type=int, help="combined input+output tokens per minute")
    limits.add_argument("--itpm", type=int, help="input tokens per minute")
    limits.add_argument("--otpm", type=int, help="output tokens per minute")
    limits.add_argument("--max-concurrency", type=int, help="replies in progress at once")
    limits.add_argument(
        "--per-second", action="store_true", help="enforce limits per second (60/min = 1/s)"
    )
    limits.add_argument(
        "--exact-remaining",
        action="store_true",
        help="report exact token 'remaining' headers instead of rounding to thousands",
    )
    faults = sim.add_argument_group("faults (probability per request, 0..1)")
    for kind, text in (
        ("overloaded", "529 overloaded_error"),
        ("api-error", "500 api_error"),
        ("drop", "connection cut part-way through the reply"),
        ("slow", "reply held for --slow-seconds"),
        ("stream-error", "event: error in the middle of a stream"),
        ("truncated", "a 200 whose body (or stream) is cut short, then ends cleanly"),
        ("rate-limited", "429 rate_limit_error though no limit is reached (a storm)"),
    ):
        faults.add_argument(f"--{kind}", type=float, default=0.0, metavar="P", help=text)
    faults.add_argument("--slow-seconds", type=float, default=30.0)
    faults.add_argument(
        "--rate-limited-retry-after",
        type=float,
        default=1.0,
        metavar="S",
        help="retry-after of a --rate-limited 429 (default 1; a negative value sends none)",
    )
    faults.add_argument("--seed", type=int, default=0, help="seed for the fault draws")
    timing = sim.add_argument_group("latency and replies")
    timing.add_argument("--latency", type=float, default=0.0, help="fixed seconds per reply")
    timing.add_argument(
        "--latency-per-token", type=float, default=0.0, help="seconds per output token"
    )
    timing.add_argument("--reply-tokens", type=_reply_tokens, default=(40, 120), metavar="LOW,HIGH")
    timing.add_argument(
        "--token-scale",
        type=float,
        default=1.0,
        metavar="X",
        help="charge X times the documented token count (a tokenizer that counts more)",
    )
    batches = sim.add_argument_group("message batches")
    batches.add_argument(
        "--batch-seconds",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds a batch takes to process (default 5; past 24 h its requests expire)",
    )
    batches.add_argument(
        "--batch-errored", type=float, default=0.0, metavar="P", help="share of requests errored"
    )
    batches.add_argument(
        "--batch-expired", type=float, default=0.0, metavar="P", help="share of requests expired"
    )
    served = sim.add_argument_group(
        "what it serves (default: MegaLLM's four model ids, every endpoint)"
    )
    served.add_argument(
        "--models",
        choices=MODEL_SETS,
        default="gateway",
        help="gateway: the ids on MegaLLM's page; anthropic: Anthropic's ids and aliases; both",
    )
    served.add_argument(
        "--no-count-tokens",
        action="store_true",
        help="leave out /v1/messages/count_tokens (a 404, as on a gateway without it)",
    )
    served.add_argument(
        "--no-batches",
        action="store_true",
        help="leave out the Message Batches endpoints (a 404, as on a gateway without them)",
    )
    sim.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def simulator_config(args: argparse.Namespace) -> SimulatorConfig:
    from pipeline.simulator.config import Batches, Faults, Latency

    base = TIERS[args.tier] if args.tier else Limits()
    explicit = {
        "requests_per_minute": args.rpm,
        "tokens_per_minute": args.tpm,
        "input_tokens_per_minute": args.itpm,
        "output_tokens_per_minute": args.otpm,
        "max_concurrency": args.max_concurrency,
    }
    limits = dataclasses.replace(
        base,
        per_second=args.per_second,
        **{k: v for k, v in explicit.items() if v is not None},
    )
    keys = args.api_keys or [os.environ.get(SIMULATOR_KEY_ENV) or DEFAULT_API_KEY]
    return SimulatorConfig(
        api_keys=frozenset(keys),
        limits=limits,
        faults=Faults(
            overloaded=args.overloaded,
            api_error=args.api_error,
            drop=args.drop,
            slow=args.slow,
            stream_error=args.stream_error,
            truncated=args.truncated,
            rate_limited=args.rate_limited,
            slow_seconds=args.slow_seconds,
            rate_limited_retry_after=(
                None if args.rate_limited_retry_after < 0 else args.rate_limited_retry_after
            ),
            seed=args.seed,
        ),
        latency=Latency(fixed=args.latency, per_output_token=args.latency_per_token),
        reply_tokens=args.reply_tokens,
        round_remaining=not args.exact_remaining,
        token_scale=args.token_scale,
        batches=Batches(
            processing_seconds=args.batch_seconds,
            errored=args.batch_errored,
            expired=args.batch_expired,
            seed=args.seed,
        ),
        models=args.models,
        count_tokens=not args.no_count_tokens,
        message_batches=not args.no_batches,
    )


def _describe_limits(limits: Limits) -> str:
    if limits.unlimited:
        return "no rate limits"
    parts = [
        f"{name.replace('_', ' ')}={value:,}"
        for name, value in vars(limits).items()
        if value is not None and name != "per_second"
    ]
    return ", ".join(parts) + (" (per second)" if limits.per_second else "")


def run_simulate(args: argparse.Namespace) -> int:
    from pipeline.simulator import Simulator, serve

    config = simulator_config(args)
    key_note = (
        DEFAULT_API_KEY if not args.api_keys and SIMULATOR_KEY_ENV not in os.environ else "<yours>"
    )
    served = ", ".join(model.id for model in config.served.models)
    print(
        f"Messages API simulator on http://{args.host}:{args.port}  "
        f"(key {key_note}; {_describe_limits(config.limits)}; models {served})",
        file=sys.stderr,
    )
    serve(Simulator(config), host=args.host, port=args.port, log_level=args.log_level)
    return EXIT_OK


def _add_job_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    plan = commands.add_parser(
        "plan",
        help="what a run would send, cost and take, with nothing sent",
        description="Read and split the inputs as a run would; estimate tokens, cost and time.",
    )
    plan.add_argument("job", type=Path)
    plan.add_argument("paths", nargs="*")
    plan.add_argument("--output", help="the run's output (its finished documents are left out)")
    plan.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    plan.add_argument(
        "--exact",
        action="store_true",
        help="count input tokens with the API's count_tokens (free; needs the key)",
    )
    plan.add_argument("--base-url", help="the API's base URL, for --exact")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    show = commands.add_parser(
        "report",
        help="show the report of a past run",
        description="Show the report a run wrote beside its Parquet file.",
    )
    show.add_argument("output", type=Path, help="the run's Parquet file (or its .report.json)")
    show.add_argument("--json", action="store_true", help="print the report as JSON")
    show.add_argument(
        "--html",
        nargs="?",
        const="",
        type=str,
        metavar="PATH",
        help="write the report as one self-contained HTML page (default: OUTPUT.report.html)",
    )
    validate = commands.add_parser(
        "validate",
        help="check a job spec without sending anything",
        description="Check a job spec, its inputs and (with a key) that the endpoint serves "
        "its model: GET /v1/models, free; no document is sent.",
    )
    validate.add_argument("job", type=Path)
    validate.add_argument("paths", nargs="*")
    validate.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    validate.add_argument("--base-url", help="the API's base URL (endpoint.base_url)")
    models = commands.add_parser(
        "models",
        help="what the endpoint serves, with window, largest output and price",
        description="List the models the endpoint serves (GET /v1/models, free) with the "
        "window, largest max_tokens and price the project will use for each.",
    )
    models.add_argument("--base-url", help="the API's base URL (default: as for a run)")
    models.add_argument("--api-key-env", help="the variable holding the key")
    models.add_argument(
        "--simulate", action="store_true", help="ask the local simulator as shipped instead"
    )
    models.add_argument("--simulate-models", choices=MODEL_SETS, default="gateway")
    models.add_argument("--json", action="store_true", help="print the list as JSON")


def _load(args: argparse.Namespace) -> Job:
    from pipeline.config.load import load_job

    return load_job(
        args.job,
        overrides=args.set,
        inputs=args.paths or None,
        output=getattr(args, "output", None),
        base_url=getattr(args, "base_url", None),
        log_file=getattr(args, "log_file", None),
    )


def _job_endpoint(job: Job) -> Endpoint | None:
    """The endpoint a run of ``job`` would use, or None when no key is set (then the model
    cannot be checked, and is not: ``validate`` and ``plan`` work without a key)."""
    from pipeline.config.endpoint import KEY_VARIABLES, resolve_endpoint

    spec = job.spec.endpoint
    names = (spec.api_key_env, *KEY_VARIABLES) if spec.api_key_env else KEY_VARIABLES
    if not any(os.environ.get(name, "").strip() for name in names):
        return None
    return resolve_endpoint(
        base_url=spec.base_url,
        key_variable=spec.api_key_env,
        allow_insecure=spec.allow_insecure_http,
    )


def _check_model(job: Job) -> str:
    """Check the job's model (and batches) against the endpoint; say what was checked."""
    from pipeline.engine import preflight

    endpoint = _job_endpoint(job)
    if endpoint is None:
        return "not checked against the endpoint: no API key set"
    try:
        served = preflight.check_job(job, endpoint)
    except Transient as exc:  # busy: a run would retry; this is only a check
        log.warning("warning: %s did not answer (%s)", endpoint.host, exc.message)
        return f"not checked: {endpoint.host} did not answer ({exc.message})"
    if served is None:
        return f"not checked: {endpoint.host} has no /v1/models"
    return f"served by {endpoint.host}"


def run_validate(args: argparse.Namespace) -> int:
    from pipeline.run.runner import check_inputs
    from pipeline.shaping.tokens import estimate_text

    job = _load(args)
    check_inputs(job)
    budget = job.chunk_budget(estimate_text)
    checked = _check_model(job)
    logs.echo(
        f"{args.job}: ok. Job '{job.name}': model {job.spec.model.name} ({checked}), "
        f"{job.spec.chunking.strategy}, up to {budget:,} tokens a chunk, output "
        f"{job.output_url or job.output_path}"
    )
    return EXIT_OK


def run_models(args: argparse.Namespace) -> int:
    from pipeline.config.endpoint import ApiKey, Endpoint, resolve_endpoint
    from pipeline.engine import preflight
    from pipeline.simulator import SimulatorServer

    if args.simulate:
        config = SimulatorConfig(models=args.simulate_models)
        with SimulatorServer(config) as server:
            endpoint = Endpoint(server.url, ApiKey(server.api_key), key_source="the simulator")
            served = preflight.list_served(endpoint)
    else:
        endpoint = resolve_endpoint(base_url=args.base_url, key_variable=args.api_key_env)
        served = preflight.list_served(endpoint)
    if served is None:
        log.error("%s has no /v1/models: it does not say what it serves", endpoint.base_url)
        return EXIT_FATAL
    rows = preflight.describe(served)
    print(json.dumps(rows, indent=2) if args.json else preflight.render(rows, endpoint.base_url))
    return EXIT_OK


def run_job_command(args: argparse.Namespace) -> int:
    from pipeline.config.endpoint import ApiKey, Endpoint, resolve_endpoint
    from pipeline.simulator import SimulatorServer
    from pipeline.simulator.config import Latency

    job = _load(args)
    spec = job.spec
    display = _start_logging(args)
    if args.simulate:
        config = SimulatorConfig(
            limits=job.limits, latency=Latency(0.05, 0.0005), models=args.simulate_models
        )
        with SimulatorServer(config) as server:
            endpoint = Endpoint(server.url, ApiKey(server.api_key), key_source="the simulator")
            log.info("using the local simulator at %s (no key, no cost)", server.url)
            outcome = _run(job, endpoint, args, display)
    else:
        endpoint = resolve_endpoint(
            base_url=spec.endpoint.base_url,
            key_variable=spec.endpoint.api_key_env,
            allow_insecure=spec.endpoint.allow_insecure_http,
        )
        outcome = _run(job, endpoint, args, display)
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


def _start_logging(args: argparse.Namespace) -> Display | None:
    """Logging to match the options; returns the progress display to use, if any."""
    from rich.console import Console

    from pipeline.output.progress import Bar, PlainLines

    console = Console(stderr=True)
    live = console.is_terminal and not args.quiet and not args.log_json
    logs.configure(
        stream=sys.stderr,
        console=console if live else None,
        json_lines=args.log_json,
        quiet=args.quiet,
        log_file=args.log_file,
    )
    if args.quiet:
        return None
    return Bar(console) if live else PlainLines(args.progress_every)


def _run(
    job: Job, endpoint: Endpoint, args: argparse.Namespace, display: Display | None
) -> RunOutcome:
    import anyio

    from pipeline.run.runner import RunControl, run_job

    def started() -> None:
        log.info(
            "running %s against %s",
            job.name,
            endpoint.base_url,
            extra={"event": "started", "job": job.name, "base_url": endpoint.base_url},
        )

    control = RunControl(
        force=args.force,
        handle_signals=True,
        max_duration_s=args.max_duration,
        wait=args.wait,
        display=display,
        started=started,
    )
    outcome: RunOutcome = anyio.run(functools.partial(run_job, job, endpoint, control))
    return outcome


def run_plan(args: argparse.Namespace) -> int:
    from pipeline.config.endpoint import resolve_endpoint
    from pipeline.engine.client import MessagesClient
    from pipeline.run import plan
    from pipeline.run.runner import check_inputs

    job = _load(args)
    check_inputs(job)
    try:
        log.info("model %s: %s", job.spec.model.name, _check_model(job))
    except HostUnreachable as exc:  # a plan sends nothing: estimate anyway, but say so
        log.warning("warning: model %s not checked: %s", job.spec.model.name, exc)
    counter = None
    if args.exact:
        spec = job.spec
        endpoint = resolve_endpoint(
            base_url=spec.endpoint.base_url,
            key_variable=spec.endpoint.api_key_env,
            allow_insecure=spec.endpoint.allow_insecure_http,
        )
        counter = MessagesClient(endpoint, concurrency=4)
    made = plan.make_plan(job, counter=counter)
    if args.json:
        print(json.dumps(plan.as_dict(made, job.price, job.limits), indent=2))
    else:
        logs.echo(plan.render(made, job.price, job.limits))
    return EXIT_OK


def run_report(args: argparse.Namespace) -> int:
    past = report.load(args.output)
    if args.html is not None:
        from pipeline.output import page  # Jinja2 and the charts: loaded only for a page

        written = page.write_for(past, args.output, Path(args.html) if args.html else None)
        logs.echo(f"wrote {written}")
        return EXIT_OK
    if args.json:
        print(json.dumps(past, indent=2))
    else:
        logs.echo(report.render(past))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipeline",
        description="Batch document processing for the Anthropic Messages API.",
    )
    parser.add_argument("--version", action="version", version=f"pipeline {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_job_commands(commands)
    _add_simulate(commands)
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
