"""The readers stage: input paths -> files to read -> ``Document``s.

    discover(options)            walk inputs.paths: Candidates, and InputProblems to report
      patterns                   .gitignore (nested too), include/exclude, globs
      generated                  code mode's default excludes (caches, venvs, build output, locks)
    read_document(candidate)     one file -> Document, or raises an InputProblem
      formats                    the lookup by suffix: kind, language, media type
      text                       UTF-8, byte-order marks, a detected fallback encoding
      pdf                        pypdf: text per page, or parts for the model to read
      pdfpool                    PDF text in worker processes: every core, a hard time limit
      images                     PNG, JPEG, GIF, WebP for the model (attach mode)
    sources                      both sides for any input: find (local and URLs), read_items
      tables                     rows of CSV/TSV/JSONL/Parquet as documents (inputs.text_column)
      remote                     s3:// and other fsspec URLs: list, read, publish the output

What becomes what:

- Prose and data (``.txt .md .rst .csv .json .yaml .toml .xml .html`` ...): kind "text" or
  "markdown", ``language`` None. Source code (about 60 suffixes, and names like ``Dockerfile``):
  kind "code" with its language. With ``inputs.code`` every text file is "code", the language
  from its suffix where known.
- PDFs: a section per page with text, page numbers kept; in attach mode, document
  attachments of at most 100 pages each. Images: attachments in attach mode, else skipped.
- Any other suffix is sniffed: text if it decodes and has no NUL byte.

Problems: an empty or whitespace-only file is ``EmptyFile`` (skipped: nothing to send). A NUL
byte makes a file ``BinaryFile`` (skipped) whatever its name. Bytes with no NUL that decode in
no encoding are ``Unreadable`` (an error to fix) when the name says text (``.txt``, ``.md``),
else ``BinaryFile``.
Credentials are ``SecretFile`` (skipped) unless ``inputs.skip_secrets`` is false.
"""

from pipeline.readers.discover import discover
from pipeline.readers.options import Candidate, InputOptions
from pipeline.readers.read import document_id, read_document

__all__ = ["Candidate", "InputOptions", "discover", "document_id", "read_document"]
