"""The matching parts on their own: globs, .gitignore stacks, the suffix lookup."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.config.paths import split_glob
from pipeline.readers.formats import BINARY, CODE, IMAGES, TEXT, lookup, suffix_of
from pipeline.readers.patterns import Glob, IgnoreRules


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("*.txt", "a.txt", True),
        ("*.txt", "sub/a.txt", False),
        ("**/*.txt", "a.txt", True),
        ("**/*.txt", "x/y/z/a.txt", True),
        ("**/*.txt", "x/y/z/a.md", False),
        ("a/**/b/*.py", "a/b/c.py", True),
        ("a/**/b/*.py", "a/x/y/b/c.py", True),
        ("a/**/b/*.py", "a/x/y/c.py", False),
        ("**", "anything/at/all", True),
        ("?.md", "a.md", True),
        ("?.md", "ab.md", False),
        ("[ab].md", "b.md", True),
        ("[!ab].md", "b.md", False),
    ],
)
def test_glob_matches(pattern: str, path: str, expected: bool) -> None:
    assert Glob(pattern.split("/")).matches(path.split("/")) is expected


@pytest.mark.parametrize(
    ("pattern", "folder", "expected"),
    [
        ("*.txt", "sub", False),
        ("*/*.txt", "sub", True),
        ("src/*/x.py", "src", True),
        ("src/*/x.py", "lib", False),
        ("**/x.py", "deep/er", True),
        ("a/b", "a/b", False),  # a/b itself matches; nothing below needs matching
    ],
)
def test_glob_prunes_folders_that_cannot_match(pattern: str, folder: str, expected: bool) -> None:
    assert Glob(pattern.split("/")).may_match_below(folder.split("/")) is expected


def test_split_glob_finds_the_fixed_part() -> None:
    assert split_glob(("/", "data", "2024", "*.pdf")) == (3, ("*.pdf",))
    assert split_glob(("/", "data", "q[12]", "x")) == (2, ("q[12]", "x"))
    assert split_glob(("/", "data", "x.pdf")) is None


NAMES = ["a", "b", "c.txt", "d.md"]


@given(st.lists(st.sampled_from(NAMES), min_size=1, max_size=6), st.sampled_from(NAMES))
def test_double_star_then_name_matches_that_name_at_any_depth(names: list[str], name: str) -> None:
    # That name last, at any depth: a match; any other name last: none, whatever is above.
    assert Glob(["**", name]).matches(names) is (names[-1] == name)
    assert Glob(["**", "**", name]).matches(names) is (names[-1] == name)
    assert Glob(["**", names[-1]]).matches(names)


def test_ignore_rules_deepest_file_decides() -> None:
    rules = IgnoreRules().with_file("", "*.log\n").with_file("keep/", "!*.log\n")
    assert rules.ignored("a.log", False)
    assert rules.ignored("other/a.log", False)
    assert not rules.ignored("keep/a.log", False)
    assert not rules.ignored("a.txt", False)


def test_ignore_rules_read_paths_relative_to_their_folder() -> None:
    rules = IgnoreRules().with_file("sub/", "/only-here.txt\nbuild/\n")
    assert rules.ignored("sub/only-here.txt", False)
    assert not rules.ignored("sub/deeper/only-here.txt", False)
    assert rules.ignored("sub/x/build", True)
    assert not rules.ignored("sub/x/build", False)  # "build/" names folders only


def test_every_table_uses_lower_case_dotted_suffixes() -> None:
    for table in (CODE, TEXT, IMAGES, BINARY):
        assert all(s.startswith(".") and s == s.lower() for s in table)
    assert not set(CODE) & set(TEXT)
    assert not (set(CODE) | set(TEXT) | set(IMAGES)) & BINARY


def test_suffix_of() -> None:
    assert suffix_of("a.TAR.GZ") == ".gz"
    assert suffix_of(".bashrc") == ""
    assert suffix_of("Makefile") == ""


def test_lookup_gives_pdfs_and_images_their_media_types() -> None:
    assert lookup("x.PDF").media_type == "application/pdf"
    assert lookup("x.jpeg").media_type == "image/jpeg"
    assert lookup("x.unknown").kind is None
    assert lookup("x.unknown", code=True).kind == "code"
