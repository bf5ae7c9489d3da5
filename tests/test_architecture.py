"""The house's rules, checked on every module under ``pipeline/`` (docs/architecture.md):

- no module over 400 lines, no function over 50 (tests and bench are not checked);
- a module imports only from its own stage or lower ones (the table below), wherever the import
  is: at the top, inside a function, or under ``TYPE_CHECKING``;
- the simulator imports only ``pipeline.core``, and only the front doors (the command line, the
  Python API) import it, inside the functions that simulate (never at a module's top:
  ``pipeline run`` does not pay for it).

Each module is parsed (``ast``), never imported.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "pipeline"

# The stages, bottom to top: a module imports only from its own stage or lower ones.
STAGES = {
    "core": 0,
    "config": 1,
    "readers": 2,
    "shaping": 3,
    "state": 4,
    "engine": 5,
    "output": 6,
    "run": 7,
    "cli": 8,
    "api": 8,
}
TOP = 8  # the package itself (``pipeline/__init__.py``, ``__main__.py``): the front doors' stage
SIMULATOR = "simulator"  # beside the stages: imports only core; the front doors import it lazily
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 50


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def module_name(path: Path, root: Path = ROOT) -> str:
    """``pipeline/engine/client.py`` -> ``pipeline.engine.client``; a package's ``__init__``
    is the package."""
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def stage_of(module: str) -> int | str | None:
    """A module's stage: a number, ``SIMULATOR``, ``"?"`` for a package not in the table, or
    None for a module that is not ours."""
    parts = module.split(".")
    if parts[0] != "pipeline":
        return None
    if len(parts) == 1 or parts[1] in ("__init__", "__main__"):
        return TOP
    if parts[1] == SIMULATOR:
        return SIMULATOR
    return STAGES.get(parts[1], "?")


@dataclass(frozen=True)
class Import:
    line: int
    target: str
    at_top: bool  # executed when the module is imported (not in a function, not TYPE_CHECKING)


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(tree: ast.Module, module: str, *, is_package: bool) -> Iterator[Import]:
    """Every import in the module, wherever it is, with its target resolved (relative ones
    too); ``from pipeline import x`` counts as importing ``pipeline.x`` when x is a module."""

    def visit(node: ast.AST, at_top: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                yield from (Import(child.lineno, a.name, at_top) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                yield from _from_targets(child, module, is_package, at_top)
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                yield from visit(child, False)
            elif isinstance(child, ast.If) and _type_checking(child.test):
                for part in child.body:
                    yield from visit(ast.Module(body=[part], type_ignores=[]), False)
                for part in child.orelse:
                    yield from visit(ast.Module(body=[part], type_ignores=[]), at_top)
            else:
                yield from visit(child, at_top)

    yield from visit(tree, True)


def _from_targets(
    node: ast.ImportFrom, module: str, is_package: bool, at_top: bool
) -> Iterator[Import]:
    base = node.module or ""
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        anchor = package[: len(package) - (node.level - 1)]
        base = ".".join([*anchor, *([base] if base else [])])
    if base == "pipeline":  # ``from pipeline import cli``: the submodule, or the package's name
        for alias in node.names:
            named = alias.name in STAGES or alias.name == SIMULATOR
            yield Import(node.lineno, f"pipeline.{alias.name}" if named else base, at_top)
    else:
        yield Import(node.lineno, base, at_top)


def _import_problem(module: str, found: Import) -> str | None:
    mine, theirs = stage_of(module), stage_of(found.target)
    if theirs is None or theirs == "?":
        return None if theirs is None else f"imports {found.target}, in no stage of the table"
    if mine == SIMULATOR:
        ok = theirs in (SIMULATOR, STAGES["core"])
        return None if ok else f"the simulator imports only pipeline.core, not {found.target}"
    if theirs == SIMULATOR:
        if mine == TOP and not found.at_top:
            return None
        return (
            f"imports {found.target}: only the front doors (cli, api) import the simulator, "
            "inside the function that simulates"
        )
    if not isinstance(mine, int) or not isinstance(theirs, int):
        return None  # a module in no stage: reported once, by check_source
    if theirs > mine:
        return f"imports {found.target} (stage {theirs}) from stage {mine}: imports go downward"
    return None


def check_source(
    source: str, module: str, path: str, *, is_package: bool = False
) -> list[Violation]:
    """The violations in one module's source."""
    found: list[Violation] = []
    if stage_of(module) == "?":
        found.append(Violation(path, 1, f"{module} is in no stage of the table (see STAGES)"))
    lines = len(source.splitlines())
    if lines > MAX_MODULE_LINES:
        found.append(Violation(path, 1, f"{lines} lines, over {MAX_MODULE_LINES}"))
    tree = ast.parse(source, filename=path)
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                what = f"function {node.name} is {length} lines, over {MAX_FUNCTION_LINES}"
                found.append(Violation(path, node.lineno, what))
    for imported in imports(tree, module, is_package=is_package):
        problem = _import_problem(module, imported)
        if problem is not None:
            found.append(Violation(path, imported.line, problem))
    return found


def check_package(root: Path = ROOT) -> list[Violation]:
    found: list[Violation] = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root.parent).as_posix()
        source = path.read_text(encoding="utf-8")
        is_package = path.name == "__init__.py"
        found += check_source(source, module_name(path, root), relative, is_package=is_package)
    return found


# ---- the rules, on the package -------------------------------------------------------------


def test_every_module_is_small_and_imports_only_downward() -> None:
    violations = check_package()
    assert not violations, "\n".join(map(str, violations))


def test_every_package_has_a_stage() -> None:
    packages = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in ROOT.glob("*.py")} - {"__init__", "__main__"}
    assert packages | modules <= set(STAGES) | {SIMULATOR}


# ---- the checker, on sources written to break a rule -----------------------------------------


def _lines(n: int) -> str:
    return "".join(f"x{i} = {i}\n" for i in range(n))


def _function(body_lines: int) -> str:
    return "def f() -> None:\n" + "".join(f"    y{i} = {i}\n" for i in range(body_lines))


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("pipeline.core.x", _lines(401), "401 lines, over 400"),
        ("pipeline.core.x", _function(50), "function f is 51 lines"),
        ("pipeline.config.x", "from pipeline.engine.client import Endpoint\n", "stage 5"),
        ("pipeline.config.x", "import pipeline.output.report\n", "stage 6"),
        ("pipeline.config.x", "def f():\n    from pipeline.run import plan\n", "stage 7"),
        (
            "pipeline.engine.x",
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from pipeline.run.runner import R\n",
            "stage 7",
        ),
        ("pipeline.engine.x", "from ..output import report\n", "stage 6"),
        ("pipeline.engine.x", "from pipeline import __version__\n", "stage 8"),
        ("pipeline.core.x", "from pipeline import cli\n", "stage 8"),
        ("pipeline.simulator.x", "from pipeline.config.spec import Job\n", "only pipeline.core"),
        (
            "pipeline.run.x",
            "def f():\n    from pipeline.simulator import S\n",
            "only the front doors",
        ),
        ("pipeline.cli.x", "from pipeline.simulator.config import C\n", "only the front doors"),
        ("pipeline.newstage.x", "x = 1\n", "in no stage"),
    ],
)
def test_the_checker_finds_a_new_violation(module: str, source: str, expected: str) -> None:
    found = check_source(source, module, "pipeline/x.py")
    assert len(found) == 1, found
    assert expected in found[0].what


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("pipeline.core.x", _lines(400)),
        ("pipeline.core.x", _function(49)),
        ("pipeline.engine.x", "from pipeline.config.endpoint import Endpoint\nimport httpx\n"),
        ("pipeline.engine.x", "from . import pacer\nfrom .status import error_from_status\n"),
        ("pipeline.cli.x", "from pipeline.run.runner import run_job\n"),
        ("pipeline.cli.x", "def f():\n    from pipeline.simulator import S\n"),
        ("pipeline.api", "def f():\n    from pipeline.simulator import S\n"),
        (
            "pipeline.cli.x",
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from pipeline.simulator import S\n",
        ),
        ("pipeline.simulator.x", "from pipeline.core.limits import Limits\nimport starlette\n"),
        ("pipeline", "from pipeline.core.version import __version__\n"),
    ],
)
def test_the_checker_passes_what_keeps_the_rules(module: str, source: str) -> None:
    assert check_source(source, module, "pipeline/x.py") == []
