"""HTTP for Message Batches: create, retrieve, list, cancel, delete and the JSONL results.

The decisions are the ``BatchStore``'s (``batches.py``); this module reads requests and
writes responses. Batch endpoints need a key like every ``/v1`` route but take nothing from
the per-minute rate limits.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline.simulator.service import Simulator
from pipeline.simulator.web import Endpoint, page, read_json

BATCHES = "/v1/messages/batches"


def batch_routes(sim: Simulator, endpoint: Endpoint) -> list[Route]:
    handlers = _BatchApi(sim)
    one = BATCHES + "/{batch_id}"
    return [
        Route(BATCHES, endpoint("batches", handlers.create), methods=["POST"]),
        Route(BATCHES, endpoint("batches", handlers.listing), methods=["GET"]),
        Route(one, endpoint("batches", handlers.retrieve), methods=["GET"]),
        Route(one, endpoint("batches", handlers.delete), methods=["DELETE"]),
        Route(one + "/cancel", endpoint("batches", handlers.cancel), methods=["POST"]),
        Route(one + "/results", endpoint("batch_results", handlers.results), methods=["GET"]),
    ]


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


class _BatchApi:
    """The batch routes' handlers over one ``Simulator``."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def headers(self, request_id: str) -> dict[str, str]:
        return {**self.sim.rate_limit_headers(), "request-id": request_id}

    def shown(self, request: Request, request_id: str, batch_id: str, key: str) -> Response:
        batch = self.sim.batches.get(key, batch_id)
        view = self.sim.batches.view(batch, base_url=_base_url(request))
        return JSONResponse(view, headers=self.headers(request_id))

    async def create(self, request: Request, request_id: str) -> Response:
        key = self.sim.authenticate(request.headers)
        body = await read_json(request, limit=self.sim.config.batches.max_body_bytes)
        batch = self.sim.batches.create(key, body)
        return self.shown(request, request_id, batch.id, key)

    async def retrieve(self, request: Request, request_id: str) -> Response:
        key = self.sim.authenticate(request.headers)
        return self.shown(request, request_id, request.path_params["batch_id"], key)

    async def listing(self, request: Request, request_id: str) -> Response:
        batches = self.sim.batches
        key = self.sim.authenticate(request.headers)
        views = [batches.view(b, base_url=_base_url(request)) for b in batches.listing(key)]
        return JSONResponse(page(views, request.query_params), headers=self.headers(request_id))

    async def cancel(self, request: Request, request_id: str) -> Response:
        key = self.sim.authenticate(request.headers)
        batch = self.sim.batches.cancel(key, request.path_params["batch_id"])
        return self.shown(request, request_id, batch.id, key)

    async def delete(self, request: Request, request_id: str) -> Response:
        key = self.sim.authenticate(request.headers)
        batch_id = request.path_params["batch_id"]
        self.sim.batches.delete(key, batch_id)
        body = {"id": batch_id, "type": "message_batch_deleted"}
        return JSONResponse(body, headers=self.headers(request_id))

    async def results(self, request: Request, request_id: str) -> Response:
        key = self.sim.authenticate(request.headers)
        lines = self.sim.batches.results(key, request.path_params["batch_id"])
        content = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
        return Response(content, media_type="application/binary", headers=self.headers(request_id))
