"""The API key never leaves the process except in the request header: not in a row, a
calls file, a report, a log (text or JSON), the state, stdout, stderr or an error message,
whatever the run does (plain, streamed, batched, refused, failing)."""

from __future__ import annotations

import pickle
from pathlib import Path

import polars as pl
import pytest

from pipeline.cli import EXIT_FATAL, EXIT_OK, main
from pipeline.config.endpoint import ApiKey, Endpoint
from pipeline.engine.client import MessagesClient
from pipeline.simulator import Batches, Faults, SimulatorConfig
from tests.conftest import StartSimulator

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-ant-api03-FAKEKEY-7f3a9c1e55d04b2a-ZZLEAKCHECKZZ"
FRAGMENTS = (KEY, KEY[-24:], KEY[:20] + "...")  # and no recognisable part of it


def assert_nowhere(folder: Path, *texts: str) -> None:
    for text in texts:
        for fragment in FRAGMENTS:
            assert fragment not in text
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for fragment in FRAGMENTS:
                assert fragment.encode() not in data, f"{fragment!r} in {path}"


@pytest.mark.parametrize(
    "options",
    [
        [],
        ["--set", "endpoint.stream=true", "--log-json"],
        ["--set", 'endpoint.mode="batch"', "--set", "endpoint.batch_poll_s=0.02"],
    ],
    ids=["plain", "streamed-json-logs", "batch"],
)
def test_a_run_with_a_recognisable_key_leaves_it_nowhere(
    start_simulator: StartSimulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
) -> None:
    config = SimulatorConfig(
        api_keys=frozenset({KEY}),
        faults=Faults(overloaded=0.2, api_error=0.1, seed=3),  # retries, errors in the log
        batches=Batches(processing_seconds=0.0, errored=0.2, seed=3),
    )
    server = start_simulator(config)
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("MEGALLM_API_KEY", KEY)
    out = tmp_path / "out" / "summaries.parquet"
    code = main(
        [
            "run", "jobs/summarize.toml", "--output", str(out), "--base-url", server.url,
            "--log-file", str(tmp_path / "out" / "run.log"), *options,
        ]
    )  # fmt: skip
    assert code in (EXIT_OK, 1)  # the sample's two broken PDFs are error rows
    captured = capsys.readouterr()
    assert (tmp_path / "out" / "run.log").stat().st_size > 0
    assert out.exists()
    assert_nowhere(tmp_path, captured.out, captured.err)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_dropped_and_truncated_connections_leave_the_key_nowhere(
    start_simulator: StartSimulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    stream: bool,
) -> None:
    """Transport errors are built by httpx from the request, which carries the key in its
    headers: their text reaches error rows, the calls file, the log and the report."""
    faults = Faults(drop=0.5, truncated=0.3, seed=5)
    server = start_simulator(SimulatorConfig(api_keys=frozenset({KEY}), faults=faults))
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("MEGALLM_API_KEY", KEY)
    out, log = tmp_path / "out" / "summaries.parquet", tmp_path / "out" / "run.log"
    code = main(
        [
            "run", "jobs/summarize.toml", "--output", str(out), "--base-url", server.url,
            "--log-file", str(log), "--set", "retry.max_attempts=2",
            "--set", f"endpoint.stream={str(stream).lower()}",
        ]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1  # some documents gave up on broken connections: error rows
    broken = pl.read_parquet(out).filter(pl.col("error_type") == "retries_exhausted")
    assert broken["error_message"].str.contains("connection to 127.0.0.1").any(), broken
    assert server.stats()["faults"].get("drop", 0) > 0
    assert_nowhere(tmp_path, captured.out, captured.err)


def test_a_refused_key_is_named_by_its_variable_never_shown(
    start_simulator: StartSimulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = start_simulator(SimulatorConfig(api_keys=frozenset({"sk-the-right-one"})))
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("MEGALLM_API_KEY", KEY)
    code = main(
        ["run", "jobs/summarize.toml", "--output", str(tmp_path / "o.parquet"),
         "--base-url", server.url, "--log-file", str(tmp_path / "run.log")]
    )  # fmt: skip
    assert code == EXIT_FATAL
    captured = capsys.readouterr()
    assert "$MEGALLM_API_KEY was refused" in captured.err
    assert_nowhere(tmp_path, captured.out, captured.err)


def test_the_key_object_never_shows_or_travels() -> None:
    key = ApiKey(KEY)
    endpoint = Endpoint("https://ai.megallm.io", key, key_source="$MEGALLM_API_KEY")
    client = MessagesClient(endpoint, concurrency=1)
    for shown in (repr(key), str(key), repr(endpoint), str(endpoint), repr(client), f"{key}"):
        for fragment in FRAGMENTS:
            assert fragment not in shown
    with pytest.raises(TypeError):
        pickle.dumps(key)
