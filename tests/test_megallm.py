"""Against a gateway as MegaLLM's page describes it: its four model ids, the checks made before
anything is sent, and the endpoints a gateway may leave out (count_tokens, Message Batches)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import anyio
import httpx
import httpx2
import polars as pl
import pytest
from pypdf import PdfWriter

from pipeline.cli import EXIT_FATAL, EXIT_OK, main
from pipeline.config.endpoint import ApiKey, Endpoint
from pipeline.config.load import load_job, parse_spec
from pipeline.core import catalogue
from pipeline.core.errors import ConfigError, ModelNotFound, NotOffered
from pipeline.engine.client import MessagesClient
from pipeline.engine.preflight import check_endpoint
from pipeline.run.plan import make_plan
from pipeline.run.runner import RunControl, run_job
from pipeline.simulator import SimulatorConfig, SimulatorServer
from pipeline.simulator.config import served_models
from tests.conftest import SkipClock, StartSimulator
from tests.readers.support import pdf_bytes

ROOT = Path(__file__).resolve().parent.parent
JOBS = ROOT / "jobs"
GATEWAY_IDS = [
    "claude-opus-4-1-20250805",
    "claude-sonnet-4",
    "claude-3.7-sonnet",
    "claude-3.5-sonnet",
]


def endpoint_of(server: SimulatorServer) -> Endpoint:
    return Endpoint(server.url, ApiKey(server.api_key), key_source="$MEGALLM_API_KEY")


def get(server: SimulatorServer, path: str) -> httpx.Response:
    headers = {"x-api-key": server.api_key, "anthropic-version": "2023-06-01"}
    return httpx.get(f"{server.url}{path}", headers=headers, timeout=10)


def sent_messages(server: SimulatorServer) -> int:
    return int(server.stats()["by_endpoint"].get("messages", 0))


def small_docs(folder: Path) -> Path:
    folder.mkdir()
    for n in range(3):
        (folder / f"memo-{n}.txt").write_text(f"Memo {n}: the board approved the plan.\n" * 5)
    return folder


# ---- the simulator as shipped serves the gateway ------------------------------------------


def test_the_simulator_as_shipped_serves_the_four_gateway_ids(
    start_simulator: StartSimulator,
) -> None:
    server = start_simulator(SimulatorConfig())
    listed = get(server, "/v1/models?limit=100").json()
    assert [entry["id"] for entry in listed["data"]] == GATEWAY_IDS
    assert {entry["max_input_tokens"] for entry in listed["data"]} == {200_000}
    by_id = {entry["id"]: entry["max_tokens"] for entry in listed["data"]}
    assert by_id == {"claude-opus-4-1-20250805": 32_000, "claude-sonnet-4": 64_000,
                     "claude-3.7-sonnet": 64_000, "claude-3.5-sonnet": 8_192}  # fmt: skip
    assert get(server, "/v1/models/claude-haiku-4-5").status_code == 404
    assert get(server, "/v1/models/claude-3.7-sonnet").json()["display_name"] == "Claude Sonnet 3.7"


def test_an_option_serves_anthropics_ids_instead_or_both() -> None:
    anthropic_ids = {model.id for model in served_models("anthropic").models}
    both = {model.id for model in served_models("both").models}
    assert "claude-3.7-sonnet" not in anthropic_ids
    assert "claude-haiku-4-5-20251001" in anthropic_ids
    assert both == anthropic_ids | set(GATEWAY_IDS)
    assert served_models("anthropic").resolve("claude-haiku-4-5") is not None
    assert served_models("gateway").resolve("claude-haiku-4-5") is None


@pytest.mark.parametrize(
    ("dropped", "path"),
    [("count_tokens", "/v1/messages/count_tokens"), ("message_batches", "/v1/messages/batches")],
)
def test_left_out_endpoints_are_a_404(
    start_simulator: StartSimulator, dropped: str, path: str
) -> None:
    server = start_simulator(SimulatorConfig(**{dropped: False}))  # type: ignore[arg-type]
    body = {"model": "claude-3.7-sonnet", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-api-key": server.api_key, "anthropic-version": "2023-06-01"}
    answered = httpx.post(f"{server.url}{path}", json=body, headers=headers, timeout=10)
    assert answered.status_code == 404
    assert answered.json()["error"]["type"] == "not_found_error"


# ---- the catalogue ---------------------------------------------------------------------


def test_gateway_ids_take_the_list_price_of_the_claude_model_they_name() -> None:
    assert catalogue.list_price("claude-3.7-sonnet") == catalogue.list_price("claude-3-7-sonnet")
    assert catalogue.list_price("claude-3.5-sonnet") == catalogue.list_price("claude-3-5-sonnet")
    assert catalogue.list_price("claude-sonnet-4") == catalogue.list_price("claude-sonnet-4-0")
    opus = catalogue.list_price("claude-opus-4-1-20250805")
    assert opus is not None
    assert (opus.input, opus.output) == (15.0, 75.0)
    assert "list price of Claude Sonnet 3.7" in catalogue.price_basis("claude-3.7-sonnet")
    assert catalogue.price_basis("claude-haiku-4-5") == "list price"
    assert catalogue.price_basis("some-gateway-model") == "no known price"
    assert catalogue.find("claude-3-7-sonnet-20250219") == catalogue.find(
        "claude-3-7-sonnet-latest"
    )


def test_a_max_tokens_the_model_cannot_give_is_refused_at_load() -> None:
    data = {
        "inputs": {"paths": ["docs"]},
        "prompt": {"template": "{text}"},
        "model": {"name": "claude-3.5-sonnet", "max_tokens": 10_000},
    }
    with pytest.raises(ConfigError, match=r"model.max_tokens: 10,000 .* \(8,192\)"):
        parse_spec(data, base_dir=Path("/"), name="t")


@pytest.mark.parametrize(
    ("wanted", "closest"),
    [
        ("claude-haiku-4-5", "claude-3.7-sonnet"),  # a Haiku: the fast one
        ("claude-3-7-sonnet-20250219", "claude-3.7-sonnet"),  # the same model, spelt otherwise
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-opus-4-6", "claude-opus-4-1-20250805"),
        ("claude-3.7-sonet", "claude-3.7-sonnet"),  # a typo: the nearest spelling
    ],
)
def test_the_suggestion_is_the_closest_served_model(wanted: str, closest: str) -> None:
    assert catalogue.suggest(wanted, GATEWAY_IDS) == closest


# ---- know before sending ------------------------------------------------------------------


def test_an_unserved_model_stops_the_run_before_any_message_naming_the_closest(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    server = start_simulator(SimulatorConfig())
    job = load_job(
        JOBS / "summarize.toml",
        inputs=[str(small_docs(tmp_path / "docs"))],
        output=str(tmp_path / "out.parquet"),
        overrides=["model.name=claude-haiku-4-5"],
    )
    with pytest.raises(ModelNotFound) as caught:
        anyio.run(run_job, job, endpoint_of(server))
    message = str(caught.value)
    assert "'claude-haiku-4-5' is not served" in message
    assert all(model in message for model in GATEWAY_IDS)
    assert "Did you mean 'claude-3.7-sonnet'?" in message
    assert sent_messages(server) == 0


@pytest.mark.parametrize("command", ["validate", "plan"])
def test_validate_and_plan_check_the_model_with_the_key(
    start_simulator: StartSimulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:
    server = start_simulator(SimulatorConfig())
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("MEGALLM_API_KEY", server.api_key)
    docs = str(small_docs(tmp_path / "docs"))
    common = [command, "jobs/summarize.toml", docs, "--base-url", server.url]
    assert main([*common, "--set", "model.name=claude-haiku-4-5"]) == EXIT_FATAL
    assert "Did you mean 'claude-3.7-sonnet'?" in capsys.readouterr().err
    assert main(common) == EXIT_OK
    captured = capsys.readouterr()
    assert "served by 127.0.0.1" in captured.out + captured.err
    assert sent_messages(server) == 0


def test_without_a_key_validate_says_the_model_was_not_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    for name in ("MEGALLM_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert main(["validate", "jobs/summarize.toml", str(small_docs(tmp_path / "d"))]) == EXIT_OK
    shown = capsys.readouterr().out
    assert "model claude-3.7-sonnet (not checked against the endpoint: no API key set)" in shown


def test_a_server_without_v1_models_is_not_an_error() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(404, json={"type": "error", "error": {"type": "not_found_error"}})

    async def check() -> object:
        endpoint = Endpoint("https://gateway.test", ApiKey("k"))
        transport = httpx2.MockTransport(handler)  # the client's HTTP stack
        async with MessagesClient(endpoint, transport=transport) as client:
            return await check_endpoint(client, model="claude-anything")

    assert anyio.run(check) is None


# ---- endpoints a gateway may leave out -------------------------------------------------


def test_without_count_tokens_a_run_falls_back_to_the_estimate(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "dense.txt").write_text("Quarterly figures and notes. " * 30_000, encoding="utf-8")
    server = start_simulator(SimulatorConfig(token_scale=1.6, count_tokens=False))
    job = load_job(JOBS / "summarize.toml", inputs=[str(docs)], output=str(tmp_path / "o.parquet"))
    outcome = anyio.run(run_job, job, endpoint_of(server))
    [row] = pl.read_parquet(outcome.output).iter_rows(named=True)
    assert row["status"] == "ok"
    assert any("over the window by the estimate: split in" in note for note in row["notes"])
    stats = server.stats()
    assert stats["by_status"]["400"] >= 1  # the server refused it as too long
    assert "count_tokens" not in stats["by_endpoint"]  # nothing there to answer


def test_plan_exact_without_count_tokens_keeps_the_estimates(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    server = start_simulator(SimulatorConfig(count_tokens=False))
    job = load_job(
        JOBS / "summarize.toml",
        inputs=[str(small_docs(tmp_path / "docs"))],
        output=str(tmp_path / "out.parquet"),
    )
    estimated = make_plan(job)
    counted = make_plan(job, counter=MessagesClient(endpoint_of(server)))
    assert (counted.exact, counted.count_tokens_missing) == (False, True)
    assert counted.input_tokens == estimated.input_tokens > 0


def test_a_batch_job_against_a_server_without_batches_stops_before_sending(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    server = start_simulator(SimulatorConfig(message_batches=False))
    job = load_job(
        JOBS / "summarize.toml",
        inputs=[str(small_docs(tmp_path / "docs"))],
        output=str(tmp_path / "out.parquet"),
        overrides=['endpoint.mode="batch"'],
    )
    with pytest.raises(NotOffered) as caught:
        anyio.run(run_job, job, endpoint_of(server))
    assert "does not offer Message Batches" in str(caught.value)
    assert 'endpoint.mode = "messages"' in str(caught.value)
    assert sent_messages(server) == 0
    assert "batches" not in server.stats()["by_endpoint"]


# ---- the shipped jobs and `pipeline models` ------------------------------------------------


@pytest.mark.parametrize("spec", sorted(p.name for p in JOBS.glob("*.toml")))
def test_the_shipped_jobs_run_on_the_gateway_with_a_cost(
    start_simulator: StartSimulator, tmp_path: Path, spec: str
) -> None:
    server = start_simulator(SimulatorConfig())  # no limits of its own: the job's tier paces
    job = load_job(JOBS / spec, output=str(tmp_path / "out.parquet"))
    assert job.spec.model.name in GATEWAY_IDS
    clock = SkipClock()  # the Basic tier's 50 requests a minute, paced on virtual time
    control = RunControl(clock=clock, sleep=clock.sleep)
    outcome = anyio.run(run_job, job, endpoint_of(server), control)
    assert outcome.by_status.get("ok", 0) >= 3
    assert outcome.report["cost_usd"] > 0
    assert outcome.report["price_basis"].startswith("list price of Claude Sonnet")


def test_pipeline_models_lists_what_is_served_with_the_price_it_will_use(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["models", "--simulate"]) == EXIT_OK
    shown = capsys.readouterr().out
    assert "claude-3.7-sonnet  " in shown
    assert "$3 / $15, list price of Claude Sonnet 3.7" in shown
    assert main(["models", "--simulate", "--json"]) == EXIT_OK
    rows = json.loads(capsys.readouterr().out)
    assert [row["id"] for row in rows] == GATEWAY_IDS
    assert rows[0] | {"price_basis": ""} == {
        "id": "claude-opus-4-1-20250805",
        "display_name": "Claude Opus 4.1",
        "window": 200_000,
        "max_output": 32_000,
        "input_per_mtok": 15.0,
        "output_per_mtok": 75.0,
        "price_basis": "",
    }


# ---- scans go to the model's eyes --------------------------------------------------------


def scanned_pdf(path: Path, pages: int) -> Path:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=612, height=792)  # no text layer, as a scan
    out = io.BytesIO()
    writer.write(out)
    path.write_bytes(out.getvalue())
    return path


def test_a_scan_is_sent_as_a_document_when_the_job_opts_in(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    scanned_pdf(docs / "scan.pdf", pages=3)
    (docs / "memo.txt").write_text("The board approved the plan.", encoding="utf-8")
    server = start_simulator(SimulatorConfig())
    job = load_job(JOBS / "summarize.toml", inputs=[str(docs)], output=str(tmp_path / "o.parquet"))
    assert job.spec.inputs.scans == "attach"  # on in the shipped summarize job
    plan = make_plan(job)
    assert (plan.scans, plan.scan_pages) == (1, 3)
    assert plan.scan_input_tokens >= 3 * 1_500
    assert plan.input_tokens > plan.scan_input_tokens  # the memo is counted too

    outcome = anyio.run(run_job, job, endpoint_of(server))
    rows = {r["source"]: r for r in pl.read_parquet(outcome.output).iter_rows(named=True)}
    scan = rows["scan.pdf"]
    assert scan["status"] == "ok"
    assert "no text layer: its 3 page(s) sent as a document" in scan["notes"]
    assert scan["input_tokens"] >= 3 * 1_500  # the simulator charges 1,500 a PDF page

    opted_out = load_job(
        JOBS / "summarize.toml",
        inputs=[str(docs)],
        output=str(tmp_path / "out2.parquet"),
        overrides=['inputs.scans="error"'],
    )
    outcome = anyio.run(run_job, opted_out, endpoint_of(server))
    rows = {r["source"]: r for r in pl.read_parquet(outcome.output).iter_rows(named=True)}
    assert rows["scan.pdf"]["error_type"] == "empty_document"
    assert 'inputs.scans = "attach"' in rows["scan.pdf"]["error_message"]


def test_the_pages_of_a_pdf_without_text_go_beside_its_text(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "mixed.pdf").write_bytes(pdf_bytes(["Quarterly report: revenue rose.", None, None]))
    server = start_simulator(SimulatorConfig())
    job = load_job(JOBS / "summarize.toml", inputs=[str(docs)], output=str(tmp_path / "o.parquet"))
    plan = make_plan(job)
    assert (plan.scans, plan.scan_pages, plan.requests, plan.combining) == (1, 2, 2, 1)
    outcome = anyio.run(run_job, job, endpoint_of(server))
    [row] = pl.read_parquet(outcome.output).iter_rows(named=True)
    assert row["status"] == "ok"
    assert "page(s) 2, 3 without text sent as a document" in row["notes"]
    calls = pl.read_parquet(outcome.calls_output)
    assert sorted(calls["call"]) == ["final/0", "map/0", "part/0"]  # text, pages, combined
