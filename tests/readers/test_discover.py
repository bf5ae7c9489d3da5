"""discover: walking, order, filters, .gitignore, globs, dedupe, and what is reported."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from pipeline.core.errors import BinaryFile, ConfigError, SecretFile, Skipped, TooLarge, Unreadable
from pipeline.readers import Candidate, InputOptions, discover
from tests.readers.support import found, options, problem_map, sources, write

needs_symlinks = pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges")


def test_walks_in_a_stable_sorted_order(tmp_path: Path) -> None:
    for name in ["b.txt", "a.txt", "sub/z.md", "sub/a.md", "c/x.txt", "A.txt"]:
        write(tmp_path, name)
    listed = sources(options(tmp_path))
    assert listed == ["A.txt", "a.txt", "b.txt", "c/x.txt", "sub/a.md", "sub/z.md"]
    assert sources(options(tmp_path)) == listed


def test_candidates_carry_the_real_path_and_a_posix_source(tmp_path: Path) -> None:
    path = write(tmp_path, "deep/er/note.txt")
    [candidate] = found(options(tmp_path))[0]
    assert candidate == Candidate(path, "deep/er/note.txt")


def test_a_file_argument_keeps_the_path_as_given(tmp_path: Path) -> None:
    path = write(tmp_path, "one.txt")
    assert sources(options(path)) == [str(path)]


def test_a_missing_path_is_a_config_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError, match=r"inputs\.paths: .*nope does not exist"):
        list(discover(options(missing)))


def test_a_glob_that_matches_nothing_is_a_config_error(tmp_path: Path) -> None:
    write(tmp_path, "a.txt")
    with pytest.raises(ConfigError, match=r"inputs\.paths: .*\*\.md matches no file"):
        list(discover(options(tmp_path / "*.md")))


def test_a_glob_under_a_missing_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"inputs\.paths"):
        list(discover(options(tmp_path / "nope" / "*.txt")))


def test_an_empty_folder_is_not_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert found(options(tmp_path / "empty")) == ([], [])


def test_glob_star_stays_in_one_folder(tmp_path: Path) -> None:
    for name in ["a.txt", "b.md", "sub/c.txt"]:
        write(tmp_path, name)
    assert sources(options(tmp_path / "*.txt")) == ["a.txt"]


def test_glob_double_star_spans_folders(tmp_path: Path) -> None:
    for name in ["a.txt", "b.md", "sub/c.txt", "sub/deeper/d.txt", "sub/e.md"]:
        write(tmp_path, name)
    assert sources(options(tmp_path / "**" / "*.txt")) == ["a.txt", "sub/c.txt", "sub/deeper/d.txt"]


def test_glob_matching_a_folder_brings_its_files(tmp_path: Path) -> None:
    for name in [
        "reports-2023/q1.txt",
        "reports-2024/q1.txt",
        "reports-2024/x/q2.txt",
        "misc/a.txt",
    ]:
        write(tmp_path, name)
    listed = sources(options(tmp_path / "reports-*"))
    assert listed == ["reports-2023/q1.txt", "reports-2024/q1.txt", "reports-2024/x/q2.txt"]


def test_glob_with_a_fixed_folder_after_the_pattern(tmp_path: Path) -> None:
    for name in ["a/docs/x.txt", "b/docs/y.txt", "b/src/z.txt"]:
        write(tmp_path, name)
    assert sources(options(tmp_path / "?" / "docs")) == ["a/docs/x.txt", "b/docs/y.txt"]


def test_glob_character_class(tmp_path: Path) -> None:
    for name in ["a1.txt", "a2.txt", "a3.txt"]:
        write(tmp_path, name)
    assert sources(options(tmp_path / "a[12].txt")) == ["a1.txt", "a2.txt"]


def test_include_patterns_are_relative_to_the_root(tmp_path: Path) -> None:
    for name in ["a.py", "pkg/b.py", "pkg/c.txt", "README.md"]:
        write(tmp_path, name)
    assert sources(options(tmp_path, include=("**/*.py",))) == ["a.py", "pkg/b.py"]
    assert sources(options(tmp_path, include=("/*.py", "*.md"))) == ["README.md", "a.py"]


def test_exclude_patterns_drop_files_and_folders(tmp_path: Path) -> None:
    for name in ["a.py", "tests/test_a.py", "pkg/tests/test_b.py", "pkg/b.py", "pkg/b_test.txt"]:
        write(tmp_path, name)
    listed = sources(options(tmp_path, exclude=("tests/", "*_test.txt")))
    assert listed == ["a.py", "pkg/b.py"]


def test_include_and_exclude_together(tmp_path: Path) -> None:
    for name in ["src/a.py", "src/gen/b.py", "docs/c.py"]:
        write(tmp_path, name)
    listed = sources(options(tmp_path, include=("src/",), exclude=("gen/",)))
    assert listed == ["src/a.py"]


def test_a_bad_pattern_is_a_config_error_naming_the_field(tmp_path: Path) -> None:
    write(tmp_path, "a.txt")
    with pytest.raises(ConfigError, match=r"inputs\.exclude"):
        list(discover(options(tmp_path, exclude=("!",))))


def test_gitignore_at_the_root(tmp_path: Path) -> None:
    write(tmp_path, ".gitignore", "build/\n*.log\n!keep.log\n")
    for name in ["app.py", "app.log", "keep.log", "build/out.js", "src/build/x.js", "src/y.log"]:
        write(tmp_path, name)
    assert sources(options(tmp_path)) == [".gitignore", "app.py", "keep.log"]


def test_nested_gitignore_applies_below_its_folder_only(tmp_path: Path) -> None:
    write(tmp_path, "sub/.gitignore", "*.txt\n/local.md\n")
    for name in ["a.txt", "local.md", "sub/b.txt", "sub/local.md", "sub/deeper/c.txt", "sub/d.md"]:
        write(tmp_path, name)
    listed = sources(options(tmp_path))
    assert listed == ["a.txt", "local.md", "sub/.gitignore", "sub/d.md"]


def test_a_deeper_gitignore_can_reinclude(tmp_path: Path) -> None:
    write(tmp_path, ".gitignore", "*.txt\n")
    write(tmp_path, "keep/.gitignore", "!*.txt\n")
    for name in ["a.txt", "keep/b.txt", "other/c.txt"]:
        write(tmp_path, name)
    assert "keep/b.txt" in sources(options(tmp_path))
    assert not {"a.txt", "other/c.txt"} & set(sources(options(tmp_path)))


def test_gitignore_can_be_turned_off(tmp_path: Path) -> None:
    write(tmp_path, ".gitignore", "*.log\n")
    write(tmp_path, "app.log")
    assert "app.log" not in sources(options(tmp_path))
    assert "app.log" in sources(options(tmp_path, gitignore=False))


def test_gitignore_with_a_bad_line_keeps_its_good_lines(tmp_path: Path) -> None:
    write(tmp_path, ".gitignore", "!\n*.log\n")
    write(tmp_path, "app.log")
    write(tmp_path, "app.txt")
    assert sources(options(tmp_path)) == [".gitignore", "app.txt"]


def test_gitignore_applies_under_a_glob_root(tmp_path: Path) -> None:
    write(tmp_path, ".gitignore", "build/\n")
    for name in ["src/a.py", "build/b.py"]:
        write(tmp_path, name)
    assert sources(options(tmp_path / "**" / "*.py")) == ["src/a.py"]


def test_version_control_folders_are_never_walked(tmp_path: Path) -> None:
    for name in [".git/config", ".git/objects/ab/cdef", ".hg/store", "a.txt"]:
        write(tmp_path, name)
    assert sources(options(tmp_path, gitignore=False)) == ["a.txt"]


def test_os_clutter_is_silently_left_out(tmp_path: Path) -> None:
    write(tmp_path, ".DS_Store", b"\x00\x00\x00\x01Bud1")
    write(tmp_path, "a.txt")
    assert found(options(tmp_path)) == ([Candidate(tmp_path / "a.txt", "a.txt")], [])


def test_the_same_file_is_listed_once(tmp_path: Path) -> None:
    path = write(tmp_path, "docs/a.txt")
    opts = options(tmp_path / "docs", path, tmp_path / "docs", tmp_path / "docs" / "*.txt")
    assert sources(opts) == ["a.txt"]


def test_a_hard_link_is_the_same_file(tmp_path: Path) -> None:
    path = write(tmp_path, "a.txt")
    os.link(path, tmp_path / "b.txt")
    assert sources(options(tmp_path)) == ["a.txt"]
    assert problem_map(options(tmp_path)) == {"b.txt": Skipped}


@pytest.mark.parametrize(
    "name",
    [
        ".env",
        ".env.production",
        ".env.example",
        "prod.env",
        "id_rsa",
        "id_ed25519",
        "server.pem",
        "tls.key",
        "cert.p12",
        "cert.pfx",
        "credentials",
        "credentials.json",
        "aws-credentials",
        ".netrc",
        "release.keystore",
        "secrets.yaml",
        "secrets.py",
        ".git-credentials",
    ],
)
def test_files_named_like_credentials_are_skipped_and_listed(tmp_path: Path, name: str) -> None:
    write(tmp_path, f"conf/{name}", "x = 1\n")
    candidates, problems = found(options(tmp_path))
    assert candidates == []
    [problem] = problems
    assert isinstance(problem, SecretFile)
    assert problem.source == f"conf/{name}"  # type: ignore[attr-defined]
    assert f"conf/{name}" in problem.message
    assert "inputs.skip_secrets" in problem.message


@pytest.mark.parametrize("name", ["id_rsa.pub", "environment.py", "keys.txt", "my_secret_santa.md"])
def test_names_that_only_resemble_credentials_are_read(tmp_path: Path, name: str) -> None:
    write(tmp_path, name)
    assert sources(options(tmp_path)) == [name]


def test_secret_files_are_read_when_the_job_allows(tmp_path: Path) -> None:
    write(tmp_path, ".env", "A=1\n")
    assert sources(options(tmp_path, skip_secrets=False)) == [".env"]


def test_a_secret_given_by_name_is_still_skipped(tmp_path: Path) -> None:
    path = write(tmp_path, "id_rsa")
    assert problem_map(options(path)) == {str(path): SecretFile}


@pytest.mark.parametrize("name", ["archive.zip", "lib.so", "mod.pyc", "font.woff2", "report.docx"])
def test_binary_suffixes_are_skipped_and_listed(tmp_path: Path, name: str) -> None:
    write(tmp_path, name, b"PK\x03\x04")
    candidates, [problem] = found(options(tmp_path))
    assert candidates == []
    assert isinstance(problem, BinaryFile)
    assert name in problem.message


def test_images_are_skipped_in_text_mode_with_a_hint(tmp_path: Path) -> None:
    write(tmp_path, "pic.png", b"\x89PNG\r\n\x1a\n")
    [problem] = found(options(tmp_path))[1]
    assert isinstance(problem, BinaryFile)
    assert 'inputs.mode = "attach"' in problem.message


def test_images_are_candidates_in_attach_mode(tmp_path: Path) -> None:
    write(tmp_path, "pic.png", b"\x89PNG\r\n\x1a\n")
    write(tmp_path, "photo.JPG", b"\xff\xd8\xff")
    assert sources(options(tmp_path, mode="attach")) == ["photo.JPG", "pic.png"]


def test_files_over_the_size_limit_are_listed_as_too_large(tmp_path: Path) -> None:
    write(tmp_path, "big.txt", "x" * 101)
    write(tmp_path, "ok.txt", "x" * 100)
    candidates, [problem] = found(options(tmp_path, max_file_bytes=100))
    assert [c.source for c in candidates] == ["ok.txt"]
    assert isinstance(problem, TooLarge)
    assert "big.txt" in problem.message
    assert "inputs.max_file_bytes" in problem.message


def test_a_single_50_mb_line_is_too_large_without_being_read(tmp_path: Path) -> None:
    path = tmp_path / "one-line.txt"
    with path.open("wb") as file:
        file.truncate(50 * 1024 * 1024)  # sparse: the size is what matters
    assert problem_map(options(tmp_path)) == {"one-line.txt": TooLarge}


def test_names_with_spaces_newlines_and_non_ascii(tmp_path: Path) -> None:
    names = ["with space.txt", "new\nline.txt", "café, résumé.md", "日本語.txt"]
    for name in names:
        write(tmp_path, name)
    assert sorted(sources(options(tmp_path))) == sorted(names)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_listed_as_skipped_not_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.txt")
    candidates, [problem] = found(options(tmp_path))
    assert candidates == []
    assert type(problem) is Skipped
    assert "not a regular file" in problem.message


@pytest.mark.unprivileged
def test_an_unlistable_folder_is_reported_and_the_walk_goes_on(tmp_path: Path) -> None:
    write(tmp_path, "locked/secret.txt")
    write(tmp_path, "open/a.txt")
    (tmp_path / "locked").chmod(0)
    try:
        candidates, [problem] = found(options(tmp_path))
    finally:
        (tmp_path / "locked").chmod(0o755)
    assert [c.source for c in candidates] == ["open/a.txt"]
    assert isinstance(problem, Unreadable)
    assert problem.source == "locked/"  # type: ignore[attr-defined]
    assert "cannot be listed" in problem.message


def test_a_file_where_a_folder_was_expected_in_a_glob_root(tmp_path: Path) -> None:
    write(tmp_path, "a.txt")
    with pytest.raises(ConfigError):
        list(discover(options(tmp_path / "a.txt" / "*")))


# ---- symbolic links ----------------------------------------------------------------------


@needs_symlinks
def test_a_link_out_of_the_root_is_skipped_and_listed(tmp_path: Path) -> None:
    outside = write(tmp_path, "outside/private.txt")
    write(tmp_path, "root/a.txt")
    (tmp_path / "root" / "link.txt").symlink_to(outside)
    (tmp_path / "root" / "linkdir").symlink_to(outside.parent, target_is_directory=True)
    candidates, problems = found(options(tmp_path / "root"))
    assert [c.source for c in candidates] == ["a.txt"]
    assert {p.source: type(p) for p in problems} == {  # type: ignore[attr-defined]
        "link.txt": Skipped,
        "linkdir": Skipped,
    }
    assert all("inputs.follow_symlinks" in p.message for p in problems)


@needs_symlinks
def test_links_out_of_the_root_are_followed_when_asked(tmp_path: Path) -> None:
    outside = write(tmp_path, "outside/private.txt")
    write(tmp_path, "root/a.txt")
    (tmp_path / "root" / "link.txt").symlink_to(outside)
    (tmp_path / "root" / "linkdir").symlink_to(outside.parent, target_is_directory=True)
    # the file is reached twice (link.txt, linkdir/private.txt) and listed once
    assert sources(options(tmp_path / "root", follow_symlinks=True)) == ["a.txt", "link.txt"]


@needs_symlinks
def test_a_link_to_a_file_inside_the_root_is_read_once(tmp_path: Path) -> None:
    write(tmp_path, "docs/real.txt")
    (tmp_path / "alias.txt").symlink_to(tmp_path / "docs" / "real.txt")
    candidates, problems = found(options(tmp_path))
    assert candidates == [Candidate(tmp_path / "alias.txt", "alias.txt")]
    # the file's other name is a row, not silence (every input appears once)
    assert [(p.source, type(p)) for p in problems] == [("docs/real.txt", Skipped)]  # type: ignore[attr-defined]


@needs_symlinks
def test_a_link_to_a_folder_inside_the_root_is_not_walked_twice(tmp_path: Path) -> None:
    write(tmp_path, "docs/real.txt")
    (tmp_path / "also-docs").symlink_to(tmp_path / "docs", target_is_directory=True)
    assert found(options(tmp_path)) == (
        [Candidate(tmp_path / "docs/real.txt", "docs/real.txt")],
        [],
    )


@needs_symlinks
def test_a_symlink_loop_ends_with_a_row_when_following(tmp_path: Path) -> None:
    write(tmp_path, "a/b.txt")
    (tmp_path / "a" / "back").symlink_to(tmp_path, target_is_directory=True)
    candidates, problems = found(options(tmp_path, follow_symlinks=True))
    assert [c.source for c in candidates] == ["a/b.txt"]
    assert [(p.source, type(p)) for p in problems] == [("a/back", Skipped)]  # type: ignore[attr-defined]
    assert "loop" in problems[0].message


@needs_symlinks
def test_a_symlink_loop_without_following_is_harmless(tmp_path: Path) -> None:
    write(tmp_path, "a/b.txt")
    (tmp_path / "a" / "back").symlink_to(tmp_path, target_is_directory=True)
    assert found(options(tmp_path)) == ([Candidate(tmp_path / "a/b.txt", "a/b.txt")], [])


@needs_symlinks
@pytest.mark.parametrize("follow", [False, True])
def test_broken_and_self_referencing_links_are_skipped(tmp_path: Path, follow: bool) -> None:
    (tmp_path / "dangling.txt").symlink_to(tmp_path / "gone.txt")
    (tmp_path / "self.txt").symlink_to(tmp_path / "self.txt")
    candidates, problems = found(options(tmp_path, follow_symlinks=follow))
    assert candidates == []
    assert {p.source: type(p) for p in problems} == {  # type: ignore[attr-defined]
        "dangling.txt": Skipped,
        "self.txt": Skipped,
    }
    assert "broken symbolic link" in problems[0].message


@needs_symlinks
def test_a_root_given_as_a_link_is_followed(tmp_path: Path) -> None:
    write(tmp_path, "real/a.txt")
    (tmp_path / "alias").symlink_to(tmp_path / "real", target_is_directory=True)
    assert sources(options(tmp_path / "alias")) == ["a.txt"]


@needs_symlinks
def test_gitignored_links_are_not_reported(tmp_path: Path) -> None:
    write(tmp_path, ".gitignore", "node_modules\n")
    (tmp_path / "node_modules").symlink_to("/", target_is_directory=True)
    assert found(options(tmp_path)) == ([Candidate(tmp_path / ".gitignore", ".gitignore")], [])


def test_options_validate_their_fields() -> None:
    with pytest.raises(ConfigError, match=r"inputs\.paths"):
        InputOptions(paths=())
    with pytest.raises(ConfigError, match=r"inputs\.max_file_bytes"):
        InputOptions(paths=(Path("x"),), max_file_bytes=0)
    with pytest.raises(ConfigError, match=r"inputs\.mode"):
        InputOptions(paths=(Path("x"),), mode="vision")  # type: ignore[arg-type]


def test_a_folder_too_deep_to_list_is_reported_and_the_walk_goes_on(tmp_path: Path) -> None:
    """A path over the system's limit (PATH_MAX) cannot be listed, even by root."""
    write(tmp_path, "a.txt")
    name = "d" * 200
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        for _ in range(25):  # 25 x 201 characters: past 4096
            os.mkdir(name, dir_fd=fd)
            inner = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
    finally:
        os.close(fd)
    candidates, problems = found(options(tmp_path))
    assert [c.source for c in candidates] == ["a.txt"]
    [problem] = problems
    assert isinstance(problem, Unreadable)
    assert "cannot be listed" in problem.message
    assert problem.source.startswith(f"{name}/{name}/")  # type: ignore[attr-defined]


def test_missing_paths_are_reported_before_anything_is_listed(tmp_path: Path) -> None:
    write(tmp_path, "a.txt")
    found_first = discover(options(tmp_path, tmp_path / "typo"))
    with pytest.raises(ConfigError, match="typo does not exist"):
        next(found_first)


def test_a_name_with_brackets_that_exists_is_not_a_glob(tmp_path: Path) -> None:
    path = write(tmp_path, "report [final].txt")
    write(tmp_path, "report f.txt")
    assert sources(options(path)) == [str(path)]
    assert sources(options(tmp_path / "report [f].txt")) == ["report f.txt"]


@needs_symlinks
def test_a_followed_link_to_an_ignored_folder_name_is_not_walked(tmp_path: Path) -> None:
    write(tmp_path, "root/.gitignore", "node_modules/\n")
    write(tmp_path, "elsewhere/pkg/index.js")
    (tmp_path / "root" / "node_modules").symlink_to(
        tmp_path / "elsewhere", target_is_directory=True
    )
    assert sources(options(tmp_path / "root", follow_symlinks=True)) == [".gitignore"]


@needs_symlinks
def test_a_link_to_a_file_listed_already_is_a_row_naming_it(tmp_path: Path) -> None:
    write(tmp_path, "a-real.txt")
    (tmp_path / "b-alias.txt").symlink_to(tmp_path / "a-real.txt")
    candidates, problems = found(options(tmp_path))
    assert [c.source for c in candidates] == ["a-real.txt"]
    assert [(p.source, type(p)) for p in problems] == [("b-alias.txt", Skipped)]  # type: ignore[attr-defined]
    assert "the same file as a-real.txt" in problems[0].message
