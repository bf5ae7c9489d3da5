"""Hostile job specs through the command line: each is refused with exit status 2 and a message
that names the field and the fix, before anything is sent; never a traceback. Templates can
name placeholders and nothing else: no attribute access, indexing, formats or code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import EXIT_USAGE
from pipeline.config.load import load_job, parse_spec
from pipeline.core.errors import ConfigError
from pipeline.core.models import Document, Section
from pipeline.readers import Candidate, discover
from pipeline.readers.job import input_options
from pipeline.shaping.prompts import placeholders, render
from tests.readers.support import write
from tests.reliability.support import cli

BASE = """\
[inputs]
paths = ["docs"]

[prompt]
template = "Summarize {name}:\\n{text}"

[model]
name = "claude-haiku-4-5"
"""


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    write(tmp_path, "docs/a.txt", "A note worth reading.")
    return tmp_path


def spec(folder: Path, text: str = BASE) -> Path:
    path = folder / "job.toml"
    path.write_text(text, encoding="utf-8")
    return path


def toml(value: Any) -> str:
    """A TOML value for ``--set``: JSON's strings, numbers and arrays are TOML's too."""
    return (
        value if isinstance(value, str) and value in ("nan", "inf", "-inf") else json.dumps(value)
    )


def refused(capsys: pytest.CaptureFixture[str], folder: Path, job: Path, *overrides: str) -> str:
    """Both commands refuse the spec with exit status 2 and no traceback; the message."""
    sets = [arg for item in overrides for arg in ("--set", item)]
    messages = []
    for command in (
        ["validate", str(job), *sets],
        ["run", str(job), "--simulate", *sets],
    ):
        status, out, err = cli(capsys, *command)
        assert status == EXIT_USAGE, (command, out, err)
        assert "Traceback" not in err
        assert err.startswith("pipeline: ")
        messages.append(err)
    assert not (folder / "out").exists()  # nothing was run: no output, no state
    return messages[0]


# ---- wrong types and unknown keys ----------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ('model.max_tokens="2048"', "model.max_tokens: Input should be a valid integer"),
        ("model.max_tokens=true", "model.max_tokens: Input should be a valid integer"),
        ("model.max_tokens=1.5", "model.max_tokens: Input should be a valid integer"),
        ('inputs.paths="docs"', "inputs.paths: Input should be a valid list"),
        ('inputs.gitignore="yes"', "inputs.gitignore: Input should be a valid boolean"),
        ('model.stop_sequences="END"', "model.stop_sequences: Input should be a valid list"),
        ("limits=5", "limits: Input should be a valid dictionary"),
        ('structured.schema="object"', "structured.schema: Input should be a valid dictionary"),
        ('inputs.mode="vision"', "inputs.mode: Input should be 'text' or 'attach'"),
        ('chunking.strategy="all"', "chunking.strategy: Input should be"),
        ("model.max_token=100", "model.max_token: unknown key; remove it or check its spelling"),
        ("inputs.follow_links=true", "inputs.follow_links: unknown key"),
        ("modle.name=1", "modle: unknown key"),
        ("prompt.template.x=1", "--set 'prompt.template.x=1': template is not a section"),
    ],
)
def test_wrong_types_and_unknown_keys_name_the_field(
    capsys: pytest.CaptureFixture[str], spec_dir: Path, override: str, named: str
) -> None:
    assert named in refused(capsys, spec_dir, spec(spec_dir), override)


def test_a_spec_that_is_not_toml_or_not_utf8_is_refused(
    capsys: pytest.CaptureFixture[str], spec_dir: Path
) -> None:
    assert "not valid TOML" in refused(capsys, spec_dir, spec(spec_dir, BASE + "[model\n"))
    job = spec_dir / "job.toml"
    job.write_bytes(BASE.encode() + b"# \xff\xfe\n")
    assert "cannot read it" in refused(capsys, spec_dir, job)


# ---- numbers ---------------------------------------------------------------------------------

HUGE = 10**18
ABSURD: dict[str, list[Any]] = {
    "inputs.max_file_bytes": [0, -1, HUGE],
    "model.max_tokens": [0, -1, HUGE],
    "model.temperature": [-0.1, 1.5, HUGE, "nan", "inf"],
    "model.top_p": [-0.1, 1.5, "nan", "-inf"],
    "limits.requests_per_minute": [0, -1, HUGE],
    "limits.tokens_per_minute": [0, -1, HUGE],
    "limits.input_tokens_per_minute": [0, -1, HUGE],
    "limits.output_tokens_per_minute": [0, -1, HUGE],
    "limits.max_concurrency": [0, -1, HUGE],
    "retry.max_attempts": [0, -1, HUGE],
    "retry.max_elapsed_s": [0, -1, 1e300, "nan", "inf"],
    "chunking.max_chunk_tokens": [0, -1, 999, HUGE],
    "chunking.overlap_tokens": [-1, HUGE, 150_000],
    "chunking.safety_margin_tokens": [-1, HUGE, 199_000],
    "pricing.input_per_mtok": [-1, HUGE, "nan", "inf"],
    "pricing.output_per_mtok": [-1, HUGE, "nan"],
    "pricing.cache_write_per_mtok": [-1, HUGE, "nan"],
    "pricing.cache_read_per_mtok": [-1, HUGE, "nan"],
    "budget.max_cost_usd": [0, -1, "nan", "inf"],
    "budget.max_total_tokens": [0, -1],
    "endpoint.batch_poll_s": [0, -1, HUGE, "nan", "inf"],
    "endpoint.batch_max_attempts": [0, -1, HUGE],
    "review.map_tokens": [-1, HUGE],
    "review.max_tool_calls": [0, -1, HUGE],
    "review.token_budget": [0, -1, HUGE],
    "review.tool_output_chars": [0, -1, HUGE],
}


@pytest.mark.parametrize(
    ("field", "value"),
    [(field, value) for field, values in ABSURD.items() for value in values],
)
def test_absurd_numbers_are_refused_naming_the_field(
    capsys: pytest.CaptureFixture[str], spec_dir: Path, field: str, value: Any
) -> None:
    message = refused(capsys, spec_dir, spec(spec_dir), f"{field}={toml(value)}")
    assert field in message


def test_every_numeric_field_is_covered() -> None:
    """A numeric field added to the spec must be added to ABSURD too."""
    from pipeline.config.sections import JobSpec

    numeric = set()
    for section, info in JobSpec.model_fields.items():
        model = info.annotation
        fields = getattr(model, "model_fields", {})
        for name, field in fields.items():
            if any(t in str(field.annotation) for t in ("int", "float")):
                numeric.add(f"{section}.{name}")
    assert numeric == set(ABSURD)


# ---- templates -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "{document.__class__}",
        "{text.__class__}",
        "{name.__init__.__globals__}",
        "{text.__class__.__mro__[1].__subclasses__}",
        "{text[0]}",
        "{0}",
        "{}",
        "{text!r}",
        "{text!a}",
        "{text:>999999999}",
        "{text:{name}}",
        "{__import__}",
        "{text} {",
        "{text} }",
        "{ text }",
    ],
)
def test_templates_may_name_placeholders_and_nothing_else(
    capsys: pytest.CaptureFixture[str], spec_dir: Path, template: str
) -> None:
    message = refused(capsys, spec_dir, spec(spec_dir), f"prompt.template={toml(template)}")
    assert message.startswith("pipeline: prompt.template: ")
    assert "{{ and }}" in message or "write it as {text}" in message  # the fix
    reduce = refused(
        capsys, spec_dir, spec(spec_dir), f"prompt.reduce_template={toml(template + '{text}')}"
    )
    assert reduce.startswith("pipeline: prompt.reduce_template: ")


def test_a_documents_own_braces_are_never_interpreted(tmp_path: Path) -> None:
    hostile = "{text.__class__} {0} {name.__init__.__globals__} {{ }} {"
    job = parse_spec(
        {
            "inputs": {"paths": ["docs"]},
            "prompt": {"template": "Read {name}: {text}"},
            "model": {"name": "m"},
        },
        base_dir=tmp_path,
        name="t",
    )
    document = Document(
        doc_id="d", source="{0}.txt", path=tmp_path / "{0}.txt", kind="text",
        content_hash="h", size_bytes=1, sections=(Section(hostile),),
    )  # fmt: skip
    prompt = render(job.template, placeholders(document, None, document.text))
    assert prompt == f"Read {{0}}.txt: {hostile}"


# ---- paths -----------------------------------------------------------------------------------


def test_paths_that_escape_or_cannot_exist_are_refused(
    capsys: pytest.CaptureFixture[str], spec_dir: Path
) -> None:
    job = spec(spec_dir)
    cases = {
        'job.name="../../elsewhere"': "job.name: must be a plain name",
        'job.name="a/b"': "job.name: must be a plain name",
        'job.name=".."': "job.name: must be a plain name",
        'inputs.paths=["do\\u0000cs"]': "inputs.paths.0: holds a NUL character",
        'output.path="o\\u0000.parquet"': "output.path: holds a NUL character",
        'prompt.template_file="p\\u0000.txt"': "prompt.template_file: holds a NUL character",
        'inputs.paths=["nowhere"]': "inputs.paths: " + str(spec_dir / "nowhere"),
        'inputs.paths=["nowhere/*.txt"]': "is not a folder",
        'endpoint.base_url="ftp://example.com"': "endpoint.base_url: 'ftp://example.com' is not",
        'endpoint.base_url="http://example.com"': "endpoint.allow_insecure_http = true",
        'model.stop_sequences=["END", "  "]': "model.stop_sequences.1: a stop sequence must",
    }
    for override, named in cases.items():
        assert named in refused(capsys, spec_dir, job, override), override


def test_a_template_file_that_is_binary_or_missing_is_refused(
    capsys: pytest.CaptureFixture[str], spec_dir: Path
) -> None:
    (spec_dir / "prompt.bin").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe{text}")
    text = BASE.replace('template = "Summarize {name}:\\n{text}"', 'template_file = "prompt.bin"')
    message = refused(capsys, spec_dir, spec(spec_dir, text))
    assert "prompt.template_file: " in message
    assert "is not UTF-8 text (byte 0); save the template as UTF-8" in message
    missing = text.replace("prompt.bin", "missing.txt")
    assert "prompt.template_file: cannot read" in refused(capsys, spec_dir, spec(spec_dir, missing))


def test_an_output_that_could_not_be_written_or_would_destroy_a_file_is_refused(
    capsys: pytest.CaptureFixture[str], spec_dir: Path
) -> None:
    (spec_dir / "results").mkdir()
    job = spec(spec_dir)
    for output, named in [
        (spec_dir / "results", "is a folder; name the Parquet file to write"),
        (spec_dir / "docs" / "a.txt" / "out.parquet", "is a file, so"),
        (spec_dir / "docs" / "a.txt", "exists and is not a Parquet file"),
    ]:
        for command in (["validate", str(job)], ["run", str(job), "--simulate"]):
            status, _, err = cli(capsys, *command, "--set", f"output.path={toml(str(output))}")
            assert status == EXIT_USAGE
            assert f"output.path: {output}" in err or "output.path: " in err
            assert named in err
            assert "Traceback" not in err
    assert (spec_dir / "docs" / "a.txt").read_text() == "A note worth reading."


# ---- the output inside the input tree --------------------------------------------------------


@pytest.mark.parametrize("folder", ["results", "odd [dir]*", "trailing "])
def test_what_a_run_writes_inside_an_input_folder_is_never_an_input(
    spec_dir: Path, folder: str
) -> None:
    output = spec_dir / "docs" / folder / "my review?.parquet"
    written = [
        output,
        output.with_name("my review?.calls.parquet"),
        output.with_name("my review?.report.json"),
        output.with_name(".my review?.report.json.k1ll3d1x.partial"),
        output.with_name("my review?.report.html"),
        output.with_name(".my review?.report.html.k1ll3d1x.partial"),
        output.with_name("my review?.state.sqlite"),
        output.with_name("my review?.state.sqlite-wal"),
        output.with_name("my review?.state.sqlite-shm"),
        output.with_name("my review?.state.sqlite-journal"),
        output.with_name("my review?.state.lock"),
        output.with_name(".my review?.parquet.k1ll3d1x.partial"),
        output.with_name(".my review?.calls.parquet.partial"),  # an older version's name
    ]
    left = {
        ".parquet": b"PAR1",
        ".json": b'{\n  "version": 1\n}\n',
        ".html": b"<!doctype html>\n",
    }
    for path in written:  # as a run leaves them: Parquet, the report, the lock holding a pid
        write(path.parent, path.name, left.get(path.suffix, b"12345\n"))
    write(spec_dir, f"docs/{folder}/notes.txt", "A note that is an input.")
    job = load_job(spec(spec_dir), output=str(output))
    assert set(job.own_files) < set(written)  # and the temporary
    listed = [item.source for item in discover(input_options(job)) if isinstance(item, Candidate)]
    assert sorted(listed) == ["a.txt", f"{folder}/notes.txt"]
    elsewhere = load_job(spec(spec_dir), output=str(spec_dir / "out" / "r.parquet"))
    assert elsewhere.spec.inputs.exclude == []  # nothing to leave out


def test_a_glob_input_leaves_out_the_output_too(spec_dir: Path) -> None:
    output = spec_dir / "docs" / "out.parquet"
    write(spec_dir, "docs/out.state.lock", "4242")
    write(spec_dir, "docs/b.lock", "not ours")
    job = load_job(spec(spec_dir), inputs=[str(spec_dir / "docs" / "*.lock")], output=str(output))
    listed = [item.source for item in discover(input_options(job)) if isinstance(item, Candidate)]
    assert listed == ["b.lock"]


def test_config_errors_are_raised_not_printed_by_the_library(spec_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"job\.name"):
        load_job(spec(spec_dir), overrides=['job.name="../x"'])


@pytest.mark.unprivileged
def test_an_output_folder_this_user_cannot_write_is_refused(
    capsys: pytest.CaptureFixture[str], spec_dir: Path
) -> None:
    locked = spec_dir / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        message = refused(
            capsys, spec_dir, spec(spec_dir), f"output.path={toml(str(locked / 'r.parquet'))}"
        )
    finally:
        locked.chmod(0o755)
    assert f"output.path: {locked} is not writable by this user" in message
