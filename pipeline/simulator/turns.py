"""Tool use when the model may choose (``tool_choice`` ``auto``, or none given with tools):
the simulated model behaves as a reviewing model does, deterministically.

A conversation (its model, system prompt, tools and first user message: what stays the same
from round to round) plans a number of tool rounds, drawn from its digest within
``tool_rounds`` (``SimulatorConfig``). While fewer rounds are done (assistant turns holding a
``tool_use``), the reply calls one of the tools before the last one offered (the helpers),
picked by the request's digest, with arguments taken from the conversation where a property
is named ``path``, ``folder`` or ``query`` (a path the request mentions, preferring a module
the first message uses without naming its file; a word of it), lines 1 to 40 for
``start_line`` and ``end_line``, and otherwise fitted to its schema. Then it calls the last
tool offered (a loop's answer tool, listed last by convention) or, when only one tool is
offered, answers in text.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Mapping
from typing import Any

_PATH = re.compile(r"(?<![\w/.-])((?:[\w-]+/)*[\w-]+\.[A-Za-z]{1,5})(?![\w/])")
_WORD = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]{3,}\b")


def auto_mode(body: Mapping[str, Any]) -> bool:
    """Tools are offered and the model may choose whether to call one."""
    choice = body.get("tool_choice") or {"type": "auto"}
    return bool(body.get("tools")) and choice.get("type") == "auto"


def rounds_done(body: Mapping[str, Any]) -> int:
    """Assistant turns so far that called a tool."""
    return sum(
        1
        for message in body["messages"]
        if message["role"] == "assistant"
        and isinstance(message["content"], list)
        and any(block.get("type") == "tool_use" for block in message["content"])
    )


def planned_rounds(body: Mapping[str, Any], rounds: tuple[int, int]) -> int:
    """How many tool rounds this conversation has, the same in every one of its requests."""
    low, high = rounds
    fixed = {key: body.get(key) for key in ("model", "system", "tools")}
    fixed["first"] = body["messages"][0]
    encoded = json.dumps(fixed, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(encoded.encode()).hexdigest()
    return low + int(digest[:8], 16) % (high - low + 1)


def pick_tool(body: Mapping[str, Any], digest: str, rounds: tuple[int, int]) -> Any:
    """The tool an auto-mode reply calls, or None for a text answer."""
    tools = body["tools"]
    helpers = tools[:-1] if len(tools) > 1 else tools
    if rounds_done(body) < planned_rounds(body, rounds):
        return helpers[int(digest[8:16], 16) % len(helpers)]
    return tools[-1] if len(tools) > 1 else None


def _texts(value: Any) -> list[str]:
    """Every string in a request's system prompt and messages (tool results included)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for item in value for text in _texts(item)]
    if isinstance(value, Mapping):
        return [text for key, item in value.items() if key != "type" for text in _texts(item)]
    return []


def _stem(path: str) -> str:
    return path.rpartition("/")[2].partition(".")[0]


def plausible_input(
    tool: Mapping[str, Any], body: Mapping[str, Any], value: Any, rng: random.Random
) -> Any:
    """``value`` (fitted to the tool's schema) with ``path``/``folder``/``query`` taken from
    what the conversation mentions, as a model would ask for a file it has seen named."""
    if not isinstance(value, dict):
        return value
    text = "\n".join(_texts([body.get("system"), body["messages"]]))
    found = sorted(set(_PATH.findall(text)))
    paths = [p for p in found if "/" in p] or found  # "Store.add" looks like a name too
    first = "\n".join(_texts(body["messages"][0]))
    words = sorted(set(_WORD.findall(first)))
    # what the first message uses but does not name: the module a file imports (``store``
    # in ``from inventory.store import Store`` -> inventory/store.py)
    used = set(re.findall(r"\w+", first))
    paths = [p for p in paths if p not in first and _stem(p) in used] or paths
    for key in value:
        if key in ("path", "folder") and paths:
            chosen = rng.choice(paths)
            value[key] = chosen if key == "path" else chosen.rpartition("/")[0]
        elif key == "query" and words:
            value[key] = rng.choice(words)
        elif key == "start_line":
            value[key] = 1
        elif key == "end_line":
            value[key] = 40  # a page from the top: what a model asks for first
    return value
