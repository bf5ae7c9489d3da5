"""Images in attach mode: raw bytes and the media type the bytes really have."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.core.errors import BinaryFile, TooLarge, Unreadable
from pipeline.core.models import Attachment, Document
from pipeline.readers import Candidate, read_document
from pipeline.readers.images import MAX_IMAGE_BYTES
from tests.readers.support import options, png_bytes, write

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"


def read(tmp_path: Path, name: str, data: bytes, mode: str = "attach") -> Document:
    path = write(tmp_path, name, data)
    return read_document(Candidate(path, name), options(tmp_path, mode=mode))


@pytest.mark.parametrize(
    ("name", "data", "media_type"),
    [
        ("logo.png", png_bytes(), "image/png"),
        ("photo.jpg", JPEG, "image/jpeg"),
        ("photo.JPEG", JPEG, "image/jpeg"),
        ("anim.gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "image/gif"),
        ("pic.webp", b"RIFF\x1a\x00\x00\x00WEBPVP8 ", "image/webp"),
    ],
)
def test_images_become_one_attachment(
    tmp_path: Path, name: str, data: bytes, media_type: str
) -> None:
    document = read(tmp_path, name, data)
    assert document.kind == "image"
    assert document.attachments == (Attachment(media_type, data),)
    assert document.sections == ()
    assert document.notes == ()


def test_the_bytes_decide_the_media_type(tmp_path: Path) -> None:
    document = read(tmp_path, "really-a-png.jpg", png_bytes())
    assert document.attachments[0].media_type == "image/png"
    assert document.notes == ("named as image/jpeg but is image/png; sent as image/png",)


def test_an_image_name_on_other_bytes_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(Unreadable, match=r"fake\.png is named as an image"):
        read(tmp_path, "fake.png", b"<html>not an image</html>")


def test_an_image_over_the_api_limit_is_too_large(tmp_path: Path) -> None:
    data = png_bytes() + b"\x00" * MAX_IMAGE_BYTES
    with pytest.raises(TooLarge, match=r"huge\.png .* up to 5 MB"):
        read(tmp_path, "huge.png", data)


def test_images_in_text_mode_point_to_attach_mode(tmp_path: Path) -> None:
    with pytest.raises(BinaryFile, match=r'logo\.png is an image.*inputs\.mode = "attach"'):
        read(tmp_path, "logo.png", png_bytes(), mode="text")


def test_the_sample_png_is_a_png() -> None:
    data = png_bytes(3, 2)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert data[16:24] == b"\x00\x00\x00\x03\x00\x00\x00\x02"  # width, height in IHDR
