"""What a job's ``[inputs]`` mean to the readers: its ``InputOptions``, the one way every part
that reads the inputs (a run, ``plan``, a review's map and tools) gets them; and
``check_inputs``, the check a run, ``plan`` and ``validate`` make before anything is sent."""

from __future__ import annotations

from typing import Any

from pipeline.config.spec import Job
from pipeline.core.rows import DOCUMENT_COLUMNS, structured_columns
from pipeline.readers.options import InputOptions, TableOptions
from pipeline.readers.sources import find


def _table_options(job: Job) -> TableOptions | None:
    inputs = job.spec.inputs
    if inputs.text_column is None:
        return None
    spec = job.spec
    structured = structured_columns(spec.structured.schema_ if spec.structured else None)
    taken = {*DOCUMENT_COLUMNS, *structured}
    return TableOptions(
        text_column=inputs.text_column,
        id_column=inputs.id_column,
        keep=tuple((c, f"input_{c}" if c in taken else c) for c in inputs.keep_columns),
        template_columns=job.template_columns,
    )


def input_options(job: Job) -> InputOptions:
    inputs = job.spec.inputs
    return InputOptions(
        urls=job.input_urls,
        table=_table_options(job),
        paths=job.input_paths,
        include=tuple(inputs.include),
        exclude=tuple(inputs.exclude),
        gitignore=inputs.gitignore,
        skip_secrets=inputs.skip_secrets,
        follow_symlinks=inputs.follow_symlinks,
        max_file_bytes=inputs.max_file_bytes,
        mode=inputs.mode,
        scans=inputs.scans,
        pdf_text=inputs.pdf_text,
        code=inputs.code,
    )


def check_inputs(job: Job) -> dict[str, Any]:
    """Raise ConfigError now, before anything is sent, if an input path matches nothing (or
    a table lacks a column the job names); StorageRefused if a bucket refuses the
    credentials. Returns a table job's kept columns (name -> Parquet type)."""
    options = input_options(job)
    if options.table is not None:
        from pipeline.readers import tables  # polars and pyarrow: only for a table job

        return tables.check(find(options), options.table)
    next(iter(find(options)), None)
    return {}
