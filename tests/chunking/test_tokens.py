"""The offline estimate: never below what the simulator charges, tight enough on prose, and
exact on any slice through ``TokenIndex``."""

from __future__ import annotations

import base64
import string
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from pipeline.shaping.request_tokens import (
    IMAGE_MAX_TOKENS,
    PDF_TOKENS_PER_PAGE,
    TOOL_USE_PROMPT,
    estimate_request,
    image_size,
)
from pipeline.shaping.tokens import TokenIndex, estimate_text
from pipeline.simulator.tokenizer import count_request, count_text

PROSE = (
    "The committee met on Tuesday to review the draft budget for the coming year. After a "
    "long discussion of the transport and housing lines, the members agreed to ask the "
    "finance office for a revised estimate, and to publish the minutes within a week.\n\n"
    "Residents who wish to comment may write to the clerk before the end of the month; "
    "their letters will be read at the next meeting, which is open to the public.\n"
) * 20
CODE = (
    "def parse(values: list[str]) -> dict[str, int]:\n"
    "    result = {}\n"
    "    for index, value in enumerate(values):\n"
    "        if value.strip():\n"
    "            result[value] = int(value, 16) + index * 2\n"
    "    return result\n\n\n"
) * 20

# Targeted alphabets: where the simulator's rule charges most per character.
PUNCTUATION_CODE = st.text(alphabet=string.punctuation + "ab_x1 \n\t", max_size=300)
DIGITS = st.text(alphabet="0123456789 ,.-\n", max_size=300)
CJK = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF),
        st.characters(min_codepoint=0x3040, max_codepoint=0x30FF),
        st.sampled_from(list("a1 \n。、")),
    ),
    max_size=300,
)
WHITESPACE = st.text(
    alphabet=" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u2028\u3000ab.", max_size=300
)
SURROGATES_AND_WIDE = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=()),
        st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF),
        st.sampled_from(list("éß ж\n a")),
    ),
    max_size=100,
)
MIXED = st.lists(
    st.one_of(st.text(max_size=40), PUNCTUATION_CODE, DIGITS, CJK, WHITESPACE), max_size=6
).map("".join)


@given(st.text())
def test_never_below_the_simulator_for_any_text(text: str) -> None:
    assert estimate_text(text) >= count_text(text)


@given(st.one_of(PUNCTUATION_CODE, DIGITS, CJK, WHITESPACE, SURROGATES_AND_WIDE, MIXED))
def test_never_below_the_simulator_where_it_charges_most(text: str) -> None:
    assert estimate_text(text) >= count_text(text)


@given(MIXED, MIXED)
def test_a_longer_text_never_estimates_less(left: str, right: str) -> None:
    # The chunker relies on this: the estimate of a slice never shrinks as the slice grows.
    both = estimate_text(left + right)
    assert both >= estimate_text(left)
    assert both >= estimate_text(right)


@given(st.one_of(MIXED, SURROGATES_AND_WIDE), st.data())
def test_the_index_gives_exactly_the_estimate_of_any_slice(text: str, data: st.DataObject) -> None:
    text = text * data.draw(st.integers(1, 400))  # long enough to span several blocks
    index = TokenIndex(text)
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, len(text)))
    assert index.estimate(start, end) == estimate_text(text[start:end])
    assert index.estimate() == estimate_text(text)


@given(MIXED, st.integers(1, 2_000), st.data())
def test_longest_fit_is_the_longest_slice_that_fits(
    text: str, budget: int, data: st.DataObject
) -> None:
    text = text * data.draw(st.integers(1, 300))
    index = TokenIndex(text)
    start = data.draw(st.integers(0, len(text)))
    end = index.longest_fit(start, budget)
    assert start <= end <= len(text)
    assert estimate_text(text[start:end]) <= budget
    if end < len(text):
        assert estimate_text(text[start : end + 1]) > budget


def test_examples() -> None:
    assert estimate_text("") == 0
    assert estimate_text("tokenizer") >= 3
    assert estimate_text("日本語") == 5  # 3 wide characters at 3/2, rounded up


def test_prose_is_about_one_and_a_third_of_the_simulator() -> None:
    ratio = estimate_text(PROSE) / count_text(PROSE)
    assert 1.25 <= ratio <= 1.45
    assert 2.3 <= len(PROSE) / estimate_text(PROSE) <= 2.9  # ~3.5 chars/token, +35%


def test_code_and_cjk_cost_more_per_character_than_prose() -> None:
    cjk = "東京は日本の首都であり、多くの人が住んでいる。" * 20
    per_char = {name: estimate_text(t) / len(t) for name, t in (("prose", PROSE), ("code", CODE))}
    assert per_char["code"] > per_char["prose"]
    assert estimate_text(cjk) / len(cjk) > 1.0
    assert estimate_text(CODE) >= count_text(CODE)


# ---- requests -----------------------------------------------------------------------------


def png(width: int, height: int, size: int = 100) -> str:
    header = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
    raw = header + width.to_bytes(4, "big") + height.to_bytes(4, "big")
    return base64.b64encode(raw + b"\x00" * max(0, size - len(raw))).decode()


def pdf(pages: int) -> str:
    raw = b"%PDF-1.4\n" + b"".join(b"<< /Type /Page >>\n" for _ in range(pages))
    return base64.b64encode(raw + b"<< /Type /Pages >>\n").decode()


TEXTS = st.one_of(st.text(max_size=60), MIXED)
SOURCES = st.one_of(
    st.builds(lambda d: {"type": "text", "media_type": "text/plain", "data": d}, TEXTS),
    st.builds(
        lambda n: {"type": "base64", "media_type": "application/pdf", "data": pdf(n)},
        st.integers(0, 4),
    ),
    st.builds(
        lambda w, h, n: {"type": "base64", "media_type": "image/png", "data": png(w, h, n)},
        st.integers(1, 5_000),
        st.integers(1, 5_000),
        st.integers(30, 200_000),
    ),
    st.builds(
        lambda b: {"type": "base64", "media_type": "image/jpeg", "data": b64(b)},
        st.binary(max_size=3_000),
    ),
    st.builds(lambda u: {"type": "url", "url": u}, TEXTS),
)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


BLOCKS: st.SearchStrategy[dict[str, Any]] = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, TEXTS),
    st.builds(lambda s: {"type": "document", "source": s}, SOURCES),
    st.builds(
        lambda s, title: {"type": "document", "source": s, "title": title, "context": title},
        SOURCES,
        TEXTS,
    ),
    st.builds(lambda s: {"type": "image", "source": s}, SOURCES),
    st.builds(
        lambda name, value: {"type": "tool_use", "id": "t1", "name": name, "input": {"v": value}},
        TEXTS,
        TEXTS,
    ),
    st.builds(
        lambda content: {"type": "tool_result", "tool_use_id": "t1", "content": content},
        st.one_of(TEXTS, st.lists(st.builds(lambda t: {"type": "text", "text": t}, TEXTS))),
    ),
)
ROLES = ["user", "assistant"]
CONTENT = st.one_of(TEXTS, st.lists(BLOCKS, max_size=4))
TOOLS = st.lists(
    st.builds(
        lambda name, description: {
            "name": name,
            "description": description,
            "input_schema": {"type": "object", "properties": {"a": {"type": "string"}}},
        },
        st.text(alphabet=string.ascii_letters + "_", min_size=1, max_size=20),
        TEXTS,
    ),
    max_size=2,
)


@given(
    st.one_of(st.none(), TEXTS, st.lists(st.builds(lambda t: {"type": "text", "text": t}, TEXTS))),
    st.lists(
        st.builds(lambda r, c: {"role": r, "content": c}, st.sampled_from(ROLES), CONTENT),
        min_size=1,
        max_size=4,
    ),
    TOOLS,
)
def test_a_request_never_estimates_below_the_simulator(
    system: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
) -> None:
    body: dict[str, Any] = {"model": "m", "max_tokens": 10, "messages": messages}
    if system is not None:
        body["system"] = system
    if tools:
        body["tools"] = tools
    assert estimate_request(body) >= count_request(body)


def test_a_request_counts_its_text_and_fixed_costs() -> None:
    text = "Summarize the document. " * 50
    body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": text}]}
    assert estimate_text(text) < estimate_request(body) <= estimate_text(text) + 20
    with_tool = {**body, "tools": [{"name": "extract", "input_schema": {"type": "object"}}]}
    assert estimate_request(with_tool) > estimate_request(body) + TOOL_USE_PROMPT


def test_attachments_cost_by_pages_and_pixels() -> None:
    def request(source: dict[str, Any]) -> dict[str, Any]:
        block = {"type": "document", "source": source}
        return {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [block]}]}

    three_pages = request({"type": "base64", "media_type": "application/pdf", "data": pdf(3)})
    assert estimate_request(three_pages) >= 3 * PDF_TOKENS_PER_PAGE
    small = request({"type": "base64", "media_type": "image/png", "data": png(300, 200)})
    assert estimate_request(small) < 200  # 300 x 200 / 750 = 80 tokens: no 1,600 here
    huge = request({"type": "base64", "media_type": "image/png", "data": png(8_000, 6_000)})
    assert IMAGE_MAX_TOKENS <= estimate_request(huge) < IMAGE_MAX_TOKENS + 50
    unknown = request({"type": "base64", "media_type": "image/png", "data": b64(b"not an image")})
    assert estimate_request(unknown) >= IMAGE_MAX_TOKENS  # cannot tell: assume the largest


def test_image_sizes_are_read_from_headers() -> None:
    assert image_size(base64.b64decode(png(640, 480))) == (640, 480)
    assert image_size(b"GIF89a" + (320).to_bytes(2, "little") + (200).to_bytes(2, "little")) == (
        320,
        200,
    )
    app0 = b"\xff\xe0\x00\x10" + b"JFIF\x00" + b"\x00" * 9
    size = (600).to_bytes(2, "big") + (800).to_bytes(2, "big")  # height, then width
    sof = b"\xff\xc0\x00\x11\x08" + size + b"\x00" * 8
    assert image_size(b"\xff\xd8" + app0 + sof) == (800, 600)
    vp8x = b"RIFF\x00\x00\x00\x00WEBPVP8X" + b"\x00" * 8 + (99).to_bytes(3, "little")
    assert image_size(vp8x + (49).to_bytes(3, "little")) == (100, 50)
    assert image_size(b"not an image at all, just some bytes") is None
