"""``discover``: from ``inputs.paths`` to the files to read, in a stable order.

Each path is a file (read as named), a folder (walked) or a glob (its fixed part walked, the
rest matched). A walk skips ``.git``, honours ``.gitignore`` files at every level, and applies
include/exclude, and in code mode the default excludes (``generated``: caches, virtualenvs,
build output, lock files, counted in one INFO line); what those leave out is not listed.
What is left out for a reason the user must see (credentials, binary, too large, an
unlistable folder, a symbolic link not followed) is yielded as an ``InputProblem`` with a
``source`` attribute, for the runner to make a row of.

Symbolic links: without ``inputs.follow_symlinks``, a link to a file inside the input root is
read; a link to a folder inside it is not walked (its files are reached where they really
are); a link out of the root is skipped with a row. With it, links are followed everywhere and
a link back to a folder being walked is reported as a loop. A file is read once: another
name for a file listed already (a link to it, a hard link) is a ``skipped`` row naming it; the
same name reached again (inputs that overlap, a folder through a link) is left out.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.config.paths import glob_start
from pipeline.core.errors import ConfigError, InputProblem, Skipped, Unreadable
from pipeline.core.sensitive import secret_by_name
from pipeline.readers.formats import BINARY, IMAGES, JUNK_NAMES, TABLES, suffix_of
from pipeline.readers.generated import Generated
from pipeline.readers.options import Candidate, InputOptions
from pipeline.readers.patterns import Filters, Glob, IgnoreRules
from pipeline.readers.read import (
    binary_file,
    image_in_text_mode,
    secret_file,
    too_large,
)

log = logging.getLogger("pipeline.readers")

SKIPPED_DIRS = frozenset((".git", ".hg", ".svn"))

Found = Candidate | InputProblem
# Every file listed, across all inputs, by (device, inode) as one integer: "path\0source" (no
# path holds a NUL). 230 bytes a file, not the 610 of a (Path, str): 23 MB, not 61, at 100K.
Seen = dict[int, str]


def printable(name: str) -> str:
    """A path as valid UTF-8: bytes a file name holds that are not UTF-8 become ``\\xe9``."""
    if name.isascii():
        return name
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return name


def tagged(problem: InputProblem, source: str) -> InputProblem:
    """The problem, carrying the source it is about (the runner's row key)."""
    problem.source = source
    return problem


@dataclass
class _Walk:
    """One input path being walked: the state shared by its folders."""

    options: InputOptions
    filters: Filters
    seen: Seen
    root_real: str
    glob: Glob | None = None
    generated: Generated | None = None  # code mode's default excludes (readers.generated)
    matched: int = 0  # files the path matched, duplicates included
    walked: set[tuple[int, int]] = field(default_factory=set)  # folders, when following links


@dataclass(frozen=True)
class _Folder:
    path: str
    prefix: str  # relative to the root: '' or 'a/b/'
    rules: IgnoreRules
    globbed: bool  # the glob matched this folder or one above it: everything below counts
    ancestors: frozenset[tuple[int, int]] = frozenset()


@dataclass(frozen=True)
class _Input:
    """One of inputs.paths, checked: a file or folder (``info``), or a glob (``glob``)."""

    given: Path
    info: os.stat_result | None = None
    root: Path | None = None
    glob: Glob | None = None


def discover(options: InputOptions, *, quiet: bool = False) -> Iterator[Candidate | InputProblem]:
    """Walk the inputs in a stable sorted order (in each folder its files by name, then its
    folders). Yields candidates to read and problems (not raised) for files left out that the
    user must see. Never yields one file to read twice (a link and its target: once; the
    second name is a ``skipped`` row that names the first).

    Raises ``ConfigError`` for a bad include/exclude pattern or an input path that does not
    exist, before yielding anything; and for a glob that matched no file, once walked.
    ``quiet``: no INFO line for code mode's default excludes (a second walk of the same
    inputs: the repository map's, the review tools')."""
    filters = Filters(options.include, options.exclude)
    inputs = [_check(given) for given in options.paths]
    seen: Seen = {}
    generated = Generated(options.include) if options.code else None
    for item in inputs:
        if item.info is not None and not stat.S_ISDIR(item.info.st_mode):
            real = os.path.basename(os.path.realpath(item.given))
            found = _file(item.given, printable(str(item.given)), item.info, options, seen, real)
            if found is not None:
                yield found
        elif item.glob is None:
            walk = _Walk(options, filters, seen, os.path.realpath(item.given), None, generated)
            yield from _walk(walk, str(item.given))
        else:
            assert item.root is not None
            root_real = os.path.realpath(item.root)
            walk = _Walk(options, filters, seen, root_real, item.glob, generated)
            yield from _walk(walk, str(item.root))
            if not walk.matched:
                raise ConfigError(
                    f"inputs.paths: {item.given} matches no file (after inputs.include, "
                    "inputs.exclude, .gitignore and code mode's default excludes); check the "
                    "pattern"
                )
    if generated is not None and not quiet and (line := generated.summary()) is not None:
        log.info(
            line,
            extra={"event": "left_out", "folders": generated.folders, "files": generated.files},
        )


def _check(given: Path) -> _Input:
    """Does the path exist (a name with [ or * that exists is taken as it is), or the folder
    a glob starts from?"""
    if "\0" in str(given):
        raise ConfigError(
            f"inputs.paths: {str(given)!r} holds a NUL character, which no path can; check it"
        )
    if (start := glob_start(given)) is not None:
        root, pattern = start
        if not root.is_dir():
            raise ConfigError(
                f"inputs.paths: {given} matches no file: {root} is not a folder; check the path "
                "(relative paths are taken from the job file's folder)"
            )
        return _Input(given, root=root, glob=Glob(pattern))
    try:
        return _Input(given, info=os.stat(given))
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR) and not os.path.islink(given):
            reason = "does not exist"
        else:
            reason = f"cannot be used ({exc.strerror or exc})"
        raise ConfigError(
            f"inputs.paths: {given} {reason}; check the path (relative paths are taken from "
            "the job file's folder)"
        ) from exc


def _file(
    path: Path,
    source: str,
    info: os.stat_result,
    options: InputOptions,
    seen: Seen,
    real_name: str | None = None,
) -> Found | None:
    """A file that passed the filters: a candidate, a problem, or None if already listed.

    ``real_name``: the name of the file a link leads to, checked against the secret rules as
    the link's own name is. Only candidates count as listed: a link that is left out does not
    hide the file it leads to, which gets its own row."""
    name = path.name
    suffix = suffix_of(name)
    table = options.table is not None and suffix in TABLES  # any size; its rows are capped
    problem: InputProblem | None = None
    secret = secret_by_name(name) or (secret_by_name(real_name) if real_name else None)
    if options.skip_secrets and secret:
        problem = secret_file(source, secret)
    elif suffix in BINARY and not table:
        problem = binary_file(source, f"is a {suffix} file, not text")
    elif options.mode != "attach" and suffix in IMAGES:
        problem = image_in_text_mode(source)
    elif not stat.S_ISREG(info.st_mode):
        problem = Skipped(f"{source} is not a regular file (a pipe, socket or device)")
    elif info.st_size > options.max_file_bytes and not table:
        problem = too_large(source, info.st_size, options.max_file_bytes)
    if problem is not None:
        return tagged(problem, source)
    identity = (info.st_dev, info.st_ino)
    key = info.st_dev << 64 | info.st_ino
    if (first := seen.get(key)) is not None:
        first_path, first_source = first.split("\0")
        return _again(path, source, Path(first_path), first_source)
    seen[key] = f"{path}\0{source}"
    return Candidate(path, source, identity)


def _again(path: Path, source: str, first_path: Path, first_source: str) -> Found | None:
    """A file listed already: nothing if it is the same name again (inputs that overlap), a
    row if it is another name for it (a link, a hard link), which is not read twice."""
    if _named(path) == _named(first_path):
        return None
    return tagged(
        Skipped(
            f"{source} is the same file as {first_source} (a link or another name for it), "
            "which is read; not read twice"
        ),
        source,
    )


def _named(path: Path) -> str:
    """Where a name is: its folder with links resolved, and the name itself (not resolved)."""
    return os.path.join(os.path.realpath(path.parent), path.name)


def _walk(walk: _Walk, root: str) -> Iterator[Found]:
    options = walk.options
    top = _Folder(root, "", IgnoreRules(), globbed=walk.glob is None)
    if options.follow_symlinks:
        top = _with_identity(walk, top, root)
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder.path) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as exc:
            source = folder.prefix or f"{root}/"
            yield tagged(
                Unreadable(
                    f"{source} cannot be listed ({exc.strerror or exc}), so its files were not "
                    "read; check its permissions, or leave it out with inputs.exclude"
                ),
                source,
            )
            continue
        rules = folder.rules
        if options.gitignore:
            rules = _gitignore(entries, folder, rules)
        below: list[_Folder] = []
        for entry in entries:
            if entry.name in SKIPPED_DIRS or entry.name in JUNK_NAMES:
                continue
            found = _entry(walk, folder, rules, entry, below)
            if found is not None:
                yield found
        stack.extend(reversed(below))


def _gitignore(entries: list[os.DirEntry[str]], folder: _Folder, rules: IgnoreRules) -> IgnoreRules:
    for entry in entries:
        if entry.name == ".gitignore" and entry.is_file():
            try:
                with open(entry.path, encoding="utf-8", errors="replace") as file:
                    return rules.with_file(folder.prefix, file.read())
            except OSError:
                return rules  # reported when the file itself is read, if it is an input
    return rules


def _entry(
    walk: _Walk, folder: _Folder, rules: IgnoreRules, entry: os.DirEntry[str], below: list[_Folder]
) -> Found | None:
    """One folder entry: a file's candidate or problem; a folder is put on ``below``."""
    relative = folder.prefix + printable(entry.name)
    try:
        if entry.is_symlink():
            return _link(walk, folder, rules, entry, relative, below)
        if entry.is_dir(follow_symlinks=False):
            if rules.ignored(relative, True) or walk.filters.prunes(relative):
                return None
            if walk.generated and walk.generated.leaves_folder(entry.name, entry.path):
                return None
            return _descend(walk, folder, rules, entry.path, relative, below)
        if rules.ignored(relative, False) or not _wanted(walk, folder, relative):
            return None
        if _generated_file(walk, entry.name):
            return None
        info = entry.stat(follow_symlinks=False)
    except OSError as exc:  # vanished since the listing, or a name the OS will not stat
        return tagged(Unreadable(f"{relative} cannot be read ({exc.strerror or exc})"), relative)
    walk.matched += 1
    return _file(Path(entry.path), relative, info, walk.options, walk.seen)


def _generated_file(walk: _Walk, name: str) -> bool:
    return walk.generated is not None and walk.generated.leaves_file(name)


def _wanted(walk: _Walk, folder: _Folder, relative: str) -> bool:
    if not walk.filters.keeps(relative):
        return False
    return folder.globbed or walk.glob is None or walk.glob.matches(relative.split("/"))


def _descend(
    walk: _Walk, folder: _Folder, rules: IgnoreRules, path: str, relative: str, below: list[_Folder]
) -> Found | None:
    globbed = folder.globbed
    if not globbed and walk.glob is not None:
        names = relative.split("/")
        globbed = walk.glob.matches(names)
        if not globbed and not walk.glob.may_match_below(names):
            return None
    ancestors = folder.ancestors
    if walk.options.follow_symlinks:
        key = _identity(path)
        if key in folder.ancestors:
            return tagged(
                Skipped(
                    f"{relative} is a symbolic link loop (it leads back to a folder above "
                    "it); not walked again"
                ),
                relative,
            )
        if key is None or key in walk.walked:
            return None  # already walked through another link
        walk.walked.add(key)
        ancestors = ancestors | {key}
    below.append(_Folder(path, relative + "/", rules, globbed, ancestors))
    return None


def _link(
    walk: _Walk,
    folder: _Folder,
    rules: IgnoreRules,
    entry: os.DirEntry[str],
    relative: str,
    below: list[_Folder],
) -> Found | None:
    if rules.ignored(relative, False):  # git sees a link as a file, whatever it points to
        return None
    options = walk.options
    try:
        info = os.stat(entry.path)
    except OSError as exc:
        if not _wanted(walk, folder, relative):
            return None
        walk.matched += 1
        why = "loops" if exc.errno == errno.ELOOP else "its target does not exist"
        return tagged(
            Skipped(f"{relative} is a broken symbolic link ({why}); skipped: fix or remove it"),
            relative,
        )
    target = os.path.realpath(entry.path)
    inside = target == walk.root_real or target.startswith(walk.root_real.rstrip(os.sep) + os.sep)
    is_dir = stat.S_ISDIR(info.st_mode)
    if is_dir:
        if rules.ignored(relative, True) or walk.filters.prunes(relative):
            return None
        if options.follow_symlinks:
            return _descend(walk, folder, rules, entry.path, relative, below)
        if inside:
            return None  # its files are listed where they really are
    elif not _wanted(walk, folder, relative) or _generated_file(walk, entry.name):
        return None
    if not inside and not options.follow_symlinks:
        walk.matched += 1
        what = "folder" if is_dir else "file"
        return tagged(
            Skipped(
                f"{relative} is a symbolic link to a {what} outside the input folder ({target}); "
                "not followed: set inputs.follow_symlinks = true to read it"
            ),
            relative,
        )
    walk.matched += 1
    return _file(Path(entry.path), relative, info, options, walk.seen, os.path.basename(target))


def _identity(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino)


def _with_identity(walk: _Walk, folder: _Folder, path: str) -> _Folder:
    key = _identity(path)
    if key is None:
        return folder
    walk.walked.add(key)
    return _Folder(folder.path, folder.prefix, folder.rules, folder.globbed, frozenset({key}))
