"""Loopback servers an attacker would stand up, and a small job to run against them.

``Loopback`` is a plain HTTP server on 127.0.0.1 that answers with whatever its handler says
and records every request it gets (request line and headers): a gateway that echoes the key,
one that sends absurd ``retry-after`` values, or a capture proxy."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

KEY = "sk-ant-api03-HARDENING-5c1e9f0a7b2d4e6f-QQLEAKQQ"


@dataclass(frozen=True)
class Seen:
    method: str
    target: str  # as sent: an absolute URL when it came through as a proxy request
    headers: dict[str, str]


# (method, target, headers) -> (status, headers, body)
Answer = tuple[int, dict[str, str], bytes]
Handler = Callable[[Seen], Answer]


@dataclass
class Loopback:
    handler: Handler
    seen: list[Seen] = field(default_factory=list)
    url: str = ""


def message_reply(text: str = "fine") -> Answer:
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 3},
    }
    return 200, {"content-type": "application/json"}, json.dumps(body).encode()


def error_reply(status: int, kind: str, message: str, **headers: str) -> Answer:
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return status, {"content-type": "application/json", **headers}, json.dumps(body).encode()


@contextmanager
def loopback(handler: Handler) -> Iterator[Loopback]:
    state = Loopback(handler)

    class Answerer(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
            state.seen.append(seen)
            status, headers, body = state.handler(seen)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answerer)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def small_job(folder: Path, docs: Path, **extra: str) -> Path:
    """A job over ``docs``: plain summaries with the haiku model; ``extra`` adds
    ``section.field = value`` lines (values already TOML)."""
    sections: dict[str, list[str]] = {}
    for dotted, value in extra.items():
        section, _, name = dotted.partition("__")
        sections.setdefault(section, []).append(f"{name} = {value}")
    text = [
        "[inputs]",
        f"paths = [{json.dumps(str(docs))}]",
        *sections.pop("inputs", []),
        "[prompt]",
        *(sections.pop("prompt", None) or ['template = "Summarize: {text}"']),
        "[model]",
        'name = "claude-haiku-4-5"',
        "max_tokens = 100",
    ]
    for section, lines in sections.items():
        text += [f"[{section}]", *lines]
    path = folder / "job.toml"
    path.write_text("\n".join(text) + "\n")
    return path
