"""Text files: encodings, byte-order marks, binary in disguise, empty files, size limits."""

from __future__ import annotations

import codecs
import contextlib
import random
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from pipeline.core.errors import BinaryFile, EmptyFile, TooLarge, Unreadable
from pipeline.core.models import Document
from pipeline.readers import Candidate, read_document
from pipeline.readers.text import Decoded, NotText, decode
from tests.readers.support import options, write

FRENCH = (
    "Compte rendu de la réunion du comité des fêtes. Étaient présents : Mme Lefèvre, "
    "M. Dubœuf, Mlle Gaëlle Noël. L'ordre du jour a été approuvé à l'unanimité ; la fête "
    "aura lieu près de l'église. Le trésorier a présenté le budget : 2 300 €.\n"
)


def read(tmp_path: Path, name: str, data: bytes | str, **kwargs: object) -> Document:
    path = write(tmp_path, name, data)
    return read_document(Candidate(path, name), options(tmp_path, **kwargs))  # type: ignore[arg-type]


def test_utf8_text_is_read_as_is(tmp_path: Path) -> None:
    document = read(tmp_path, "a.txt", "Grüße, 世界\n")
    assert document.text == "Grüße, 世界\n"
    assert document.kind == "text"
    assert document.notes == ()
    assert document.language is None


def test_a_utf8_byte_order_mark_is_dropped_quietly(tmp_path: Path) -> None:
    document = read(tmp_path, "a.md", codecs.BOM_UTF8 + b"# Titre\n")
    assert document.text == "# Titre\n"
    assert document.kind == "markdown"
    assert document.notes == ()


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32-le"])
def test_utf16_and_utf32_with_a_byte_order_mark(tmp_path: Path, codec: str) -> None:
    bom = {"utf-16": b"", "utf-16-be": codecs.BOM_UTF16_BE, "utf-32-le": codecs.BOM_UTF32_LE}
    document = read(tmp_path, "a.txt", bom[codec] + "Straße\n".encode(codec))
    assert document.text == "Straße\n"
    assert document.notes[0].startswith("decoded as UTF-")


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1"])
def test_legacy_western_encodings_fall_back_with_a_note(tmp_path: Path, encoding: str) -> None:
    text = FRENCH if encoding == "cp1252" else FRENCH.replace("œ", "oe").replace("€", "EUR")
    document = read(tmp_path, "fr.txt", text.encode(encoding))
    assert document.text == text
    [note] = document.notes
    assert note.startswith("decoded as ")
    assert note.endswith(" (not UTF-8)")


def test_a_short_legacy_text_still_gets_its_accents(tmp_path: Path) -> None:
    assert read(tmp_path, "a.txt", "Café crème à la gare".encode("cp1252")).text == (
        "Café crème à la gare"
    )


def test_cyrillic_legacy_encoding(tmp_path: Path) -> None:
    text = "Привет, мир. Это проверка кодировки для текста на русском языке.\n" * 3
    assert read(tmp_path, "ru.txt", text.encode("cp1251")).text == text


def test_utf8_with_a_few_bad_bytes_stays_utf8(tmp_path: Path) -> None:
    data = "Grüße aus Köln. ".encode() * 20 + b"\xff" + " Tschüss.\n".encode()
    document = read(tmp_path, "a.txt", data)
    assert document.text.startswith("Grüße aus Köln.")
    assert document.text.count("\ufffd") == 1
    assert document.notes == ("1 invalid UTF-8 byte sequence(s) replaced with U+FFFD",)


def test_a_zero_byte_file_is_skipped_as_empty(tmp_path: Path) -> None:
    with pytest.raises(EmptyFile, match=r"empty\.txt is empty"):
        read(tmp_path, "empty.txt", b"")


def test_whitespace_only_is_skipped_as_empty(tmp_path: Path) -> None:
    with pytest.raises(EmptyFile, match="only whitespace"):
        read(tmp_path, "blank.md", " \n\t\r\n")


def test_nul_bytes_in_a_text_file_make_it_binary(tmp_path: Path) -> None:
    with pytest.raises(BinaryFile, match=r"notes\.txt is named as text but holds binary"):
        read(tmp_path, "notes.txt", b"hello\x00world")


def test_binary_with_a_source_suffix_is_a_binary_file(tmp_path: Path) -> None:
    with pytest.raises(BinaryFile, match=r"tool\.py holds binary data \(NUL bytes\); leave it out"):
        read(tmp_path, "tool.py", b"\x7fELF\x02\x01\x01\x00\x00\x00")


def test_undecodable_bytes_named_as_text_are_unreadable(tmp_path: Path) -> None:
    data = bytes(range(0x80, 0x100)) * 40  # no NUL, no encoding makes sense of it
    with pytest.raises(Unreadable, match=r"junk\.txt is not text .* convert it to UTF-8"):
        read(tmp_path, "junk.txt", data)


def test_undecodable_bytes_with_an_unknown_suffix_are_binary(tmp_path: Path) -> None:
    data = bytes(range(0x80, 0x100)) * 40
    with pytest.raises(BinaryFile, match=r"blob\.dat"):
        read(tmp_path, "blob.dat", data)


def test_unknown_suffixes_are_sniffed_as_text(tmp_path: Path) -> None:
    document = read(tmp_path, "LICENSE", "MIT License\n")
    assert (document.kind, document.text) == ("text", "MIT License\n")


@pytest.mark.parametrize("nul", [True, False], ids=["with-nul", "without-nul"])
def test_random_bytes_never_escape_as_anything_but_a_problem(tmp_path: Path, nul: bool) -> None:
    data = random.Random(7).randbytes(4096)
    if not nul:
        data = data.replace(b"\0", b"\1")  # not binary by the NUL rule: read, and refused
    expected = BinaryFile if nul else Unreadable
    with pytest.raises(expected, match=r"noise\.txt"):
        read(tmp_path, "noise.txt", data)


def test_a_long_single_line_over_the_limit_is_too_large(tmp_path: Path) -> None:
    with pytest.raises(TooLarge, match=r"line\.txt is 2,000 bytes, over inputs\.max_file_bytes"):
        read(tmp_path, "line.txt", "x" * 2000, max_file_bytes=1000)


def test_a_long_single_line_under_the_limit_is_read_whole(tmp_path: Path) -> None:
    document = read(tmp_path, "line.txt", "y" * 100_000)
    assert document.text == "y" * 100_000


TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]))


@given(TEXT)
def test_any_utf8_text_decodes_to_itself(text: str) -> None:
    assume(not text.startswith("\ufeff"))  # that is a byte-order mark
    assert decode(text.encode()) == Decoded(text)


@given(TEXT)
def test_utf8_with_a_byte_order_mark_decodes_to_itself(text: str) -> None:
    assert decode(codecs.BOM_UTF8 + text.encode()) == Decoded(text)


@given(st.text(min_size=1).map(lambda text: text + "\x00"))
def test_a_nul_means_binary(text: str) -> None:
    with pytest.raises(NotText):
        decode(text.encode("utf-8", "surrogatepass"))


@given(st.binary())
def test_decode_returns_text_or_says_not_text(data: bytes) -> None:
    with contextlib.suppress(NotText):
        assert isinstance(decode(data).text, str)


def test_a_utf8_byte_order_mark_does_not_excuse_nul_bytes() -> None:
    with pytest.raises(NotText):
        decode(codecs.BOM_UTF8 + b"text\x00more")
