"""HTTP for the simulator: an ASGI app (Starlette) over a ``Simulator``.

Routes: ``POST /v1/messages`` (plain and SSE), ``POST /v1/messages/count_tokens``,
``GET /v1/models`` and ``/v1/models/{id}``, the Message Batches routes
(``batch_routes.py``); outside ``/v1``, ``GET /_simulator/stats`` and
``POST /_simulator/reset`` for tests and benchmarks. Every response carries ``request-id``
and the ``anthropic-ratelimit-*`` headers.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from pipeline.core.catalogue import Model
from pipeline.simulator.batch_routes import batch_routes
from pipeline.simulator.config import MAX_BODY_BYTES
from pipeline.simulator.envelope import ApiError, api_error, new_id, overloaded, rate_limited
from pipeline.simulator.replies import message_body, sse, stream_events
from pipeline.simulator.service import Simulator, Ticket
from pipeline.simulator.validation import validate_count_tokens, validate_messages
from pipeline.simulator.web import Handler, RouteHandler, page, read_json

# A dropped connection is made by returning from the ASGI callable before the body is
# complete; uvicorn then closes the socket and logs this line, which here is on purpose.
_DROP_LOG = "ASGI callable returned without completing response."


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _DROP_LOG


def quiet_intentional_drops() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _QuietDrops) for f in logger.filters):
        logger.addFilter(_QuietDrops())


async def _hold(receive: Receive, seconds: float) -> bool:
    """Wait ``seconds``; return True at once if the client goes away meanwhile."""
    if seconds <= 0:
        return False
    disconnected = False
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            nonlocal disconnected
            while (await receive())["type"] != "http.disconnect":
                pass
            disconnected = True
            group.cancel_scope.cancel()

        group.start_soon(watch)
        await anyio.sleep(seconds)
        group.cancel_scope.cancel()
    return disconnected


class _Reply(Response):
    """A reply sent by hand, so that a ``drop`` fault can cut it part-way."""

    def __init__(self, sim: Simulator, ticket: Ticket, headers: dict[str, str]) -> None:
        super().__init__(status_code=200, headers=headers)
        self.sim = sim
        self.ticket = ticket

    def _start(self, content_type: str, length: int | None = None) -> dict[str, Any]:
        headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        headers.append((b"content-type", content_type.encode()))
        if length is not None:
            headers.append((b"content-length", str(length).encode()))
        return {"type": "http.response.start", "status": 200, "headers": headers}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.ticket.request.stream:
            await self._stream(receive, send)
        else:
            await self._plain(receive, send)

    async def _plain(self, receive: Receive, send: Send) -> None:
        sim, ticket = self.sim, self.ticket
        output_tokens = ticket.reply.output_tokens
        if await _hold(receive, sim.config.latency.seconds(output_tokens)):
            sim.finish(ticket, output_tokens=0, refund_input=True)
            return
        sim.served(ticket)
        sim.finish(ticket, output_tokens=output_tokens, refund_input=False)
        body = json.dumps(
            message_body(
                ticket.reply,
                message_id=new_id("msg"),
                model=ticket.request.model,
                billed=ticket.billed,
            )
        ).encode()
        if ticket.fault == "truncated":
            body = body[: len(body) // 2]  # a complete response whose JSON is cut short
        await send(self._start("application/json", len(body)))
        if ticket.fault == "drop":
            await send(
                {"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True}
            )
            return
        await send({"type": "http.response.body", "body": body})

    async def _stream(self, receive: Receive, send: Send) -> None:
        sim, ticket = self.sim, self.ticket
        latency = sim.config.latency
        events = list(
            stream_events(
                ticket.reply,
                message_id=new_id("msg"),
                model=ticket.request.model,
                billed=ticket.billed,
            )
        )
        cut = len(events) // 2 if ticket.fault in ("drop", "stream_error", "truncated") else None
        await send(self._start("text/event-stream; charset=utf-8"))
        produced = 0
        gone = await _hold(receive, latency.fixed)
        for index, (event, tokens) in enumerate(events):
            if gone:
                break
            if index == cut:
                if ticket.fault in ("drop", "truncated"):
                    sim.served(ticket)
                    sim.finish(ticket, output_tokens=ticket.reply.output_tokens, refund_input=False)
                    if ticket.fault == "truncated":  # the stream ends cleanly, unfinished
                        await send({"type": "http.response.body", "body": b""})
                    return  # a drop: the connection is cut mid-stream
                error = {
                    "type": "error",
                    "error": {"type": "overloaded_error", "message": "Overloaded"},
                }
                await send(
                    {"type": "http.response.body", "body": sse("error", error), "more_body": True}
                )
                break
            await send({"type": "http.response.body", "body": event, "more_body": True})
            produced += tokens
            gone = await _hold(receive, latency.per_output_token * tokens)
        else:
            sim.served(ticket)
            sim.finish(ticket, output_tokens=ticket.reply.output_tokens, refund_input=False)
            await send({"type": "http.response.body", "body": b""})
            return
        sim.finish(ticket, output_tokens=0, refund_input=True)
        if not gone:
            await send({"type": "http.response.body", "body": b""})


def create_app(sim: Simulator) -> Starlette:
    api = _Api(sim)
    endpoint = api.endpoint
    counting = Route(
        "/v1/messages/count_tokens", endpoint("count_tokens", api.count_tokens), methods=["POST"]
    )
    routes = [
        Route("/v1/messages", endpoint("messages", api.messages), methods=["POST"]),
        *([counting] if sim.config.count_tokens else []),
        Route("/v1/models", endpoint("models", api.list_models), methods=["GET"]),
        Route("/v1/models/{model_id}", endpoint("models", api.get_model), methods=["GET"]),
        *(batch_routes(sim, endpoint) if sim.config.message_batches else []),
        Route("/_simulator/stats", api.stats, methods=["GET"]),
        Route("/_simulator/reset", api.reset, methods=["POST"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: api.not_found})


def _model_entry(model: Model) -> dict[str, Any]:
    return {
        "type": "model",
        "id": model.id,
        "display_name": model.display_name,
        "created_at": model.created_at,
        "max_input_tokens": model.window,
        "max_tokens": model.max_output,
    }


class _Api:
    """The routes' handlers over one ``Simulator``."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def error_response(self, err: ApiError, request_id: str) -> JSONResponse:
        headers = {**self.sim.rate_limit_headers(), **err.headers, "request-id": request_id}
        return JSONResponse(err.body(request_id), status_code=err.status, headers=headers)

    def endpoint(self, name: str, handler: RouteHandler) -> Handler:
        async def wrapped(request: Request) -> Response:
            request_id = new_id("req")
            try:
                response = await handler(request, request_id)
            except ApiError as err:
                response = self.error_response(err, request_id)
            self.sim.stats.response(name, response.status_code)
            return response

        return wrapped

    async def messages(self, request: Request, request_id: str) -> Response:
        sim = self.sim
        api_key = sim.authenticate(request.headers)
        parsed = validate_messages(
            await read_json(request, limit=MAX_BODY_BYTES),
            token_scale=sim.config.token_scale,
            served=sim.config.served,
        )
        ticket = sim.admit(parsed, api_key=api_key)
        if ticket.fault in ("overloaded", "api_error", "rate_limited"):
            sim.finish(ticket, output_tokens=0, refund_input=True)
            if ticket.fault == "rate_limited":
                raise rate_limited(sim.config.faults.rate_limited_retry_after)
            raise overloaded() if ticket.fault == "overloaded" else api_error()
        if ticket.fault == "slow" and await _hold(request.receive, sim.config.faults.slow_seconds):
            sim.finish(ticket, output_tokens=0, refund_input=True)
            return Response(status_code=499)  # the client gave up; nobody reads this
        headers = {**sim.rate_limit_headers(), "request-id": request_id}
        return _Reply(sim, ticket, headers)

    async def count_tokens(self, request: Request, request_id: str) -> Response:
        sim = self.sim
        sim.authenticate(request.headers)
        tokens = validate_count_tokens(
            await read_json(request, limit=MAX_BODY_BYTES),
            token_scale=sim.config.token_scale,
            served=sim.config.served,
        )
        sim.admit_count()
        headers = {**sim.rate_limit_headers(), "request-id": request_id}
        return JSONResponse({"input_tokens": tokens}, headers=headers)

    async def list_models(self, request: Request, request_id: str) -> Response:
        sim = self.sim
        sim.authenticate(request.headers)
        entries = [_model_entry(m) for m in sim.config.served.models]
        body = page(entries, request.query_params)
        return JSONResponse(body, headers={**sim.rate_limit_headers(), "request-id": request_id})

    async def get_model(self, request: Request, request_id: str) -> Response:
        sim = self.sim
        sim.authenticate(request.headers)
        wanted = request.path_params["model_id"]
        model = sim.config.served.resolve(wanted)
        if model is None:
            raise ApiError(404, "not_found_error", f"model: {wanted}")
        headers = {**sim.rate_limit_headers(), "request-id": request_id}
        return JSONResponse(_model_entry(model), headers=headers)

    async def stats(self, request: Request) -> Response:
        body = self.sim.stats.as_dict()
        body["limits"] = {k: v for k, v in vars(self.sim.config.limits).items() if v is not None}
        return JSONResponse(body)

    async def reset(self, request: Request) -> Response:
        self.sim.reset()
        return JSONResponse({"reset": True})

    async def not_found(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        err = (
            ApiError(405, "invalid_request_error", f"Method {request.method} not allowed")
            if status == 405
            else ApiError(404, "not_found_error", f"Not found: {request.url.path}")
        )
        return self.error_response(err, new_id("req"))
