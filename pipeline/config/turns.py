"""The spec's settings for answers in more than one request: follow-up questions asked in
the same conversation (``[[prompt.followups]]``), and the refine strategy's template.

A follow-up is a user turn after the first answer, with the conversation before it; its
answer is kept in a column of its own (``name``), as the first answer is in
``prompt.answer_column``. The refine template asks for the running answer to be refined with
the next part of a document: ``{answer}`` is the answer so far and ``{request}`` the job's
own template rendered for this part.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

from pipeline.core.errors import ConfigError

# What a refine template may name besides the usual placeholders.
REFINE_PLACEHOLDERS = {
    "answer": "the answer so far, from the parts before this one",
    "request": "the job's template, rendered for this part (its instruction and the part)",
}

DEFAULT_REFINE = (
    "You are reading one document ({name}) in order, part by part. Your answer so far, from "
    "the parts before this one, is between the <answer_so_far> tags. Read part "
    "{chunk_index} of {chunk_count} below and give the whole answer again, refined with what "
    "this part adds; keep what still holds.\n\n<answer_so_far>\n{answer}\n</answer_so_far>\n\n"
    "{request}"
)

_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_FOLLOWUPS = 20


def _column_name(value: str) -> str:
    if not _COLUMN.match(value):
        raise ValueError(
            "must be a column name: letters, digits and _, starting with a letter or _ "
            "(at most 64), e.g. risks"
        )
    return value


ColumnName = Annotated[str, AfterValidator(_column_name)]


class FollowupSpec(BaseModel):
    """One follow-up question: ``template`` is asked after the answers before it, and its
    answer is the column ``name``."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: ColumnName
    template: str


def turn_columns(answer_column: str, followups: Sequence[FollowupSpec]) -> tuple[str, ...]:
    """The columns of a conversation's turns, in order; none without follow-ups."""
    return (answer_column, *(f.name for f in followups)) if followups else ()


def check_columns(
    answer_column: str,
    followups: Iterable[FollowupSpec],
    *,
    standard: Iterable[str],
    taken: dict[str, str],
) -> tuple[str, ...]:
    """The columns of a conversation's turns, in order, checked: each a new name, none a
    standard column or one the job adds already (``taken``: column -> where it comes from)."""
    names = [followup.name for followup in followups]
    columns = (answer_column, *names)
    fields = ("prompt.answer_column", *(f"prompt.followups.{n}.name" for n in range(len(names))))
    reserved = set(standard)
    seen: dict[str, str] = {}
    for field, column in zip(fields, columns, strict=True):
        if column in reserved:
            raise ConfigError(
                f"{field}: {column!r} is a standard column of the results; choose another name"
            )
        if column in taken:
            raise ConfigError(f"{field}: {column!r} is already a column ({taken[column]})")
        if column in seen:
            raise ConfigError(
                f"{field}: {column!r} is also {seen[column]}: each turn needs a column of its own"
            )
        seen[column] = field
    return columns
