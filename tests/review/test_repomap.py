"""The repository map: Python outlines from ast, other languages by name, the token budget."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from pipeline.config.load import load_job
from pipeline.config.spec import Job
from pipeline.readers import InputOptions
from pipeline.shaping.prompts import cached_prefix_tokens, request_params
from pipeline.shaping.repomap import SourceFile, build_map, outline, repo_map
from pipeline.shaping.tokens import estimate_text

SAMPLE_REPO = Path(__file__).resolve().parents[2] / "sample_data" / "repo"

PY = """
import os

class Store(Base, metaclass=Meta):
    path: Path
    size: int = 0

    def add(self, name: str, quantity: int) -> Item:
        return x

    async def save(self) -> None: ...

async def main(argv: list[str] = ()) -> int:
    def inner(): pass
    return 0

VALUE = 3
"""


def test_python_files_get_their_definitions_with_signatures() -> None:
    entry = outline(SourceFile("store.py", PY, "python"))
    heads = [d.head for d in entry.definitions]
    assert heads == [
        "class Store(Base, metaclass=Meta)",
        "async def main(argv: list[str]=()) -> int",
    ]
    assert entry.definitions[0].members == (
        "path: Path",
        "size: int = 0",
        "def add(self, name: str, quantity: int) -> Item",
        "async def save(self) -> None",
    )
    assert entry.lines == PY.count("\n")


def test_other_languages_and_broken_python_are_listed_by_name() -> None:
    assert outline(SourceFile("app.js", "function f(a) {}\n", "javascript")).definitions == ()
    broken = outline(SourceFile("bad.py", "def (:\n", "python"))
    assert not broken.parses
    text = build_map([SourceFile("bad.py", "def (:\n", "python")], 1000).text
    assert "bad.py (1 lines, does not parse)" in text


def test_the_sample_repository_map_shows_what_another_file_defines() -> None:
    found = repo_map(InputOptions(paths=(SAMPLE_REPO,), code=True), 2_000)
    assert "inventory/store.py (24 lines)" in found.text
    assert "    def add(self, name: str, quantity: int) -> Item" in found.text
    assert ".env" not in found.text  # secrets are not in the map
    assert "id_rsa" not in found.text
    assert "build/" not in found.text  # neither is build output
    assert found.detail == "signatures and class members"
    assert found.files == found.listed == 8


def _files(count: int) -> list[SourceFile]:
    return [SourceFile(f"m{i:03d}.py", PY, "python") for i in range(count)]


def test_a_tighter_budget_gives_less_detail_for_every_file_alike() -> None:
    files = _files(20)
    details = [build_map(files, budget).detail for budget in (100_000, 2_000, 1_000, 400)]
    assert details == [
        "signatures and class members",
        "signatures, members by name",
        "definitions by name",
        "file names",
    ]
    cut = build_map(files, 120)
    assert 0 < cut.listed < 20
    assert cut.text.endswith(
        f"... and {20 - cut.listed} more files (not listed: the map's budget)\n"
    )


@given(st.integers(min_value=60, max_value=5_000), st.permutations(range(12)))
def test_the_map_fits_its_budget_and_is_the_same_whatever_the_order(
    budget: int, order: list[int]
) -> None:
    files = _files(12)
    first = build_map(files, budget)
    again = build_map([files[i] for i in order], budget)
    assert first == again
    assert first.tokens == estimate_text(first.text) <= budget


JOBS = Path(__file__).resolve().parents[2] / "jobs"


def _job(tmp_path: Path, *overrides: str) -> Job:
    return load_job(
        JOBS / "repo_review.toml",
        output=str(tmp_path / "review.parquet"),
        overrides=list(overrides),
    )


def test_every_request_carries_the_same_map_marked_for_caching(tmp_path: Path) -> None:
    job = _job(tmp_path, "review.map_tokens=3000", 'prompt.system="' + "Be careful. " * 400 + '"')
    first, second = (request_params(job, f"Review {name}") for name in ("a.py", "b.py"))
    assert first["system"] == second["system"]
    system, repo = first["system"]
    assert "cache_control" not in system
    assert repo["cache_control"] == {"type": "ephemeral"}
    assert "def add(self, name: str, quantity: int) -> Item" in repo["text"]
    assert cached_prefix_tokens(job) >= estimate_text(repo["text"])


def test_without_a_map_the_system_prompt_is_as_before(tmp_path: Path) -> None:
    job = _job(tmp_path, "review.map_tokens=0")
    assert isinstance(request_params(job, "Review a.py")["system"], str)


def test_the_map_reserves_its_budget_in_the_chunk_budget(tmp_path: Path) -> None:
    small = _job(tmp_path, "review.map_tokens=0").chunk_budget(estimate_text)
    large = _job(tmp_path, "review.map_tokens=20000").chunk_budget(estimate_text)
    assert small - large == 20_000
