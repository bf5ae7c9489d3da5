"""Inputs and outputs in object storage, through fsspec: ``s3://bucket/prefix`` (the ``s3``
extra, s3fs) and any other fsspec URL whose driver the user installs (``gs://`` with gcsfs...).

Credentials are the driver's usual chain (for S3: ``AWS_ACCESS_KEY_ID`` and
``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, the instance role; ``AWS_ENDPOINT_URL`` for an
S3-compatible service): nothing here reads, stores or prints them.

- Listing walks the prefix folder by folder (each listing paged by the driver; S3 returns
  1,000 keys a page), in a stable sorted order, with ``inputs.include``/``exclude`` applied to
  each key relative to the prefix, exactly as to a path relative to a local input folder.
  So the same documents on disk and in a bucket get the same ``source`` and ``doc_id``.
- Objects are read in the reader threads, one at a time, when their turn comes: nothing is
  downloaded ahead. Each listed object carries its ETag and size; the state remembers which
  document an (URL, ETag, size) was, so a re-run finds an unchanged object's result without
  downloading it (``pipeline.run.runner``).
- ``output.path`` may be a URL. The results are written locally first, atomically, under
  ``local_copy(url)`` (``pipeline.config.paths``: the state database, its lock and the report
  stay there, on this machine), then each file is uploaded with one ``put_file``. On S3 an
  object appears only when its PUT (or, over 50 MB, the multipart upload's
  ``CompleteMultipartUpload``) succeeds, whole: a reader sees the previous results or the new
  ones, never half a file, and an upload that fails leaves the previous object in place.
- A refused credential, or a store that cannot be reached, stops the run before anything is
  sent (``StorageRefused``: exit 3), naming the bucket.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from pipeline.core.errors import ConfigError, InputProblem, StorageRefused, Unreadable
from pipeline.core.sensitive import secret_by_name
from pipeline.readers.formats import BINARY, IMAGES, TABLES, suffix_of
from pipeline.readers.options import Candidate, InputOptions
from pipeline.readers.patterns import Filters
from pipeline.readers.read import binary_file, image_in_text_mode, secret_file, too_large


def bucket_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem for ``url`` and the path within it. A missing driver is a
    ConfigError that says what to install."""
    try:
        import fsspec
    except ImportError:
        raise ConfigError(
            f"{url}: object storage needs fsspec and a driver: pip install 'pipeline[s3]' "
            "(s3fs), or the fsspec driver for this kind of URL"
        ) from None
    protocol = urlsplit(url).scheme
    options: dict[str, Any] = {"use_listings_cache": False} if protocol in ("s3", "s3a") else {}
    try:
        return fsspec.core.url_to_fs(url, **options)  # type: ignore[no-any-return]
    except (ImportError, ValueError) as exc:
        raise ConfigError(
            f"{url}: no fsspec driver for {protocol}:// URLs ({exc}); install it (for s3:// "
            "pip install 'pipeline[s3]')"
        ) from None


def refused(url: str, exc: BaseException, doing: str) -> StorageRefused:
    """A run-wide storage failure, naming the bucket and what to check."""
    return StorageRefused(
        f"{bucket_of(url)}: {doing} {url} failed ({type(exc).__name__}: {exc}); check the "
        "credentials (for S3: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the "
        "instance role, and AWS_ENDPOINT_URL for an S3-compatible service) and that they "
        "may list, read and write there"
    )


def discover_url(url: str, options: InputOptions) -> Iterator[Candidate | InputProblem]:
    """The objects under ``url`` (a prefix) or the object it names, in a stable order."""
    fs, root = filesystem(url)
    root = root.rstrip("/")
    try:
        if fs.isfile(root):
            info = fs.info(root)
            yield _object(fs, info, url, options)
            return
        listed = False
        for item in _walk(fs, root, Filters(options.include, options.exclude)):
            listed = True
            if item is not None:
                yield _object(fs, item[1], item[0], options)
    except (InputProblem, ConfigError):
        raise
    except FileNotFoundError:
        listed = False
    except Exception as exc:  # the driver's own errors: botocore's, aiohttp's, OSError
        raise refused(url, exc, "listing") from exc
    if not listed:
        raise ConfigError(
            f"inputs.paths: {url} holds no object (the prefix does not exist or is empty); "
            "check the URL"
        )


def _walk(fs: Any, root: str, filters: Filters) -> Iterator[tuple[str, dict[str, Any]] | None]:
    """(source relative to ``root``, the object's info) for each object kept; None for one
    left out by include/exclude (counted as listed)."""
    for folder, dirs, files in fs.walk(root, detail=True, on_error="raise"):
        prefix = folder.rstrip("/")[len(root) :].lstrip("/")
        prefix = f"{prefix}/" if prefix else ""
        kept = {name: dirs[name] for name in sorted(dirs) if not filters.prunes(prefix + name)}
        dirs.clear()
        dirs.update(kept)  # walk() goes into what is left, in this order
        for name in sorted(files):
            info = files[name]
            if name.endswith("/") or info.get("type") == "directory":
                continue
            relative = prefix + name
            yield (relative, info) if filters.keeps(relative) else None


def _object(
    fs: Any, info: dict[str, Any], source: str, options: InputOptions
) -> Candidate | InputProblem:
    name = str(info["name"])
    size = int(info.get("size") or 0)
    etag = info.get("ETag") or info.get("etag") or info.get("md5Hash")
    candidate = Candidate(
        Path(name), source, url=fs.unstrip_protocol(name), etag=etag and str(etag), size=size
    )
    base = name.rsplit("/", 1)[-1]
    suffix = suffix_of(base)
    table = options.table is not None and suffix in TABLES  # any size; its rows are capped
    problem: InputProblem | None = None
    if options.skip_secrets and (reason := secret_by_name(base)):
        problem = secret_file(source, reason)
    elif suffix in BINARY and not table:
        problem = binary_file(source, f"is a {suffix} file, not text")
    elif options.mode != "attach" and suffix in IMAGES:
        problem = image_in_text_mode(source)
    elif size > options.max_file_bytes and not table:
        problem = too_large(source, size, options.max_file_bytes)
    if problem is not None:
        problem.source = source
        return problem
    return candidate


def open_binary(candidate: Candidate) -> IO[bytes]:
    """The object, opened for reading with ranged requests (tables are read in slices)."""
    assert candidate.url is not None
    fs, path = filesystem(candidate.url)
    try:
        return fs.open(path, "rb")  # type: ignore[no-any-return]
    except FileNotFoundError as exc:
        raise _gone(candidate.source) from exc
    except Exception as exc:
        raise Unreadable(f"{candidate.source} cannot be read from {candidate.url} ({exc})") from exc


def read_bytes(candidate: Candidate, limit: int) -> bytes:
    """The object's bytes, at most ``limit`` (more is ``TooLarge``)."""
    label = candidate.source
    with open_binary(candidate) as file:
        try:
            data = file.read(limit + 1)
        except Exception as exc:
            raise Unreadable(f"{label} could not be read from {candidate.url} ({exc})") from exc
    if len(data) > limit:
        raise too_large(label, len(data), limit)
    return data


def _gone(label: str) -> Unreadable:
    return Unreadable(f"{label} no longer exists (removed after the inputs were listed)")


def publish(local: Path, url: str) -> None:
    """Upload a finished file to ``url`` in one PUT (multipart over 50 MB, completed only at
    the end): the object there is replaced whole or not at all."""
    fs, path = filesystem(url)
    try:
        fs.put_file(str(local), path)
    except Exception as exc:
        raise refused(url, exc, f"writing the results (kept at {local}) to") from exc


def sibling(url: str, name: str) -> str:
    """The URL of ``name`` in the same folder as ``url``."""
    return f"{url.rsplit('/', 1)[0]}/{name}"
