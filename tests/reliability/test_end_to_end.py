"""Hostile inputs through a whole run against the simulator: one row per input with the right
status and a message a user can act on, the run going on past every one of them; a run whose
output sits among its inputs; and secrets that must never reach the API."""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path

import anyio
import httpx2 as httpx  # the client's HTTP stack: its transports and responses
import polars as pl
import pytest

from pipeline.config.endpoint import ApiKey, Endpoint
from pipeline.config.load import load_job
from pipeline.run.runner import run_job
from tests.conftest import StartSimulator
from tests.readers.support import png_bytes, write
from tests.reliability import support
from tests.reliability.support import JOBS, ROOT, cli


@pytest.fixture
def hostile_tree(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    write(docs, "good.txt", "A plain note about the quarterly budget.")
    write(docs, "empty.txt", b"")
    write(docs, "binary.txt", png_bytes())
    write(docs, "legacy.txt", "Café crème, naïve façade.".encode("latin-1"))
    write(docs, "long-line.txt", b"lorem" * 400_000)  # 2 MB in one line, over the job's cap
    write(docs, "truncated.pdf", support.truncated_pdf())
    write(docs, "encrypted.pdf", support.encrypted_pdf())
    write(docs, "page7.pdf", support.corrupt_stream_on_page(7))
    write(docs, "tome.pdf", support.pages_pdf(5_001))
    write(docs, "odd-text-map.pdf", support.lone_surrogate_pdf())
    write(docs, "with space.txt", "Spaces in the name.")
    write(docs, "new\nline.md", "# A newline in the name")
    write(docs, "ünï ✓.md", "Non-ASCII in the name.")
    support.write_name(docs, b"latin1-\xe9.txt", b"A name that is not UTF-8.")
    os.symlink("loop-b.txt", docs / "loop-a.txt")
    os.symlink("loop-a.txt", docs / "loop-b.txt")
    write(tmp_path, "outside/private.txt", "Outside the input folder.")
    os.symlink(tmp_path / "outside" / "private.txt", docs / "outside.txt")
    os.symlink("..", docs / "sub-up")  # a folder link out of the root: not walked, a skip row
    return docs


# source -> (status, error_type, words the message must hold)
EXPECTED = {
    "good.txt": ("ok", None, ()),
    "empty.txt": ("skipped", "empty_file", ("nothing to send",)),
    "binary.txt": ("skipped", "binary_file", ("binary data", "inputs.exclude")),
    "legacy.txt": ("ok", None, ()),
    "long-line.txt": ("skipped", "too_large", ("inputs.max_file_bytes",)),
    "truncated.pdf": ("error", "unreadable", ("truncated or damaged", "qpdf")),
    "encrypted.pdf": ("error", "encrypted_document", ("password", "qpdf --decrypt")),
    "page7.pdf": ("ok", None, ()),
    "tome.pdf": ("skipped", "too_large", ("5,001 pages", "qpdf --split-pages")),
    "odd-text-map.pdf": ("ok", None, ()),
    "with space.txt": ("ok", None, ()),
    "new\nline.md": ("ok", None, ()),
    "ünï ✓.md": ("ok", None, ()),
    "latin1-\\xe9.txt": ("ok", None, ()),
    "loop-a.txt": ("skipped", "skipped", ("symbolic link (loops)", "fix or remove it")),
    "loop-b.txt": ("skipped", "skipped", ("symbolic link (loops)", "fix or remove it")),
    "outside.txt": ("skipped", "skipped", ("outside the input folder", "follow_symlinks")),
    "sub-up": ("skipped", "skipped", ("outside the input folder", "follow_symlinks")),
}


def test_a_run_over_hostile_inputs_gives_one_actionable_row_each(
    capsys: pytest.CaptureFixture[str], hostile_tree: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results" / "summaries.parquet"
    argv = [
        "run", str(JOBS / "summarize.toml"), str(hostile_tree), "--simulate",
        "--output", str(out), "--set", "inputs.max_file_bytes=1_500_000",
    ]  # fmt: skip
    status, stdout, stderr = cli(capsys, *argv)
    assert status == 1, stderr  # finished; some documents failed
    assert "Traceback" not in stderr
    assert "documents  18: 2 error, 8 ok, 8 skipped" in stdout
    rows = {row["source"]: row for row in pl.read_parquet(out).iter_rows(named=True)}
    assert set(rows) == set(EXPECTED)
    for source, (status_, error_type, words) in EXPECTED.items():
        row = rows[source]
        assert (row["status"], row["error_type"]) == (status_, error_type), source
        if status_ != "ok":
            assert row["error_message"].startswith(source), row["error_message"]
            for word in words:
                assert word in row["error_message"], (source, row["error_message"])
            assert row["attempts"] == row["input_tokens"] == 0  # nothing was sent for it
    assert any("page 7" in note for note in rows["page7.pdf"]["notes"])
    assert rows["legacy.txt"]["notes"] == ["decoded as cp1252 (not UTF-8)"]
    assert "U+FFFD" in rows["odd-text-map.pdf"]["notes"][0]

    again, stdout, _ = cli(capsys, *argv)  # the same command: nothing new, nothing lost
    assert again == 1
    assert "; 8 finished earlier, not sent again" in stdout
    assert set(pl.read_parquet(out)["source"]) == set(EXPECTED)


def test_a_run_whose_output_is_among_its_inputs_never_reads_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    write(repo, "app.py", "def main() -> int:\n    return 0\n")
    write(repo, "README.md", "# The app\n")
    argv = [
        "run", str(JOBS / "code_review.toml"), str(repo), "--simulate",
        "--output", str(repo / "review.parquet"),
        # the job's own pacing (basic tier, 50 a minute) would only make this slower
        "--set", "limits.requests_per_minute=100000", "--set", "limits.tokens_per_minute=10000000",
    ]  # fmt: skip
    for run in range(3):
        status, stdout, stderr = cli(capsys, *argv)
        assert status == 0, stderr
        sources = pl.read_parquet(repo / "review.parquet")["source"].to_list()
        assert sources == ["README.md", "app.py"], f"run {run + 1}: {sources}"
        assert "documents  2: 2 ok" in stdout
    assert "; 2 finished earlier, not sent again" in stdout
    assert (repo / "review.state.lock").exists()  # the lock (holding a pid) is there, unread


class Recording(httpx.AsyncBaseTransport):
    """Passes requests on to the simulator and keeps each one: what reached the API."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.requests: list[tuple[str, str, bytes]] = []  # method, path, body

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path, await request.aread()))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


SECRETS = {
    ".env": "DATABASE_URL=postgres://admin:MARKER-DOTENV@db/prod\n",
    ".env.production": "API_TOKEN=MARKER-DOTENV-PROD\n",
    "config/id_rsa": "-----BEGIN OPENSSH PRIVATE KEY-----\nMARKER-SSH\n",
    "config/id_ed25519": "MARKER-ED25519 (a key without its armour)\n",
    "certs/server.pem": "MARKER-PEM\n",
    "certs/tls.key": "MARKER-TLSKEY\n",
    "notes/rotation.md": "Old key, do not use:\n-----BEGIN RSA PRIVATE KEY-----\nMARKER-RSA\n",
    "app/aws.py": 'KEY_ID = "AKIAQWERTYUIOPASDFGH"  # MARKER-AKIA\n',
    "app/settings.py": 'aws_secret_access_key = "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"\n',
    "scripts/ci.sh": "export GITHUB_TOKEN=ghp_" + "Q" * 36 + "  # MARKER-GHP\n",
    "deploy/credentials": "[default]\nMARKER-CREDENTIALS\n",
}


def test_code_review_never_sends_what_looks_like_a_secret(
    start_simulator: StartSimulator, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "sample_data" / "repo" / "inventory", repo / "inventory")
    for relative, text in SECRETS.items():
        write(repo, relative, text)
    pdf = support.pdf_bytes(["Appendix: the deploy key", "-----BEGIN PRIVATE KEY----- MARKER-PDF"])
    write(repo, "docs/handover.pdf", pdf)
    server = start_simulator()
    job = load_job(
        JOBS / "code_review.toml",
        inputs=[str(repo)],
        output=str(tmp_path / "review.parquet"),
        overrides=["limits.requests_per_minute=100000", "limits.tokens_per_minute=10000000"],
    )
    endpoint = Endpoint(server.url, ApiKey(server.api_key), key_source="$TEST_KEY")
    recording = Recording()
    outcome = anyio.run(functools.partial(run_job, job, endpoint, transport=recording))

    rows = {r["source"]: r for r in pl.read_parquet(outcome.output).iter_rows(named=True)}
    secrets = [*SECRETS, "docs/handover.pdf"]
    for source in secrets:
        row = rows[source]
        assert (row["status"], row["error_type"]) == ("skipped", "secret_file"), source
        assert "looks like credentials" in row["error_message"]
        assert "inputs.skip_secrets = false" in row["error_message"]  # if it is safe after all
        assert row["attempts"] == row["input_tokens"] == 0
        assert "MARKER" not in row["error_message"]
    reviewed = [s for s, r in rows.items() if r["status"] == "ok"]
    assert sorted(reviewed) == [
        f"inventory/{n}" for n in ("__init__.py", "cli.py", "models.py", "store.py")
    ]
    sent = b"\n".join(body for _, _, body in recording.requests)
    posts = [path for method, path, _ in recording.requests if method == "POST"]
    assert posts == ["/v1/messages"] * len(reviewed)  # one call each, nothing else
    assert b"MARKER" not in sent
    assert b"PRIVATE KEY" not in sent
    assert b"AKIAQWERTYUIOPASDFGH" not in sent
    assert b"class Inventory" in sent or b"def " in sent  # the code itself did go
    assert server.stats()["served"]["total"] == len(reviewed)  # the simulator saw the same
