"""End to end over HTTP against the simulator: every input ends as exactly one row."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import anyio
import polars as pl
import pytest

from pipeline.config.endpoint import ApiKey, Endpoint
from pipeline.config.load import load_job
from pipeline.core.errors import AuthenticationFailed
from pipeline.run.runner import RunControl, run_job
from pipeline.simulator import CONTEXT_WINDOW, SimulatorConfig, SimulatorServer
from tests.conftest import SkipClock, StartSimulator

ROOT = Path(__file__).resolve().parent.parent
JOBS = ROOT / "jobs"
SAMPLES = ROOT / "sample_data"


def endpoint_of(server: SimulatorServer) -> Endpoint:
    return Endpoint(server.url, ApiKey(server.api_key), key_source="$TEST_KEY")


def write_notes(folder: Path, count: int) -> Path:
    """``count`` short notes, ``note-00.txt`` on, in a new ``folder``."""
    folder.mkdir()
    for n in range(count):
        (folder / f"note-{n:02d}.txt").write_text(f"Note {n}: the board met.", encoding="utf-8")
    return folder


def files_under(folder: Path, suffixes: tuple[str, ...]) -> set[str]:
    return {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.suffix in suffixes
    }


def test_summarize_sample_one_row_per_document(simulator: SimulatorServer, tmp_path: Path) -> None:
    job = load_job(JOBS / "summarize.toml", output=str(tmp_path / "out.parquet"))
    outcome = anyio.run(run_job, job, endpoint_of(simulator))
    rows = pl.read_parquet(outcome.output)
    expected = files_under(SAMPLES / "docs", (".pdf", ".txt", ".md"))
    assert sorted(rows["source"].to_list()) == sorted(expected)
    assert rows["doc_id"].n_unique() == len(rows)
    by_source = {r["source"]: r for r in rows.iter_rows(named=True)}
    broken = by_source["broken.pdf"]
    assert broken["status"] == "error"
    assert "broken.pdf" in broken["error_message"]
    assert broken["error_type"] == "unreadable"
    encrypted = by_source["encrypted.pdf"]
    assert encrypted["status"] == "error"
    assert encrypted["error_type"] == "encrypted_document"
    assert "password" in encrypted["error_message"].lower()
    ok = rows.filter(pl.col("status") == "ok")
    assert len(ok) >= 5
    assert all(text.startswith("Reply ") for text in ok["text"])
    assert (ok["input_tokens"] > 0).all()
    assert (ok["attempts"] >= 1).all()
    assert all(ids for ids in ok["request_ids"].to_list())
    calls = pl.read_parquet(outcome.calls_output)
    assert set(calls["doc_id"]) == set(ok["doc_id"])
    assert calls["request_id"].null_count() == 0


def test_long_document_is_map_reduced_within_the_window(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    paragraph = (
        "The committee reviewed the quarterly budget, the staffing plan and the open risks. "
        "It asked for a revised forecast and a clearer account of the supplier contracts.\n\n"
    )
    (docs / "long.txt").write_text(paragraph * 5_000, encoding="utf-8")  # ~850K characters
    (docs / "short.txt").write_text("A short note about the budget.", encoding="utf-8")
    server = start_simulator()
    job = load_job(
        JOBS / "summarize.toml", inputs=[str(docs)], output=str(tmp_path / "out.parquet")
    )
    outcome = anyio.run(run_job, job, endpoint_of(server))
    rows = {r["source"]: r for r in pl.read_parquet(outcome.output).iter_rows(named=True)}
    long = rows["long.txt"]
    assert long["status"] == "ok"
    assert long["chunks"] >= 2
    assert rows["short.txt"]["chunks"] == 1
    stats = server.stats()
    assert stats["by_status"].get("400", 0) == 0  # no request was over the window
    calls = pl.read_parquet(outcome.calls_output).filter(pl.col("doc_id") == long["doc_id"])
    parts = calls["call"].to_list()
    assert sum(p.startswith("map/") for p in parts) == long["chunks"]
    assert "final/0" in parts
    assert calls.filter(pl.col("status") == 200)["input_tokens"].max() < CONTEXT_WINDOW


def test_a_tokenizer_that_counts_more_gets_the_chunk_split_again(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "dense.txt").write_text("Quarterly figures and notes. " * 30_000, encoding="utf-8")
    server = start_simulator(SimulatorConfig(token_scale=2.5))
    job = load_job(JOBS / "summarize.toml", inputs=[str(docs)], output=str(tmp_path / "o.parquet"))
    outcome = anyio.run(run_job, job, endpoint_of(server))
    [row] = pl.read_parquet(outcome.output).iter_rows(named=True)
    assert row["status"] == "ok"
    assert any("split in" in note for note in row["notes"])
    assert server.stats()["by_status"]["400"] >= 1


def test_code_review_skips_secrets_and_ignored_files(
    simulator: SimulatorServer, tmp_path: Path
) -> None:
    job = load_job(JOBS / "code_review.toml", output=str(tmp_path / "review.parquet"))
    clock = SkipClock()  # the job's Basic tier (50 requests a minute) paced on virtual time
    control = RunControl(clock=clock, sleep=clock.sleep)
    outcome = anyio.run(run_job, job, endpoint_of(simulator), control)
    rows = pl.read_parquet(outcome.output)
    by_source = {r["source"]: r for r in rows.iter_rows(named=True)}
    assert by_source[".env"]["status"] == "skipped"
    assert by_source[".env"]["error_type"] == "secret_file"
    assert not any(s.startswith("build/") for s in by_source)  # .gitignore'd
    assert "app.log" not in by_source
    reviewed = rows.filter(pl.col("status") == "ok")
    assert len(reviewed) >= 3
    assert rows.schema["findings"] == pl.List(
        pl.Struct({"severity": pl.String, "line": pl.Int64, "message": pl.String})
    )
    for findings in reviewed["findings"].to_list():
        assert findings, "each reviewed file has its findings"
        assert all(f["severity"] in {"low", "medium", "high", "critical"} for f in findings)
    # Nothing of a secrets file was sent: no call for it, no tokens.
    calls = pl.read_parquet(outcome.calls_output)
    for source in (".env", "config/id_rsa"):
        row = by_source[source]
        assert row["status"] == "skipped", source
        assert row["doc_id"] not in set(calls["doc_id"])
        assert row["attempts"] == row["input_tokens"] == 0


def test_wrong_key_stops_the_run_with_nothing_lost(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    """A run with a refused key after one that finished: it stops before sending anything,
    and loses nothing: the finished rows stay in the output, and the next run with the right
    key sends only the document added since."""
    server = start_simulator()
    docs, out = write_notes(tmp_path / "docs", 5), str(tmp_path / "out.parquet")
    job = load_job(JOBS / "summarize.toml", inputs=[str(docs)], output=out)
    right = Endpoint(server.url, ApiKey(server.api_key), key_source="$MEGALLM_API_KEY")
    first = anyio.run(run_job, job, right)
    finished = pl.read_parquet(first.output)
    assert len(finished) == 5
    (docs / "note-5.txt").write_text("Note 5: added later.", encoding="utf-8")
    served = server.stats()["served"]["total"]

    wrong = Endpoint(server.url, ApiKey("sk-wrong-key-123"), key_source="$MEGALLM_API_KEY")
    with pytest.raises(AuthenticationFailed, match=r"\$MEGALLM_API_KEY was refused"):
        anyio.run(run_job, job, wrong)
    assert server.stats()["served"]["total"] == served  # nothing was answered
    kept = pl.read_parquet(first.output)
    assert kept.sort("source").equals(finished.sort("source"))  # nothing lost from the output

    again = anyio.run(run_job, job, right)
    assert (again.reused, len(pl.read_parquet(again.output))) == (5, 6)
    assert server.stats()["served"]["total"] == served + 1  # only the new document was sent


def test_a_rerun_reuses_exactly_the_unchanged_documents(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    """Finished documents are looked up a batch at a time: over several batches, a re-run
    sends only what changed or is new, keeps every unchanged one, and each input is one row."""
    server = start_simulator()
    docs, out = write_notes(tmp_path / "docs", 60), str(tmp_path / "out.parquet")
    job = load_job(JOBS / "summarize.toml", inputs=[str(docs)], output=out)
    endpoint = endpoint_of(server)
    first = pl.read_parquet(anyio.run(run_job, job, endpoint).output)
    served = server.stats()["served"]["total"]
    for n in (3, 30, 59):
        (docs / f"note-{n:02d}.txt").write_text(f"Note {n}: changed.", encoding="utf-8")
    (docs / "note-07.txt").unlink()
    (docs / "note-60.txt").write_text("Note 60: added.", encoding="utf-8")

    again = anyio.run(run_job, job, endpoint)
    rows = pl.read_parquet(again.output)
    assert server.stats()["served"]["total"] == served + 4  # 3 changed, 1 new
    assert again.reused == 56
    assert sorted(rows["source"]) == sorted(p.name for p in docs.iterdir())  # one row each
    sent = {"note-03.txt", "note-30.txt", "note-59.txt", "note-60.txt"}
    kept = rows.filter(~pl.col("source").is_in(sent)).sort("source")
    before = first.filter(pl.col("source").is_in(kept["source"])).sort("source")
    assert kept.equals(before)  # the unchanged rows as the first run wrote them


def test_a_rerun_that_changed_nothing_leaves_the_files_as_they_are(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    """Nothing new, nothing failed: the files already hold this run's output and are not
    written again. A file that is not the one written (replaced, removed), --force, or a
    changed input: written again, whole."""
    server = start_simulator()
    docs, out = write_notes(tmp_path / "docs", 20), tmp_path / "out.parquet"
    job = load_job(JOBS / "summarize.toml", inputs=[str(docs)], output=str(out))
    endpoint = endpoint_of(server)
    first = anyio.run(run_job, job, endpoint)
    calls = first.calls_output
    written = pl.read_parquet(out)

    def identity(path: Path) -> tuple[int, int]:
        return path.stat().st_ino, path.stat().st_mtime_ns

    before = identity(out), identity(calls)
    again = anyio.run(run_job, job, endpoint)
    assert (again.rows, again.by_status, again.reused) == (20, {"ok": 20}, 20)
    assert (identity(out), identity(calls)) == before  # left as they were

    out.write_bytes(b"not the file written")  # another file now: written again
    anyio.run(run_job, job, endpoint)
    assert pl.read_parquet(out).sort("source").equals(written.sort("source"))
    calls.unlink()
    anyio.run(run_job, job, endpoint)
    assert len(pl.read_parquet(calls)) == 20

    served = server.stats()["served"]["total"]
    forced = anyio.run(functools.partial(run_job, job, endpoint, RunControl(force=True)))
    assert server.stats()["served"]["total"] == served + 20  # answered afresh: written
    assert forced.rows == 20
    assert pl.read_parquet(out)["finished_at"].min() > written["finished_at"].max()

    (docs / "note-00.txt").write_text("Note 0: changed.", encoding="utf-8")
    changed = identity(out)
    anyio.run(run_job, job, endpoint)
    assert identity(out) != changed
    hashes = pl.read_parquet(out).filter(pl.col("source") == "note-00.txt")["content_hash"]
    assert (
        hashes.to_list()
        != written.filter(pl.col("source") == "note-00.txt")["content_hash"].to_list()
    )


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**clean, **(env or {})},
        timeout=120,
        check=False,
    )


def test_cli_run_simulate_writes_parquet_and_exits_1_for_failed_documents(tmp_path: Path) -> None:
    out = tmp_path / "summaries.parquet"
    done = run_cli("run", "jobs/summarize.toml", "--simulate", "--output", str(out))
    assert done.returncode == 1, done.stderr  # broken.pdf and encrypted.pdf failed
    frame = pl.read_parquet(out)
    assert set(frame["status"]) == {"ok", "error"}
    # The report, printed and kept beside the Parquet, counts what the file holds.
    summary = json.loads((tmp_path / "summaries.report.json").read_text())
    counts = frame["status"].value_counts()
    assert summary["documents"]["by_status"] == dict(counts.iter_rows())
    assert summary["documents"]["by_error_type"] == {"unreadable": 1, "encrypted_document": 1}
    assert f"results    {out}" in done.stdout
    assert f"page       {tmp_path / 'summaries.report.html'}" in done.stdout
    import duckdb
    import pyarrow.parquet as pq

    assert pq.read_table(out).num_rows == len(frame)
    assert duckdb.sql(f"select count(*) from '{out}'").fetchall() == [(len(frame),)]


def test_cli_without_a_key_says_where_to_put_it(tmp_path: Path) -> None:
    done = run_cli("run", "jobs/summarize.toml", "--output", str(tmp_path / "o.parquet"))
    assert done.returncode == 2
    assert "No API key: set $MEGALLM_API_KEY or $ANTHROPIC_API_KEY" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_bad_spec_names_the_field(tmp_path: Path) -> None:
    spec = tmp_path / "bad.toml"
    spec.write_text(
        '[inputs]\npaths = ["."]\n[prompt]\ntemplate = "{txt}"\n'
        '[model]\nname = "m"\nmax_tokens = "lots"\n',
        encoding="utf-8",
    )
    done = run_cli("validate", str(spec))
    assert done.returncode == 2
    assert "model.max_tokens" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_reuses_a_job_on_other_inputs(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "a.md").write_text("# Notes\nSomething worth summarizing.", encoding="utf-8")
    shutil.copy(SAMPLES / "docs" / "broken.pdf", folder / "b.pdf")
    out = tmp_path / "o.parquet"
    done = run_cli(
        "run", "jobs/summarize.toml", str(folder), "--simulate", "--output", str(out),
        "--set", "model.max_tokens=300",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    frame = pl.read_parquet(out)
    assert sorted(frame["source"]) == ["a.md", "b.pdf"]


def test_per_chunk_gives_one_row_per_chunk(simulator: SimulatorServer, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "chapters.txt").write_text(
        "\n\n".join(f"Chapter {n}. " + "The story goes on. " * 400 for n in range(4)),
        encoding="utf-8",
    )
    job = load_job(
        JOBS / "summarize.toml",
        inputs=[str(docs)],
        output=str(tmp_path / "o.parquet"),
        overrides=["chunking.strategy=per_chunk", "chunking.max_chunk_tokens=2500"],
    )
    outcome = anyio.run(run_job, job, endpoint_of(simulator))
    rows = pl.read_parquet(outcome.output)
    assert len(rows) >= 3
    assert rows["chunk"].to_list() == list(range(1, len(rows) + 1))
    assert set(rows["status"]) == {"ok"}
    assert rows["doc_id"].n_unique() == 1


def test_attach_mode_sends_pdfs_as_document_blocks(
    simulator: SimulatorServer, tmp_path: Path
) -> None:
    docs = tmp_path / "scans"
    docs.mkdir()
    shutil.copy(SAMPLES / "docs" / "quarterly-report.pdf", docs / "scan.pdf")
    job = load_job(
        JOBS / "summarize.toml",
        inputs=[str(docs)],
        output=str(tmp_path / "o.parquet"),
        overrides=["inputs.mode=attach"],
    )
    outcome = anyio.run(run_job, job, endpoint_of(simulator))
    [row] = pl.read_parquet(outcome.output).iter_rows(named=True)
    assert row["status"] == "ok"
    assert row["kind"] == "pdf"
    # The simulator charges 1,500 tokens a PDF page: the pages went as a document block.
    assert row["input_tokens"] >= 1_500


def test_validate_refuses_an_input_path_that_matches_nothing(tmp_path: Path) -> None:
    done = run_cli("validate", "jobs/summarize.toml", str(tmp_path / "nowhere"))
    assert done.returncode == 2
    assert "inputs.paths" in done.stderr
    assert "does not exist" in done.stderr


def test_results_are_readable_by_their_user_only_and_no_temporary_is_left(
    simulator: SimulatorServer, tmp_path: Path
) -> None:
    job = load_job(JOBS / "summarize.toml", output=str(tmp_path / "out.parquet"))
    outcome = anyio.run(run_job, job, endpoint_of(simulator))
    # 0600 whatever the umask: the results hold every answer (issue 20)
    assert outcome.output.stat().st_mode & 0o777 == 0o600
    assert not list(tmp_path.glob(".*.partial"))  # no temporary left behind


def test_a_rerun_sends_only_new_or_changed_documents(
    simulator: SimulatorServer, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for n in range(4):
        (docs / f"note-{n}.txt").write_text(f"Note {n}: the budget was approved.", encoding="utf-8")
    out = str(tmp_path / "out.parquet")

    def run(*overrides: str, force: bool = False) -> tuple[pl.DataFrame, int]:
        before = simulator.stats()["served"]["total"]
        job = load_job(
            JOBS / "summarize.toml", inputs=[str(docs)], output=out, overrides=list(overrides)
        )
        outcome = anyio.run(
            functools.partial(run_job, job, endpoint_of(simulator), RunControl(force=force))
        )
        return pl.read_parquet(outcome.output), simulator.stats()["served"]["total"] - before

    first, sent = run()
    assert sent == 4
    again, sent = run()
    assert sent == 0  # nothing paid twice
    assert (
        again.sort("source")
        .select("source", "text")
        .equals(first.sort("source").select("source", "text"))
    )
    (docs / "note-2.txt").write_text("Note 2: the budget was rejected.", encoding="utf-8")
    (docs / "note-4.txt").write_text("Note 4: a new one.", encoding="utf-8")
    (docs / "note-0.txt").unlink()
    changed, sent = run()
    assert sent == 2  # the changed file and the new one
    assert sorted(changed["source"]) == ["note-1.txt", "note-2.txt", "note-3.txt", "note-4.txt"]
    _, sent = run("model.max_tokens=300")  # other settings: other answers
    assert sent == 4
    _, sent = run("model.max_tokens=300", force=True)
    assert sent == 4
