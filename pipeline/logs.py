"""Where the run's log goes: stderr for people, JSON lines for machines, a file for later.

Every record is logged under ``pipeline.*``. Levels: DEBUG every failed attempt, INFO the
run's course (start, progress lines, end), WARNING a document that failed, ERROR a run
that stopped. The console shows INFO and up (WARNING and up with ``--quiet``); a log file
takes everything. Structured fields ride on the record as ``extra``; the JSON formatter
writes them out. The API key is never logged: nothing here sees it, and ``ApiKey`` redacts
itself if anything tried.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.logging import RichHandler

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonLines(logging.Formatter):
    """One JSON object a line: time, level, logger, message and the record's extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update((k, v) for k, v in vars(record).items() if k not in _STANDARD)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(
    *,
    stream: TextIO,
    console: Console | None = None,
    json_lines: bool = False,
    quiet: bool = False,
    log_file: Path | None = None,
) -> None:
    """Send ``pipeline.*`` records to the console (through rich's ``console`` when a live
    bar is shown, so lines print above it) and, if given, to ``log_file``."""
    reset()
    root = logging.getLogger("pipeline")
    root.setLevel(logging.DEBUG)
    root.propagate = False
    screen: logging.Handler
    if console is not None and not json_lines:
        screen = RichHandler(console=console, show_path=False, markup=False)
    else:
        screen = logging.StreamHandler(stream)
        screen.setFormatter(
            JsonLines() if json_lines else logging.Formatter("pipeline: %(message)s")
        )
    screen.setLevel(logging.WARNING if quiet else logging.INFO)
    root.addHandler(screen)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(log_file, encoding="utf-8")
        to_file.setFormatter(
            JsonLines()
            if json_lines
            else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
        to_file.setLevel(logging.DEBUG)
        root.addHandler(to_file)


def reset() -> None:
    """Remove what ``configure`` set up (the command line's last act; tests run many)."""
    root = logging.getLogger("pipeline")
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.propagate = True
    root.setLevel(logging.NOTSET)
