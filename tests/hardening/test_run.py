"""Issue 20, items 5, 10 and 12: a server's ``retry-after`` cannot stop a run for ever;
nothing a file name or a server says can put a control sequence on the terminal; the log
file records every failed attempt."""

from __future__ import annotations

import math
import re
from pathlib import Path

import polars as pl
import pytest

from pipeline.cli import main
from pipeline.config.endpoint import ApiKey, Endpoint
from pipeline.core.limits import MAX_PAUSE_S, Limits
from pipeline.core.models import Call
from pipeline.engine.client import MessagesClient
from pipeline.engine.pool import Pool
from pipeline.simulator import Faults, SimulatorConfig
from tests.conftest import TEST_MODELS, FakeClock, StartSimulator
from tests.hardening.support import KEY, Seen, error_reply, loopback, message_reply, small_job


@pytest.mark.parametrize(
    "value", ["inf", "1e9", "Thu, 01 Jan 2099 00:00:00 GMT", "nan", "-inf", "1e400"]
)
@pytest.mark.anyio
async def test_an_absurd_retry_after_pauses_the_run_at_most_the_cap(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    answers = [error_reply(429, "rate_limit_error", "slow down", **{"retry-after": value})]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        fake_clock.advance(seconds)

    def answer(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        return answers.pop(0) if answers else message_reply()

    with loopback(answer) as server:
        endpoint = Endpoint(server.url, ApiKey(KEY), key_source="$MEGALLM_API_KEY")
        async with MessagesClient(endpoint) as client:
            engine = Pool(client, Limits(max_concurrency=1), clock=fake_clock, sleep=sleep)
            params = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
            result = await engine.execute(Call("doc|whole", params, input_tokens=5))
    assert result.ok
    assert all(math.isfinite(s) for s in slept)
    assert sum(slept) <= MAX_PAUSE_S
    if value in ("1e9", "Thu, 01 Jan 2099 00:00:00 GMT"):  # capped, and said so
        assert any("retry-after" in r.getMessage() for r in caplog.records)


def test_control_characters_never_reach_the_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "\x1b]0;pwned\x07title.txt").write_text("")  # empty: a skip row, logged
    (docs / "bidi-\u202etxt.exe.txt").write_text("")
    (docs / "csi-\x9b31m.txt").write_text("")
    (docs / "ok.txt").write_text("fine")
    out = tmp_path / "out" / "r.parquet"
    job = str(small_job(tmp_path, docs))
    assert main(["run", job, "--simulate", "--simulate-models", "both", "--output", str(out)]) == 0
    captured = capsys.readouterr()
    for text in (captured.err, captured.out):
        assert "\x1b" not in text
        assert "\x07" not in text
        assert "\x9b" not in text
        assert "\u202e" not in text
    assert "\\x1b]0;pwned" in captured.err  # shown, escaped
    assert main(["report", str(out)]) == 0
    assert "\x1b" not in capsys.readouterr().out


def test_the_log_file_records_every_failed_attempt(
    start_simulator: StartSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_simulator(
        SimulatorConfig(models=TEST_MODELS, faults=Faults(overloaded=0.3, api_error=0.1, seed=5))
    )
    monkeypatch.setenv("MEGALLM_API_KEY", server.api_key)
    docs = tmp_path / "docs"
    docs.mkdir()
    for n in range(12):
        (docs / f"d{n}.txt").write_text(f"Document number {n} about the budget.")
    out = tmp_path / "out" / "r.parquet"
    log = tmp_path / "run.log"
    job = small_job(tmp_path, docs, retry__max_attempts="6")
    code = main(
        ["run", str(job), "-q", "--output", str(out), "--base-url", server.url,
         "--log-file", str(log)]
    )  # fmt: skip
    assert code in (0, 1)
    calls = pl.read_parquet(out.with_name("r.calls.parquet"))
    failed = calls.filter(pl.col("status").is_null() | (pl.col("status") != 200)).height
    assert failed > 0
    lines = [
        line for line in log.read_text().splitlines() if re.search(r"attempt \d+ failed", line)
    ]
    assert len(lines) == failed
    assert all("overloaded" in line or "server_error" in line for line in lines)
