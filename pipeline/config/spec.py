"""The job spec: a TOML file under ``jobs/``, validated once at load.

Every section refuses unknown keys and wrong types; every error names the field
(``model.max_tokens``) and says how to fix it, before anything is sent. The command line
can override any field without editing the file (``--set section.field=value``), and
``inputs.paths`` / ``output.path`` / ``endpoint.base_url`` have their own options.
"""

from __future__ import annotations

import dataclasses
import os
import re
import string
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from pipeline.config.endpoint import normalise_base_url
from pipeline.config.paths import (
    glob_start,
    is_url,
    literal_pattern,
    local_copy,
    page_path,
    report_path,
)
from pipeline.core import catalogue
from pipeline.core.atomic import partial_affixes
from pipeline.core.errors import ConfigError
from pipeline.core.limits import TIERS, Limits
from pipeline.core.pricing import Price
from pipeline.core.sensitive import secret_by_content, secret_by_name

# The largest window and output of a model in the table: no request can ask for more.
CONTEXT_WINDOW = max(model.window for model in catalogue.MODELS)
MAX_OUTPUT = max(model.max_output for model in catalogue.MODELS)

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

DEFAULT_REDUCE = (
    "Below are summaries of consecutive parts of one document ({name}). Combine them into "
    "one answer to the original request, as if you had read the whole document.\n\n{text}"
)

# Token counts within one request: none can exceed the window.
WindowTokens = Annotated[int, Field(ge=0, le=CONTEXT_WINDOW)]
# A per-minute figure: at least 1, and not beyond anything a provider sells.
PerMinute = Annotated[int, Field(ge=1, le=1_000_000_000)]


def _no_nul(value: str) -> str:
    if "\0" in value:
        raise ValueError("holds a NUL character, which no path can; remove it")
    return value


def _plain_name(value: str) -> str:
    if value in (".", "..") or any(c in value for c in "/\\\0"):
        raise ValueError(
            "must be a plain name (no / or \\, not . or ..): it names the default output, "
            "out/NAME.parquet; set output.path to write elsewhere"
        )
    return value


def _key_variable(value: str) -> str:
    # A job file picks the host (endpoint.base_url) and the variable sent to it as the key:
    # only a variable named as an API key may be picked, never GITHUB_TOKEN or AWS_SECRET_...
    if not re.fullmatch(r"[A-Z][A-Z0-9_]*API_KEY", value):
        raise ValueError(
            "must name an environment variable ending in API_KEY (upper-case letters, digits "
            "and _), e.g. MEGALLM_API_KEY or WORK_ANTHROPIC_API_KEY: the variable's value is "
            "sent to endpoint.base_url as the key, so a job file may not pick any other"
        )
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("a stop sequence must contain something other than white space")
    return value


PathText = Annotated[str, AfterValidator(_no_nul)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class JobInfo(_Section):
    name: Annotated[str, AfterValidator(_plain_name)] | None = None
    description: str = ""


class InputsSpec(_Section):
    paths: list[PathText] = Field(min_length=1)
    include: list[str] = []
    exclude: list[str] = []
    gitignore: bool = True
    skip_secrets: bool = True
    follow_symlinks: bool = False
    max_file_bytes: Annotated[int, Field(ge=1, le=2_000_000_000)] = 50_000_000
    mode: Literal["text", "attach"] = "text"
    scans: Literal["error", "attach"] = "error"
    code: bool = False
    # Table inputs (pipeline.readers.tables): each row of a CSV/TSV/JSONL/Parquet is a document.
    text_column: str | None = None
    id_column: str | None = None
    keep_columns: list[str] = []

    @model_validator(mode="after")
    def _table_fields(self) -> InputsSpec:
        if self.text_column is None and (self.id_column or self.keep_columns):
            raise ValueError(
                "inputs.id_column and inputs.keep_columns apply to table inputs: set "
                "inputs.text_column to the column that holds each row's document"
            )
        return self


class PromptSpec(_Section):
    system: str = ""
    template: str | None = None
    template_file: PathText | None = None
    reduce_template: str = DEFAULT_REDUCE
    cache: bool = True
    cache_ttl: Literal["5m", "1h"] = "5m"

    @model_validator(mode="after")
    def _one_template(self) -> PromptSpec:
        if (self.template is None) == (self.template_file is None):
            raise ValueError("give exactly one of prompt.template or prompt.template_file")
        return self


class ModelSpec(_Section):
    name: str = Field(min_length=1)
    max_tokens: Annotated[int, Field(ge=1, le=MAX_OUTPUT)] = 1024
    temperature: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = None
    stop_sequences: list[Annotated[str, AfterValidator(_not_blank)]] = []


class LimitsSpec(_Section):
    tier: Literal["basic", "pro"] | None = None
    requests_per_minute: PerMinute | None = None
    tokens_per_minute: PerMinute | None = None
    input_tokens_per_minute: PerMinute | None = None
    output_tokens_per_minute: PerMinute | None = None
    max_concurrency: Annotated[int, Field(ge=1, le=1000)] | None = None

    def resolve(self) -> Limits:
        """The tier's figures, with any explicit number in place of the tier's.

        Without a tier or numbers: 4 at a time, and whatever limits the server reports in
        its ``anthropic-ratelimit-*`` headers (the pacer adopts them).
        """
        base = TIERS[self.tier] if self.tier else Limits(max_concurrency=4)
        explicit = {k: v for k, v in self.model_dump().items() if k != "tier" and v is not None}
        return dataclasses.replace(base, **explicit)


class EndpointSpec(_Section):
    mode: Literal["messages", "batch"] = "messages"
    batch_poll_s: Annotated[float, Field(ge=0.01, le=3_600, allow_inf_nan=False)] = 60.0
    batch_max_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    base_url: str | None = None
    api_key_env: Annotated[str, AfterValidator(_key_variable)] | None = None
    allow_insecure_http: bool = False
    stream: bool = False


class RetrySpec(_Section):
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 12
    # per request, first attempt to last; a week at most
    max_elapsed_s: Annotated[float, Field(gt=0, le=604_800, allow_inf_nan=False)] = 3_600.0


class ChunkingSpec(_Section):
    strategy: Literal["map_reduce", "per_chunk", "truncate"] = "map_reduce"
    max_chunk_tokens: Annotated[int, Field(ge=1_000, le=CONTEXT_WINDOW)] | None = None
    overlap_tokens: WindowTokens = 0
    safety_margin_tokens: WindowTokens = 2_000
    exact_counts: bool = False


class OutputSpec(_Section):
    path: PathText | None = None
    # The report as a page too (OUTPUT.report.html): small, and what the morning reader
    # opens, so on by default.
    html_report: bool = True


Rate = Annotated[float, Field(ge=0, le=10_000, allow_inf_nan=False)]


class PricingSpec(_Section):
    """USD per million tokens, for cost estimates; unset fields take the model's list
    price (``pipeline.core.pricing``). Set them when a gateway charges its own prices."""

    input_per_mtok: Rate | None = None
    output_per_mtok: Rate | None = None
    cache_write_per_mtok: Rate | None = None
    cache_read_per_mtok: Rate | None = None


class BudgetSpec(_Section):
    """Stop a run before it passes either figure (this run's spending, not all runs')."""

    max_cost_usd: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = None
    max_total_tokens: Annotated[int, Field(ge=1)] | None = None


class StructuredSpec(_Section):
    schema_: dict[str, Any] = Field(alias="schema")
    tool_name: Annotated[str, Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")] = "record_result"
    description: str = "Record the result for this document."

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    @model_validator(mode="after")
    def _object_schema(self) -> StructuredSpec:
        if self.schema_.get("type") != "object" or not isinstance(
            self.schema_.get("properties"), dict
        ):
            raise ValueError(
                'structured.schema: must be a JSON schema of type "object" with "properties" '
                "(each property becomes a column)"
            )
        return self


class JobSpec(_Section):
    job: JobInfo = JobInfo()
    inputs: InputsSpec
    prompt: PromptSpec
    model: ModelSpec
    limits: LimitsSpec = LimitsSpec()
    endpoint: EndpointSpec = EndpointSpec()
    retry: RetrySpec = RetrySpec()
    chunking: ChunkingSpec = ChunkingSpec()
    output: OutputSpec = OutputSpec()
    pricing: PricingSpec = PricingSpec()
    budget: BudgetSpec = BudgetSpec()
    structured: StructuredSpec | None = None


class Job:
    """A validated spec with its paths resolved against the spec file's folder. The output is
    checked to be writable; where it lies inside an input folder, what a run writes there is
    left out of the inputs (``own_files``)."""

    def __init__(
        self, spec: JobSpec, *, base_dir: Path, name: str, log_file: Path | None = None
    ) -> None:
        self.spec = spec
        self.log_file = log_file
        self.base_dir = base_dir
        self.name = spec.job.name or name
        prompt = spec.prompt
        if prompt.template_file is not None:
            template_path = self.resolve(prompt.template_file)
            try:
                self.template = template_path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    f"prompt.template_file: cannot read {template_path}: {exc.strerror}"
                ) from exc
            except UnicodeDecodeError as exc:
                raise ConfigError(
                    f"prompt.template_file: {template_path} is not UTF-8 text (byte "
                    f"{exc.start:,}); save the template as UTF-8"
                ) from exc
            if spec.inputs.skip_secrets:
                _check_template_secrets(template_path, self.template)
        else:
            self.template = prompt.template or ""
        columns = spec.inputs.text_column is not None  # tables: other names are columns
        # The names that are not built-in placeholders: the table's columns, checked against
        # each table's schema before a run (``pipeline.readers.tables``).
        self.template_columns = tuple(
            dict.fromkeys(
                _check_template(
                    "prompt.template",
                    self.template,
                    needs_text=spec.inputs.mode == "text",
                    columns=columns,
                )
                + _check_template(
                    "prompt.reduce_template",
                    prompt.reduce_template,
                    needs_text=True,
                    columns=columns,
                )
            )
        )
        self.limits = spec.limits.resolve()
        _check_max_tokens(spec.model)
        self.price = _price(spec)
        if spec.budget.max_cost_usd is not None and self.price is None:
            raise ConfigError(
                f"budget.max_cost_usd: {spec.model.name!r} has no known price; set "
                "pricing.input_per_mtok and pricing.output_per_mtok"
            )
        if spec.endpoint.base_url:
            normalise_base_url(
                spec.endpoint.base_url, allow_insecure=spec.endpoint.allow_insecure_http
            )
        _check_output(self.output_path)
        _check_siblings(self.output_path, self.calls_path, html=spec.output.html_report)
        self.spec = self._without_own_files(spec)

    def _without_own_files(self, spec: JobSpec) -> JobSpec:
        """The spec with what a run writes added to ``inputs.exclude`` where it lies inside an
        input folder (``pipeline run job.toml . --output review.parquet``, or a ``--log-file``
        there), so that no run reads its own results, state, lock or log as inputs."""
        written = [(path, literal_pattern(path.name)) for path in self.own_files]
        # the files as they are written, before they replace the old ones (``pipeline.core.atomic``)
        for path in (
            self.output_path,
            self.calls_path,
            report_path(self.output_path),
            page_path(self.output_path),
        ):
            prefix, _ = partial_affixes(path)
            pattern = literal_pattern(prefix) + "*partial"  # .NAME.XXXXXXXX.partial
            written.append((path, pattern))
        excluded: list[str] = []
        for root in self._input_roots():
            real_root = os.path.realpath(root)
            for path, pattern in written:
                relative = os.path.relpath(os.path.realpath(path.parent), real_root)
                if relative == os.pardir or relative.startswith(os.pardir + os.sep):
                    continue
                inside = (
                    ""
                    if relative == os.curdir
                    else literal_pattern(Path(relative).as_posix()) + "/"
                )
                excluded.append(f"/{inside}{pattern}")
        if not excluded:
            return spec
        exclude = [*spec.inputs.exclude, *dict.fromkeys(excluded)]
        return spec.model_copy(
            update={"inputs": spec.inputs.model_copy(update={"exclude": exclude})}
        )

    def _input_roots(self) -> list[Path]:
        """The folders the inputs are walked from: each path, or the fixed part of a glob."""
        return [start[0] if (start := glob_start(given)) else given for given in self.input_paths]

    @property
    def own_files(self) -> tuple[Path, ...]:
        """Every file a run writes: the results, the calls, the report, the state (with
        SQLite's journal files), the lock beside it (``pipeline.state.store``), and the log file."""
        state = self.state_path
        journals = (state.with_name(state.name + end) for end in ("-wal", "-shm", "-journal"))
        report = report_path(self.output_path)
        log = (self.log_file,) if self.log_file is not None else ()
        return (
            self.output_path,
            self.calls_path,
            report,
            page_path(self.output_path),
            state,
            *journals,
            state.with_suffix(".lock"),
            *log,
        )

    def resolve(self, path: str) -> Path:
        """A local path from the spec, relative to the job file's folder."""
        candidate = Path(path).expanduser()
        return Path(
            os.path.normpath(candidate if candidate.is_absolute() else self.base_dir / candidate)
        )

    @property
    def input_paths(self) -> tuple[Path, ...]:
        """The local inputs (files, folders, globs); URLs are in ``input_urls``."""
        return tuple(self.resolve(p) for p in self.spec.inputs.paths if not is_url(p))

    @property
    def input_urls(self) -> tuple[str, ...]:
        """Inputs in object storage (``s3://bucket/prefix`` and other fsspec URLs)."""
        return tuple(p for p in self.spec.inputs.paths if is_url(p))

    @property
    def output_url(self) -> str | None:
        """``output.path`` when it is a URL: the results are written locally at
        ``output_path`` (with the state beside them) and uploaded there at the end."""
        path = self.spec.output.path
        return path if path and is_url(path) else None

    @property
    def output_path(self) -> Path:
        if self.output_url is not None:
            return local_copy(self.output_url)
        if self.spec.output.path:
            return self.resolve(self.spec.output.path)
        return self.base_dir / "out" / f"{self.name}.parquet"

    @property
    def state_path(self) -> Path:
        """Durable progress for resuming and incremental re-runs, beside the output."""
        out = self.output_path
        return out.with_name(f"{out.stem}.state.sqlite")

    @property
    def batch(self) -> bool:
        """Sent through Message Batches (at half price)?"""
        return self.spec.endpoint.mode == "batch"

    def answer_settings(self) -> dict[str, Any]:
        """Everything that shapes a document's answer: a change here means send it again."""
        spec = self.spec
        return {
            "model": spec.model.model_dump(),
            "system": spec.prompt.system,
            "template": self.template,
            "reduce_template": spec.prompt.reduce_template,
            "chunking": spec.chunking.model_dump(),
            "structured": spec.structured.model_dump(by_alias=True) if spec.structured else None,
            "mode": spec.inputs.mode,
            # only when on: the key of a job that never attached scans stays what it was
            **({"scans": spec.inputs.scans} if spec.inputs.scans != "error" else {}),
        }
        # keep_columns are not here: they are part of a row's content (its content hash)

    @property
    def price_basis(self) -> str:
        """Where the job's prices come from, in words for plan and report."""
        if self.spec.pricing != PricingSpec():
            return "job's [pricing]"
        return catalogue.price_basis(self.spec.model.name)

    @property
    def window(self) -> int:
        """The model's context window, in tokens (``pipeline.core.catalogue``)."""
        return catalogue.window(self.spec.model.name)

    @property
    def calls_path(self) -> Path:
        out = self.output_path
        return out.with_name(f"{out.stem}.calls.parquet")

    def chunk_budget(self, estimate: Callable[[str], int]) -> int:
        """Tokens a chunk's text may take: the window less everything else in the request."""
        spec = self.spec
        fixed = estimate(spec.prompt.system) + estimate(_literal_part(self.template))
        window = self.window
        budget = (
            window
            - fixed
            - spec.model.max_tokens
            - spec.chunking.safety_margin_tokens
            - 200  # message framing, the placeholders' own values (names, paths)
        )
        if budget < 1_000:
            margin = spec.chunking.safety_margin_tokens
            raise ConfigError(
                f"prompt/model: the prompt (about {fixed:,} tokens), model.max_tokens "
                f"({spec.model.max_tokens:,}) and chunking.safety_margin_tokens ({margin:,}) leave "
                f"less than 1,000 tokens of the {window:,}-token window for the "
                "document; shorten the prompt or lower model.max_tokens or the margin"
            )
        if spec.chunking.max_chunk_tokens is not None:
            budget = min(budget, spec.chunking.max_chunk_tokens)
        overlap = spec.chunking.overlap_tokens
        if overlap * 2 > budget:
            raise ConfigError(
                f"chunking.overlap_tokens: {overlap:,} is more than half of a chunk "
                f"({budget:,} tokens); lower it"
            )
        return budget


def _check_max_tokens(model: ModelSpec) -> None:
    """Refuse a ``max_tokens`` the model cannot give, before anything is sent."""
    known = catalogue.find(model.name)
    if known is not None and model.max_tokens > known.max_output:
        raise ConfigError(
            f"model.max_tokens: {model.max_tokens:,} is more than {model.name} can write in one "
            f"answer ({known.max_output:,}); lower it"
        )


def _price(spec: JobSpec) -> Price | None:
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


def _check_output(path: Path) -> None:
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


def _check_siblings(output: Path, calls: Path, *, html: bool) -> None:
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


def _check_template_secrets(path: Path, text: str) -> None:
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


def _literal_part(template: str) -> str:
    return "".join(literal for literal, *_ in string.Formatter().parse(template))


def _column_like(name: str) -> bool:
    """Could ``name`` be a column a template names? Not empty, not a number (a positional
    field), no attribute access or indexing."""
    return bool(name.strip()) and not name[0].isdigit() and not set(".[]!:") & set(name)


def _check_template(field: str, template: str, *, needs_text: bool, columns: bool) -> list[str]:
    """Check a template; return the names it uses that are not built-in placeholders
    (allowed only with ``columns``: a table's columns, checked against its schema later)."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"{field}: {exc}. Write {{{{ and }}}} for literal braces.") from exc
    names = set()
    other: list[str] = []
    allowed = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in PLACEHOLDERS and columns and _column_like(name):
            other.append(name)
        elif name not in PLACEHOLDERS:
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


def _parse_override(item: str) -> tuple[list[str], Any]:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(
            f"--set {item!r}: expected section.field=value, e.g. model.max_tokens=2048"
        )
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word: take it as a string
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for item in overrides:
        path, value = _parse_override(item)
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {part} is not a section")
            node = child
        node[path[-1]] = value
    return data


def _describe(error: Any) -> str:
    location = ".".join(str(part) for part in error["loc"]) or "(top level)"
    kind, message = error["type"], error["msg"]
    if kind == "value_error":  # our own validators' messages
        message = message.removeprefix("Value error, ")
    if kind == "extra_forbidden":
        return f"{location}: unknown key; remove it or check its spelling (see README: job spec)"
    if kind == "missing":
        return f"{location}: required; add it"
    given = error.get("input")
    shown = "" if isinstance(given, dict) else f" (got {given!r})"
    return f"{location}: {message}{shown}"


def parse_spec(
    data: dict[str, Any], *, base_dir: Path, name: str, log_file: Path | None = None
) -> Job:
    try:
        spec = JobSpec.model_validate(data)
    except ValidationError as exc:
        lines = [_describe(error) for error in exc.errors()]
        raise ConfigError("the job spec has problems:\n  " + "\n  ".join(lines)) from None
    return Job(spec, base_dir=base_dir, name=name, log_file=log_file)


def load_job(
    path: Path,
    *,
    overrides: list[str] | None = None,
    inputs: list[str] | None = None,
    output: str | None = None,
    base_url: str | None = None,
    log_file: Path | None = None,
) -> Job:
    """Read, override and validate a job spec. Raises ConfigError naming the field.
    ``log_file``: the run's ``--log-file``, never read as an input."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: no such job spec") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    data = apply_overrides(data, overrides or [])
    if inputs:
        # Paths given on the command line are the user's, relative to where they stand.
        data.setdefault("inputs", {})["paths"] = [
            p if is_url(p) else str(Path(p).resolve()) for p in inputs
        ]
    if output:
        data.setdefault("output", {})["path"] = (
            output if is_url(output) else str(Path(output).resolve())
        )
    if base_url:
        data.setdefault("endpoint", {})["base_url"] = base_url
    log = log_file.resolve() if log_file is not None else None
    return parse_spec(data, base_dir=path.resolve().parent, name=path.stem, log_file=log)
