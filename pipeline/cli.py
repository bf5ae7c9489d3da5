"""The command line: parse arguments, call into the package, map failures to exit statuses.

Exit statuses (documented in the README):
  0  every document ok (or skipped on purpose)
  1  the run finished, but some documents failed: see their error rows
  2  bad usage or job spec (the message names the field and the fix); nothing was sent
  3  the run stopped: a refused key, an unknown model, an unreachable host, a spend cap;
     what finished before is saved
  75 another run of the same job is active (EX_TEMPFAIL: try again later)
  130 interrupted (SIGINT or SIGTERM): what finished is saved; run again to finish
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio

from pipeline import __version__
from pipeline.client import ApiKey, Endpoint, resolve_endpoint
from pipeline.errors import RunBusy, RunFatal
from pipeline.runner import RunOutcome, check_inputs, run_job
from pipeline.simulator import (
    DEFAULT_API_KEY,
    TIERS,
    ConfigError,
    Faults,
    Latency,
    Limits,
    SimulatorConfig,
    SimulatorServer,
    serve,
)
from pipeline.simulator.service import Simulator
from pipeline.spec import Job, load_job
from pipeline.tokens import estimate_text

EXIT_OK = 0
EXIT_DOCUMENTS_FAILED = 1
EXIT_USAGE = 2
EXIT_FATAL = 3
EXIT_BUSY = 75
EXIT_INTERRUPTED = 130

SIMULATOR_KEY_ENV = "PIPELINE_SIMULATOR_KEY"


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
    ):
        faults.add_argument(f"--{kind}", type=float, default=0.0, metavar="P", help=text)
    faults.add_argument("--slow-seconds", type=float, default=30.0)
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
    sim.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def simulator_config(args: argparse.Namespace) -> SimulatorConfig:
    from pipeline.simulator import Batches  # local: the only place the CLI needs it

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
            slow_seconds=args.slow_seconds,
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
    config = simulator_config(args)
    key_note = (
        DEFAULT_API_KEY if not args.api_keys and SIMULATOR_KEY_ENV not in os.environ else "<yours>"
    )
    print(
        f"Messages API simulator on http://{args.host}:{args.port}  "
        f"(key {key_note}; {_describe_limits(config.limits)})",
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
    validate = commands.add_parser("validate", help="check a job spec without sending anything")
    validate.add_argument("job", type=Path)
    validate.add_argument("paths", nargs="*")
    validate.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE")


def _load(args: argparse.Namespace) -> Job:
    return load_job(
        args.job,
        overrides=args.set,
        inputs=args.paths or None,
        output=getattr(args, "output", None),
        base_url=getattr(args, "base_url", None),
    )


def run_validate(args: argparse.Namespace) -> int:
    job = _load(args)
    check_inputs(job)
    budget = job.chunk_budget(estimate_text)
    print(
        f"{args.job}: ok. Job '{job.name}': model {job.spec.model.name}, "
        f"{job.spec.chunking.strategy}, up to {budget:,} tokens a chunk, output {job.output_path}"
    )
    return EXIT_OK


def run_job_command(args: argparse.Namespace) -> int:
    job = _load(args)
    spec = job.spec
    if args.simulate:
        config = SimulatorConfig(limits=job.limits, latency=Latency(0.05, 0.0005))
        with SimulatorServer(config) as server:
            endpoint = Endpoint(server.url, ApiKey(server.api_key), key_source="the simulator")
            print(
                f"pipeline: using the local simulator at {server.url} (no key, no cost)",
                file=sys.stderr,
            )
            outcome = _run(job, endpoint, args)
    else:
        endpoint = resolve_endpoint(
            base_url=spec.endpoint.base_url,
            key_variable=spec.endpoint.api_key_env,
            allow_insecure=spec.endpoint.allow_insecure_http,
        )
        outcome = _run(job, endpoint, args)
    counts = ", ".join(f"{n} {status}" for status, n in sorted(outcome.by_status.items()))
    reused = f" ({outcome.reused} finished earlier, not sent again)" if outcome.reused else ""
    print(f"{outcome.rows} documents: {counts or 'none'}{reused}")
    print(f"results: {outcome.output}")
    print(f"calls:   {outcome.calls_output}")
    if outcome.interrupted:
        print("pipeline: interrupted; run the same command again to finish", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_DOCUMENTS_FAILED if outcome.by_status.get("error") else EXIT_OK


def _run(job: Job, endpoint: Endpoint, args: argparse.Namespace) -> RunOutcome:
    def started() -> None:
        print(
            f"pipeline: running {job.name} against {endpoint.base_url}", file=sys.stderr, flush=True
        )

    task = functools.partial(
        run_job, job, endpoint, force=args.force, handle_signals=True, started=started
    )
    outcome: RunOutcome = anyio.run(task)
    return outcome


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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    commands = {"simulate": run_simulate, "run": run_job_command, "validate": run_validate}
    try:
        return commands[args.command](args)
    except ConfigError as exc:
        print(f"pipeline: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RunBusy as exc:
        print(f"pipeline: {exc}", file=sys.stderr)
        return EXIT_BUSY
    except RunFatal as exc:
        print(f"pipeline: the run stopped: {exc}", file=sys.stderr)
        return EXIT_FATAL
    except KeyboardInterrupt:
        print("pipeline: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
