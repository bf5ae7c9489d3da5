"""Before anything is sent: does the endpoint serve the job's model, and what the job needs?

``GET /v1/models`` costs nothing and lists what the endpoint serves. A model it does not
serve is ``ModelNotFound`` naming what it does serve and the closest of them
(``pipeline.core.catalogue.suggest``), so that a run, ``pipeline validate`` and ``pipeline plan``
stop before any document is sent. A server without ``/v1/models`` (a gateway may leave it
out) passes: the first request then says. A batch job needs the Message Batches endpoints:
without them it stops here (``NotOffered``), saying what to set instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import anyio

from pipeline.config.endpoint import Endpoint, redact_error
from pipeline.config.spec import Job
from pipeline.core import catalogue
from pipeline.core.errors import ConnectionFailed, HostUnreachable, ModelNotFound, NotOffered
from pipeline.engine.client import MessagesClient

MAX_PAGES = 20  # of up to 1,000 models each: more than any endpoint serves
_SHOWN = 12  # ids named in an error, at most


@dataclass(frozen=True)
class ServedModel:
    """One entry of ``GET /v1/models``, with the limits the server states (if any)."""

    id: str
    display_name: str = ""
    max_input_tokens: int | None = None
    max_tokens: int | None = None


def _entry(raw: Mapping[str, Any]) -> ServedModel:
    def number(key: str) -> int | None:
        value = raw.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    name = raw.get("display_name")
    return ServedModel(
        str(raw["id"]),
        name if isinstance(name, str) else "",
        number("max_input_tokens"),
        number("max_tokens"),
    )


async def served_models(client: MessagesClient) -> list[ServedModel] | None:
    """What the endpoint serves, every page; None when it has no ``/v1/models``."""
    found: list[ServedModel] = []
    params: dict[str, str | int] = {"limit": 1000}
    for _ in range(MAX_PAGES):
        page = await client.get_json("/v1/models", params)
        data = page.get("data") if page is not None else None
        if not isinstance(data, list):
            return found or None
        found.extend(
            _entry(raw)
            for raw in data
            if isinstance(raw, Mapping) and isinstance(raw.get("id"), str)
        )
        last = page.get("last_id") if page is not None else None
        if not (page and page.get("has_more") and isinstance(last, str)):
            break
        params = {"limit": 1000, "after_id": last}
    return found


async def check_model(client: MessagesClient, model: str, served: list[ServedModel] | None) -> None:
    """Raise ``ModelNotFound`` if ``served`` is known and ``model`` is not in it (nor an alias
    the server resolves with ``GET /v1/models/{model}``)."""
    if served is None:
        return
    ids = [entry.id for entry in served]
    if model in ids or await client.get_json(f"/v1/models/{quote(model, safe='')}") is not None:
        return
    host = client.endpoint.host
    if not ids:
        raise ModelNotFound(f"{host} serves no models (GET /v1/models is empty); check the key")
    listed = ", ".join(ids[:_SHOWN]) + (
        f" and {len(ids) - _SHOWN} more" if len(ids) > _SHOWN else ""
    )
    closest = catalogue.suggest(model, ids)
    error = ModelNotFound(
        f"model.name: {model!r} is not served by {host}; it serves {listed}. Did you mean "
        f'{closest!r}? Set model.name = "{closest}" in the job (or --set '
        f"model.name={closest}); nothing was sent"
    )
    raise redact_error(error, client.endpoint.api_key)  # the ids are the server's text


async def check_batches(client: MessagesClient) -> None:
    """Raise ``NotOffered`` if the endpoint has no Message Batches."""
    if await client.get_json("/v1/messages/batches", {"limit": 1}) is None:
        raise NotOffered(
            f"{client.endpoint.host} does not offer Message Batches (GET /v1/messages/batches "
            "answered 404), so this batch job cannot run there; nothing was sent. Set "
            'endpoint.mode = "messages" (or --set endpoint.mode=messages) to send the same '
            "requests one at a time, at the full price"
        )


async def check_endpoint(
    client: MessagesClient, *, model: str | None = None, batches: bool = False
) -> list[ServedModel] | None:
    """The whole free check: key and host (any answer from ``/v1/models`` but 401-403), the
    model, and Message Batches when the job needs them. Returns what the endpoint serves."""
    served = await served_models(client)
    if model is not None:
        await check_model(client, model, served)
    if batches:
        await check_batches(client)
    return served


def unreachable(error: ConnectionFailed, endpoint: Endpoint) -> HostUnreachable:
    """What a run, ``validate`` and ``models`` say when no connection could be made."""
    return HostUnreachable(
        f"{error.message}. Check the base URL ({endpoint.base_url}) and the network."
    )


def check_job(job: Job, endpoint: Endpoint) -> list[ServedModel] | None:
    """``check_endpoint`` for a job, from synchronous code (``validate``, ``plan``).
    Raises ``HostUnreachable`` when no connection could be made."""

    async def check() -> list[ServedModel] | None:
        async with MessagesClient(endpoint, concurrency=2) as client:
            return await check_endpoint(client, model=job.spec.model.name, batches=job.batch)

    try:
        return anyio.run(check)
    except ConnectionFailed as exc:
        raise unreachable(exc, endpoint) from exc


def list_served(endpoint: Endpoint) -> list[ServedModel] | None:
    """What ``endpoint`` serves (``pipeline models``); None without ``/v1/models``."""

    async def listing() -> list[ServedModel] | None:
        async with MessagesClient(endpoint, concurrency=2) as client:
            return await served_models(client)

    try:
        return anyio.run(listing)
    except ConnectionFailed as exc:
        raise unreachable(exc, endpoint) from exc


def describe(served: list[ServedModel]) -> list[dict[str, Any]]:
    """Each served model with the facts the project will use: the table's where it knows the
    model, else what the server states; and the price with where it comes from."""
    rows = []
    for entry in served:
        known = catalogue.find(entry.id)
        rows.append(
            {
                "id": entry.id,
                "display_name": entry.display_name or (known.display_name if known else ""),
                "window": known.window if known else entry.max_input_tokens,
                "max_output": known.max_output if known else entry.max_tokens,
                "input_per_mtok": known.price.input if known else None,
                "output_per_mtok": known.price.output if known else None,
                "price_basis": catalogue.price_basis(entry.id),
            }
        )
    return rows


def render(rows: list[dict[str, Any]], base_url: str) -> str:
    """``pipeline models`` as a person reads it."""

    def number(value: int | None) -> str:
        return f"{value:,}" if value is not None else "?"

    lines = [f"Models served by {base_url}:"]
    width = max((len(row["id"]) for row in rows), default=10)
    lines.append(
        f"  {'model':<{width}}  {'window':>9}  {'max output':>10}  price (USD/MTok in/out)"
    )
    for row in rows:
        price = (
            f"${row['input_per_mtok']:g} / ${row['output_per_mtok']:g}, {row['price_basis']}"
            if row["input_per_mtok"] is not None
            else "unknown: set [pricing] in the job"
        )
        lines.append(
            f"  {row['id']:<{width}}  {number(row['window']):>9}  "
            f"{number(row['max_output']):>10}  {price}"
        )
    lines.append(
        "List prices are Anthropic's for the Claude model named; a gateway may charge its own "
        "(set [pricing] in the job to use yours)."
    )
    return "\n".join(lines)
