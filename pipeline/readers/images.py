"""Images for the model (attach mode): the bytes as they are, with the media type they really
have. The suffix is only a hint; the first bytes decide."""

from __future__ import annotations

from pipeline.core.errors import TooLarge, Unreadable
from pipeline.core.models import Attachment

# The Messages API takes images up to 5 MB each.
MAX_IMAGE_BYTES = 5 * 1024 * 1024


def media_type_of(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def attachment(data: bytes, label: str, named_as: str) -> tuple[Attachment, tuple[str, ...]]:
    """The image as one attachment, and notes. ``named_as``: the media type its suffix gives."""
    actual = media_type_of(data)
    if actual is None:
        raise Unreadable(
            f"{label} is named as an image ({named_as}) but is not a PNG, JPEG, GIF or WebP "
            "file; convert it, or leave it out with inputs.exclude"
        )
    if len(data) > MAX_IMAGE_BYTES:
        raise TooLarge(
            f"{label} is {len(data) / 1e6:.1f} MB; the API takes images up to 5 MB: "
            "scale it down and run again"
        )
    notes = (
        (f"named as {named_as} but is {actual}; sent as {actual}",) if actual != named_as else ()
    )
    return Attachment(actual, data), notes
