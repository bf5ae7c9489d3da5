"""Message Batches: a batch's life on the simulator's clock, and its results.

Creating a batch checks the body itself (size, 1..``max_requests`` requests, each a
``custom_id`` of 1-64 ``[a-zA-Z0-9_-]``, unique, and a ``params`` object without
``stream: true``) and answers 400 at once. Each ``params`` is validated later, as the real
API does: an invalid one becomes an ``errored`` result carrying the error ``/v1/messages``
would have given.

Every request is given, from ``Batches.seed``, its ``custom_id`` and its params, a moment
within ``processing_seconds`` at which it finishes and a fate (succeeded, or errored /
expired at the configured rates). The batch is ``in_progress`` until its last request is
due, then ``ended``; ``request_counts`` stay at ``processing`` until then, as documented. A
cancel makes it ``canceling`` for ``cancel_seconds``; requests due by then keep their
fate, the others are ``canceled``. Requests due more than 24 h after creation expire.

Results are produced once the batch has ended, as soon as the simulator next sees it or
any ``/v1/messages`` request: one request at a time in the order they finish, through the
same prompt cache as ``/v1/messages`` at each request's own moment. Lines come out in that
order, not the order of the requests. Batches are private to the API key that created
them, and never draw from the per-minute rate limits.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pipeline.core.limits import Clock
from pipeline.simulator.cache import PromptCache, cache_scope
from pipeline.simulator.config import SimulatorConfig
from pipeline.simulator.envelope import ApiError, api_error, invalid, new_id
from pipeline.simulator.replies import make_reply, message_body, request_digest
from pipeline.simulator.stats import Stats
from pipeline.simulator.validation import MessagesRequest, validate_messages

EXPIRY_SECONDS = 24 * 3600.0
RETENTION_SECONDS = 29 * 24 * 3600.0
RESULT_TYPES = ("succeeded", "errored", "canceled", "expired")
_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

Fate = Literal["succeeded", "errored", "expired"]
Status = Literal["in_progress", "canceling", "ended"]


@dataclass(frozen=True)
class Item:
    """One request of a batch: what it asks, when it finishes and how it ends if reached."""

    custom_id: str
    params: Mapping[str, Any]
    finish: float
    fate: Fate


@dataclass
class Batch:
    id: str
    owner: str
    created: float  # on the simulator's clock
    wall_offset: float  # wall time minus clock time, fixed at creation
    items: tuple[Item, ...]
    natural_end: float
    cancel_seconds: float
    canceled_at: float | None = None
    results: list[dict[str, Any]] | None = None
    counts: Counter[str] = field(default_factory=Counter)

    def ends_at(self) -> float:
        if self.canceled_at is None:
            return self.natural_end
        return min(self.natural_end, self.canceled_at + self.cancel_seconds)

    def status(self, now: float) -> Status:
        if now >= self.ends_at():
            return "ended"
        return "in_progress" if self.canceled_at is None else "canceling"


def _stamp(batch: Batch, clock_time: float) -> str:
    moment = datetime.fromtimestamp(clock_time + batch.wall_offset, UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_requests(body: Any, *, max_requests: int) -> list[tuple[str, Mapping[str, Any]]]:
    """The ``(custom_id, params)`` of a create-batch body, or the 400 the API would give."""
    if not isinstance(body, Mapping):
        raise invalid("Request body must be a JSON object")
    for key in body:
        if key != "requests":
            raise invalid(f"{key}: Extra inputs are not permitted")
    requests = body.get("requests")
    if requests is None:
        raise invalid("requests: Field required")
    if not isinstance(requests, list):
        raise invalid("requests: Input should be a valid list")
    if not 1 <= len(requests) <= max_requests:
        bound = "at least 1 item" if not requests else f"at most {max_requests:,} items"
        raise invalid(f"requests: List should have {bound} after validation, not {len(requests)}")
    parsed = [_parse_request(f"requests.{i}", entry) for i, entry in enumerate(requests)]
    seen: set[str] = set()
    for custom_id, _ in parsed:
        if custom_id in seen:
            raise invalid(
                f"requests: custom_id must be unique within a batch; '{custom_id}' is repeated"
            )
        seen.add(custom_id)
    return parsed


def _parse_request(where: str, entry: Any) -> tuple[str, Mapping[str, Any]]:
    if not isinstance(entry, Mapping):
        raise invalid(f"{where}: Input should be a valid dictionary")
    for key in entry:
        if key not in ("custom_id", "params"):
            raise invalid(f"{where}.{key}: Extra inputs are not permitted")
    custom_id, params = entry.get("custom_id"), entry.get("params")
    if custom_id is None:
        raise invalid(f"{where}.custom_id: Field required")
    if not isinstance(custom_id, str) or not _CUSTOM_ID.match(custom_id):
        raise invalid(f"{where}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'")
    if params is None:
        raise invalid(f"{where}.params: Field required")
    if not isinstance(params, Mapping):
        raise invalid(f"{where}.params: Input should be a valid dictionary")
    if params.get("stream") is True:
        raise invalid(f"{where}.params.stream: Input should be False")
    return custom_id, params


class BatchStore:
    """Every batch the simulator was given, and what happened to each."""

    def __init__(
        self,
        config: SimulatorConfig,
        *,
        clock: Clock,
        wall: Clock,
        cache: PromptCache,
        stats: Stats,
    ) -> None:
        self.config = config
        self._clock, self._wall = clock, wall
        self._cache, self._stats = cache, stats
        self._batches: dict[str, Batch] = {}
        self._pending: set[str] = set()

    def _item(self, custom_id: str, params: Mapping[str, Any], created: float) -> Item:
        settings = self.config.batches
        rng = random.Random(f"{settings.seed}:batch:{custom_id}:{request_digest(params)}")
        roll, finish = rng.random(), rng.random()
        fate: Fate = "succeeded"
        if roll < settings.errored:
            fate = "errored"
        elif roll < settings.errored + settings.expired:
            fate = "expired"
        return Item(custom_id, params, created + finish * settings.processing_seconds, fate)

    def create(self, owner: str, body: Any) -> Batch:
        settings = self.config.batches
        requests = parse_requests(body, max_requests=settings.max_requests)
        now = self._clock()
        items = tuple(self._item(custom_id, params, now) for custom_id, params in requests)
        natural_end = now + min(settings.processing_seconds, EXPIRY_SECONDS)
        batch = Batch(
            id=new_id("msgbatch"),
            owner=owner,
            created=now,
            wall_offset=self._wall() - now,
            items=items,
            natural_end=natural_end,
            cancel_seconds=settings.cancel_seconds,
        )
        self._batches[batch.id] = batch
        self._pending.add(batch.id)
        self._stats.batches["created"] += 1
        self._stats.batches["requests"] += len(items)
        return batch

    def get(self, owner: str, batch_id: str) -> Batch:
        batch = self._batches.get(batch_id)
        if batch is None or batch.owner != owner:
            raise ApiError(404, "not_found_error", f"message_batch: {batch_id} not found")
        self._settle(batch)
        return batch

    def listing(self, owner: str) -> list[Batch]:
        """The key's batches, most recently created first."""
        mine = [b for b in self._batches.values() if b.owner == owner]
        for batch in mine:
            self._settle(batch)
        return mine[::-1]

    def cancel(self, owner: str, batch_id: str) -> Batch:
        batch = self.get(owner, batch_id)
        if batch.status(self._clock()) == "ended":
            raise invalid(f"message_batch: {batch_id} has already ended and cannot be canceled")
        if batch.canceled_at is None:
            batch.canceled_at = self._clock()
            self._stats.batches["canceled"] += 1
        return batch

    def delete(self, owner: str, batch_id: str) -> None:
        batch = self.get(owner, batch_id)
        if batch.status(self._clock()) != "ended":
            raise invalid(
                f"message_batch: {batch_id} is still being processed; cancel it and wait "
                "for it to end before deleting it"
            )
        del self._batches[batch_id]
        self._stats.batches["deleted"] += 1

    def results(self, owner: str, batch_id: str) -> list[dict[str, Any]]:
        batch = self.get(owner, batch_id)
        if batch.results is None:
            raise invalid(f"message_batch: {batch_id} has not finished processing; no results yet")
        if self._clock() >= batch.created + RETENTION_SECONDS:
            raise ApiError(404, "not_found_error", f"message_batch: {batch_id} results expired")
        self._stats.batches["results_served"] += len(batch.results)
        self._stats.batch_results.update(line["result"]["type"] for line in batch.results)
        return batch.results

    def settle(self) -> None:
        """Produce the results of every batch that has ended by now."""
        for batch_id in list(self._pending):
            self._settle(self._batches[batch_id])

    def _settle(self, batch: Batch) -> None:
        end = batch.ends_at()
        if batch.results is not None or self._clock() < end:
            return
        expired = end >= batch.created + EXPIRY_SECONDS
        lines = [
            self._result(batch, item, end, expired)
            for item in sorted(batch.items, key=lambda item: item.finish)
        ]
        batch.results = lines
        batch.counts = Counter(line["result"]["type"] for line in lines)
        self._pending.discard(batch.id)

    def _result(self, batch: Batch, item: Item, end: float, expired: bool) -> dict[str, Any]:
        if item.finish > end:
            return _line(item, {"type": "expired" if expired else "canceled"})
        try:
            request = validate_messages(
                item.params, token_scale=self.config.token_scale, served=self.config.served
            )
        except ApiError as err:
            return _line(item, {"type": "errored", "error": err.body(new_id("req"))})
        if item.fate == "expired":
            return _line(item, {"type": "expired"})
        if item.fate == "errored":
            return _line(item, {"type": "errored", "error": api_error().body(new_id("req"))})
        return _line(item, {"type": "succeeded", "message": self._reply(batch, item, request)})

    def _reply(self, batch: Batch, item: Item, request: MessagesRequest) -> dict[str, Any]:
        """The message a request gets, billed through the prompt cache at its own moment."""
        scope = cache_scope(batch.owner, request.model)
        plan = self._cache.plan(scope, item.params, now=item.finish)
        self._cache.commit(plan, now=item.finish)
        self._stats.cached(plan.usage)
        reply = make_reply(
            request, request_digest(item.params), self.config.reply_tokens, self.config.tool_rounds
        )
        self._stats.batch_tokens.update(
            input=plan.usage.input_tokens,
            output=reply.output_tokens,
            cache_creation=plan.usage.cache_creation_input_tokens,
            cache_read=plan.usage.cache_read_input_tokens,
        )
        return message_body(
            reply,
            message_id=new_id("msg"),
            model=request.model,
            billed=plan.usage,
            service_tier="batch",
        )

    def view(self, batch: Batch, *, base_url: str) -> dict[str, Any]:
        """The batch as the API shows it (``message_batch``)."""
        now = self._clock()
        status = batch.status(now)
        ended = status == "ended"
        counts = {kind: batch.counts[kind] if ended else 0 for kind in RESULT_TYPES}
        archived = batch.created + RETENTION_SECONDS
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": {"processing": 0 if ended else len(batch.items), **counts},
            "ended_at": _stamp(batch, batch.ends_at()) if ended else None,
            "created_at": _stamp(batch, batch.created),
            "expires_at": _stamp(batch, batch.created + EXPIRY_SECONDS),
            "archived_at": _stamp(batch, archived) if now >= archived else None,
            "cancel_initiated_at": (
                _stamp(batch, batch.canceled_at) if batch.canceled_at is not None else None
            ),
            "results_url": f"{base_url}/v1/messages/batches/{batch.id}/results" if ended else None,
        }


def _line(item: Item, result: dict[str, Any]) -> dict[str, Any]:
    return {"custom_id": item.custom_id, "result": result}
