"""Cost: the shared prefix is cached, the budget stops a run before it passes, plans hold."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import anyio
import polars as pl
import pytest

from pipeline.config.endpoint import ApiKey, Endpoint
from pipeline.config.load import parse_spec
from pipeline.config.spec import Job
from pipeline.core.models import Usage
from pipeline.run.runner import RunControl, RunOutcome, run_job
from pipeline.shaping.planner import Unit, request_for
from pipeline.shaping.request_tokens import estimate_request
from pipeline.simulator import Latency, SimulatorConfig, SimulatorServer
from tests.conftest import TEST_MODELS, StartSimulator

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
    # Replies take time, as real ones do: without the warm-up the first four requests would
    # all be in flight together, each writing the cache (with instant replies they could
    # not overlap, and the test would pass without it).
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, latency=Latency(fixed=0.1)))
    outcome = run(make_job(tmp_path), server)

    rows = pl.read_parquet(outcome.output).sort("started_at")
    assert set(rows["status"]) == {"ok"}
    # The first request went alone and wrote the cache; every other one read it.
    assert rows["cache_creation_input_tokens"][0] > 1_000
    assert rows["cache_read_input_tokens"][0] == 0
    assert (rows["cache_read_input_tokens"][1:] == rows["cache_creation_input_tokens"][0]).all()
    assert (rows["cache_creation_input_tokens"][1:] == 0).all()
    stats = server.stats()
    assert (stats["cache"]["write_requests"], stats["cache"]["read_requests"]) == (1, DOCUMENTS - 1)
    assert stats["peaks"]["concurrency"] > 1  # after the first, they ran side by side
    tokens = outcome.report["tokens"]
    assert tokens["cache_read"] == rows["cache_read_input_tokens"].sum()

    # The same job without caching pays more, by the rates of the pricing page.
    uncached = make_job(tmp_path / "u", prompt={"cache": False})
    plain = run(uncached, start_simulator(SimulatorConfig(models=TEST_MODELS)))
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


# Replies as long as max_tokens allows: a worst case that leaves out max_tokens, or prices
# the cached prefix below the cache-write rate, is then far below what a request costs.
LONG_REPLIES = SimulatorConfig(models=TEST_MODELS, reply_tokens=(4_000, 4_000))
LONG = {"max_tokens": 4_000}


def test_the_budget_stops_the_run_before_it_passes(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    server = start_simulator(LONG_REPLIES)
    # A request's worst case is about $0.077 (4,600 tokens in by the estimate at 3.75, and
    # 4,000 out at 15, a million); one costs about $0.063 (0.073 for the first, which writes
    # the cache): six or seven are sent, not twelve.
    limit = 0.5
    job = make_job(tmp_path, budget={"max_cost_usd": limit}, model=LONG)
    outcome = run(job, server)

    assert outcome.ended == "budget"
    assert outcome.report["ended"] == "budget"
    spent = outcome.report["cost_usd"]
    assert 0 < spent <= limit
    rows = pl.read_parquet(outcome.output)
    assert 0 < len(rows) < DOCUMENTS
    assert set(rows["status"]) == {"ok"}
    assert (rows["output_tokens"] == 4_000).all()  # the replies were as long as allowed
    assert rows["cache_read_input_tokens"].sum() > 0  # and the prefix was cached
    assert rows["cost_usd"].sum() == pytest.approx(spent)

    # With room in the budget the same command finishes the rest, paying nothing twice.
    more = make_job(tmp_path, budget={"max_cost_usd": 2.0}, model=LONG)
    finished = run(more, server)
    assert finished.ended == "completed"
    assert len(pl.read_parquet(finished.output)) == DOCUMENTS
    assert server.stats()["served"]["max_per_request"] == 1


def test_the_worst_case_prices_the_cached_prefix_at_the_cache_write_rate(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    """The first request writes the cache, at 1.25 times the input rate: a budget that
    would cover its worst case at the input rate, not at the cache-write rate, sends
    nothing, and that request does cost more than such a budget."""
    # The server counts 20% more than the text alone suggests (newer models' tokenizers
    # do), still within the client's estimate, which leaves room for 35%.
    server = start_simulator(
        SimulatorConfig(models=TEST_MODELS, reply_tokens=(4_000, 4_000), token_scale=1.2)
    )
    job = make_job(tmp_path, model=LONG)
    assert job.price is not None
    first = sorted((tmp_path / "docs").iterdir())[0]
    unit = Unit("whole", first.read_text(encoding="utf-8"))
    params = request_for(job, _document(tmp_path), unit, template=job.template, final=True)
    estimate = estimate_request(params)
    at_input = job.price.cost(Usage(input_tokens=estimate, output_tokens=4_000))
    at_write = job.price.cost(Usage(cache_creation_input_tokens=estimate, output_tokens=4_000))

    stopped = run(make_job(tmp_path, budget={"max_cost_usd": at_input}, model=LONG), server)
    assert stopped.ended == "budget"
    assert stopped.report["cost_usd"] == 0
    assert server.stats()["served"]["total"] == 0

    # Room for the worst case at the cache-write rate: one request is sent, and it cost
    # more than the budget above, which a worst case at the input rate would have passed.
    one = run(make_job(tmp_path, budget={"max_cost_usd": at_write}, model=LONG), server)
    assert one.ended == "budget"
    assert server.stats()["cache"]["write_requests"] == 1
    assert at_input < one.report["cost_usd"] <= at_write


def test_a_token_budget_counts_every_token(start_simulator: StartSimulator, tmp_path: Path) -> None:
    server = start_simulator(LONG_REPLIES)
    # A request's worst case is about 8,600 tokens: 4,600 in by the estimate and all 4,000
    # of max_tokens; one uses about 7,400: about ten fit, not twelve.
    job = make_job(tmp_path, budget={"max_total_tokens": 80_000}, model=LONG)
    outcome = run(job, server)
    assert outcome.ended == "budget"
    used = sum(outcome.report["tokens"].values())
    assert 0 < used <= 80_000
    assert len(pl.read_parquet(outcome.output)) >= 2


def _document(tmp_path: Path):  # type: ignore[no-untyped-def]
    from pipeline.core.models import Document, Section

    return Document(
        doc_id="d",
        source="r.txt",
        path=tmp_path / "r.txt",
        kind="text",
        content_hash="h",
        size_bytes=1,
        sections=(Section("Report: revenue rose."),),
    )
