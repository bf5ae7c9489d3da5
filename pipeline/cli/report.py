"""``pipeline report``: the report of a past run, as text, JSON or one HTML page."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.cli.common import EXIT_OK
from pipeline.core import logs


def add_report(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    show = commands.add_parser(
        "report",
        help="show the report of a past run",
        description="Show the report a run wrote beside its Parquet file.",
    )
    show.add_argument("output", type=Path, help="the run's Parquet file (or its .report.json)")
    show.add_argument("--json", action="store_true", help="print the report as JSON")
    show.add_argument(
        "--html",
        nargs="?",
        const="",
        type=str,
        metavar="PATH",
        help="write the report as one self-contained HTML page (default: OUTPUT.report.html)",
    )


def run_report(args: argparse.Namespace) -> int:
    from pipeline.output import report

    past = report.load(args.output)
    if args.html is not None:
        from pipeline.output import page  # Jinja2 and the charts: loaded only for a page

        written = page.write_for(past, args.output, Path(args.html) if args.html else None)
        logs.echo(f"wrote {written}")
        return EXIT_OK
    if args.json:
        print(json.dumps(past, indent=2))
    else:
        logs.echo(report.render(past))
    return EXIT_OK
