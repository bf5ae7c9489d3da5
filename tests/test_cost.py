"""Cost: the shared prefix is cached, the budget stops a run before it passes, plans hold."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import anyio
import polars as pl
import pytest

from pipeline.client import ApiKey, Endpoint
from pipeline.planner import Unit, request_for
from pipeline.runner import RunControl, RunOutcome, run_job
from pipeline.simulator import SimulatorConfig, SimulatorServer
from pipeline.spec import Job, parse_spec
from tests.conftest import StartSimulator

# About 2,000 tokens by the simulator's count: over Sonnet's 1,024-token cache minimum.
GUIDE = " ".join(
    f"Rule {n}: quote the document's own words for every figure, and name the section it is in."
    for n in range(120)
)
DOCUMENTS = 12


def make_job(tmp_path: Path, **sections: dict[str, Any]) -> Job:
    docs = tmp_path / "docs"
    if not docs.exists():
        docs.mkdir(parents=True)
        for n in range(DOCUMENTS):
            (docs / f"r{n:02d}.txt").write_text(
                f"Report {n}: revenue rose {n} percent; costs fell.", encoding="utf-8"
            )
    data: dict[str, Any] = {
        "inputs": {"paths": [str(docs)]},
        "prompt": {"system": GUIDE, "template": "Summarize this report.\n\n{text}"},
        "model": {"name": "claude-sonnet-4-5", "max_tokens": 300},
        "limits": {"max_concurrency": 4},
        "output": {"path": str(tmp_path / "out" / "r.parquet")},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return parse_spec(data, base_dir=tmp_path, name="cost")


def run(job: Job, server: SimulatorServer, **control: Any) -> RunOutcome:
    endpoint = Endpoint(server.url, ApiKey(server.api_key), key_source="$TEST_KEY")
    outcome: RunOutcome = anyio.run(
        functools.partial(run_job, job, endpoint, RunControl(**control))
    )
    return outcome


def test_the_shared_prefix_is_cached_and_read_from_the_second_request_on(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    server = start_simulator(SimulatorConfig())
    outcome = run(make_job(tmp_path), server)

    rows = pl.read_parquet(outcome.output).sort("started_at")
    assert set(rows["status"]) == {"ok"}
    # The first request went alone and wrote the cache; every other one read it.
    assert rows["cache_creation_input_tokens"][0] > 1_000
    assert rows["cache_read_input_tokens"][0] == 0
    assert (rows["cache_read_input_tokens"][1:] == rows["cache_creation_input_tokens"][0]).all()
    assert (rows["cache_creation_input_tokens"][1:] == 0).all()
    stats = server.stats()["cache"]
    assert (stats["write_requests"], stats["read_requests"]) == (1, DOCUMENTS - 1)
    tokens = outcome.report["tokens"]
    assert tokens["cache_read"] == rows["cache_read_input_tokens"].sum()

    # The same job without caching pays more, by the rates of the pricing page.
    uncached = make_job(tmp_path / "u", prompt={"cache": False})
    plain = run(uncached, start_simulator(SimulatorConfig()))
    assert pl.read_parquet(plain.output)["cache_read_input_tokens"].sum() == 0
    assert plain.report["cost_usd"] > 2 * outcome.report["cost_usd"]


def test_a_prefix_below_the_models_minimum_is_not_marked(tmp_path: Path) -> None:
    short = make_job(tmp_path, prompt={"system": "Be brief."})
    long = make_job(tmp_path)
    unit = Unit("whole", "Report: revenue rose.")
    document = _document(tmp_path)

    plain = request_for(short, document, unit, template=short.template, final=True)
    assert plain["system"] == "Be brief."
    assert plain["messages"][0]["content"] == "Summarize this report.\n\nReport: revenue rose."

    marked = request_for(long, document, unit, template=long.template, final=True)
    assert marked["system"] == GUIDE  # the breakpoint is after the template's head
    head, rest = marked["messages"][0]["content"]
    assert head == {
        "type": "text",
        "text": "Summarize this report.\n\n",
        "cache_control": {"type": "ephemeral"},
    }
    assert rest == {"type": "text", "text": "Report: revenue rose."}
    hour = make_job(tmp_path, prompt={"cache_ttl": "1h"})
    assert hour.price is not None
    assert hour.price.cache_write == 6.0  # twice the input rate
    hourly = request_for(hour, document, unit, template=hour.template, final=True)
    marker = hourly["messages"][0]["content"][0]["cache_control"]
    assert marker == {"type": "ephemeral", "ttl": "1h"}


def test_the_budget_stops_the_run_before_it_passes(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    server = start_simulator(SimulatorConfig())
    limit = 0.03  # a request's worst case is about $0.0116: (2,700 in at 3.75 + 300 out at 15)/1M
    job = make_job(tmp_path, budget={"max_cost_usd": limit}, prompt={"cache": False})
    outcome = run(job, server)

    assert outcome.ended == "budget"
    assert outcome.report["ended"] == "budget"
    spent = outcome.report["cost_usd"]
    assert 0 < spent <= limit
    rows = pl.read_parquet(outcome.output)
    assert 0 < len(rows) < DOCUMENTS
    assert set(rows["status"]) == {"ok"}
    assert rows["cost_usd"].sum() == pytest.approx(spent)

    # With room in the budget the same command finishes the rest, paying nothing twice.
    more = make_job(tmp_path, budget={"max_cost_usd": 1.0}, prompt={"cache": False})
    finished = run(more, server)
    assert finished.ended == "completed"
    assert len(pl.read_parquet(finished.output)) == DOCUMENTS
    assert server.stats()["served"]["max_per_request"] == 1


def test_a_token_budget_counts_every_token(start_simulator: StartSimulator, tmp_path: Path) -> None:
    server = start_simulator(SimulatorConfig())
    job = make_job(tmp_path, budget={"max_total_tokens": 12_000}, prompt={"cache": False})
    outcome = run(job, server)
    assert outcome.ended == "budget"
    used = sum(outcome.report["tokens"].values())
    assert 0 < used <= 12_000


def _document(tmp_path: Path):  # type: ignore[no-untyped-def]
    from pipeline.models import Document, Section

    return Document(
        doc_id="d",
        source="r.txt",
        path=tmp_path / "r.txt",
        kind="text",
        content_hash="h",
        size_bytes=1,
        sections=(Section("Report: revenue rose."),),
    )
