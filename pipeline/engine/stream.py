"""A reply as the package's ``Reply``: from a message's JSON, or assembled from a stream's
server-sent events as the SDK's ``get_final_message`` does."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pipeline.core.errors import BrokenReply, Overloaded, ServerError
from pipeline.core.models import Reply, Usage


def reply_from_message(message: Any, request_id: str | None) -> Reply:
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


class StreamAssembler:
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
        return reply_from_message(self.message, self.request_id)
