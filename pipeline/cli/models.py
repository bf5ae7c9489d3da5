"""``pipeline models``: what the endpoint serves, with the window, largest output and price
the project will use for each."""

from __future__ import annotations

import argparse
import json

from pipeline.cli.common import EXIT_FATAL, EXIT_OK, log
from pipeline.config.endpoint import ApiKey, Endpoint, resolve_endpoint
from pipeline.core.defaults import MODEL_SETS


def add_models(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def run_models(args: argparse.Namespace) -> int:
    from pipeline.engine import preflight
    from pipeline.simulator import SimulatorServer
    from pipeline.simulator.config import SimulatorConfig

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
