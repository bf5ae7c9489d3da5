"""Mutation check of the README's headline claims (issue 21): each mutant breaks one claim in
a temporary copy of the tree, then the tests written for that claim run there. A mutant the
tests let through ("survived") means those tests no longer prove what they say.

    python -m bench.mutants                 # every mutant, about 2 minutes on 2 cores
    python -m bench.mutants warm_up budget  # those whose names contain a word given

Not part of CI (it runs the same tests several times); the list of what it kills is in
docs/reliability.md ("Mutation check").
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COPIED = ("pipeline", "tests", "jobs", "sample_data", "pyproject.toml", "requirements-lock.txt")


@dataclass(frozen=True)
class Mutant:
    name: str
    claim: str
    path: str  # the file changed, relative to the tree
    edits: tuple[tuple[str, str], ...]  # (old, new): each old text occurs once in the file
    tests: tuple[str, ...]  # pytest node ids that must fail with it


MUTANTS = (
    Mutant(
        "commit_at_close",
        "finished documents are committed as they finish (kill -9 loses only calls in flight)",
        "pipeline/store.py",
        (
            (
                "                self._db.execute(statement)\n",
                "                self._db.execute(statement)\n"
                '            self._db.execute("begin")  # MUTANT: one transaction for the run\n',
            ),
            (
                "        self._db.close()\n",
                '        self._db.execute("commit")  # MUTANT: committed when the run closes\n'
                "        self._db.close()\n",
            ),
        ),
        (
            "tests/test_interrupts.py::test_kill_9_at_random_points_then_resume",
            "tests/reliability/test_kills.py::test_sigkill_and_sigterm_at_random_points_then_resume",
        ),
    ),
    Mutant(
        "transport_error_headers",
        "the API key appears in no error, row, log or report",
        "pipeline/client.py",
        (
            (
                "    def _translate(self, exc: httpx.HTTPError) -> PipelineError:\n",
                "    def _translate(self, exc: httpx.HTTPError) -> PipelineError:\n"
                "        sent = getattr(exc, '_request', None)  # MUTANT: the request's headers\n"
                "        if sent is not None:\n"
                "            exc = type(exc)(f'{exc} (sent {dict(sent.headers)})', request=sent)\n",
            ),
            (  # and the scrub that would catch it since issue 20 is gone too
                "    secret = key.reveal()\n    return text.replace(",
                "    return text  # MUTANT: no scrub\n"
                "    secret = key.reveal()\n    return text.replace(",
            ),
        ),
        (
            "tests/engine/test_client.py::test_transport_errors_are_translated",
            "tests/reliability/test_secrets.py::"
            "test_dropped_and_truncated_connections_leave_the_key_nowhere",
            "tests/hardening/test_key.py::"
            "test_a_gateway_that_echoes_the_key_has_it_scrubbed_everywhere",
        ),
    ),
    Mutant(
        "no_warm_up",
        "the first request goes alone, so it writes the prompt cache the others read",
        "pipeline/pool.py",
        (
            (
                "            if self.warm_up and not leader:\n",
                "            if False and self.warm_up and not leader:  # MUTANT: no warm-up\n",
            ),
        ),
        (
            "tests/test_cost.py::test_the_shared_prefix_is_cached_and_read_from_the_second_request_on",
        ),
    ),
    Mutant(
        "budget_ignores_max_tokens",
        "the budget's worst case counts all of max_tokens as output",
        "pipeline/budget.py",
        (
            (
                "            n, m = call.input_tokens, call.max_tokens\n",
                "            n, m = call.input_tokens, 0  # MUTANT: replies cost nothing\n",
            ),
        ),
        ("tests/test_cost.py::test_the_budget_stops_the_run_before_it_passes",),
    ),
    Mutant(
        "budget_ignores_cache_write",
        "the budget's worst case prices input at the dearer cache-write rate",
        "pipeline/budget.py",
        (("            cost = max(\n", "            cost = min(  # MUTANT: the cheaper rate\n"),),
        (
            "tests/test_cost.py::test_the_worst_case_prices_the_cached_prefix_at_the_cache_write_rate",
        ),
    ),
)


def apply(mutant: Mutant, tree: Path) -> None:
    path = tree / mutant.path
    text = path.read_text(encoding="utf-8")
    for old, new in mutant.edits:
        if text.count(old) != 1:
            raise SystemExit(
                f"{mutant.name}: the text it changes is not once in {mutant.path}: update it"
            )
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")


def check(mutant: Mutant) -> tuple[bool, float, str]:
    """Run the mutant's tests in a mutated copy: killed (at least one failed), the time it
    took, and pytest's summary of what failed."""
    with tempfile.TemporaryDirectory(prefix=f"mutant-{mutant.name}-") as folder:
        tree = Path(folder)
        for name in COPIED:
            source = ROOT / name
            if source.is_dir():
                ignore = shutil.ignore_patterns("__pycache__", ".hypothesis")
                shutil.copytree(source, tree / name, ignore=ignore)
            elif source.exists():
                shutil.copy2(source, tree / name)
        apply(mutant, tree)
        started = time.monotonic()
        # Run from the copy: its ``pipeline`` comes first on sys.path (and for the
        # subprocesses the tests start, whose working directory is the copy).
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rf", *mutant.tests],
            cwd=tree,
            capture_output=True,
            text=True,
            check=False,
        )
        elapsed = time.monotonic() - started
    if result.returncode not in (0, 1):
        tail = (result.stdout + result.stderr)[-2_000:]
        raise SystemExit(f"{mutant.name}: pytest could not run the tests\n{tail}")
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED ")]
    return result.returncode == 1, elapsed, "\n".join(failed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("only", nargs="*", help="run only mutants whose names contain one")
    parser.add_argument("--why", action="store_true", help="show the test that killed each")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.only or any(w in m.name for w in args.only)]
    survived = []
    print("| mutant | claim it breaks | result | seconds |\n|---|---|---|---|")
    for mutant in chosen:
        killed, elapsed, failed = check(mutant)
        if not killed:
            survived.append(mutant.name)
        verdict = "killed" if killed else "**survived**"
        print(f"| `{mutant.name}` | {mutant.claim} | {verdict} | {elapsed:.0f} |", flush=True)
        if args.why and failed:
            print(failed, file=sys.stderr)
    if survived:
        print(f"survived: {', '.join(survived)}", file=sys.stderr)
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
