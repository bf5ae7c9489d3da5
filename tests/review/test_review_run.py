"""A repository review over HTTP against the simulator: the map cached from the second
request on, the tool calls and their results in the calls file, the bound enforced, refusals
as tool errors, the cost of every round in the row, and resume at the last finished round."""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path
from typing import Any

import anyio
import polars as pl
import pytest

from pipeline.config.endpoint import ApiKey, Endpoint
from pipeline.config.load import load_job
from pipeline.config.spec import Job
from pipeline.run.runner import run_job
from pipeline.shaping.repomap import map_for
from pipeline.simulator import SimulatorConfig, SimulatorServer
from tests.conftest import TEST_MODELS, StartSimulator
from tests.reliability.test_end_to_end import Recording

ROOT = Path(__file__).resolve().parents[2]
BUDGET = 7_000  # lets the first rounds of the one-file review go, not all
FAST = ["limits.requests_per_minute=100000", "limits.tokens_per_minute=100000000"]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "sample_data" / "repo", copy)
    return copy


def _job(repo: Path, *overrides: str) -> Job:
    return load_job(
        ROOT / "jobs" / "repo_review.toml",
        inputs=[str(repo)],
        output=str(repo.parent / "out" / "review.parquet"),
        overrides=[*FAST, *overrides],
    )


def _run(server: SimulatorServer, job: Job) -> Any:
    endpoint = Endpoint(server.url, ApiKey(server.api_key), key_source="$TEST_KEY")
    return anyio.run(run_job, job, endpoint)


def _rows(job: Job) -> dict[str, dict[str, Any]]:
    frame = pl.read_parquet(job.output_path)
    return {row["source"]: row for row in frame.iter_rows(named=True)}


def _calls(job: Job) -> list[dict[str, Any]]:
    return list(pl.read_parquet(job.calls_path).iter_rows(named=True))


def test_a_review_calls_tools_and_answers_through_structured_output(
    start_simulator: StartSimulator, repo: Path
) -> None:
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, tool_rounds=(2, 2)))
    job = _job(repo)
    _run(server, job)
    rows = _rows(job)
    row = rows["inventory/cli.py"]
    assert row["status"] == "ok"
    findings = json.loads(row["structured_json"])["findings"]
    assert all("other_files" in finding for finding in findings)
    assert "review: 2 tool calls" in row["notes"]
    calls = [c for c in _calls(job) if c["doc_id"] == row["doc_id"]]
    assert [c["call"] for c in calls] == ["whole", "tools/1", "tools/2"]
    assert [len(c["tool_calls"] or []) for c in calls] == [1, 1, 0]
    assert row["input_tokens"] == sum(c["input_tokens"] for c in calls)  # every round's cost
    print(calls)


LONG_SYSTEM = 'prompt.system="' + "Review with care and cite lines. " * 160 + '"'


def test_the_map_is_cached_from_the_second_request_on(
    start_simulator: StartSimulator, repo: Path
) -> None:
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, tool_rounds=(0, 0)))
    job = _job(repo, LONG_SYSTEM)
    _run(server, job)
    rows = sorted(
        (r for r in _rows(job).values() if r["status"] == "ok"), key=lambda r: r["started_at"]
    )
    assert len(rows) == 8  # one request each: the answer at once
    first, *others = rows
    assert first["cache_read_input_tokens"] == 0  # it writes the prefix: tools, system, map
    shared = {r["cache_read_input_tokens"] for r in others}
    assert len(shared) == 1  # every other file's review reads the same prefix
    assert shared.pop() > map_for(job).tokens  # type: ignore[union-attr]


def test_the_bound_is_enforced_and_the_answer_asked_for(
    start_simulator: StartSimulator, repo: Path
) -> None:
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, tool_rounds=(9, 9)))
    job = _job(repo, "review.max_tool_calls=2")
    _run(server, job)
    row = _rows(job)["inventory/store.py"]
    assert row["status"] == "ok"
    assert json.loads(row["structured_json"])["findings"] is not None
    assert (
        "review: 2 tool calls, 1 refused; answer asked for: review.max_tool_calls (2) reached"
        in row["notes"]
    )
    calls = [c for c in _calls(job) if c["doc_id"] == row["doc_id"]]
    assert [c["call"] for c in calls] == ["whole", "tools/1", "tools/2", "answer"]
    refused = calls[2]["tool_results"]
    assert refused[0].startswith("The review's limit of 2 tool calls is reached")
    assert calls[3]["stop_reason"] == "tool_use"


def test_secrets_and_paths_out_of_the_root_are_tool_errors(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    (repo / "keys").mkdir(parents=True)
    (repo / "keys" / "server.pem").write_text("MARKER-PEM\n")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "linked.py").write_text("MARKER-OUTSIDE = 1\n")
    (repo / "outside").symlink_to(tmp_path / "elsewhere")
    (repo / "app.py").write_text(
        'KEY = open("keys/server.pem").read()\nfrom outside/linked.py import x\n'
    )
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, tool_rounds=(4, 4)))
    job = _job(repo, 'review.tools=["read_file"]')
    recording = Recording()
    endpoint = Endpoint(server.url, ApiKey(server.api_key), key_source="$TEST_KEY")
    anyio.run(functools.partial(run_job, job, endpoint, transport=recording))
    assert _rows(job)["app.py"]["status"] == "ok"
    results = [r for c in _calls(job) for r in c["tool_results"] or []]
    reads = [r for r in results if r.startswith("read_file")]
    assert any("keys/server.pem is not a file of the repository" in r for r in reads)
    assert any("outside/linked.py is not a file of the repository" in r for r in reads)
    sent = b"".join(body for _, _, body in recording.requests)
    assert b"MARKER" not in sent


def test_a_stopped_review_resumes_at_its_last_finished_round(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "sample_data" / "repo" / "inventory", repo / "inventory")
    for name in ("__init__.py", "models.py", "store.py"):
        (repo / "inventory" / name).unlink()  # one file: inventory/cli.py
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, tool_rounds=(3, 3)))
    stopped = _run(server, _job(repo, f"budget.max_total_tokens={BUDGET}"))
    assert stopped.ended == "budget"
    first = server.stats()["served"]["total"]
    assert 1 <= first < 4  # the budget stopped the conversation after a round or two
    job = _job(repo)
    _run(server, job)
    assert server.stats()["served"]["total"] == 4  # whole, tools/1-2, the answer: each once
    row = _rows(job)["inventory/cli.py"]
    assert row["status"] == "ok"
    assert "review: 3 tool calls" in row["notes"]
    calls = [c["call"] for c in _calls(job) if c["doc_id"] == row["doc_id"]]
    assert calls == ["whole", "tools/1", "tools/2", "tools/3"]  # the rounds read back count too


def test_the_token_budget_ends_the_tool_rounds(start_simulator: StartSimulator, repo: Path) -> None:
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, tool_rounds=(9, 9)))
    job = _job(repo, "review.max_tool_calls=50", "review.token_budget=9000")
    _run(server, job)
    row = _rows(job)["inventory/store.py"]
    assert row["status"] == "ok"
    assert any("answer asked for: review.token_budget (9,000) reached" in n for n in row["notes"])
    calls = [c for c in _calls(job) if c["doc_id"] == row["doc_id"]]
    assert calls[-1]["call"] == "answer"
    assert 2 <= len(calls) < 10
    assert (
        row["input_tokens"]
        + row["output_tokens"]
        + row["cache_read_input_tokens"]
        + row["cache_creation_input_tokens"]
        <= 9_000 + 2_000
    )  # the answer's own max_tokens on top at most


def test_a_file_too_big_for_one_request_is_reviewed_in_parts_without_tools(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "big.py").write_text(
        "".join(f"def f{n}(x):\n    return x + {n}\n\n" for n in range(900))
    )
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, tool_rounds=(2, 2)))
    job = _job(repo, "chunking.max_chunk_tokens=1000")
    _run(server, job)
    row = _rows(job)["big.py"]
    assert row["status"] == "ok"
    assert row["chunks"] > 1
    calls = _calls(job)
    assert all(not c["tool_calls"] for c in calls)
    assert not any(c["call"].startswith("tools/") for c in calls)


def test_the_review_of_a_caller_opens_the_definition_it_needs(
    start_simulator: StartSimulator, repo: Path
) -> None:
    """The sample's cross-file bug: cli.py calls Store.add(..., price_cents=...), which
    store.py does not take. Alone, cli.py cannot show it; its review opens store.py."""
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, tool_rounds=(1, 1)))
    recording = Recording()
    job = _job(repo, 'review.tools=["read_file"]')
    endpoint = Endpoint(server.url, ApiKey(server.api_key), key_source="$TEST_KEY")
    anyio.run(functools.partial(run_job, job, endpoint, transport=recording))
    row = _rows(job)["inventory/cli.py"]
    assert row["status"] == "ok"
    [first, answer] = [c for c in _calls(job) if c["doc_id"] == row["doc_id"]]
    assert first["tool_calls"] == [
        'read_file {"end_line": 40, "path": "inventory/store.py", "start_line": 1}'
        " -> 875 characters"
    ]
    [result] = first["tool_results"]
    assert "    def add(self, name: str, quantity: int) -> Item:" in result
    # the second request carried the definition next to the call that breaks it, and its
    # reply is the answer (the simulator's model answers once its planned round is done)
    sent = [json.loads(body) for _, path, body in recording.requests if path == "/v1/messages"]
    [second] = [
        s
        for s in sent
        if len(s["messages"]) == 3 and "file, inventory/cli.py." in str(s["messages"][0])
    ]
    assert "price_cents=int(argv[3])" in str(second["messages"][0])  # the call
    assert second["messages"][2]["content"][0]["content"] == result  # the definition
    assert answer["call"] == "tools/1"
    assert json.loads(row["structured_json"])["findings"] is not None
