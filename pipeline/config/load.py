"""Loading a job: a TOML file under ``jobs/``, overridden from the command line, validated once.

Every section refuses unknown keys and wrong types; every error names the field
(``model.max_tokens``) and says how to fix it, before anything is sent. The command line
can override any field without editing the file (``--set section.field=value``), and
``inputs.paths`` / ``output.path`` / ``endpoint.base_url`` have their own options.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipeline.config.paths import is_url
from pipeline.config.sections import JobSpec
from pipeline.config.spec import Job
from pipeline.core.errors import ConfigError


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
