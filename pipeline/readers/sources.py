"""Where documents come from, whatever holds them: ``find`` lists the inputs (local paths
through ``discover``, URLs through ``remote``), ``read_items`` turns one into documents (a
file is one; a table, with ``inputs.text_column``, one per row)."""

from __future__ import annotations

from collections.abc import Generator, Iterator

from pipeline.core.errors import InputProblem
from pipeline.core.models import Document
from pipeline.readers import remote
from pipeline.readers.discover import discover
from pipeline.readers.options import Candidate, InputOptions
from pipeline.readers.read import read_document


def find(options: InputOptions) -> Iterator[Candidate | InputProblem]:
    """Every input to read, local paths first, then each URL's objects, in a stable order."""
    if options.paths:
        yield from discover(options)
    for url in options.urls:
        yield from remote.discover_url(url, options)


def read_items(
    candidate: Candidate, options: InputOptions, issued: set[str] | None = None
) -> Generator[Document | InputProblem, None, None]:
    """A candidate's documents, or the problems (with their ``source``) that say why not.
    Blocking: a run calls it in worker threads. ``issued``: the run's table rows' ``doc_id``s
    so far (``tables.rows``)."""
    if options.table is not None:
        from pipeline.readers import tables  # polars and pyarrow: only for a table job

        yield from tables.rows(candidate, options, issued)
        return
    try:
        yield read_document(candidate, options)
    except InputProblem as problem:
        problem.source = candidate.source
        yield problem
