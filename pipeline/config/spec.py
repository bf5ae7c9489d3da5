"""The job as a run sees it (``Job``): the validated spec (``pipeline.config.sections``) with its
paths resolved against the spec file's folder, checked once (``pipeline.config.checks``).
Reading a TOML file with command-line overrides is ``pipeline.config.load``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.config.checks import (
    check_max_tokens,
    check_output,
    check_siblings,
    literal_part,
    price_of,
    read_template,
    template_columns,
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
from pipeline.config.review import check_review
from pipeline.config.sections import JobSpec, PricingSpec, PromptSpec
from pipeline.core import catalogue
from pipeline.core.atomic import partial_affixes
from pipeline.core.errors import ConfigError


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
        if spec.prompt.template_file is not None:
            path = self.resolve(spec.prompt.template_file)
            self.template = read_template(path, skip_secrets=spec.inputs.skip_secrets)
        else:
            self.template = spec.prompt.template or ""
        self.template_columns = template_columns(spec, self.template)
        self.limits = spec.limits.resolve()
        check_max_tokens(spec.model)
        self.price = price_of(spec)
        if spec.budget.max_cost_usd is not None and self.price is None:
            raise ConfigError(
                f"budget.max_cost_usd: {spec.model.name!r} has no known price; set "
                "pricing.input_per_mtok and pricing.output_per_mtok"
            )
        if spec.endpoint.base_url:
            normalise_base_url(
                spec.endpoint.base_url, allow_insecure=spec.endpoint.allow_insecure_http
            )
        check_review(
            spec.review,
            code=spec.inputs.code,
            structured=spec.structured is not None,
            local=not self.input_urls,
            table=spec.inputs.text_column is not None,
        )
        check_output(self.output_path)
        check_siblings(self.output_path, self.calls_path, html=spec.output.html_report)
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
            # only when used: the key of a job without them stays what it was
            **turn_settings(spec.prompt, spec.chunking.strategy),
            "chunking": spec.chunking.model_dump(),
            "structured": spec.structured.model_dump(by_alias=True) if spec.structured else None,
            "mode": spec.inputs.mode,
            # only when on: the key of a job that never attached scans stays what it was
            **({"scans": spec.inputs.scans} if spec.inputs.scans != "error" else {}),
            **({"review": spec.review.model_dump()} if spec.review.on else {}),
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
        fixed = estimate(spec.prompt.system) + estimate(literal_part(self.template))
        fixed += spec.review.reserved_tokens  # the repository map, the tool rounds
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
        if spec.chunking.strategy == "refine":  # each part's request carries the answer so far
            budget -= spec.model.max_tokens + estimate(literal_part(spec.prompt.refine_template))
        if spec.chunking.max_chunk_tokens is not None:
            budget = min(budget, spec.chunking.max_chunk_tokens)
        overlap = spec.chunking.overlap_tokens
        if overlap * 2 > budget:
            raise ConfigError(
                f"chunking.overlap_tokens: {overlap:,} is more than half of a chunk "
                f"({budget:,} tokens); lower it"
            )
        return budget


def turn_settings(prompt: PromptSpec, strategy: str) -> dict[str, Any]:
    """The settings of follow-ups and refine that shape an answer, only where used."""
    settings: dict[str, Any] = {}
    if prompt.followups:
        settings["followups"] = [followup.model_dump() for followup in prompt.followups]
        settings["answer_column"] = prompt.answer_column
    if strategy == "refine":
        settings["refine_template"] = prompt.refine_template
    return settings
