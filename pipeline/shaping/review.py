"""One file's review with tools, as requests: the first request, each tool round, the answer.

Every request of the loop offers the same tools (the read-only ones the job lists, then the
structured answer tool, last), so the prefix that prompt caching keys on (tools, system
prompt, repository map) stays the same from request to request and file to file. The rounds
ask with ``tool_choice`` ``auto``: the model calls tools, or gives its answer through the
answer tool. When it answers in text, or a bound is reached (``review.max_tool_calls``, or
``review.token_budget`` for the next round), the loop asks once more with the answer tool
forced. Calls beyond the allowance are answered with a tool error (each ``tool_use`` needs its
``tool_result``), and the model is told to answer.

The first message (the file) and each round's newest turn carry a cache breakpoint, so each
round reads the conversation so far from the cache: a file of F tokens costs 1.25 F (written)
in the first request and 0.1 F (read) in each later one, instead of F in every one. (A review
that calls no tool pays the quarter more for nothing.) Pure: the coroutine in ``run`` sends
the requests and runs the tools.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pipeline.config.spec import Job
from pipeline.core.models import Reply
from pipeline.readers.tools import ToolResult
from pipeline.shaping.request_tokens import estimate_request

Next = Literal["answer", "tools", "final"]
LIMIT_REACHED = (
    "The review's limit of {limit} tool calls is reached: this call was not run. Give your "
    "answer now with {answer}."
)
ANSWER_NOW = "Give your answer now with {answer}: no more tool calls."


@dataclass(frozen=True)
class ToolCall:
    """One ``tool_use`` block of a reply."""

    id: str
    name: str
    input: Any


def tool_calls(reply: Reply) -> list[ToolCall]:
    return [
        ToolCall(str(b.get("id")), str(b.get("name")), b.get("input"))
        for b in reply.content
        if b.get("type") == "tool_use"
    ]


def with_tools(job: Job, params: Mapping[str, Any], tools: Sequence[Mapping[str, Any]]) -> Any:
    """A first request (the answer tool forced, from ``request_params``) turned into the
    loop's: the read-only tools first, the answer tool last, the model choosing."""
    first = copy.deepcopy(dict(params))
    first["tools"] = [*tools, *params["tools"]]
    first["tool_choice"] = {"type": "auto"}
    if job.spec.prompt.cache:  # every later round reads the file from the cache
        message = first["messages"][0]
        if isinstance(message["content"], str):
            message["content"] = [{"type": "text", "text": message["content"]}]
        message["content"][-1]["cache_control"] = {"type": "ephemeral"}
    return first


def answer_tool(job: Job) -> str:
    assert job.spec.structured is not None  # the spec demands it with review.tools
    return job.spec.structured.tool_name


def decide(job: Job, reply: Reply, calls_made: int) -> Next:
    """What follows ``reply``: it is the answer, run its tool calls, or ask for the answer."""
    calls = tool_calls(reply)
    if any(call.name == answer_tool(job) for call in calls):
        return "answer"  # (cut short by max_tokens: as any structured answer that is)
    if not calls:
        return "final"  # it answered in text (or was cut short): ask through the tool
    if calls_made >= job.spec.review.max_tool_calls:
        return "final"
    return "tools"


def allowed(job: Job, calls: Sequence[ToolCall], calls_made: int) -> int:
    """How many of ``calls`` (from the first) the allowance lets run."""
    return max(0, min(len(calls), job.spec.review.max_tool_calls - calls_made))


def refused(job: Job) -> ToolResult:
    limit = job.spec.review.max_tool_calls
    return ToolResult(LIMIT_REACHED.format(limit=limit, answer=answer_tool(job)), is_error=True)


def _uncached(messages: list[dict[str, Any]]) -> None:
    """Drop the breakpoints of earlier rounds (a request may hold four); the first message's
    own (the file, and the template's head) stay."""
    for message in messages[1:]:
        content = message["content"]
        if isinstance(content, list):
            for block in content:
                block.pop("cache_control", None)


def next_request(
    job: Job,
    params: Mapping[str, Any],
    reply: Reply,
    results: Sequence[tuple[ToolCall, ToolResult]],
    *,
    final: bool,
) -> dict[str, Any]:
    """The request after ``reply``: its tool results (or a word asking for the answer), the
    newest turn marked for caching; ``final``: with the answer tool forced."""
    following = copy.deepcopy(dict(params))
    messages: list[dict[str, Any]] = following["messages"]
    _uncached(messages)
    messages.append({"role": "assistant", "content": [dict(b) for b in reply.content]})
    turn: list[dict[str, Any]] = [
        {
            "type": "tool_result",
            "tool_use_id": call.id,
            "content": result.text,
            **({"is_error": True} if result.is_error else {}),
        }
        for call, result in results
    ]
    if final:
        turn.append({"type": "text", "text": ANSWER_NOW.format(answer=answer_tool(job))})
        following["tool_choice"] = {"type": "tool", "name": answer_tool(job)}
    if job.spec.prompt.cache:
        turn[-1]["cache_control"] = {"type": "ephemeral"}
    messages.append({"role": "user", "content": turn})
    return following


def over_budget(job: Job, following: Mapping[str, Any], tokens_used: int) -> bool:
    """Would the next round pass ``review.token_budget`` (its input, and output up to
    ``max_tokens``)? Then it is asked as the final one."""
    need = estimate_request(following) + int(following["max_tokens"])
    return tokens_used + need > job.spec.review.token_budget


def described(call: ToolCall, result: ToolResult) -> str:
    """A tool call and its result in one line of text, for the calls file."""
    arguments = json.dumps(call.input, ensure_ascii=False, sort_keys=True)
    mark = " (error)" if result.is_error else ""
    return f"{call.name} {arguments}{mark} -> {len(result.text):,} characters"
