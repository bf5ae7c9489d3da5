"""Job specs: validated once at load; every error names the field and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.config.load import apply_overrides, load_job, parse_spec
from pipeline.core.errors import ConfigError
from pipeline.core.limits import Limits
from pipeline.core.pricing import Price

JOBS = Path(__file__).resolve().parent.parent / "jobs"


def minimal(**sections: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "inputs": {"paths": ["docs"]},
        "prompt": {"template": "Summarize {name}:\n{text}"},
        "model": {"name": "claude-haiku-4-5"},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return data


def problem(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_spec(data, base_dir=Path("/jobs"), name="t")
    return str(caught.value)


@pytest.mark.parametrize("path", sorted(JOBS.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_jobs_are_valid(path: Path) -> None:
    job = load_job(path)
    assert job.name == path.stem
    assert job.chunk_budget(len) > 1_000


def test_unknown_key_is_named() -> None:
    message = problem(minimal(model={"max_token": 100}))
    assert "model.max_token: unknown key; remove it or check its spelling" in message


def test_wrong_type_is_named_with_what_was_given() -> None:
    assert "model.max_tokens: Input should be a valid integer (got '2048')" in problem(
        minimal(model={"max_tokens": "2048"})
    )
    assert "model.temperature: Input should be less than or equal to 1 (got 1.5)" in problem(
        minimal(model={"temperature": 1.5})
    )


def test_missing_section_is_named() -> None:
    data = minimal()
    del data["model"]
    assert "model: required; add it" in problem(data)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Summarize {txt}", "prompt.template: unknown placeholder {txt}; use one of {text}"),
        ("{text.__class__}", "unknown placeholder {text.__class__}"),
        ("{text[0]}", "unknown placeholder {text[0]}"),
        ("{text!r}", "placeholder {text} may not carry a format or conversion"),
        ("{text:>10}", "placeholder {text} may not carry a format or conversion"),
        ("Summarize {name}", "the template never uses {text}"),
        ("Summarize {text", "prompt.template: expected '}' before end of string"),
    ],
)
def test_templates_are_checked_and_cannot_run_code(template: str, expected: str) -> None:
    assert expected in problem(minimal(prompt={"template": template}))


def test_literal_braces_are_fine() -> None:
    job = parse_spec(
        minimal(prompt={"template": 'Answer as {{"a": 1}}: {text}'}), base_dir=Path("/"), name="t"
    )
    assert job.template.format_map({"text": "x"}) == 'Answer as {"a": 1}: x'


def test_exactly_one_template() -> None:
    both = minimal(prompt={"template": "{text}", "template_file": "p.txt"})
    assert "give exactly one of prompt.template or prompt.template_file" in problem(both)


def test_template_file_is_read_relative_to_the_job(tmp_path: Path) -> None:
    (tmp_path / "prompt.txt").write_text("From a file: {text}", encoding="utf-8")
    data = minimal()
    data["prompt"] = {"template_file": "prompt.txt"}
    job = parse_spec(data, base_dir=tmp_path, name="t")
    assert job.template == "From a file: {text}"
    data["prompt"] = {"template_file": "missing.txt"}
    with pytest.raises(ConfigError, match=r"prompt\.template_file: cannot read"):
        parse_spec(data, base_dir=tmp_path, name="t")


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        ({}, Limits(max_concurrency=4)),
        ({"tier": "basic"}, Limits(50, 100_000, None, None, 10)),
        ({"tier": "pro", "max_concurrency": 8}, Limits(200, 400_000, None, None, 8)),
        ({"requests_per_minute": 30}, Limits(requests_per_minute=30, max_concurrency=4)),
    ],
)
def test_limits_from_tier_or_numbers(limits: dict[str, Any], expected: Limits) -> None:
    job = parse_spec(minimal(limits=limits), base_dir=Path("/"), name="t")
    assert job.limits == expected


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        ({"tier": "gold"}, "limits.tier"),
        ({"requests_per_minute": 0}, "limits.requests_per_minute"),
        ({"max_concurrency": -1}, "limits.max_concurrency"),
        ({"tokens_per_minute": 10**30}, "limits.tokens_per_minute"),
    ],
)
def test_absurd_limits_are_refused(limits: dict[str, Any], field: str) -> None:
    assert field in problem(minimal(limits=limits))


def test_structured_schema_must_be_an_object_with_properties() -> None:
    message = problem(minimal(structured={"schema": {"type": "array"}}))
    assert 'structured.schema: must be a JSON schema of type "object"' in message


def test_window_budget_leaves_room_for_prompt_and_answer() -> None:
    job = parse_spec(minimal(model={"max_tokens": 4000}), base_dir=Path("/"), name="t")
    budget = job.chunk_budget(len)
    assert budget == 200_000 - len("Summarize :\n") - 4000 - 2000 - 200
    tight = minimal(
        model={"name": "claude-opus-4-6", "max_tokens": 128_000},
        chunking={"safety_margin_tokens": 71_000},
    )
    with pytest.raises(ConfigError, match="less than 1,000 tokens"):
        parse_spec(tight, base_dir=Path("/"), name="t").chunk_budget(len)


def test_overrides_parse_toml_values() -> None:
    data = apply_overrides(
        minimal(),
        [
            "model.max_tokens=2048",
            "model.temperature=0.5",
            "model.name=claude-x",
            "limits.tier=pro",
        ],
    )
    assert data["model"] == {"name": "claude-x", "max_tokens": 2048, "temperature": 0.5}
    assert data["limits"] == {"tier": "pro"}
    with pytest.raises(ConfigError, match=r"expected section\.field=value"):
        apply_overrides(minimal(), ["model.max_tokens"])


def test_command_line_replaces_inputs_and_output(tmp_path: Path) -> None:
    spec = tmp_path / "job.toml"
    spec.write_text(
        '[inputs]\npaths = ["docs"]\n[prompt]\ntemplate = "{text}"\n[model]\nname = "m"\n',
        encoding="utf-8",
    )
    job = load_job(
        spec, inputs=["elsewhere"], output="res.parquet", overrides=["model.max_tokens=9"]
    )
    assert job.input_paths == (Path("elsewhere").resolve(),)
    assert job.output_path == Path("res.parquet").resolve()
    assert job.calls_path == Path("res.calls.parquet").resolve()
    assert job.spec.model.max_tokens == 9
    default = load_job(spec)
    assert default.input_paths == (tmp_path / "docs",)
    assert default.output_path == tmp_path / "out" / "job.parquet"


def test_unreadable_or_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such job spec"):
        load_job(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\nname = 1", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_job(bad)


def test_overlap_over_half_a_chunk_is_refused_at_load() -> None:
    data = minimal(chunking={"max_chunk_tokens": 4_000, "overlap_tokens": 2_500})
    with pytest.raises(ConfigError, match=r"chunking\.overlap_tokens: 2,500 is more than half"):
        parse_spec(data, base_dir=Path("/"), name="t").chunk_budget(len)


def test_prices_default_to_the_list_price_and_a_job_can_set_its_own() -> None:
    job = parse_spec(minimal(), base_dir=Path("/jobs"), name="t")
    assert job.price == Price(1.0, 5.0, 1.25, 0.1)  # claude-haiku-4-5
    # A gateway's own input price: the cache rates follow it unless given.
    gateway = parse_spec(
        minimal(pricing={"input_per_mtok": 2, "cache_read_per_mtok": 0.05}),
        base_dir=Path("/jobs"),
        name="t",
    )
    assert gateway.price == Price(2.0, 5.0, 2.5, 0.05)
    unknown = minimal(model={"name": "gateway-model"})
    assert parse_spec(unknown, base_dir=Path("/jobs"), name="t").price is None
    assert "give both pricing.input_per_mtok and pricing.output_per_mtok" in problem(
        minimal(model={"name": "gateway-model"}, pricing={"input_per_mtok": 1})
    )
    assert "pricing.output_per_mtok" in problem(minimal(pricing={"output_per_mtok": -1}))


def test_the_pdf_text_extractor_is_a_choice_named_in_its_error() -> None:
    assert parse_spec(minimal(), base_dir=Path("/jobs"), name="t").spec.inputs.pdf_text == "pypdf"
    job = parse_spec(minimal(inputs={"pdf_text": "pdfium"}), base_dir=Path("/jobs"), name="t")
    assert job.spec.inputs.pdf_text == "pdfium"
    message = problem(minimal(inputs={"pdf_text": "mupdf"}))
    assert "inputs.pdf_text: Input should be 'pypdf' or 'pdfium' (got 'mupdf')" in message
