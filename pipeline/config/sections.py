"""The job spec's sections as TOML gives them: each refuses unknown keys and wrong types, and
checks its own ranges, naming the field (``model.max_tokens``) and the fix."""

from __future__ import annotations

import dataclasses
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from pipeline.config.review import ReviewSpec
from pipeline.config.turns import DEFAULT_REFINE, MAX_FOLLOWUPS, ColumnName, FollowupSpec
from pipeline.core import catalogue
from pipeline.core.defaults import CONCURRENCY
from pipeline.core.limits import TIERS, Limits

# The largest window and output of a model in the table: no request can ask for more.
CONTEXT_WINDOW = max(model.window for model in catalogue.MODELS)
MAX_OUTPUT = max(model.max_output for model in catalogue.MODELS)

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
    pdf_text: Literal["pypdf", "pdfium"] = "pypdf"  # the library that reads PDFs' text
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
    refine_template: str = DEFAULT_REFINE  # chunking.strategy = "refine" (pipeline.config.turns)
    # Follow-up questions in the same conversation, and the first answer's column.
    followups: list[FollowupSpec] = Field(default=[], max_length=MAX_FOLLOWUPS)
    answer_column: ColumnName = "answer"
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

        Without a tier or numbers: ``pipeline.core.defaults.CONCURRENCY`` at a time, and
        whatever limits the server reports in its ``anthropic-ratelimit-*`` headers (the
        pacer adopts them).
        """
        base = TIERS[self.tier] if self.tier else Limits(max_concurrency=CONCURRENCY)
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
    strategy: Literal["map_reduce", "per_chunk", "truncate", "refine"] = "map_reduce"
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
    review: ReviewSpec = ReviewSpec()
