"""``pipeline plan`` and ``pipeline validate``: a job checked, or its run estimated, with
nothing sent."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.cli.common import EXIT_OK, check_model, load, log
from pipeline.config.endpoint import resolve_endpoint
from pipeline.core import logs
from pipeline.core.defaults import CONCURRENCY
from pipeline.core.errors import HostUnreachable


def add_plan(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def add_validate(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def run_validate(args: argparse.Namespace) -> int:
    from pipeline.readers.job import check_inputs
    from pipeline.shaping.tokens import estimate_text

    job = load(args)
    check_inputs(job)
    budget = job.chunk_budget(estimate_text)
    checked = check_model(job)
    logs.echo(
        f"{args.job}: ok. Job '{job.name}': model {job.spec.model.name} ({checked}), "
        f"{job.spec.chunking.strategy}, up to {budget:,} tokens a chunk, output "
        f"{job.output_url or job.output_path}"
    )
    return EXIT_OK


def run_plan(args: argparse.Namespace) -> int:
    from pipeline.engine.client import MessagesClient
    from pipeline.readers.job import check_inputs
    from pipeline.run import plan

    job = load(args)
    check_inputs(job)
    try:
        log.info("model %s: %s", job.spec.model.name, check_model(job))
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
        counter = MessagesClient(endpoint, concurrency=CONCURRENCY)
    made = plan.make_plan(job, counter=counter)
    if args.json:
        print(json.dumps(plan.as_dict(made, job.price, job.limits), indent=2))
    else:
        logs.echo(plan.render(made, job.price, job.limits))
    return EXIT_OK
