"""The command line starts without the heavy libraries: the simulator's server (uvicorn,
starlette), polars and pyarrow and pypdf (PDFs) are imported only by the code that uses them.
Time and memory are measured in bench/startup.py; this checks the cause."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("polars", "pyarrow", "uvicorn", "starlette", "pypdf", "httpcore2", "trio")


def loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint('loaded:', *(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    last = out.stdout.splitlines()[-1]
    assert last.startswith("loaded:")
    return set(last.split()[1:])


def test_help_imports_none_of_the_heavy_libraries() -> None:
    code = (
        "from pipeline.cli import build_parser\n"
        "try:\n    build_parser().parse_args(['--help'])\nexcept SystemExit:\n    pass"
    )
    assert loaded_after(code) == set()


def test_a_run_starts_without_the_simulator_or_the_pdf_and_table_readers() -> None:
    # polars and pyarrow still come with the runner's row schema (pipeline.output.sink); pypdf only
    # with a PDF, the table reader only with a table job
    code = (
        "import pipeline.cli, pipeline.run.runner, pipeline.output.progress\n"
        "import pipeline.readers.read\n"
        "import pipeline.readers.sources, sys\n"
        "assert 'pipeline.readers.tables' not in sys.modules, 'the table reader was imported'"
    )
    assert not loaded_after(code) & {"uvicorn", "starlette", "pypdf"}


def test_httpcore2_and_trio_wait_for_the_client_to_be_made() -> None:
    # httpcore2 imports trio when it is installed (the dev extra brings it): 0.1-0.2 s paid
    # when a run (or validate, which asks the endpoint) makes its client, never by --help
    code = (
        "import pipeline.cli, pipeline.run.runner, pipeline.output.progress\n"
        "import pipeline.readers.read, pipeline.engine.client"
    )
    assert not loaded_after(code) & {"httpcore2", "trio"}


def test_the_simulator_names_still_import_on_demand() -> None:
    code = "from pipeline.simulator import SimulatorServer, count_text, serve"
    assert {"uvicorn", "starlette"} <= loaded_after(code)


def test_the_command_line_imports_the_simulator_only_when_simulating() -> None:
    code = (
        "import sys\n"
        "from pipeline.cli import build_parser\n"
        "build_parser().parse_args(['run', 'job.toml', '--simulate'])\n"
        "import pipeline.run.runner\n"
        "assert 'pipeline.simulator' not in sys.modules, 'the simulator was imported'"
    )
    loaded_after(code)  # raises (check=True) when the assertion fails
