"""``pipeline simulate``: serve the local Messages API simulator. The simulator itself
(uvicorn, starlette) is imported only here, when a command simulates."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import TYPE_CHECKING

from pipeline.cli.common import EXIT_OK
from pipeline.core.defaults import MODEL_SETS, SIMULATOR_API_KEY
from pipeline.core.limits import TIERS, Limits

if TYPE_CHECKING:
    from pipeline.simulator.config import SimulatorConfig

SIMULATOR_KEY_ENV = "PIPELINE_SIMULATOR_KEY"


def _reply_tokens(text: str) -> tuple[int, int]:
    low, _, high = text.partition(",")
    try:
        return int(low), int(high or low)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH (e.g. 40,120), got {text!r}") from exc


def add_simulate(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
        help=f"a key to accept (repeatable; default ${SIMULATOR_KEY_ENV} or {SIMULATOR_API_KEY})",
    )
    _add_limits(sim)
    _add_faults(sim)
    _add_replies(sim)
    _add_served(sim)
    sim.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def _add_limits(sim: argparse.ArgumentParser) -> None:
    """The rate limits it enforces (default: none)."""
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


def _add_faults(sim: argparse.ArgumentParser) -> None:
    """The faults it injects, each a probability per request."""
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


def _add_replies(sim: argparse.ArgumentParser) -> None:
    """How long its replies take and how long they are; its Message Batches."""
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


def _add_served(sim: argparse.ArgumentParser) -> None:
    """What it serves: which model ids, which endpoints."""
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


def simulator_config(args: argparse.Namespace) -> SimulatorConfig:
    from pipeline.simulator.config import Batches, Faults, Latency, SimulatorConfig

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
    keys = args.api_keys or [os.environ.get(SIMULATOR_KEY_ENV) or SIMULATOR_API_KEY]
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
        SIMULATOR_API_KEY
        if not args.api_keys and SIMULATOR_KEY_ENV not in os.environ
        else "<yours>"
    )
    served = ", ".join(model.id for model in config.served.models)
    print(
        f"Messages API simulator on http://{args.host}:{args.port}  "
        f"(key {key_note}; {_describe_limits(config.limits)}; models {served})",
        file=sys.stderr,
    )
    serve(Simulator(config), host=args.host, port=args.port, log_level=args.log_level)
    return EXIT_OK
