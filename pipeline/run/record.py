"""What a document leaves: its output rows and its calls file rows (``pipeline.core.rows``)."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from pipeline.config.spec import Job
from pipeline.config.turns import turn_columns
from pipeline.core.errors import InputProblem, Skipped
from pipeline.core.models import CallResult, Document, Usage, utc
from pipeline.core.rows import CallRow, DocumentRow, Status, column_of, structured_columns

log = logging.getLogger("pipeline.run")


@dataclass
class Ledger:
    """One document's account, as its calls end: what its row(s) will say."""

    document: Document
    chunk_count: int
    started_at: float
    notes: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    attempts: int = 0
    latency_s: float = 0.0
    request_ids: list[str] = field(default_factory=list)
    rows: list[DocumentRow] = field(default_factory=list)
    call_rows: list[CallRow] = field(default_factory=list)
    failed: bool = False  # a part failed: the document's row says so, nothing more is asked
    unsent: bool = False  # a call was not sent (the run is stopping): no row this run

    def account(self, label: str, result: CallResult) -> None:
        self.attempts += len(result.attempts)
        self.latency_s += sum(a.latency_s for a in result.attempts)
        self.request_ids.extend(a.request_id for a in result.attempts if a.request_id)
        if result.reply is not None:
            self.usage = self.usage + result.reply.usage
        self.call_rows.extend(call_rows(self.document.doc_id, label, result))


def call_rows(doc_id: str, label: str, result: CallResult) -> list[CallRow]:
    """The calls file's rows for one call: one per attempt."""
    reply = result.reply
    rows = []
    for attempt in result.attempts:
        ok = attempt.status == 200 and reply is not None
        rows.append(
            CallRow(
                doc_id=doc_id,
                call=label,
                attempt=attempt.number,
                status=attempt.status,
                error_type=attempt.error_kind,
                request_id=attempt.request_id,
                latency_s=round(attempt.latency_s, 4),
                started_at=utc(attempt.started_at),
                input_tokens=reply.usage.input_tokens if ok and reply else None,
                output_tokens=reply.usage.output_tokens if ok and reply else None,
                stop_reason=reply.stop_reason if ok and reply else None,
            )
        )
    return rows


class Rows:
    """Builds a job's output rows: the columns of its structured schema and kept table
    columns included."""

    def __init__(self, job: Job, kept_columns: dict[str, Any]) -> None:
        self.job = job
        structured = job.spec.structured
        self.structured_columns = structured_columns(structured.schema_ if structured else None)
        # a conversation's answers, a text column per turn (``pipeline.run.conversation``)
        prompt = job.spec.prompt
        for column in turn_columns(prompt.answer_column, prompt.followups):
            self.structured_columns[column] = {"type": "string"}
        self.kept_columns = kept_columns

    def cost(self, usage: Usage) -> float | None:
        price = self.job.price
        return None if price is None else price.cost(usage, batch=self.job.batch)

    def add(self, ledger: Ledger, *, status: Status, **values: Any) -> None:
        document = ledger.document
        structured = values.pop("structured", None)
        extra: dict[str, Any] = {**document.kept, **values.pop("turns", {})}
        if structured is not None:
            values["structured_json"] = json.dumps(structured, ensure_ascii=False)
            spec = self.job.spec.structured
            properties = spec.schema_["properties"] if spec else {}
            extra.update({column_of(name): structured.get(name) for name in properties})
        ledger.rows.append(
            DocumentRow(
                doc_id=document.doc_id,
                source=document.source,
                status=status,
                chunks=ledger.chunk_count,
                input_tokens=ledger.usage.input_tokens,
                output_tokens=ledger.usage.output_tokens,
                cache_read_input_tokens=ledger.usage.cache_read_input_tokens,
                cache_creation_input_tokens=ledger.usage.cache_creation_input_tokens,
                cost_usd=self.cost(ledger.usage),
                attempts=ledger.attempts,
                latency_s=round(ledger.latency_s, 3),
                request_ids=tuple(ledger.request_ids),
                started_at=utc(ledger.started_at),
                finished_at=utc(time.time()),
                kind=document.kind,
                language=document.language,
                notes=(*document.notes, *ledger.notes),
                content_hash=document.content_hash,
                extra=extra,
                **values,
            )
        )

    def problem(self, source: str, problem: InputProblem) -> DocumentRow:
        """The row of an input that could not be read (an error) or is not sent (a skip)."""
        status: Status = "skipped" if isinstance(problem, Skipped) else "error"
        log.log(
            logging.INFO if status == "skipped" else logging.WARNING,
            "%s",
            problem.message,
            extra={"event": f"document_{status}", "error_type": problem.kind},
        )
        now = utc(time.time())
        return DocumentRow(
            doc_id=hashlib.sha256(source.encode()).hexdigest()[:16],
            source=source,
            status=status,
            error_type=problem.kind,
            error_message=problem.message,
            started_at=now,
            finished_at=now,
            extra=dict(problem.kept),
        )
