"""The lookup by suffix: which reader a file goes to, and the language of source code.

Text mode reads prose (``.txt``, ``.md``, ``.rst``), data (``.csv``, ``.json``, ``.yaml``, ...)
and source code; code mode (``inputs.code``) makes every text file kind ``code`` with its
language. PDFs are read in both. Images are read only in attach mode. A suffix in none of the
tables is sniffed when read: text if it decodes and holds no NUL byte, else skipped as binary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["text", "markdown", "pdf", "code", "image"]

# suffix -> language, for source code (kind "code" in every mode)
CODE: dict[str, str] = {
    **dict.fromkeys((".py", ".pyi", ".pyw"), "python"),
    **dict.fromkeys((".js", ".mjs", ".cjs", ".jsx"), "javascript"),
    **dict.fromkeys((".ts", ".mts", ".cts", ".tsx"), "typescript"),
    ".java": "java",
    **dict.fromkeys((".kt", ".kts"), "kotlin"),
    **dict.fromkeys((".scala", ".sc"), "scala"),
    ".groovy": "groovy",
    ".go": "go",
    ".rs": "rust",
    ".c": "c",
    ".h": "c",
    **dict.fromkeys((".cc", ".cpp", ".cxx", ".c++", ".hpp", ".hh", ".hxx", ".ipp"), "cpp"),
    ".cs": "csharp",
    **dict.fromkeys((".fs", ".fsx", ".fsi"), "fsharp"),
    ".vb": "vbnet",
    ".swift": "swift",
    **dict.fromkeys((".m", ".mm"), "objective-c"),
    ".dart": "dart",
    ".rb": "ruby",
    ".php": "php",
    **dict.fromkeys((".pl", ".pm"), "perl"),
    ".lua": "lua",
    ".r": "r",
    ".jl": "julia",
    **dict.fromkeys((".sh", ".bash", ".zsh", ".ksh"), "shell"),
    ".fish": "fish",
    **dict.fromkeys((".ps1", ".psm1"), "powershell"),
    **dict.fromkeys((".bat", ".cmd"), "batch"),
    ".sql": "sql",
    ".hs": "haskell",
    **dict.fromkeys((".ml", ".mli"), "ocaml"),
    **dict.fromkeys((".ex", ".exs"), "elixir"),
    **dict.fromkeys((".erl", ".hrl"), "erlang"),
    **dict.fromkeys((".clj", ".cljs", ".cljc", ".edn"), "clojure"),
    **dict.fromkeys((".lisp", ".el"), "lisp"),
    ".zig": "zig",
    ".nim": "nim",
    **dict.fromkeys((".v", ".sv"), "verilog"),
    ".vue": "vue",
    ".svelte": "svelte",
    **dict.fromkeys((".css", ".scss", ".sass", ".less"), "css"),
    **dict.fromkeys((".tf", ".tfvars", ".hcl"), "terraform"),
    ".proto": "protobuf",
    **dict.fromkeys((".graphql", ".gql"), "graphql"),
    ".cmake": "cmake",
    ".mk": "makefile",
    ".gradle": "groovy",
    ".ipynb": "jupyter",
}

# file names with no telling suffix -> language
CODE_NAMES: dict[str, str] = {
    "Dockerfile": "dockerfile",
    "Containerfile": "dockerfile",
    "Makefile": "makefile",
    "GNUmakefile": "makefile",
    "CMakeLists.txt": "cmake",
    "Rakefile": "ruby",
    "Gemfile": "ruby",
    "Jenkinsfile": "groovy",
    "Vagrantfile": "ruby",
    "BUILD": "starlark",
    "WORKSPACE": "starlark",
}

# suffix -> (kind outside code mode, language in code mode): prose and data are "text"
TEXT: dict[str, tuple[Kind, str | None]] = {
    **dict.fromkeys((".md", ".markdown", ".mdown", ".mkd"), ("markdown", "markdown")),
    **dict.fromkeys((".txt", ".text"), ("text", None)),
    ".rst": ("text", "restructuredtext"),
    ".adoc": ("text", "asciidoc"),
    ".tex": ("text", "latex"),
    **dict.fromkeys((".csv", ".tsv"), ("text", "csv")),
    **dict.fromkeys((".json", ".jsonl", ".ndjson", ".geojson"), ("text", "json")),
    **dict.fromkeys((".yaml", ".yml"), ("text", "yaml")),
    ".toml": ("text", "toml"),
    **dict.fromkeys((".xml", ".xsd", ".xsl", ".svg", ".plist"), ("text", "xml")),
    **dict.fromkeys((".html", ".htm", ".xhtml"), ("text", "html")),
    **dict.fromkeys((".ini", ".cfg", ".conf", ".properties"), ("text", "ini")),
    ".log": ("text", None),
}

IMAGES: dict[str, str] = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}

# Skipped without opening: formats the readers cannot turn into text.
BINARY: frozenset[str] = frozenset(
    (
        *(".bmp", ".ico", ".icns", ".tif", ".tiff", ".psd", ".heic", ".avif", ".raw", ".xcf"),
        *(".zip", ".gz", ".tgz", ".bz2", ".xz", ".zst", ".7z", ".rar", ".tar", ".lz4"),
        *(".jar", ".war", ".whl", ".egg", ".apk", ".ipa", ".deb", ".rpm", ".dmg", ".iso"),
        *(".exe", ".dll", ".so", ".dylib", ".o", ".obj", ".a", ".lib", ".bin", ".wasm"),
        *(".class", ".pyc", ".pyo", ".pyd", ".elc", ".beam"),
        *(".mp3", ".mp4", ".m4a", ".wav", ".flac", ".ogg", ".opus", ".avi", ".mov", ".mkv"),
        *(".webm", ".wmv"),
        *(".ttf", ".otf", ".woff", ".woff2", ".eot"),
        *(".doc", ".docx", ".xls", ".xlsx", ".ppt", ".pptx", ".odt", ".ods", ".odp", ".epub"),
        *(".sqlite", ".sqlite3", ".db", ".mdb", ".parquet", ".feather", ".arrow", ".avro"),
        *(".npy", ".npz", ".pkl", ".pickle", ".h5", ".hdf5", ".pt", ".pth", ".onnx"),
        *(".safetensors", ".ckpt", ".joblib"),
    )
)

# Operating-system clutter, never worth a row.
JUNK_NAMES: frozenset[str] = frozenset((".DS_Store", "Thumbs.db", "desktop.ini"))


@dataclass(frozen=True)
class Format:
    """How a file will be read. ``kind`` None: unknown suffix, sniff the bytes for text."""

    kind: Kind | None
    language: str | None = None
    media_type: str | None = None  # for images and PDFs


UNKNOWN = Format(None)


# Read as tables, a row a document, when inputs.text_column is set (readers.tables).
TABLES = frozenset({".csv", ".tsv", ".jsonl", ".ndjson", ".parquet"})


def suffix_of(name: str) -> str:
    """The lower-cased suffix of a file name; a name that starts with a dot has none."""
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def lookup(name: str, *, code: bool = False) -> Format:
    """The format for a file name. Images come back as kind "image" in every mode: whether the
    mode allows them is discovery's decision."""
    suffix = suffix_of(name)
    if suffix == ".pdf":
        return Format("pdf", media_type="application/pdf")
    if suffix in IMAGES:
        return Format("image", media_type=IMAGES[suffix])
    language = CODE.get(suffix) or CODE_NAMES.get(name)
    if language is not None:
        return Format("code", language)
    if suffix in TEXT:
        kind, code_language = TEXT[suffix]
        return Format("code", code_language) if code else Format(kind)
    return Format("code") if code else UNKNOWN


def is_binary_suffix(name: str) -> bool:
    return suffix_of(name) in BINARY
