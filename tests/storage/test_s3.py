"""Object storage against a real S3-compatible server: moto's server mode, started here on
127.0.0.1 and a free port, spoken to over HTTP by s3fs exactly as a bucket in AWS would be."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import boto3
import polars as pl
import pytest
import s3fs
from moto import settings as moto_settings
from moto.core import DEFAULT_ACCOUNT_ID
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.s3.models import s3_backends

from pipeline.cli import EXIT_FATAL, main
from pipeline.config import paths
from pipeline.config.endpoint import ApiKey, Endpoint
from pipeline.config.load import load_job
from pipeline.core.errors import InputProblem
from pipeline.readers import Candidate, InputOptions, remote
from pipeline.readers.sources import find
from pipeline.run import plan
from pipeline.run.runner import run_job
from pipeline.simulator import SimulatorServer
from tests.conftest import StartSimulator

ROOT = Path(__file__).resolve().parents[2]
JOBS = ROOT / "jobs"
DOCS = ROOT / "sample_data" / "docs"
BUCKET = "papers"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """A fresh S3 server; the environment points the usual AWS chain at it. Yields a boto3
    client for the test's own set-up and checks."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDLOCALTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("PIPELINE_STATE_DIR", str(tmp_path / "state"))
    s3fs.S3FileSystem.clear_instance_cache()
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    try:
        yield client
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        server.stop()


def upload_folder(client: Any, folder: Path, prefix: str) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            key = f"{prefix}/{path.relative_to(folder).as_posix()}"
            client.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())


def endpoint_of(server: SimulatorServer) -> Endpoint:
    return Endpoint(server.url, ApiKey(server.api_key), key_source="$TEST_KEY")


def test_listing_thousands_of_keys_in_order_with_include_exclude(s3: Any) -> None:
    names = [f"inbox/{group}/note-{n:04d}.txt" for group in ("a", "b", "c") for n in range(500)]
    # Set-up only (the listing below, over HTTP, is what is tested): straight into the server's
    # store, in-process, as 1,500 PUTs through boto3 would take ~13 s.
    store = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for name in names:
        store.put_object(BUCKET, name, b"a note\n")
    s3.put_object(Bucket=BUCKET, Key="inbox/.env", Body=b"KEY=1\n")
    options = InputOptions(paths=(), urls=(f"s3://{BUCKET}/inbox",), exclude=("b/", "*-0001.txt"))
    found = list(find(options))
    candidates = [f for f in found if isinstance(f, Candidate)]
    problems = [f for f in found if isinstance(f, InputProblem)]
    expected = [n.removeprefix("inbox/") for n in names if "/b/" not in n and "-0001" not in n]
    assert [c.source for c in candidates] == expected  # 998 of 1,501 keys: sorted, filtered
    assert all(c.etag and c.size == 7 for c in candidates)
    assert [p.source for p in problems] == [".env"]  # credentials by name: never read


def test_bucket_gives_the_same_rows_as_disk_and_results_go_back(
    s3: Any, start_simulator: StartSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_simulator()
    upload_folder(s3, DOCS, "docs")
    on_disk = anyio.run(
        run_job, load_job(JOBS / "summarize.toml", output=str(tmp_path / "disk.parquet")),
        endpoint_of(server),
    )  # fmt: skip
    url = f"s3://{BUCKET}/results/summaries.parquet"
    job = load_job(JOBS / "summarize.toml", inputs=[f"s3://{BUCKET}/docs"], output=url)
    local_plan = plan.make_plan(load_job(JOBS / "summarize.toml", output=str(tmp_path / "p")))
    bucket_plan = plan.make_plan(job)
    assert (bucket_plan.documents, bucket_plan.requests, bucket_plan.input_tokens) == (
        local_plan.documents,
        local_plan.requests,
        local_plan.input_tokens,
    )
    sent_before = server.stats()["served"]["total"]
    anyio.run(run_job, job, endpoint_of(server))
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="results/")["Contents"]}
    assert keys == {
        "results/summaries.parquet",
        "results/summaries.calls.parquet",
        "results/summaries.report.json",
        "results/summaries.report.html",
    }
    fs = s3fs.S3FileSystem()
    with fs.open(url, "rb") as file:
        remote_rows = pl.read_parquet(file)
    disk_rows = pl.read_parquet(on_disk.output)
    columns = ["doc_id", "source", "status", "error_type", "content_hash"]
    assert (
        remote_rows.select(columns).sort("source").equals(disk_rows.select(columns).sort("source"))
    )
    assert (remote_rows["status"] == "ok").sum() >= 5
    # the state stayed on this machine, beside the local copy of the results
    assert job.state_path.exists()
    assert str(job.state_path).startswith(str(tmp_path / "state"))
    sent = server.stats()["served"]["total"]
    assert sent > sent_before

    # a re-run sends nothing and downloads no unchanged finished object (their ETags match):
    # only the two that ended in errors (broken.pdf, encrypted.pdf) are read again
    read: list[str] = []
    real_read = remote.read_bytes

    def counted(candidate: Candidate, limit: int) -> bytes:
        read.append(candidate.source)
        return real_read(candidate, limit)

    monkeypatch.setattr(remote, "read_bytes", counted)
    job = load_job(JOBS / "summarize.toml", inputs=[f"s3://{BUCKET}/docs"], output=url)
    again = anyio.run(run_job, job, endpoint_of(server))
    assert server.stats()["served"]["total"] == sent
    assert again.reused == (disk_rows["status"] == "ok").sum()
    assert sorted(read) == sorted(disk_rows.filter(pl.col("status") != "ok")["source"])


def test_parquet_table_in_a_bucket(
    s3: Any, start_simulator: StartSimulator, tmp_path: Path
) -> None:
    server = start_simulator()
    table = tmp_path / "tickets.parquet"
    pl.DataFrame(
        {
            "ticket_id": [f"T-{n}" for n in range(50)],
            "customer_tier": ["pro"] * 50,
            "title": [f"Title {n}" for n in range(50)],
            "body": [f"Body of ticket {n}" for n in range(50)],
            "opened_at": ["2026-11-01"] * 50,
        }
    ).write_parquet(table, row_group_size=10)
    s3.put_object(Bucket=BUCKET, Key="exports/tickets.parquet", Body=table.read_bytes())
    job = load_job(
        JOBS / "triage_tickets.toml",
        inputs=[f"s3://{BUCKET}/exports"],
        output=str(tmp_path / "out.parquet"),
    )
    outcome = anyio.run(run_job, job, endpoint_of(server))
    rows = pl.read_parquet(outcome.output)
    assert len(rows) == 50
    assert set(rows["source"]) == {f"tickets.parquet#T-{n}" for n in range(50)}
    assert set(rows["status"]) == {"ok"}
    assert server.stats()["served"]["total"] == 50


def test_refused_credentials_stop_before_anything_is_sent(
    s3: Any,
    start_simulator: StartSimulator,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = start_simulator()
    upload_folder(s3, DOCS, "docs")
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # check keys now
    monkeypatch.setenv("MEGALLM_API_KEY", server.api_key)
    status = main(
        [
            "run", str(JOBS / "summarize.toml"), f"s3://{BUCKET}/docs",
            "--output", str(tmp_path / "out.parquet"), "--base-url", server.url, "--quiet",
        ]
    )  # fmt: skip
    assert status == EXIT_FATAL
    err = capsys.readouterr().err
    assert f"s3://{BUCKET}" in err
    assert "credentials" in err
    assert "local-secret" not in err
    assert server.stats()["served"]["total"] == 0


def test_an_output_url_is_written_locally_first_under_the_state_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PIPELINE_STATE_DIR", str(tmp_path))
    url = "s3://reports/nightly/summaries.parquet"
    job = load_job(JOBS / "summarize.toml", output=url)
    assert job.output_url == url
    assert job.output_path.parent.parent == tmp_path / "remote"
    assert job.output_path.name == "summaries.parquet"
    assert job.state_path.parent == job.output_path.parent
    other = load_job(JOBS / "summarize.toml", output="s3://reports/other/summaries.parquet")
    assert other.output_path != job.output_path  # each URL its own state and lock
    assert paths.is_url(url)
    assert not paths.is_url("out/s3:/x.parquet")
