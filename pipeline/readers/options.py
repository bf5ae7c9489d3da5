"""What the readers are asked to read (``InputOptions``), and what discovery found."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pipeline.core.errors import ConfigError

Mode = Literal["text", "attach"]
Scans = Literal["error", "attach"]
PdfTextName = Literal["pypdf", "pdfium"]  # which library reads a PDF's text (inputs.pdf_text)


@dataclass(frozen=True)
class TableOptions:
    """``inputs.text_column`` and friends: which columns of a table make a row's document.

    ``keep`` maps each of ``inputs.keep_columns`` to its output column (``input_NAME`` where
    NAME is already an output column); ``template_columns`` are the columns the prompt
    templates name (``{title}``)."""

    text_column: str
    id_column: str | None = None
    keep: tuple[tuple[str, str], ...] = ()
    template_columns: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column a row's document is made of, in a stable order: these are read, and
        hashed for the row's content (a change in another column does not send it again)."""
        named = (self.text_column, self.id_column, *self.template_columns)
        named += tuple(column for column, _ in self.keep)
        return tuple(dict.fromkeys(c for c in named if c is not None))


@dataclass(frozen=True)
class InputOptions:
    """The job spec's ``[inputs]`` section, as the readers use it.

    ``paths`` are files, directories or globs (a path holding ``*``, ``?`` or ``[``), already
    resolved against the job file. ``include``/``exclude`` are gitignore-style patterns relative
    to each input root; an empty ``include`` means every file the readers can read.
    """

    paths: tuple[Path, ...]
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    gitignore: bool = True
    skip_secrets: bool = True
    follow_symlinks: bool = False
    max_file_bytes: int = 50_000_000
    mode: Mode = "text"  # attach: PDFs and images go to the model as document/image blocks
    code: bool = False  # every text file is source code: kind "code", language by extension
    urls: tuple[str, ...] = ()  # inputs in object storage: s3://bucket/prefix (readers.remote)
    table: TableOptions | None = None  # rows of tables are the documents (readers.tables)
    scans: Scans = "error"  # attach: a PDF without a text layer goes as a document, not an error
    pdf_text: PdfTextName = "pypdf"  # pdfium: PDFs' text by PDFium (readers.pdfium)

    def __post_init__(self) -> None:
        object.__setattr__(self, "paths", tuple(Path(p) for p in self.paths))
        object.__setattr__(self, "include", tuple(self.include))
        object.__setattr__(self, "exclude", tuple(self.exclude))
        object.__setattr__(self, "urls", tuple(self.urls))
        if not self.paths and not self.urls:
            raise ConfigError("inputs.paths is empty: name at least one file, folder or glob")
        if self.max_file_bytes < 1:
            raise ConfigError(
                f"inputs.max_file_bytes must be at least 1 (got {self.max_file_bytes})"
            )
        if self.mode not in ("text", "attach"):
            raise ConfigError(f'inputs.mode must be "text" or "attach" (got {self.mode!r})')
        if self.scans not in ("error", "attach"):
            raise ConfigError(f'inputs.scans must be "error" or "attach" (got {self.scans!r})')
        if self.pdf_text not in ("pypdf", "pdfium"):
            raise ConfigError(
                f'inputs.pdf_text must be "pypdf" or "pdfium" (got {self.pdf_text!r})'
            )


@dataclass(frozen=True)
class Candidate:
    """A file discovery found, to be read."""

    path: Path
    source: str  # relative to its input root (posix style), or the path as given for a file
    # (device, inode) of the file discovery checked: the read opens that file or none
    identity: tuple[int, int] | None = field(default=None, compare=False)
    # In object storage (readers.remote): the object's URL, and its ETag and size as listed,
    # which key an unchanged object's finished result without downloading it again.
    url: str | None = None
    etag: str | None = None
    size: int | None = None
