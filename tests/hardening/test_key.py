"""Issue 20, items 1, 2, 6 and 9: the key is checked where it is found, and never reaches a
row, a log, stderr or the report, whatever the server or the transport says; it never goes
to a proxy in clear; a job file cannot pick any variable to send; a base URL's password is
never kept."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from pipeline.cli import EXIT_USAGE, main
from pipeline.config.endpoint import ApiKey, Endpoint
from pipeline.engine.client import MessagesClient
from pipeline.simulator import SimulatorConfig
from tests.conftest import TEST_MODELS, StartSimulator
from tests.hardening.support import KEY, Answer, Handler, Seen, error_reply, loopback, small_job

FRAGMENTS = (KEY, KEY[:24], KEY[-16:])


def _nowhere(folder: Path, *texts: str) -> None:
    for text in texts:
        for fragment in FRAGMENTS:
            assert fragment not in text
    for path in folder.rglob("*"):
        if path.is_file():
            for fragment in FRAGMENTS:
                assert fragment.encode() not in path.read_bytes(), f"{fragment!r} in {path}"


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("A note about the budget.")
    return folder


@pytest.mark.parametrize(
    ("value", "what"),
    [
        (KEY + "\n# my work key", "a line break"),
        (KEY + " extra", "white space"),
        (KEY + "é", "a character that is not printable ASCII"),
        (KEY + "\x7f", "a control character"),
    ],
    ids=["newline", "space", "non-ascii", "delete"],
)
def test_a_malformed_key_is_refused_by_its_variable_never_shown(
    tmp_path: Path,
    docs: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    value: str,
    what: str,
) -> None:
    monkeypatch.setenv("MEGALLM_API_KEY", value)
    job = small_job(tmp_path, docs)
    out = tmp_path / "out" / "r.parquet"
    with loopback(lambda seen: error_reply(500, "api_error", "never asked")) as server:
        code = main(["run", str(job), "--output", str(out), "--base-url", server.url])
        assert server.seen == []  # refused before any connection
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert "$MEGALLM_API_KEY" in err
    assert what in err
    assert "Traceback" not in err
    assert not out.exists()
    _nowhere(tmp_path, err)


def _echo(status: int, kind: str) -> Handler:
    """A gateway that puts the key it was sent in its error message and request id."""

    def answer(seen: Seen) -> Answer:
        if seen.target.startswith("/v1/models") and status != 401:
            return 200, {"content-type": "application/json"}, b'{"data": []}'
        key = seen.headers.get("x-api-key", "")
        return error_reply(
            status, kind, f"key {key} is not valid here", **{"request-id": f"req_{key}"}
        )

    return answer


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, "invalid_request_error"), (401, "authentication_error"), (500, "api_error")],
)
def test_a_gateway_that_echoes_the_key_has_it_scrubbed_everywhere(
    tmp_path: Path,
    docs: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    status: int,
    kind: str,
) -> None:
    monkeypatch.setenv("MEGALLM_API_KEY", KEY)
    job = small_job(tmp_path, docs, retry__max_attempts="2")
    out = tmp_path / "out" / "r.parquet"
    with loopback(_echo(status, kind)) as server:
        code = main(
            [
                "run", str(job), "--output", str(out), "--base-url", server.url,
                "--log-file", str(tmp_path / "run.log"),
            ]
        )  # fmt: skip
    captured = capsys.readouterr()
    assert code in (1, 3)
    rows = pl.read_parquet(out)
    report = json.loads((tmp_path / "out" / "r.report.json").read_text())
    said = (rows["error_message"][0] or "") if status != 401 else report["fatal_error"]
    assert "is not valid here" in said  # the server's message is kept, the key is not
    assert "**redacted**" in said
    _nowhere(tmp_path, captured.out, captured.err)


@pytest.mark.anyio
async def test_plain_http_to_this_machine_never_goes_through_a_proxy(
    start_simulator: StartSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_simulator(SimulatorConfig(models=TEST_MODELS, api_keys=frozenset({KEY})))
    with loopback(lambda seen: error_reply(502, "api_error", "proxy")) as proxy:
        for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, proxy.url)
        for name in ("no_proxy", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
        endpoint = Endpoint(server.url, ApiKey(KEY), key_source="$MEGALLM_API_KEY")
        async with MessagesClient(endpoint) as client:
            await client.check()
            reply = await client.create(
                {
                    "model": "claude-haiku-4-5",
                    "max_tokens": 20,
                    "messages": [{"role": "user", "content": "hello"}],
                }
            )
        assert reply.text
        assert proxy.seen == []


def test_api_key_env_must_name_a_key_variable(
    tmp_path: Path, docs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = small_job(tmp_path, docs, endpoint__api_key_env='"GITHUB_TOKEN"')
    assert main(["validate", str(job)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "endpoint.api_key_env" in err
    assert "API_KEY" in err
    ok = small_job(tmp_path, docs, endpoint__api_key_env='"WORK_ANTHROPIC_API_KEY"')
    assert main(["validate", str(ok)]) == 0


def test_a_password_in_the_base_url_is_refused_and_never_shown(
    start_simulator: StartSimulator,
    tmp_path: Path,
    docs: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = start_simulator()
    monkeypatch.setenv("MEGALLM_API_KEY", server.api_key)
    job = small_job(tmp_path, docs)
    out = tmp_path / "out" / "r.parquet"
    url = server.url.replace("http://", "http://alice:hunter2pw@")
    code = main(
        ["run", str(job), "--output", str(out), "--base-url", url,
         "--log-file", str(tmp_path / "run.log")]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert "user name or password" in err
    assert "hunter2pw" not in err
    assert not out.exists()
    log = tmp_path / "run.log"
    assert not log.exists() or "hunter2pw" not in log.read_text()
