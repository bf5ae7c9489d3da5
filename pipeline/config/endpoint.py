"""Where the calls go and with which key: the endpoint, resolved once before a run.

The API key lives in an ``ApiKey``, which never shows its value in a repr, a log or an error;
it is checked once where it is found (``check_key``), and every text that comes from the server
or the transport is scrubbed of it (``redact``) before it becomes an error. The base URL is
checked when the job is loaded (``normalise_base_url``): https, or plain http to this machine.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from pipeline.core.errors import ConfigError, PipelineError

ANTHROPIC_URL = "https://api.anthropic.com"
MEGALLM_URL = "https://ai.megallm.io"
KEY_VARIABLES = ("MEGALLM_API_KEY", "ANTHROPIC_API_KEY")
BASE_URL_VARIABLE = "ANTHROPIC_BASE_URL"
REDACTED = "**redacted**"


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


def is_loopback(host: str) -> bool:
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
    if parts.scheme == "http" and not is_loopback(parts.hostname) and not allow_insecure:
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
