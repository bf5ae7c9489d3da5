"""The read-only tools: what they answer, and everything they refuse as a tool error."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from pipeline.readers import InputOptions
from pipeline.readers.tools import SCHEMAS, ToolBox
from tests.readers.support import write

needs_symlinks = pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges")

STORE = "class Store:\n    def add(self, name: str, quantity: int) -> None:\n        pass\n"
CLI = "from pkg.store import Store\n\nStore().add('x', 1, price_cents=3)\nadder = 2\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    write(root, "pkg/store.py", STORE)
    write(root, "pkg/cli.py", CLI)
    write(root, "pkg/sub/deep.py", "x = 1\n")
    write(root, "README.md", "# Repo\n")
    write(root, ".env", "TOKEN=abc\n")
    write(root, "notes/keys.txt", "-----BEGIN RSA PRIVATE KEY-----\nabc\n")
    write(root, ".gitignore", "ignored.py\n")
    write(root, "ignored.py", "hidden = True\n")
    write(root, "node_modules/lib/index.js", "vendored()\n")
    write(tmp_path, "outside.py", "secret_outside = 1\n")
    return root


def _tools(root: Path, chars: int = 8_000, **kwargs: object) -> ToolBox:
    return ToolBox(InputOptions(paths=(root,), code=True), output_chars=chars, **kwargs)  # type: ignore[arg-type]


def test_read_file_gives_numbered_lines_of_a_range(repo: Path) -> None:
    result = _tools(repo).call(
        "read_file", {"path": "pkg/store.py", "start_line": 2, "end_line": 2}
    )
    assert not result.is_error
    assert result.text == (
        "pkg/store.py, lines 2-2 of 3:\n2|     def add(self, name: str, quantity: int) -> None:\n"
    )


def test_read_file_whole_and_with_odd_but_harmless_paths(repo: Path) -> None:
    tools = _tools(repo)
    whole = tools.call("read_file", {"path": "./pkg//store.py"})
    assert whole.text.startswith("pkg/store.py, lines 1-3 of 3:")
    assert tools.call("read_file", {"path": "/pkg/store.py", "end_line": 99}).text == whole.text


def test_search_finds_a_symbol_across_files(repo: Path) -> None:
    tools = _tools(repo)
    result = tools.call("search", {"query": "add", "whole_word": True})
    assert result.text.splitlines() == [
        "2 lines match 'add':",
        "pkg/cli.py:3: Store().add('x', 1, price_cents=3)",
        "pkg/store.py:2: def add(self, name: str, quantity: int) -> None:",
    ]
    loose = tools.call("search", {"query": "add"}).text
    assert "pkg/cli.py:4: adder = 2" in loose  # a string, not only a symbol
    under = tools.call("search", {"query": "x", "folder": "pkg/sub"}).text
    assert under.splitlines()[1:] == ["pkg/sub/deep.py:1: x = 1"]


def test_search_never_reads_what_the_rules_leave_out(repo: Path) -> None:
    tools = _tools(repo)
    for query in ("TOKEN", "PRIVATE KEY", "hidden", "vendored", "secret_outside"):
        result = tools.call("search", {"query": query})
        assert result.text.startswith("no line matches"), query


def test_list_folder_shows_files_and_folders(repo: Path) -> None:
    tools = _tools(repo)
    root = tools.call("list_folder", {}).text
    # not .env, not ignored.py, not node_modules; keys.txt is listed (its name is not a
    # secret's) but cannot be opened (its text is)
    assert root == "(root):\nnotes/ (1 files)\npkg/ (3 files)\n.gitignore\nREADME.md\n"
    assert tools.call("list_folder", {"path": "pkg"}).text == (
        "pkg:\nsub/ (1 files)\ncli.py\nstore.py\n"
    )


@pytest.mark.parametrize(
    ("name", "arguments", "message"),
    [
        ("read_file", {"path": ".env"}, ".env is not a file of the repository under review"),
        ("read_file", {"path": "../outside.py"}, "../outside.py is not a file of the repository"),
        ("read_file", {"path": str(Path("/etc/passwd"))}, "etc/passwd is not a file"),
        ("read_file", {"path": "ignored.py"}, "ignored.py is not a file"),
        ("read_file", {"path": "node_modules/lib/index.js"}, "is not a file of the repository"),
        ("read_file", {"path": "notes/keys.txt"}, "looks like credentials"),
        ("read_file", {"path": "pkg/store.py", "start_line": 9}, "has 3 lines; start_line 9"),
        ("read_file", {"path": "pkg/store.py", "start_line": "2"}, "start_line must be a whole"),
        ("read_file", {"path": 3}, "path must be a string"),
        ("read_file", ["pkg/store.py"], "the tool's input must be a JSON object"),
        ("search", {"query": ""}, "query must be a non-empty string"),
        ("list_folder", {"path": "nope"}, "nope is not a folder"),
        ("list_folder", {"path": "pkg/cli.py"}, "pkg/cli.py is a file, not a folder"),
        ("write_file", {"path": "x"}, "no tool named 'write_file'"),
    ],
)
def test_refusals_are_tool_errors_the_model_reads(
    repo: Path, name: str, arguments: object, message: str
) -> None:
    result = _tools(repo).call(name, arguments)
    assert result.is_error
    assert result.text.startswith(f"{name}: ")
    assert message in result.text
    assert "abc" not in result.text  # nothing of a secret's text


@needs_symlinks
def test_a_symbolic_link_out_of_the_root_is_not_followed(repo: Path) -> None:
    os.symlink(repo.parent / "outside.py", repo / "pkg" / "link.py")
    os.symlink(repo.parent, repo / "up")
    tools = _tools(repo)
    assert tools.call("read_file", {"path": "pkg/link.py"}).is_error
    assert tools.call("read_file", {"path": "up/outside.py"}).is_error
    assert tools.call("search", {"query": "secret_outside"}).text.startswith("no line")


def test_output_is_capped_and_says_so(repo: Path) -> None:
    write(repo, "big.py", "".join(f"line_{n} = {n}\n" for n in range(2_000)))
    result = _tools(repo, chars=500).call("read_file", {"path": "big.py"})
    assert len(result.text) <= 500
    assert result.text.endswith("characters: ask for less)\n")
    many = _tools(repo).call("search", {"query": "line_"}).text
    assert many.startswith("2,000 lines match")
    assert "... and 1,950 more lines" in many


def test_only_the_enabled_tools_are_offered_and_answer(repo: Path) -> None:
    tools = _tools(repo, enabled=("search",))
    assert tools.schemas == [SCHEMAS["search"]]
    assert tools.call("read_file", {"path": "pkg/store.py"}).is_error
    for schema in SCHEMAS.values():
        assert schema["input_schema"]["type"] == "object"
