"""HTTP to the Messages API: one shared ``httpx.AsyncClient`` per run.

This is the boundary where HTTP becomes the package's own types: a ``Reply``, or an error
from ``pipeline.core.errors`` decided by status code and API error type (never message text),
carrying the ``request-id``. httpx's exceptions are translated here and go no further.
Every text that comes from the server or the transport is scrubbed of the key (``redact``,
``pipeline.config.endpoint``) before it becomes an error; what an error reply means is
``pipeline.engine.status``, a streamed reply is assembled by ``pipeline.engine.stream``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

# httpx2 (the anthropic SDK's HTTP stack since 2.16), under the name the code was written for:
# httpx 0.x's connection pool (httpcore 1.x) polled every idle socket on every request and
# cost 2-3x the SDK's CPU a request at 40 in flight (docs/benchmarks.md, client overhead).
import httpx2 as httpx
from httpx2 import EventSource, SSEError

from pipeline.config.endpoint import Endpoint, is_loopback, redact, redact_error
from pipeline.core.defaults import CONCURRENCY
from pipeline.core.errors import (
    BrokenReply,
    ConnectionFailed,
    InvalidRequest,
    NotOffered,
    PipelineError,
    ReplyTimedOut,
)
from pipeline.core.models import Reply
from pipeline.core.version import __version__
from pipeline.engine.status import STATUS_OF_TYPE, error_from_status
from pipeline.engine.stream import StreamAssembler, reply_from_message
from pipeline.engine.transport import cheap_readability

API_VERSION = "2023-06-01"

HeadersObserver = Callable[[Mapping[str, str]], None]


def _json_of(response: httpx.Response, path: str) -> Any:
    """A 200 reply's body as JSON; a body that is not JSON is a broken reply."""
    try:
        return response.json()
    except ValueError as exc:
        raise BrokenReply(f"{path} replied with a body that is not JSON", status=200) from exc


def read_timeout(max_tokens: int) -> float:
    """Long enough for a plain (non-streamed) reply of ``max_tokens`` at a slow 25 tokens/s."""
    return min(600.0, max(60.0, 30.0 + max_tokens / 25.0))


def _body(params: Mapping[str, Any]) -> bytes:
    """The request body as UTF-8 JSON. A body that cannot be encoded (a lone surrogate, a
    value JSON has no form for) is this request's problem, not the run's."""
    try:
        return json.dumps(params, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(
            f"The request could not be encoded as JSON ({type(exc).__name__}: {exc}); "
            "the document or the job's prompt holds text that cannot be sent"
        ) from exc


@dataclass(frozen=True)
class BatchResult:
    """One line of a batch's results: a reply, an error, or ``canceled``/``expired``."""

    custom_id: str
    kind: str  # succeeded | errored | canceled | expired
    reply: Reply | None
    error: PipelineError | None


class MessagesClient:
    """Sends Messages API requests; use as ``async with MessagesClient(...) as client``."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        concurrency: int = CONCURRENCY,
        transport: httpx.AsyncBaseTransport | None = None,
        connect_timeout: float = 10.0,
        read_timeout_s: float | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout_s
        parts = urlsplit(endpoint.base_url)
        # Plain http is allowed only to this machine: never through a proxy from the
        # environment ($http_proxy, $all_proxy), which would see the key in clear.
        direct = parts.scheme == "http" and is_loopback(parts.hostname or "")
        self._http = httpx.AsyncClient(
            base_url=endpoint.base_url,
            headers={
                "x-api-key": endpoint.api_key.reveal(),
                "anthropic-version": API_VERSION,
                "content-type": "application/json",
                "user-agent": f"pipeline/{__version__} (batch document processing)",
            },
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            timeout=httpx.Timeout(60.0, connect=connect_timeout),
            transport=transport,
            trust_env=not direct,
        )
        if transport is None:  # a transport of the caller's (a test's) is used as it is
            cheap_readability(self._http)
        # Merged with the base URL once: httpx parses a relative URL and merges it into the
        # base on every request, which costs more than building the rest of the request.
        self._messages_url = self._http.build_request("POST", "/v1/messages").url

    def __repr__(self) -> str:
        return f"MessagesClient(base_url={self.endpoint.base_url!r})"

    async def __aenter__(self) -> MessagesClient:
        await self._http.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._http.__aexit__(exc_type, exc, tb)

    def _timeout(self, max_tokens: int) -> httpx.Timeout:
        read = self._read_timeout or read_timeout(max_tokens)
        return httpx.Timeout(read, connect=self._connect_timeout)

    def _fail(self, response: httpx.Response) -> PipelineError:
        try:
            body = response.json()
        except ValueError:
            body = None
        return error_from_status(response.status_code, body, response.headers, self.endpoint)

    def _translate(self, exc: httpx.HTTPError) -> PipelineError:
        host = self.endpoint.host
        error: PipelineError
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            error = ConnectionFailed(f"Could not connect to {host}: {exc or type(exc).__name__}")
        elif isinstance(exc, httpx.TimeoutException):
            error = ReplyTimedOut(f"{host} did not reply in time ({type(exc).__name__})")
        else:
            error = BrokenReply(f"The connection to {host} broke: {exc or type(exc).__name__}")
        return redact_error(error, self.endpoint.api_key)

    def _request_id(self, response: httpx.Response) -> str | None:
        found = response.headers.get("request-id")
        return None if found is None else redact(found, self.endpoint.api_key)

    async def create(
        self,
        params: Mapping[str, Any],
        *,
        stream: bool = False,
        on_headers: HeadersObserver | None = None,
    ) -> Reply:
        """POST /v1/messages and return the reply, or raise the matching error."""
        max_tokens = int(params.get("max_tokens", 1024))
        try:
            if stream:
                return await self._create_streamed(params, max_tokens, on_headers)
            response = await self._http.post(
                self._messages_url,
                content=_body(params),
                timeout=self._timeout(max_tokens),
            )
        except httpx.HTTPError as exc:
            raise self._translate(exc) from exc
        except PipelineError as exc:  # a stream that broke off: the server's words
            redact_error(exc, self.endpoint.api_key)
            raise
        if on_headers is not None:
            on_headers(response.headers)
        if response.status_code != 200:
            raise self._fail(response)
        request_id = self._request_id(response)
        try:
            message = response.json()
        except ValueError as exc:
            raise BrokenReply(
                "The reply's body is not JSON", status=200, request_id=request_id
            ) from exc
        return reply_from_message(message, request_id)

    async def _create_streamed(
        self, params: Mapping[str, Any], max_tokens: int, on_headers: HeadersObserver | None
    ) -> Reply:
        body = _body({**params, "stream": True})
        async with self._http.stream(
            "POST", self._messages_url, content=body, timeout=self._timeout(max_tokens)
        ) as response:
            if on_headers is not None:
                on_headers(response.headers)
            if response.status_code != 200:
                await response.aread()
                raise self._fail(response)
            assembler = StreamAssembler(self._request_id(response))
            try:
                async for event in EventSource(response, max_event_size=None):
                    assembler.feed(event.event, json.loads(event.data) if event.data else {})
            except (SSEError, ValueError, KeyError, IndexError, TypeError) as exc:
                raise BrokenReply(
                    f"The stream could not be read: {exc}",
                    status=200,
                    request_id=assembler.request_id,
                ) from exc
            return assembler.reply()

    async def count_tokens(self, params: Mapping[str, Any]) -> int:
        """Exact input tokens of a request, from POST /v1/messages/count_tokens (free).
        ``NotOffered`` when the server has no such endpoint (a gateway may not)."""
        wanted = ("model", "messages", "system", "tools", "tool_choice")
        body = {key: params[key] for key in wanted if key in params}
        try:
            response = await self._http.post("/v1/messages/count_tokens", content=_body(body))
        except httpx.HTTPError as exc:
            raise self._translate(exc) from exc
        if response.status_code == 404:
            raise NotOffered(
                f"{self.endpoint.host} has no /v1/messages/count_tokens (it answered 404)",
                status=404,
                request_id=response.headers.get("request-id"),
            )
        if response.status_code != 200:
            raise self._fail(response)
        try:
            return int(response.json()["input_tokens"])
        except (ValueError, KeyError, TypeError) as exc:
            raise BrokenReply("count_tokens replied without input_tokens", status=200) from exc

    # ---- Message Batches ----------------------------------------------------------------

    async def _json(self, method: str, path: str, body: Any = None) -> Mapping[str, Any]:
        try:
            content = None if body is None else _body(body)
            response = await self._http.request(method, path, content=content)
        except httpx.HTTPError as exc:
            raise self._translate(exc) from exc
        if response.status_code != 200:
            raise self._fail(response)
        found = _json_of(response, path)
        if not isinstance(found, Mapping):
            raise BrokenReply(f"{path} replied with JSON that is not an object", status=200)
        return found

    async def create_batch(self, requests: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
        """POST /v1/messages/batches: ``requests`` are ``{custom_id, params}``."""
        return await self._json("POST", "/v1/messages/batches", {"requests": requests})

    async def get_batch(self, batch_id: str) -> Mapping[str, Any]:
        return await self._json("GET", f"/v1/messages/batches/{batch_id}")

    async def batch_results(self, batch_id: str) -> AsyncIterator[BatchResult]:
        """The results of an ended batch, one at a time as the JSONL arrives."""
        path = f"/v1/messages/batches/{batch_id}/results"
        try:
            async with self._http.stream("GET", path) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise self._fail(response)
                async for line in response.aiter_lines():
                    if line.strip():
                        yield self._batch_result(line)
        except httpx.HTTPError as exc:
            raise self._translate(exc) from exc

    def _batch_result(self, line: str) -> BatchResult:
        try:
            entry = json.loads(line)
            custom_id, result = str(entry["custom_id"]), entry["result"]
            kind = str(result["type"])
        except (ValueError, KeyError, TypeError) as exc:
            raise BrokenReply("a batch result line is not what the API sends", status=200) from exc
        if kind == "succeeded":
            message = result.get("message")
            return BatchResult(custom_id, kind, reply_from_message(message, None), None)
        if kind == "errored":
            envelope = result.get("error")
            envelope = envelope if isinstance(envelope, Mapping) else {}
            inner = envelope.get("error")
            inner = inner if isinstance(inner, Mapping) else {}
            status = STATUS_OF_TYPE.get(str(inner.get("type")), 500)
            error = error_from_status(status, envelope, {}, self.endpoint)
            return BatchResult(custom_id, kind, None, error)
        return BatchResult(custom_id, kind, None, None)  # canceled, expired: not billed

    async def get_json(
        self, path: str, params: Mapping[str, str | int] | None = None
    ) -> Mapping[str, Any] | None:
        """GET ``path`` as a JSON object; None when the server has no such thing (404), as a
        gateway may not offer ``/v1/models`` or Message Batches."""
        try:
            response = await self._http.get(path, params=params)
        except httpx.HTTPError as exc:
            raise self._translate(exc) from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._fail(response)
        found = _json_of(response, path)
        return found if isinstance(found, Mapping) else None

    async def check(self) -> None:
        """Fail fast before a run: is the host reachable, and is the key accepted?

        ``GET /v1/models`` costs nothing. A gateway that does not serve it (404) passes.
        """
        try:
            response = await self._http.get("/v1/models", params={"limit": 1})
        except httpx.HTTPError as exc:
            raise self._translate(exc) from exc
        if response.status_code in (401, 402, 403):
            raise self._fail(response)
