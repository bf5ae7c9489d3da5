"""The simulator's token rule: documented, deterministic, and what count_tokens returns."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.simulator import SimulatorConfig, SimulatorServer, count_request, count_text
from tests.conftest import TEST_MODELS, StartSimulator
from tests.simulator.support import MODEL, body, call


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0),
        ("tokenizer", 3),  # 9 letters: ceil(9 / 4)
        ("the cat", 2),  # single spaces are free
        ("a  b", 2),  # a run of plain spaces is free
        ("a\n\nb", 3),  # white space with a newline is one token
        ("line\nnext", 3),
        ("1234567", 3),  # digits: ceil(7 / 3)
        ("f(x);", 5),
        ("日本語", 3),  # one per non-ASCII character
    ],
)
def test_documented_rule(text: str, tokens: int) -> None:
    assert count_text(text) == tokens


def test_code_and_non_english_cost_more_per_character_than_prose() -> None:
    prose = "The committee reviewed the budget and approved the plan for next year. " * 20
    code = "def f(x):\n    return {k: v[0] for k, v in x.items() if v}\n" * 20
    german = "Die Überprüfung ergab, dass die Größe der Änderungen gering war. " * 20
    per_char = {name: count_text(t) / len(t) for name, t in (("prose", prose), ("code", code))}
    per_char["german"] = count_text(german) / len(german)
    assert per_char["code"] > per_char["prose"]
    assert per_char["german"] > per_char["prose"]
    assert 3.5 <= 1 / per_char["prose"] <= 5.5  # about four characters per English token


@given(st.lists(st.text(min_size=1).filter(lambda s: not s[0].isspace()), max_size=20))
def test_words_joined_by_single_spaces_cost_their_sum(words: list[str]) -> None:
    words = [w for w in words if not any(c.isspace() for c in w)]
    assert count_text(" ".join(words)) == sum(count_text(w) for w in words)


@given(st.text(), st.text())
def test_joining_two_texts_never_costs_more_than_their_parts(a: str, b: str) -> None:
    assert count_text(a + b) <= count_text(a) + count_text(b)


@pytest.mark.parametrize(
    "payload",
    [
        body("Summarize: the cat sat on the mat."),
        body("Review this.", system="You are a careful reviewer. Be brief."),
        body(
            "Extract.",
            system=[
                {
                    "type": "text",
                    "text": "Shared instructions",
                    "cache_control": {"type": "ephemeral"},
                }
            ],
            tools=[
                {
                    "name": "extract",
                    "input_schema": {"type": "object", "properties": {"a": {"type": "string"}}},
                }
            ],
        ),
        {
            "model": MODEL,
            "max_tokens": 20,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "document",
                            "source": {
                                "type": "text",
                                "media_type": "text/plain",
                                "data": "Annual report 2025",
                            },
                        },
                        {"type": "text", "text": "Summarize the document."},
                    ],
                },
                {"role": "assistant", "content": "Sure."},
                {"role": "user", "content": "Go on."},
            ],
        },
    ],
)
def test_count_tokens_is_exactly_what_messages_charges(
    simulator: SimulatorServer, payload: dict[str, Any]
) -> None:
    counted = call(
        simulator,
        {k: v for k, v in payload.items() if k != "max_tokens"},
        path="/v1/messages/count_tokens",
    )
    assert counted.status_code == 200
    charged = call(simulator, payload).json()["usage"]["input_tokens"]
    assert counted.json() == {"input_tokens": charged}


def test_count_tokens_refuses_max_tokens_like_the_real_api(simulator: SimulatorServer) -> None:
    reply = call(simulator, body(), path="/v1/messages/count_tokens")
    assert reply.status_code == 400
    assert reply.json()["error"]["message"] == "max_tokens: Extra inputs are not permitted"


def test_token_scale_charges_more_than_the_documented_rule(
    start_simulator: StartSimulator,
) -> None:
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, token_scale=1.5))
    payload = body("A tokenizer that counts more than the client expects.")
    plain = count_request(payload)
    counted = call(
        server,
        {k: v for k, v in payload.items() if k != "max_tokens"},
        path="/v1/messages/count_tokens",
    ).json()["input_tokens"]
    assert counted == math.ceil(plain * 1.5)
    assert call(server, payload).json()["usage"]["input_tokens"] == counted
