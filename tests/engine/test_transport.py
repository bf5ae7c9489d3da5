"""The pool's check of idle connections (``pipeline.engine.transport``): the same answer as
httpcore2's, from the socket each stream keeps, and in use by the client's own pool."""

from __future__ import annotations

import socket
from typing import Any

import httpcore2
import pytest
from httpcore2._utils import is_socket_readable

from pipeline.config.endpoint import ApiKey, Endpoint
from pipeline.engine.client import MessagesClient
from pipeline.engine.transport import _Stream
from pipeline.simulator import SimulatorServer
from tests.engine.test_pool import make_calls


class Inner(httpcore2.AsyncNetworkStream):
    """A stream over one end of a socket pair; counts the questions it is asked."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.asked: list[str] = []

    def get_extra_info(self, info: str) -> Any:
        self.asked.append(info)
        return self.sock if info == "socket" else f"inner {info}"


def test_an_idle_connection_reads_as_closed_once_the_server_closes_it() -> None:
    ours, theirs = socket.socketpair()
    try:
        inner = Inner(ours)
        stream = _Stream(inner, is_socket_readable)
        assert stream.get_extra_info("is_readable") is False  # open, nothing sent
        theirs.close()
        assert stream.get_extra_info("is_readable") is True  # the next read returns b""
        assert inner.asked == ["socket"]  # the socket was found once, when made
        assert stream.get_extra_info("server_addr") == "inner server_addr"
    finally:
        ours.close()


@pytest.mark.anyio
async def test_the_clients_own_pool_makes_its_connections_so(simulator: SimulatorServer) -> None:
    endpoint = Endpoint(simulator.url, ApiKey(simulator.api_key))
    async with MessagesClient(endpoint, concurrency=4) as client:
        for call in make_calls(3):
            reply = await client.create(call.params)
            assert reply.content
        pool = client._http._transport._pool  # type: ignore[attr-defined]
        streams = [c._connection._network_stream for c in pool.connections]
    assert streams
    assert all(isinstance(stream, _Stream) for stream in streams)
