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
    def headers(request_id: str) -> dict[str, str]:
        return {**sim.rate_limit_headers(), "request-id": request_id}

    def base_url(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def shown(request: Request, request_id: str, batch_id: str, key: str) -> Response:
        batch = sim.batches.get(key, batch_id)
        view = sim.batches.view(batch, base_url=base_url(request))
        return JSONResponse(view, headers=headers(request_id))

    async def create(request: Request, request_id: str) -> Response:
        key = sim.authenticate(request.headers)
        body = await read_json(request, limit=sim.config.batches.max_body_bytes)
        batch = sim.batches.create(key, body)
        return shown(request, request_id, batch.id, key)

    async def retrieve(request: Request, request_id: str) -> Response:
        key = sim.authenticate(request.headers)
        return shown(request, request_id, request.path_params["batch_id"], key)

    async def listing(request: Request, request_id: str) -> Response:
        key = sim.authenticate(request.headers)
        views = [sim.batches.view(b, base_url=base_url(request)) for b in sim.batches.listing(key)]
        return JSONResponse(page(views, request.query_params), headers=headers(request_id))

    async def cancel(request: Request, request_id: str) -> Response:
        key = sim.authenticate(request.headers)
        batch = sim.batches.cancel(key, request.path_params["batch_id"])
        return shown(request, request_id, batch.id, key)

    async def delete(request: Request, request_id: str) -> Response:
        key = sim.authenticate(request.headers)
        batch_id = request.path_params["batch_id"]
        sim.batches.delete(key, batch_id)
        body = {"id": batch_id, "type": "message_batch_deleted"}
        return JSONResponse(body, headers=headers(request_id))

    async def results(request: Request, request_id: str) -> Response:
        key = sim.authenticate(request.headers)
        lines = sim.batches.results(key, request.path_params["batch_id"])
        content = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
        return Response(content, media_type="application/binary", headers=headers(request_id))

    one = BATCHES + "/{batch_id}"
    return [
        Route(BATCHES, endpoint("batches", create), methods=["POST"]),
        Route(BATCHES, endpoint("batches", listing), methods=["GET"]),
        Route(one, endpoint("batches", retrieve), methods=["GET"]),
        Route(one, endpoint("batches", delete), methods=["DELETE"]),
        Route(one + "/cancel", endpoint("batches", cancel), methods=["POST"]),
        Route(one + "/results", endpoint("batch_results", results), methods=["GET"]),
    ]
