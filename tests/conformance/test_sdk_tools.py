"""The official SDK's tool loop against the simulator: ``tool_use`` replies with
``tool_choice`` auto, ``tool_result`` turns sent back (plain and streamed), and the API's
pairing rule as the SDK's own error class."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from pipeline.simulator import SimulatorConfig
from tests.conformance.test_sdk import MODEL, make_client
from tests.conftest import TEST_MODELS, StartSimulator

pytestmark = pytest.mark.conformance

TOOLS: list[Any] = [
    {
        "name": "read_file",
        "description": "Open a file of the repository.",
        "input_schema": {
            "type": "object",
            "required": ["path"],
            "properties": {"path": {"type": "string"}},
        },
    },
    {
        "name": "report_findings",
        "description": "Report the review's findings.",
        "input_schema": {
            "type": "object",
            "required": ["findings"],
            "properties": {"findings": {"type": "array", "items": {"type": "string"}}},
        },
    },
]
PROMPT = "Review app/cli.py, which calls app/store.py."


def _loop(client: anthropic.Anthropic, *, stream: bool) -> list[anthropic.types.Message]:
    messages: list[Any] = [{"role": "user", "content": PROMPT}]
    replies: list[anthropic.types.Message] = []
    while len(replies) < 10:
        kwargs: dict[str, Any] = {
            "model": MODEL,
            "max_tokens": 400,
            "messages": messages,
            "tools": TOOLS,
            "tool_choice": {"type": "auto"},
        }
        if stream:
            with client.messages.stream(**kwargs) as events:
                reply = events.get_final_message()
        else:
            reply = client.messages.create(**kwargs)
        replies.append(reply)
        use = reply.content[0]
        assert isinstance(use, anthropic.types.ToolUseBlock)
        if use.name == "report_findings":
            return replies
        messages.append({"role": "assistant", "content": reply.content})
        result = {"type": "tool_result", "tool_use_id": use.id, "content": f"{use.input}: ok"}
        messages.append({"role": "user", "content": [result]})
    raise AssertionError("no answer after 10 rounds")


@pytest.mark.parametrize("stream", [False, True])
def test_the_sdk_runs_a_tool_loop(start_simulator: StartSimulator, stream: bool) -> None:
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, tool_rounds=(2, 2)))
    with make_client(server) as client:
        replies = _loop(client, stream=stream)
    assert [r.stop_reason for r in replies] == ["tool_use"] * 3
    calls = [r.content[0] for r in replies]
    uses = [c for c in calls if isinstance(c, anthropic.types.ToolUseBlock)]
    assert [c.name for c in uses] == ["read_file", "read_file", "report_findings"]
    inputs: list[Any] = [c.input for c in uses]
    for arguments in inputs[:2]:
        assert arguments["path"] in ("app/cli.py", "app/store.py")  # named in the prompt
    assert isinstance(inputs[2]["findings"], list)
    assert len({c.id for c in uses}) == 3


def test_an_unanswered_tool_use_is_a_bad_request(start_simulator: StartSimulator) -> None:
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, tool_rounds=(1, 1)))
    with make_client(server) as client:
        first = client.messages.create(
            model=MODEL,
            max_tokens=400,
            messages=[{"role": "user", "content": PROMPT}],
            tools=TOOLS,
        )
        assert first.stop_reason == "tool_use"
        with pytest.raises(anthropic.BadRequestError, match="without `tool_result` blocks"):
            client.messages.create(
                model=MODEL,
                max_tokens=400,
                messages=[
                    {"role": "user", "content": PROMPT},
                    {"role": "assistant", "content": first.content},
                    {"role": "user", "content": "go on"},
                ],
                tools=TOOLS,
            )
