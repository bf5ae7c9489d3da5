"""The review's requests, round by round (pure: no server): the same tools in every request,
tool results paired with their calls, the bounds, the answer forced at the end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.config.load import load_job
from pipeline.config.spec import Job
from pipeline.core.models import Reply, Usage
from pipeline.readers.tools import SCHEMAS, ToolResult
from pipeline.shaping import review
from pipeline.shaping.prompts import request_params
from pipeline.simulator.validation import validate_messages

JOBS = Path(__file__).resolve().parents[2] / "jobs"
READ = [SCHEMAS["read_file"], SCHEMAS["search"], SCHEMAS["list_folder"]]


def _job(tmp_path: Path, *overrides: str) -> Job:
    return load_job(
        JOBS / "repo_review.toml", output=str(tmp_path / "r.parquet"), overrides=list(overrides)
    )


def _reply(*blocks: dict[str, Any], stop: str = "tool_use") -> Reply:
    return Reply("msg_1", "m", tuple(blocks), stop, None, Usage(100, 20), "req_1")


def _use(ident: str, name: str = "read_file", **arguments: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": ident, "name": name, "input": arguments}


def _first(job: Job) -> dict[str, Any]:
    params = request_params(job, "Review inventory/cli.py\n\nimport sys", structured=True)
    return review.with_tools(job, params, READ)  # type: ignore[no-any-return]


def test_the_loop_offers_the_read_tools_then_the_answer_tool(tmp_path: Path) -> None:
    job = _job(tmp_path)
    first = _first(job)
    assert [t["name"] for t in first["tools"]] == [
        "read_file",
        "search",
        "list_folder",
        "report_findings",
    ]
    assert first["tool_choice"] == {"type": "auto"}
    validate_messages(first)


def test_decide(tmp_path: Path) -> None:
    job = _job(tmp_path, "review.max_tool_calls=2")
    answer = _reply(_use("t1", "report_findings", summary="ok", findings=[]))
    assert review.decide(job, answer, 0) == "answer"
    assert review.decide(job, _reply({"type": "text", "text": "hm"}, stop="end_turn"), 0) == "final"
    assert review.decide(job, _reply(_use("t1", path="a.py")), 1) == "tools"
    assert review.decide(job, _reply(_use("t1", path="a.py")), 2) == "final"


def test_calls_past_the_allowance_are_refused_as_tool_errors(tmp_path: Path) -> None:
    job = _job(tmp_path, "review.max_tool_calls=3")
    calls = review.tool_calls(_reply(_use("a"), _use("b"), _use("c")))
    assert review.allowed(job, calls, 1) == 2
    assert review.allowed(job, calls, 5) == 0
    refusal = review.refused(job)
    assert refusal.is_error
    assert "limit of 3 tool calls" in refusal.text
    assert "report_findings" in refusal.text


def test_a_round_appends_the_calls_and_their_results(tmp_path: Path) -> None:
    job = _job(tmp_path)
    first = _first(job)
    reply = _reply({"type": "text", "text": "Let me look."}, _use("t1", path="x.py"), _use("t2"))
    results = [
        (review.tool_calls(reply)[0], ToolResult("x.py, lines 1-1 of 1:\n1| x\n")),
        (review.tool_calls(reply)[1], ToolResult("read_file: path must be a string", True)),
    ]
    second = review.next_request(job, first, reply, results, final=False)
    assert second["tools"] == first["tools"]  # the cached prefix stays the same
    assert second["system"] == first["system"]
    assistant, user = second["messages"][-2:]
    assert assistant == {"role": "assistant", "content": list(reply.content)}
    assert [b["tool_use_id"] for b in user["content"]] == ["t1", "t2"]
    assert "is_error" not in user["content"][0]
    assert user["content"][1]["is_error"] is True
    assert user["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert len(first["messages"]) == 1  # not changed in place
    validate_messages(second)

    third = review.next_request(job, second, _reply(_use("t3", path="y.py")), [], final=True)
    assert "cache_control" not in third["messages"][2]["content"][-1]  # only the newest turn
    assert third["tool_choice"] == {"type": "tool", "name": "report_findings"}
    assert third["messages"][-1]["content"][-1]["text"].startswith("Give your answer now")


def test_a_text_answer_is_followed_by_the_forced_answer_tool(tmp_path: Path) -> None:
    job = _job(tmp_path)
    text = _reply({"type": "text", "text": "Looks fine."}, stop="end_turn")
    final = review.next_request(job, _first(job), text, [], final=True)
    assert final["messages"][-1]["content"][0]["type"] == "text"
    validate_messages(final)


@pytest.mark.parametrize(("used", "over"), [(0, False), (59_000, True)])
def test_the_token_budget(tmp_path: Path, used: int, over: bool) -> None:
    job = _job(tmp_path, "review.token_budget=60000")
    assert review.over_budget(job, _first(job), used) is over


def test_a_call_in_one_line_for_the_calls_file() -> None:
    call = review.ToolCall("t1", "search", {"query": "add", "whole_word": True})
    line = review.described(call, ToolResult("read_file: nope", is_error=True))
    assert line == 'search {"query": "add", "whole_word": true} (error) -> 15 characters'


def test_the_file_is_marked_for_caching_in_the_first_request(tmp_path: Path) -> None:
    first = _first(_job(tmp_path))
    [block] = first["messages"][0]["content"]
    assert block["cache_control"] == {"type": "ephemeral"}
    assert block["text"].startswith("Review inventory/cli.py")
    off = _first(_job(tmp_path, "prompt.cache=false"))
    assert "cache_control" not in str(off["messages"])
