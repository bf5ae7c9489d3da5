"""A cheaper "is this idle connection still open?" for httpcore2's connection pool.

Before each request and after each reply, httpcore2's pool asks every idle keep-alive
connection whether its socket is readable (a server that closed it). On anyio each answer
builds the stream's attribute table (with a ``getpeername`` call) just to find the socket:
with 40 connections, most of them idle between calls, that was a third of the Engine's CPU
a request (docs/benchmarks.md, "Client CPU"). ``cheap_readability`` wraps the pool's own
network backend so that each stream keeps its socket and answers with the same check
(httpcore2's ``is_socket_readable``); every other call goes to the stream underneath.
httpcore2 is imported when the client is made, as httpx2 does (it imports trio, when that is
installed): not at a run's start.
"""

# The methods take httpcore2's interface as it is, a timeout argument included.
# ruff: noqa: ASYNC109

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterable
from typing import Any

import httpx2

Readable = Callable[[Any], bool]


class _Stream:
    """httpcore2's ``AsyncNetworkStream``, over another."""

    def __init__(self, inner: Any, readable: Readable, sock: Any = None) -> None:
        self._inner = inner
        self._readable = readable
        self._sock = sock if sock is not None else inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data: bytes = await self._inner.read(max_bytes, timeout)
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> _Stream:
        tls = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        return _Stream(tls, self._readable, self._sock)  # the same socket under the TLS layer

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable" and self._sock is not None:
            return self._readable(self._sock)
        return self._inner.get_extra_info(info)


class _Backend:
    """httpcore2's ``AsyncNetworkBackend``, over another: its streams are ``_Stream``s."""

    def __init__(self, inner: Any, readable: Readable) -> None:
        self.inner = inner
        self._readable = readable

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> _Stream:
        stream = await self.inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _Stream(stream, self._readable)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> _Stream:
        stream = await self.inner.connect_unix_socket(path, timeout, socket_options)
        return _Stream(stream, self._readable)

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


def cheap_readability(client: httpx2.AsyncClient) -> bool:
    """Wrap the network backend of ``client``'s own connection pool (not a transport a
    caller gave, nor a proxy's); False when httpx2 no longer has it where this looks."""
    import httpcore2  # what httpx2 has just imported to make the pool
    from httpcore2._utils import is_socket_readable

    pool = getattr(getattr(client, "_transport", None), "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if not isinstance(pool, httpcore2.AsyncConnectionPool) or backend is None:
        return False
    if not isinstance(backend, _Backend):
        wrapped: Any = _Backend(backend, is_socket_readable)
        pool._network_backend = wrapped
    return True
