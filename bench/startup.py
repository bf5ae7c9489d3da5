"""Start-up: wall time and peak RSS of the command line before it does any work.

Run:  python -m bench.startup                         (this checkout, 10 rounds)
      python -m bench.startup --beside ../main        (and another checkout, rounds interleaved)

Each command runs as a subprocess of the checkout's own ``.venv/bin/python`` from the
checkout's folder; wall time is measured around the process, peak RSS is ``wait4``'s
``ru_maxrss``, CPU time its user and system time (steadier than wall time on a busy
machine). Medians over the rounds, the checkouts interleaved so that load on the
machine hits both alike. Commands: ``pipeline --help``; ``pipeline validate`` of the sample
job (loads the spec and lists the inputs: what a run does before its first request); the
modules a text run imports before its first request; and those with the run's HTTP client
made (no request sent): making it imports httpcore2, which imports trio when it is installed
(the dev extra brings it, with selenium), and loads the CA bundle.

The last row, "to the first request", is a real ``pipeline run`` of the sample job with a
key, its base URL a socket this script listens on (127.0.0.1; nothing answers): the time
from starting the process to the first byte of its first request (``GET /v1/models``, the
run's check of key and model, sent before any document), and the peak RSS then (the run is
killed there; its output goes to a temporary folder).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.table import row, separator

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = {
    "pipeline --help": ["-m", "pipeline", "--help"],
    "pipeline validate jobs/summarize.toml": ["-m", "pipeline", "validate", "jobs/summarize.toml"],
    "a run's imports": [
        "-c",
        "import pipeline.cli, pipeline.run.runner, pipeline.output.progress, pipeline.readers.read",
    ],
    "a run's imports and its client": [
        "-c",
        "import pipeline.cli, pipeline.run.runner, pipeline.output.progress, pipeline.readers.read"
        "; from pipeline.config.endpoint import ApiKey, Endpoint"
        "; from pipeline.engine.client import MessagesClient"
        "; MessagesClient(Endpoint('https://ai.megallm.io', ApiKey('k')))",
    ],
}
FIRST_REQUEST = "to the first request"
HEAVY = ("polars", "pyarrow", "uvicorn", "starlette", "pypdf", "trio")


Sample = tuple[float, float, float]  # wall s, peak RSS MB, CPU s


def measure(checkout: Path, args: list[str]) -> Sample:
    """(wall seconds, peak RSS MB, CPU seconds) of one run of ``python ARGS`` in ``checkout``."""
    python = checkout / ".venv" / "bin" / "python"
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(python), *args], cwd=checkout, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{checkout}: python {' '.join(args)} failed")
    return wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def first_request(checkout: Path) -> Sample:
    """(seconds to the first byte of the run's first request, peak RSS MB and CPU s then) of
    ``pipeline run jobs/summarize.toml`` in ``checkout``, against a socket that never answers."""
    python = checkout / ".venv" / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.endswith(("API_KEY", "BASE_URL"))}
    env["MEGALLM_API_KEY"] = "bench-not-a-key"
    with (
        socket.create_server(("127.0.0.1", 0)) as server,
        tempfile.TemporaryDirectory() as out,
    ):
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        args = ["-m", "pipeline", "run", "jobs/summarize.toml", "--base-url", url]
        args += ["--output", str(Path(out) / "summaries.parquet")]
        server.settimeout(60)
        started = time.perf_counter()
        process = subprocess.Popen(
            [str(python), *args],
            cwd=checkout,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            connection, _ = server.accept()
            with connection:
                connection.recv(1)
                arrived = time.perf_counter() - started
        finally:
            process.kill()
            _, _, usage = os.wait4(process.pid, 0)
    return arrived, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def heavy_imports(checkout: Path, args: list[str]) -> str:
    """Which of ``HEAVY`` the command has imported when it ends (``-c`` commands only)."""
    if not args or args[0] != "-c":
        return "-"
    probe = f"{args[1]}; import sys; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    python = checkout / ".venv" / "bin" / "python"
    out = subprocess.run([str(python), "-c", probe], cwd=checkout, capture_output=True, text=True)
    return out.stdout.strip() or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beside", type=Path, help="another checkout to measure alongside")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    checkouts = [ROOT] + ([args.beside.resolve()] if args.beside else [])
    header = (
        "| checkout | command | wall s (median) | peak RSS MB (median) | CPU s (median) "
        "| heavy modules |"
    )
    print(header)
    print(separator(header))
    for name, command in [*COMMANDS.items(), (FIRST_REQUEST, [])]:
        samples: dict[Path, list[Sample]] = {c: [] for c in checkouts}
        for _ in range(args.rounds):
            for checkout in checkouts:
                timed = first_request(checkout) if name == FIRST_REQUEST else None
                samples[checkout].append(timed or measure(checkout, command))
        for checkout in checkouts:
            walls, rss, cpu = zip(*samples[checkout], strict=True)
            cells = [checkout.name, f"`{name}`", f"{statistics.median(walls):.2f}"]
            cells += [f"{statistics.median(rss):.0f}", f"{statistics.median(cpu):.2f}"]
            cells.append(heavy_imports(checkout, command))
            print(row(cells))


if __name__ == "__main__":
    main()
