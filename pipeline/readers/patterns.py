"""Which files a walk keeps: ``.gitignore`` files (nested ones too, as git reads them), the job's
include/exclude patterns, and the rest of a glob given in ``inputs.paths`` (where a glob
starts: ``pipeline.config.paths``).

Patterns are compiled once: the job's when discovery starts, each ``.gitignore`` when the walk
enters its folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase

from pathspec import GitIgnoreSpec

from pipeline.core.errors import ConfigError


def compile_patterns(lines: Sequence[str], field: str) -> GitIgnoreSpec | None:
    """gitignore-style patterns, or None for none; a bad pattern is a ConfigError on ``field``."""
    if not lines:
        return None
    try:
        return GitIgnoreSpec.from_lines(lines)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{field}: {exc}; patterns are written as in .gitignore") from exc


class IgnoreRules:
    """The ``.gitignore`` files in force in one folder, outermost first. Each is matched against
    the path relative to its own folder; the deepest file that has a say decides, as in git."""

    __slots__ = ("_specs",)

    def __init__(self, specs: tuple[tuple[str, GitIgnoreSpec], ...] = ()) -> None:
        self._specs = specs  # (the folder as a prefix of root-relative paths, its spec)

    def with_file(self, prefix: str, text: str) -> IgnoreRules:
        """These rules plus a .gitignore in the folder ``prefix`` ('' or 'a/b/')."""
        lines = text.splitlines()
        try:
            spec = GitIgnoreSpec.from_lines(lines)
        except (ValueError, TypeError):  # git skips a line it cannot parse; so do we
            spec = GitIgnoreSpec.from_lines(line for line in lines if _parses(line))
        return IgnoreRules((*self._specs, (prefix, spec)))

    def ignored(self, relative: str, is_dir: bool) -> bool:
        if not self._specs:
            return False
        path = relative + "/" if is_dir else relative
        for prefix, spec in reversed(self._specs):
            if not path.startswith(prefix):
                continue
            verdict = spec.check_file(path[len(prefix) :]).include
            if verdict is not None:
                return verdict
        return False


class Filters:
    """The job's ``inputs.include`` and ``inputs.exclude``, relative to each input root."""

    def __init__(self, include: Sequence[str], exclude: Sequence[str]) -> None:
        self._include = compile_patterns(include, "inputs.include")
        self._exclude = compile_patterns(exclude, "inputs.exclude")

    def prunes(self, relative_dir: str) -> bool:
        return self._exclude is not None and self._exclude.match_file(relative_dir + "/")

    def keeps(self, relative: str) -> bool:
        if self._include is not None and not self._include.match_file(relative):
            return False
        return self._exclude is None or not self._exclude.match_file(relative)


def _parses(line: str) -> bool:
    try:
        GitIgnoreSpec.from_lines([line])
    except (ValueError, TypeError):
        return False
    return True


class Glob:
    """The pattern part of a glob, matched part by part below its root. ``**`` spans any number
    of folders; a folder that matches brings everything in it, as a shell glob would."""

    __slots__ = ("_parts",)

    def __init__(self, parts: Sequence[str]) -> None:
        # "a/**/**/b" means "a/**/b"
        squeezed: list[str] = []
        for part in parts:
            if not (part == "**" and squeezed and squeezed[-1] == "**"):
                squeezed.append(part)
        self._parts = tuple(squeezed)

    def matches(self, names: Sequence[str]) -> bool:
        return _match(tuple(names), self._parts)

    def may_match_below(self, names: Sequence[str]) -> bool:
        """Could a path that continues this folder's path match?"""
        return _extends(tuple(names), self._parts)


def _match(names: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    if not parts:
        return not names
    head = parts[0]
    if head == "**":
        return any(_match(names[i:], parts[1:]) for i in range(len(names) + 1))
    return bool(names) and fnmatchcase(names[0], head) and _match(names[1:], parts[1:])


def _extends(names: tuple[str, ...], parts: tuple[str, ...]) -> bool:
    if not parts:
        return False
    if not names or parts[0] == "**":
        return True
    return fnmatchcase(names[0], parts[0]) and _extends(names[1:], parts[1:])
