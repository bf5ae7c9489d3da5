"""HTTP to the Messages API: one shared ``httpx.AsyncClient`` per run.

This is the boundary where HTTP becomes the package's own types: a ``Reply``, or an error
from ``pipeline.core.errors`` decided by status code and API error type (never message text),
carrying the ``request-id``. httpx's exceptions are translated here and go no further.
The API key lives in an ``ApiKey``, which never shows its value in a repr, a log or an error;
it is checked once where it is found (``check_key``), and every text that comes from the server
or the transport is scrubbed of it (``redact``) before it becomes an error.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

# httpx2 (the anthropic SDK's HTTP stack since 2.16), under the name the code was written for:
# httpx 0.x's connection pool (httpcore 1.x) polled every idle socket on every request and
# cost 2-3x the SDK's CPU a request at 40 in flight (docs/benchmarks.md, client overhead).
import httpx2 as httpx
from httpx2 import EventSource, SSEError

from pipeline.core.version import __version__
from pipeline.core.errors import (
    AuthenticationFailed,
    BillingProblem,
    BrokenReply,
    ConfigError,
    Conflict,
    ConnectionFailed,
    InvalidRequest,
    ModelNotFound,
    NotOffered,
    Overloaded,
    PermissionDenied,
    PipelineError,
    RateLimited,
    ReplyTimedOut,
    RequestTimeout,
    RequestTooLarge,
    ServerError,
    SpendCapReached,
)
from pipeline.core.limits import MAX_PAUSE_S
from pipeline.core.models import Reply, Usage

API_VERSION = "2023-06-01"
ANTHROPIC_URL = "https://api.anthropic.com"
MEGALLM_URL = "https://ai.megallm.io"
KEY_VARIABLES = ("MEGALLM_API_KEY", "ANTHROPIC_API_KEY")
BASE_URL_VARIABLE = "ANTHROPIC_BASE_URL"
SPEND_CAP_CODE = "enforced_spend_limit_reached"

HeadersObserver = Callable[[Mapping[str, str]], None]
REDACTED = "**redacted**"

log = logging.getLogger("pipeline.client")


class ApiKey:
    """An API key that keeps itself out of reprs, logs and error messages."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "ApiKey('**redacted**')"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("an ApiKey is not pickled: it would write the key out")


@dataclass(frozen=True)
class Endpoint:
    base_url: str
    api_key: ApiKey = field(repr=False)
    key_source: str = "given"

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or self.base_url


def check_key(value: str, source: str) -> None:
    """Refuse a key that could not be sent as a header as it is: printable ASCII, no white
    space. The variable is named; the value is never shown (not even the bad character)."""
    for position, char in enumerate(value, 1):
        if "!" <= char <= "~":
            continue
        if char in "\r\n":
            what = "a line break"
        elif char in " \t" or char.isspace():
            what = "white space"
        elif not char.isascii():
            what = "a character that is not printable ASCII"
        else:
            what = "a control character"
        raise ConfigError(
            f"{source} holds {what} (character {position} of {len(value)}): an API key is "
            "printable ASCII with no white space. Set the variable to the key alone (a key file "
            "read with $(cat FILE) must hold only the key, no comment line)."
        )


def redact(text: str, key: ApiKey) -> str:
    """``text`` with every occurrence of the key's value replaced: the one scrub applied to
    what a server or the transport says before it becomes an error, a row or a report."""
    secret = key.reveal()
    return text.replace(secret, REDACTED) if secret and secret in text else text


def redact_error(error: PipelineError, key: ApiKey) -> PipelineError:
    """The error with the key scrubbed from every text it carries (in place; returned)."""
    error.message = redact(error.message, key)
    error.args = (error.message,)
    for name in ("error_type", "request_id"):
        value = getattr(error, name)
        if isinstance(value, str):
            setattr(error, name, redact(value, key))
    return error


def _json_of(response: httpx.Response, path: str) -> Any:
    """A 200 reply's body as JSON; a body that is not JSON is a broken reply."""
    try:
        return response.json()
    except ValueError as exc:
        raise BrokenReply(f"{path} replied with a body that is not JSON", status=200) from exc


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalise_base_url(url: str, *, allow_insecure: bool = False) -> str:
    """``https://host[:port][/prefix]``: no trailing slash or ``/v1`` (the paths add it)."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 -- a port that is not a number raises here, not later
    except ValueError:
        raise ConfigError(
            f"endpoint.base_url: is not a valid URL; use e.g. {MEGALLM_URL}"
        ) from None
    if "@" in parts.netloc:
        raise ConfigError(
            "endpoint.base_url: holds a user name or password (user:password@host); remove "
            "them: the key goes in its variable (endpoint.api_key_env), never in the URL, "
            "which is logged and reported"
        )
    shown = repr(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"endpoint.base_url: {shown} is not an http(s) URL; use e.g. {MEGALLM_URL}"
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname) and not allow_insecure:
        raise ConfigError(
            f"endpoint.base_url: {shown} is plain http to a host that is not this machine: "
            "the API key would cross the network unencrypted. Use https, or allow it "
            "explicitly with endpoint.allow_insecure_http = true."
        )
    path = parts.path.rstrip("/")
    path = path.removesuffix("/v1")
    return f"{parts.scheme}://{parts.netloc}{path}"


def resolve_endpoint(
    *,
    base_url: str | None = None,
    key_variable: str | None = None,
    env: Mapping[str, str] | None = None,
    allow_insecure: bool = False,
) -> Endpoint:
    """Find the key (the job's variable, else MEGALLM_API_KEY, else ANTHROPIC_API_KEY) and
    the base URL (given, else $ANTHROPIC_BASE_URL, else the provider the key belongs to)."""
    env = os.environ if env is None else env
    names = (key_variable, *KEY_VARIABLES) if key_variable else KEY_VARIABLES
    source = next((name for name in names if env.get(name, "").strip()), None)
    if source is None:
        wanted = " or ".join(f"${n}" for n in names)
        raise ConfigError(
            f"No API key: set {wanted} to your key, or add --simulate to run against the "
            "local simulator without one."
        )
    value = env[source].strip()
    check_key(value, f"${source}")
    default = MEGALLM_URL if source == "MEGALLM_API_KEY" else ANTHROPIC_URL
    url = base_url or env.get(BASE_URL_VARIABLE) or default
    return Endpoint(
        base_url=normalise_base_url(url, allow_insecure=allow_insecure),
        api_key=ApiKey(value),
        key_source=f"${source}",
    )


def read_timeout(max_tokens: int) -> float:
    """Long enough for a plain (non-streamed) reply of ``max_tokens`` at a slow 25 tokens/s."""
    return min(600.0, max(60.0, 30.0 + max_tokens / 25.0))


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """The server's wait in seconds (``retry-after-ms``, else ``retry-after``), or None when
    it gave none worth following: a wait of zero or less, or a date already past, would
    retry at once into a storm, so our own backoff applies instead, as the official SDK's;
    a value that is not a finite number is no wait either. A wait over ``MAX_PAUSE_S`` is
    cut to it, and logged: one reply must not be able to stop the run for ever."""
    millis = _seconds(headers.get("retry-after-ms"), scale=1000.0)
    seconds = millis if millis is not None else _seconds(headers.get("retry-after"))
    if seconds is not None and seconds > MAX_PAUSE_S:
        log.warning(
            "the server asked for a pause of %.0f s (retry-after); pausing %.0f s, the most "
            "a run waits on one reply",
            seconds,
            MAX_PAUSE_S,
            extra={"event": "retry_after_capped", "asked_s": seconds},
        )
        return MAX_PAUSE_S
    return seconds


def _seconds(value: str | None, *, scale: float = 1.0) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value) / scale
    except ValueError:
        if scale != 1.0:
            return None
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


def _should_retry(headers: Mapping[str, str]) -> bool | None:
    value = headers.get("x-should-retry", "").lower()
    return {"true": True, "false": False}.get(value)


def _error_from_status(
    status: int, body: Any, headers: Mapping[str, str], endpoint: Endpoint
) -> PipelineError:
    error = body.get("error") if isinstance(body, Mapping) else None
    error = error if isinstance(error, Mapping) else {}
    error_type = str(error.get("type") or "") or None
    message = str(error.get("message") or "") or f"HTTP {status} with no error message"
    request_id = headers.get("request-id") or (
        body.get("request_id") if isinstance(body, Mapping) else None
    )
    retry_after = _retry_after(headers)

    def make(kind: type[PipelineError], text: str) -> PipelineError:
        error = kind(
            text,
            status=status,
            error_type=error_type,
            request_id=str(request_id) if request_id is not None else None,
            retry_after=retry_after,
            should_retry=_should_retry(headers),
        )
        return redact_error(error, endpoint.api_key)

    where = endpoint.base_url
    if status == 401:
        return make(
            AuthenticationFailed,
            f"The API key from {endpoint.key_source} was refused by {where}: {message}. "
            "Check that the key is right for this endpoint.",
        )
    if status == 402:
        return make(BillingProblem, f"{where} refused to bill this account: {message}.")
    if status == 403:
        return make(
            PermissionDenied,
            f"The key may not do this at {where}: {message}. Check its permissions.",
        )
    if status == 404:
        return make(
            ModelNotFound,
            f"{where} answered 'not found': {message}. Check the model name (GET "
            f"{where}/v1/models lists them) and the base URL.",
        )
    if status == 429:
        top = body if isinstance(body, Mapping) else {}
        code = error.get("error_code") or top.get("error_code")
        if code == SPEND_CAP_CODE and retry_after is None:
            return make(
                SpendCapReached,
                f"The account's spend limit is reached at {where}: {message}. Raise the limit "
                "or wait for it to reset, then run again: finished work is kept.",
            )
        return make(RateLimited, message)
    if status == 413:
        return make(RequestTooLarge, message)
    if status == 408:
        return make(RequestTimeout, message)
    if status == 409:
        return make(Conflict, message)
    if status == 529:
        return make(Overloaded, message)
    if status >= 500:
        return make(ServerError, message)
    return make(InvalidRequest, message)


_JSON = {"content-type": "application/json"}


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


# A batch result's error carries a type but no HTTP status: the status each type comes with.
_STATUS_OF_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


@dataclass(frozen=True)
class BatchResult:
    """One line of a batch's results: a reply, an error, or ``canceled``/``expired``."""

    custom_id: str
    kind: str  # succeeded | errored | canceled | expired
    reply: Reply | None
    error: PipelineError | None


def _reply_from_message(message: Any, request_id: str | None) -> Reply:
    if not isinstance(message, Mapping) or message.get("type") != "message":
        raise BrokenReply(
            "The reply is not a Messages API message", status=200, request_id=request_id
        )
    content = message.get("content")
    return Reply(
        message_id=str(message.get("id", "")),
        model=str(message.get("model", "")),
        content=tuple(content) if isinstance(content, list) else (),
        stop_reason=message.get("stop_reason"),
        stop_sequence=message.get("stop_sequence"),
        usage=Usage.from_api(message.get("usage")),
        request_id=request_id,
    )


class _StreamAssembler:
    """Builds the final message from SSE events, as the SDK's ``get_final_message`` does."""

    def __init__(self, request_id: str | None) -> None:
        self.request_id = request_id
        self.message: dict[str, Any] | None = None
        self.partial_json: dict[int, str] = {}
        self.done = False

    def feed(self, event: str, data: Any) -> None:
        if event == "error":
            error = data.get("error", {}) if isinstance(data, Mapping) else {}
            kind = Overloaded if error.get("type") == "overloaded_error" else ServerError
            raise kind(
                f"The stream broke off with an error: {error.get('message', 'unknown')}",
                status=200,
                error_type=error.get("type"),
                request_id=self.request_id,
            )
        if event == "message_start":
            self.message = dict(data["message"])
            self.message["content"] = []
            return
        if self.message is None:
            return
        blocks: list[dict[str, Any]] = self.message["content"]
        if event == "content_block_start":
            blocks.append(dict(data["content_block"]))
        elif event == "content_block_delta":
            index, delta = data["index"], data["delta"]
            if delta.get("type") == "text_delta":
                blocks[index]["text"] = blocks[index].get("text", "") + delta["text"]
            elif delta.get("type") == "input_json_delta":
                self.partial_json[index] = self.partial_json.get(index, "") + delta["partial_json"]
        elif event == "content_block_stop":
            index = data["index"]
            if index in self.partial_json:
                blocks[index]["input"] = json.loads(self.partial_json.pop(index) or "{}")
        elif event == "message_delta":
            self.message.update(data.get("delta", {}))
            self.message["usage"] = {**self.message.get("usage", {}), **data.get("usage", {})}
        elif event == "message_stop":
            self.done = True

    def reply(self) -> Reply:
        if not self.done or self.message is None:
            raise BrokenReply(
                "The stream ended before the message was complete",
                status=200,
                request_id=self.request_id,
            )
        return _reply_from_message(self.message, self.request_id)


class MessagesClient:
    """Sends Messages API requests; use as ``async with MessagesClient(...) as client``."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        concurrency: int = 10,
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
        direct = parts.scheme == "http" and _is_loopback(parts.hostname or "")
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
        return _error_from_status(response.status_code, body, response.headers, self.endpoint)

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
                "/v1/messages",
                content=_body(params),
                headers=_JSON,
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
        return _reply_from_message(message, request_id)

    async def _create_streamed(
        self, params: Mapping[str, Any], max_tokens: int, on_headers: HeadersObserver | None
    ) -> Reply:
        body = _body({**params, "stream": True})
        async with self._http.stream(
            "POST", "/v1/messages", content=body, headers=_JSON, timeout=self._timeout(max_tokens)
        ) as response:
            if on_headers is not None:
                on_headers(response.headers)
            if response.status_code != 200:
                await response.aread()
                raise self._fail(response)
            assembler = _StreamAssembler(self._request_id(response))
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
            response = await self._http.post(
                "/v1/messages/count_tokens", content=_body(body), headers=_JSON
            )
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
            response = await self._http.request(method, path, content=content, headers=_JSON)
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
            return BatchResult(custom_id, kind, _reply_from_message(message, None), None)
        if kind == "errored":
            envelope = result.get("error")
            envelope = envelope if isinstance(envelope, Mapping) else {}
            inner = envelope.get("error")
            inner = inner if isinstance(inner, Mapping) else {}
            status = _STATUS_OF_TYPE.get(str(inner.get("type")), 500)
            error = _error_from_status(status, envelope, {}, self.endpoint)
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
