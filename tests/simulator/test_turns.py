"""Tool use in auto mode: a few deterministic rounds of the helper tools, then the answer tool
(or text); tool_result turns accepted, and the pairing the real API demands enforced."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from pipeline.simulator import SimulatorConfig, SimulatorServer
from tests.conftest import TEST_MODELS, StartSimulator
from tests.simulator.support import body, call, error_of

READ = {
    "name": "read_file",
    "description": "Read a file",
    "input_schema": {
        "type": "object",
        "required": ["path"],
        "properties": {"path": {"type": "string"}, "start_line": {"type": "integer"}},
    },
}
SEARCH = {
    "name": "search",
    "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}},
}
ANSWER = {
    "name": "report",
    "input_schema": {
        "type": "object",
        "required": ["findings"],
        "properties": {"findings": {"type": "array", "items": {"type": "string"}}},
    },
}
FIRST = "Review pkg/cli.py: it calls Store.add (see pkg/store.py) with price_cents."


def _converse(server: SimulatorServer, tools: list[dict[str, Any]], **extra: Any) -> list[Any]:
    """Run the conversation to its end, answering each tool call; the replies in order."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": FIRST}]
    replies = []
    for _ in range(20):
        reply = call(server, body(messages=messages, tools=tools, **extra)).json()
        replies.append(reply)
        uses = [b for b in reply["content"] if b["type"] == "tool_use"]
        if not uses or uses[0]["name"] == "report":
            return replies
        messages += [
            {"role": "assistant", "content": reply["content"]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": u["id"], "content": "ok"} for u in uses
                ],
            },
        ]
    raise AssertionError("the conversation did not end")


@pytest.mark.parametrize("rounds", [0, 1, 4])
def test_auto_mode_calls_helpers_for_its_rounds_then_the_answer_tool(
    start_simulator: StartSimulator, rounds: int
) -> None:
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, tool_rounds=(rounds, rounds)))
    replies = _converse(server, [READ, SEARCH, ANSWER], tool_choice={"type": "auto"})
    names = [r["content"][0]["name"] for r in replies]
    assert names[:-1] == [n for n in names[:-1] if n in ("read_file", "search")]
    assert len(names) == rounds + 1
    assert names[-1] == "report"
    assert all(r["stop_reason"] == "tool_use" for r in replies)
    jsonschema.validate(replies[-1]["content"][0]["input"], ANSWER["input_schema"])


def test_the_arguments_name_what_the_conversation_mentions(start_simulator: StartSimulator) -> None:
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, tool_rounds=(6, 6)))
    replies = _converse(server, [READ, SEARCH, ANSWER])  # no tool_choice: auto, as in the API
    inputs = [r["content"][0]["input"] for r in replies[:-1]]
    paths = {i["path"] for i in inputs if "path" in i}
    queries = {i["query"] for i in inputs if "query" in i}
    assert paths
    assert paths <= {"pkg/cli.py", "pkg/store.py"}
    assert queries
    assert queries <= {"Review", "Store", "calls", "price_cents", "store", "with"}


def test_one_tool_in_auto_mode_ends_in_text(start_simulator: StartSimulator) -> None:
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, tool_rounds=(2, 2)))
    replies = _converse(server, [READ], tool_choice={"type": "auto"})
    assert [r["stop_reason"] for r in replies] == ["tool_use", "tool_use", "end_turn"]
    assert replies[-1]["content"][0]["type"] == "text"


def test_the_same_conversation_gets_the_same_calls(simulator: SimulatorServer) -> None:
    tools = [READ, SEARCH, ANSWER]
    first = [r["content"] for r in _converse(simulator, tools)]
    again = [r["content"] for r in _converse(simulator, tools)]
    for one, two in zip(first, again, strict=True):
        assert [(b["name"], b["input"]) for b in one] == [(b["name"], b["input"]) for b in two]


def test_none_and_forced_choices_are_as_before(simulator: SimulatorServer) -> None:
    reply = call(simulator, body(tools=[READ, ANSWER], tool_choice={"type": "none"})).json()
    assert reply["content"][0]["type"] == "text"
    forced = body(tools=[READ, ANSWER], tool_choice={"type": "tool", "name": "report"})
    assert call(simulator, forced).json()["content"][0]["name"] == "report"


def _turns(result: list[dict[str, Any]] | str) -> list[dict[str, Any]]:
    use = {"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {"path": "a.py"}}
    return [
        {"role": "user", "content": "Review a.py"},
        {"role": "assistant", "content": [use]},
        {"role": "user", "content": result},
    ]


def test_a_tool_use_must_be_answered_by_a_tool_result(simulator: SimulatorServer) -> None:
    status, kind, message = error_of(
        call(simulator, body(messages=_turns("here it is"), tools=[READ]))
    )
    assert (status, kind) == (400, "invalid_request_error")
    assert message.startswith("messages.1: `tool_use` ids were found without `tool_result`")
    assert "toolu_1" in message


def test_a_tool_result_must_answer_a_tool_use(simulator: SimulatorServer) -> None:
    wrong = [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "x"}]
    status, _, message = error_of(call(simulator, body(messages=_turns(wrong), tools=[READ])))
    assert status == 400
    assert "toolu_1" in message  # toolu_1 was not answered


def test_tool_results_with_errors_and_blocks_are_accepted(simulator: SimulatorServer) -> None:
    result = [
        {
            "type": "tool_result",
            "tool_use_id": "toolu_1",
            "content": [{"type": "text", "text": "read_file: a.py is not a file"}],
            "is_error": True,
        }
    ]
    response = call(simulator, body(messages=_turns(result), tools=[READ]))
    assert response.status_code == 200, response.text
