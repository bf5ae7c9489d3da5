"""Bytes to text: UTF-8 (with or without a byte-order mark), UTF-16/32 with a byte-order mark,
and a detected legacy encoding as a fallback, which the document's notes then name.

A NUL byte outside UTF-16/32 means binary. When no encoding fits, the caller decides between
``Unreadable`` (a file named as text) and ``BinaryFile`` (anything else).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

_WIDE_BOMS = (  # longest first: the UTF-32 LE mark starts with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

# When the detector finds several encodings equally plausible, the more common one wins: short
# Western European texts otherwise come back as cp1250 or cp775 and get their accents wrong.
_PREFERRED = ("cp1252", "iso8859_15", "latin_1", "cp1250", "cp1251", "koi8_r", "shift_jis")
_CHAOS_TIE = 0.01
# UTF-8 with a few bad bytes (a damaged file, a bad paste) is still UTF-8.
_MAX_BAD_UTF8_SHARE = 0.01


class NotText(Exception):
    """The bytes are not text in any encoding we could find. ``nul``: they hold a NUL byte."""

    def __init__(self, nul: bool) -> None:
        super().__init__("binary" if nul else "no encoding fits")
        self.nul = nul


@dataclass(frozen=True)
class Decoded:
    text: str
    note: str | None = None  # how it was decoded, when not plain UTF-8


def may_hold_nul(head: bytes) -> bool:
    """Do these first bytes start UTF-16 or UTF-32 text (where NUL bytes are text)?"""
    return any(head.startswith(bom) for bom, _ in _WIDE_BOMS)


def decode(data: bytes) -> Decoded:
    """Decode a file's bytes; raises ``NotText``."""
    for bom, codec in _WIDE_BOMS:
        if data.startswith(bom):
            try:
                return Decoded(data.decode(codec), f"decoded as {codec.upper()} (byte-order mark)")
            except UnicodeDecodeError:
                break  # binary that starts like a mark
    if b"\x00" in data:
        raise NotText(nul=True)
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return Decoded(data.decode("utf-8"))
    except UnicodeDecodeError:
        pass
    lenient = data.decode("utf-8", errors="replace")
    bad = lenient.count("\ufffd")
    good_multibyte = len(lenient) - len(lenient.encode("ascii", "ignore")) - bad
    if good_multibyte > 0 and bad <= max(1, int(len(lenient) * _MAX_BAD_UTF8_SHARE)):
        return Decoded(lenient, f"{bad} invalid UTF-8 byte sequence(s) replaced with U+FFFD")
    return _detect(data)


def _detect(data: bytes) -> Decoded:
    import charset_normalizer  # only for bytes that are not UTF-8: most runs never need it

    results = list(charset_normalizer.from_bytes(data))
    if not results:
        raise NotText(nul=False)
    least = min(result.chaos for result in results)
    plausible = [result for result in results if result.chaos <= least + _CHAOS_TIE]
    for encoding in _PREFERRED:
        for result in plausible:
            if encoding in result.could_be_from_charset:
                try:
                    return Decoded(data.decode(encoding), _note(encoding))
                except UnicodeDecodeError:
                    break
    best = plausible[0]
    return Decoded(str(best), _note(best.encoding))


def _note(encoding: str) -> str:
    return f"decoded as {encoding} (not UTF-8)"
