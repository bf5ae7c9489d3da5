"""The command line starts without the heavy libraries: the simulator's server (uvicorn,
starlette), polars and pyarrow and pypdf (PDFs) are imported only by the code that uses them.
Nor does it load what only some jobs or commands use (round four of issue 15's start-up):
rich without a terminal's bar, the Batches API without ``batch``, a review's tools, PDF
workers' multiprocessing, the encoding detector, ``importlib.metadata`` for the version; and
``validate`` loads neither the runner nor the HTTP client. Time and memory are measured in
bench/startup.py; this checks the cause, so that what was deferred stays deferred."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

HEAVY = ("polars", "pyarrow", "uvicorn", "starlette", "pypdf", "httpcore2", "trio")
RUN_IMPORTS = (
    "import pipeline.cli, pipeline.run.runner, pipeline.output.progress\n"
    "import pipeline.readers.read"
)
SAMPLE_JOB = Path(__file__).resolve().parent.parent / "jobs" / "summarize.toml"


def loaded_after(
    code: str, watched: tuple[str, ...] = HEAVY, env: dict[str, str] | None = None
) -> set[str]:
    probe = f"{code}\nimport sys\nprint('loaded:', *(m for m in {watched!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=env,
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


def test_help_loads_neither_pydantic_nor_rich_nor_the_package_metadata() -> None:
    code = (
        "from pipeline.cli import build_parser\n"
        "try:\n    build_parser().parse_args(['--help'])\nexcept SystemExit:\n    pass"
    )
    watched = ("pydantic", "rich", "importlib.metadata", "pipeline.output.report")
    assert loaded_after(code, watched) == set()


def test_the_version_is_the_installed_packages() -> None:
    # a constant (pipeline.core.version) that pyproject.toml reads: the two cannot drift
    import pipeline

    assert pipeline.__version__ == importlib.metadata.version("pipeline")


def test_a_plain_run_does_not_load_what_only_some_jobs_use() -> None:
    watched = (
        "rich",  # the live bar: made only on a terminal (pipeline.cli.common.start_logging)
        "pipeline.engine.batch",  # endpoint.mode = "batch"
        "pipeline.run.review",  # review.tools
        "pipeline.readers.tools",
        "multiprocessing",  # the PDF workers, started with the first PDF
        "charset_normalizer",  # text that is not UTF-8
        "difflib",  # a model the endpoint does not serve: the nearest one it does
    )
    assert loaded_after(RUN_IMPORTS, watched) == set()


def test_validate_without_a_key_loads_neither_the_runner_nor_the_client() -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("API_KEY")}
    code = (
        "import contextlib, io\n"
        "from pipeline.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main(['validate', {str(SAMPLE_JOB)!r}]) == 0"
    )
    watched = ("pipeline.run.runner", "pipeline.engine.client", "httpx2", "anyio", "rich")
    assert loaded_after(code, watched, env) == set()


def test_a_quiet_or_json_run_sets_up_its_logging_without_rich() -> None:
    # no live bar is shown with either option, so rich's console is not made to ask for one
    for option in ("quiet", "log_json"):
        code = (
            "import argparse\n"
            "from pipeline.cli.common import start_logging\n"
            "from pipeline.core import logs\n"
            "args = argparse.Namespace(quiet=False, log_json=False, log_file=None,"
            " progress_every=60.0)\n"
            f"setattr(args, {option!r}, True)\n"
            "start_logging(args)\n"
            "logs.reset()"
        )
        assert loaded_after(code, ("rich",)) == set(), option
