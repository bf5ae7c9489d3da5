"""The checks a job gets at load, beyond each section's own: across sections (prices, the
model's largest answer), on the templates, and on the files a run will write. Each raises
``ConfigError`` naming the field and the fix, before anything is sent."""

from __future__ import annotations

import dataclasses
import os
import string
from collections.abc import Callable
from pathlib import Path

from pipeline.config.paths import page_path, report_path
from pipeline.config.sections import JobSpec, ModelSpec, PricingSpec
from pipeline.config.turns import REFINE_PLACEHOLDERS, check_columns
from pipeline.core import catalogue
from pipeline.core.errors import ConfigError
from pipeline.core.pricing import Price
from pipeline.core.rows import DOCUMENT_COLUMNS, column_of
from pipeline.core.sensitive import secret_by_content, secret_by_name

# What a template may name. Nothing else: no attribute access, no indexing, no code.
PLACEHOLDERS = {
    "text": "the document's text (or this chunk's)",
    "path": "the file's path as found",
    "name": "the file's name",
    "source": "the path relative to its input folder",
    "doc_id": "the document's stable id",
    "chunk_index": "this chunk's number, from 1",
    "chunk_count": "how many chunks the document has",
    "pages": "the pages this chunk covers, e.g. '3-5' (PDFs; else empty)",
    "language": "the source language (code; else empty)",
}


def check_max_tokens(model: ModelSpec) -> None:
    """Refuse a ``max_tokens`` the model cannot give, before anything is sent."""
    known = catalogue.find(model.name)
    if known is not None and model.max_tokens > known.max_output:
        raise ConfigError(
            f"model.max_tokens: {model.max_tokens:,} is more than {model.name} can write in one "
            f"answer ({known.max_output:,}); lower it"
        )


def price_of(spec: JobSpec) -> Price | None:
    """The job's prices: ``[pricing]`` over the model's list price; None if unknown."""
    given = spec.pricing
    listed = catalogue.list_price(spec.model.name)
    input_rate = given.input_per_mtok if given.input_per_mtok is not None else None
    output_rate = given.output_per_mtok
    if listed is not None:
        input_rate = listed.input if input_rate is None else input_rate
        output_rate = listed.output if output_rate is None else output_rate
    if input_rate is None or output_rate is None:
        if given != PricingSpec():
            raise ConfigError(
                f"pricing: {spec.model.name!r} has no list price here; give both "
                "pricing.input_per_mtok and pricing.output_per_mtok"
            )
        return None
    # Cache rates follow the input rate, unless the list price (input untouched) says else.
    base = (
        listed
        if listed is not None and given.input_per_mtok is None
        else Price.from_list(input_rate, output_rate)
    )
    if spec.prompt.cache_ttl == "1h":  # an hour's cache writes cost twice the input rate
        base = dataclasses.replace(base, cache_write=round(input_rate * 2, 6))
    write, read = given.cache_write_per_mtok, given.cache_read_per_mtok
    return Price(
        input_rate,
        output_rate,
        base.cache_write if write is None else write,
        base.cache_read if read is None else read,
    )


def check_output(path: Path) -> None:
    """Refuse, before anything is sent, an output that could not be written at the end or
    would replace something that is not a previous run's results."""
    for folder in path.parents:
        if os.path.lexists(folder):
            if not folder.is_dir():
                raise ConfigError(
                    f"output.path: {folder} is a file, so {path} cannot be written under it; "
                    "choose another output path"
                )
            if not os.access(folder, os.W_OK | os.X_OK):
                raise ConfigError(
                    f"output.path: {folder} is not writable by this user, so {path} and the "
                    "state beside it cannot be written; choose another output path"
                )
            break
    if path.is_dir():
        raise ConfigError(
            f"output.path: {path} is a folder; name the Parquet file to write, e.g. "
            f"{path / 'results.parquet'}"
        )
    _check_replaced(path, "a Parquet file", lambda head: head.startswith(b"PAR1"))


def check_siblings(output: Path, calls: Path, *, html: bool) -> None:
    """The files a run replaces beside the output are checked as the output is: what is
    there must be an earlier run's, or the run is refused before anything is sent."""
    _check_replaced(calls, "a Parquet file", lambda head: head.startswith(b"PAR1"))
    _check_replaced(
        report_path(output),
        "a run's report",
        lambda head: head.startswith(b"{") and b'"version"' in head,
    )
    if html:
        _check_replaced(
            page_path(output),
            "a run's report page",
            lambda head: head.startswith(b"<!doctype html>"),
        )


def _check_replaced(path: Path, what: str, ours: Callable[[bytes], bool]) -> None:
    try:
        with path.open("rb") as file:
            head = file.read(64)
    except OSError:
        return  # not there yet (or not readable: writing it will say so)
    if head and not ours(head):
        raise ConfigError(
            f"output.path: {path} exists and is not {what}: the run would replace it with "
            "its own; move it aside or choose another output path"
        )


def check_template_secrets(path: Path, text: str) -> None:
    """A template file goes into every request: the secret checks an input gets apply, on
    its name, the name of what it links to, and its text."""
    names = (path.name, os.path.basename(os.path.realpath(path)))
    reason = next(filter(None, map(secret_by_name, names)), None)
    reason = reason or secret_by_content(path.name, text)
    if reason:
        raise ConfigError(
            f"prompt.template_file: {path} looks like credentials ({reason}), and the template "
            "is sent with every document; point it at the prompt's own file (or set "
            "inputs.skip_secrets = false if it is safe)"
        )


def literal_part(template: str) -> str:
    return "".join(literal for literal, *_ in string.Formatter().parse(template))


def _column_like(name: str) -> bool:
    """Could ``name`` be a column a template names? Not empty, not a number (a positional
    field), no attribute access or indexing."""
    return bool(name.strip()) and not name[0].isdigit() and not set(".[]!:") & set(name)


def check_template(
    field: str,
    template: str,
    *,
    needs_text: bool,
    columns: bool,
    extra: dict[str, str] | None = None,
) -> list[str]:
    """Check a template; return the names it uses that are not built-in placeholders
    (allowed only with ``columns``: a table's columns, checked against its schema later).
    ``extra``: placeholders this template may use besides the built-in ones."""
    known = {**PLACEHOLDERS, **(extra or {})}
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"{field}: {exc}. Write {{{{ and }}}} for literal braces.") from exc
    names = set()
    other: list[str] = []
    allowed = ", ".join("{" + p + "}" for p in known)
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in known and columns and _column_like(name):
            other.append(name)
        elif name not in known:
            raise ConfigError(
                f"{field}: unknown placeholder {{{name}}}; use one of {allowed} "
                "(write {{ and }} for literal braces)"
            )
        if spec or conversion:
            written = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            raise ConfigError(
                f"{field}: placeholder {{{name}}} may not carry a format or conversion "
                f"('{{{written}}}'); write it as {{{name}}}"
            )
        names.add(name)
    if needs_text and "text" not in names:
        raise ConfigError(
            f"{field}: the template never uses {{text}}, so the document would not be sent; "
            "add {text} where the document belongs"
        )
    return other


def read_template(path: Path, *, skip_secrets: bool) -> str:
    """The text of ``prompt.template_file``: UTF-8, and (unless the job says otherwise) not
    something that looks like credentials."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"prompt.template_file: cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"prompt.template_file: {path} is not UTF-8 text (byte "
            f"{exc.start:,}); save the template as UTF-8"
        ) from exc
    if skip_secrets:
        check_template_secrets(path, text)
    return text


def template_columns(spec: JobSpec, template: str) -> tuple[str, ...]:
    """Check both templates; return the names that are not built-in placeholders: the
    table's columns, checked against each table's schema before a run
    (``pipeline.readers.tables``)."""
    columns = spec.inputs.text_column is not None  # tables: other names are columns
    return tuple(
        dict.fromkeys(
            check_template(
                "prompt.template",
                template,
                needs_text=spec.inputs.mode == "text",
                columns=columns,
            )
            + check_template(
                "prompt.reduce_template",
                spec.prompt.reduce_template,
                needs_text=True,
                columns=columns,
            )
            + _refine_template(spec, columns)
            + _followups(spec, columns)
        )
    )


def _refine_template(spec: JobSpec, columns: bool) -> list[str]:
    """Check the refine template (``pipeline.config.turns``) when the job refines."""
    if spec.chunking.strategy != "refine":
        return []
    template = spec.prompt.refine_template
    named = check_template(
        "prompt.refine_template",
        template,
        needs_text=False,
        columns=columns,
        extra=REFINE_PLACEHOLDERS,
    )
    used = {field for _, field, _, _ in string.Formatter().parse(template)}
    if "answer" not in used or not used & {"text", "request"}:
        raise ConfigError(
            "prompt.refine_template: must use {answer} (the answer so far) and {text} "
            "(this part) or {request} (the job's template for this part)"
        )
    return named


def _followups(spec: JobSpec, columns: bool) -> list[str]:
    """Check the follow-up questions: their templates, and a new column for each turn."""
    prompt, named = spec.prompt, []
    if not prompt.followups:
        return []
    if spec.chunking.strategy == "per_chunk":
        raise ConfigError(
            "prompt.followups: a conversation follows a document's one answer, and "
            "chunking.strategy = 'per_chunk' gives one per chunk; use map_reduce or refine"
        )
    for n, followup in enumerate(prompt.followups):
        field = f"prompt.followups.{n}.template"
        named += check_template(field, followup.template, needs_text=False, columns=columns)
        if "text" in {name for _, name, _, _ in string.Formatter().parse(followup.template)}:
            raise ConfigError(
                f"{field}: the document is already in the conversation; ask about it "
                "without {text}"
            )
    taken = dict.fromkeys(spec.inputs.keep_columns, "inputs.keep_columns")
    if spec.structured is not None:
        for name in spec.structured.schema_["properties"]:
            taken[column_of(name)] = "a field of structured.schema"
    check_columns(prompt.answer_column, prompt.followups, standard=DOCUMENT_COLUMNS, taken=taken)
    return named
