"""The spec's follow-ups (``[[prompt.followups]]``) and refine template: every error names
the field and the fix, before anything is sent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.config.load import parse_spec
from pipeline.core.errors import ConfigError
from tests.test_spec import minimal, problem

RISKS = {"name": "risks", "template": "List the risks of {name}."}


def conversation(*followups: dict[str, Any], **prompt: Any) -> dict[str, Any]:
    return minimal(prompt={"followups": list(followups), **prompt})


def test_a_conversation_spec_loads_with_its_columns() -> None:
    questions = {"name": "questions", "template": "Three questions for the author."}
    job = parse_spec(
        conversation(RISKS, questions, answer_column="summary"), base_dir=Path("/j"), name="t"
    )
    assert [f.name for f in job.spec.prompt.followups] == ["risks", "questions"]
    settings = job.answer_settings()
    assert settings["answer_column"] == "summary"
    assert settings["followups"][0]["template"] == "List the risks of {name}."


def test_a_job_without_followups_or_refine_keeps_its_settings() -> None:
    """Documents an earlier version finished are not sent again."""
    settings = parse_spec(minimal(), base_dir=Path("/j"), name="t").answer_settings()
    assert not {"followups", "answer_column", "refine_template"} & set(settings)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            conversation({"name": "risks", "template": "Risks in {text}?"}),
            "prompt.followups.0.template: the document is already in the conversation",
        ),
        (
            conversation({"name": "risks", "template": "Risks of {title}?"}),
            "prompt.followups.0.template: unknown placeholder {title}",
        ),
        (
            conversation({"name": "the risks", "template": "Risks?"}),
            "prompt.followups.0.name: must be a column name",
        ),
        (
            conversation({"name": "risks", "template": "Risks?", "question": "x"}),
            "prompt.followups.0.question: unknown key",
        ),
        (
            conversation({"template": "Risks?"}),
            "prompt.followups.0.name: required",
        ),
        (
            conversation(RISKS, {"name": "risks", "template": "Again?"}),
            "prompt.followups.1.name: 'risks' is also prompt.followups.0.name",
        ),
        (
            conversation(RISKS, answer_column="risks"),
            "prompt.followups.0.name: 'risks' is also prompt.answer_column",
        ),
        (
            conversation({"name": "text", "template": "Risks?"}),
            "prompt.followups.0.name: 'text' is a standard column",
        ),
        (
            {
                **conversation(RISKS),
                "structured": {"schema": {"type": "object", "properties": {"risks": {}}}},
            },
            "prompt.followups.0.name: 'risks' is already a column (a field of structured.schema)",
        ),
        (
            {**conversation(RISKS), "chunking": {"strategy": "per_chunk"}},
            "prompt.followups: a conversation follows a document's one answer",
        ),
        (
            minimal(
                chunking={"strategy": "refine"},
                prompt={"refine_template": "Improve it with {text}"},
            ),
            "prompt.refine_template: must use {answer}",
        ),
        (
            minimal(
                chunking={"strategy": "refine"},
                prompt={"refine_template": "So far: {answer}. Next: {next}"},
            ),
            "prompt.refine_template: unknown placeholder {next}",
        ),
        (
            minimal(chunking={"strategy": "refined"}),
            "chunking.strategy: Input should be 'map_reduce', 'per_chunk', 'truncate' or 'refine'",
        ),
    ],
)
def test_bad_followups_and_refine_templates_name_the_field(
    data: dict[str, Any], expected: str
) -> None:
    assert expected in problem(data)


def test_refine_leaves_room_in_each_part_for_the_answer_so_far() -> None:
    def budget(strategy: str) -> int:
        job = parse_spec(
            minimal(chunking={"strategy": strategy}, model={"max_tokens": 4_000}),
            base_dir=Path("/j"),
            name="t",
        )
        return job.chunk_budget(len)

    assert budget("map_reduce") - budget("refine") > 4_000


def test_an_own_refine_template_may_name_text_instead_of_the_request() -> None:
    data = minimal(
        chunking={"strategy": "refine"},
        prompt={"refine_template": "Answer so far: {answer}\n\nNext part of {name}:\n{text}"},
    )
    job = parse_spec(data, base_dir=Path("/j"), name="t")
    assert job.answer_settings()["refine_template"].startswith("Answer so far")
    with pytest.raises(ConfigError, match="refine_template"):
        parse_spec(
            minimal(chunking={"strategy": "refine"}, prompt={"refine_template": "{answer}"}),
            base_dir=Path("/j"),
            name="t",
        )
