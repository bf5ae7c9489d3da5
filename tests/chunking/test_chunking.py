"""Splitting: every chunk fits, the chunks cover the text exactly, boundaries are the natural
ones, and the reduce plan groups partial results that fit."""

from __future__ import annotations

import re
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.models import Chunk, Section
from pipeline.shaping.chunking import MIN_BUDGET, SECTION_JOINER, reduce_groups, spans, split
from pipeline.shaping.tokens import estimate_text

PIECES = [
    "the", "cat", "sat", "Mathematics", "x", "1234567", "日本語", "naïve", "(a+b);", "def",
    " ", " ", " ", " ", "\n", "\n", "\n\n", "\n  \n", ". ", "! ", "\t", "    ", "\r\n", "。",
    "x" * 300, "word " * 60, "def f(x):\n    return x\n", "\nclass A:\n    pass\n",
]  # fmt: skip
TEXTS = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=80).map("".join),
    st.text(max_size=300),
)
SECTIONS = st.one_of(
    st.lists(TEXTS, max_size=8).map(lambda ts: [Section(t, page=i + 1) for i, t in enumerate(ts)]),
    st.lists(TEXTS, max_size=4).map(lambda ts: [Section(t) for t in ts]),
)
BUDGETS = st.integers(MIN_BUDGET, 400)
_BLANK_LINES = re.compile(r"(?:[^\S\n]*\n)*")


def blank_lines(text: str) -> int:
    """How many characters of blank lines ``text`` starts with."""
    match = _BLANK_LINES.match(text)
    return match.end() if match else 0


def joined(sections: list[Section]) -> str:
    return SECTION_JOINER.join(s.text for s in sections)


def assert_covers(full: str, chunks: list[Chunk]) -> None:
    """The chunks' texts, each stripped of white space at both ends, are consecutive,
    non-overlapping substrings of the full text in order, with only white space between
    them, before the first and after the last."""
    at = 0
    for chunk in chunks:
        piece = chunk.text.strip()
        assert piece, "no chunk is empty or only white space"
        skipped = full[at:]
        at += len(skipped) - len(skipped.lstrip())
        assert full.startswith(piece, at), f"chunk {chunk.index} is not next in the text"
        at += len(piece)
    assert not full[at:].strip(), "text after the last chunk"


def section_bounds(sections: list[Section]) -> list[tuple[int, int]]:
    bounds, at = [], 0
    for s in sections:
        bounds.append((at, at + len(s.text)))
        at += len(s.text) + len(SECTION_JOINER)
    return bounds


# ---- properties ---------------------------------------------------------------------------


@given(SECTIONS, BUDGETS, st.booleans())
def test_every_chunk_fits_and_the_chunks_cover_the_text(
    sections: list[Section], budget: int, code: bool
) -> None:
    full = joined(sections)
    chunks = split(sections, budget, code=code)
    assert [(c.index, c.count) for c in chunks] == [(i, len(chunks)) for i in range(len(chunks))]
    for chunk in chunks:
        assert chunk.tokens == estimate_text(chunk.text) <= budget
        assert chunk.text == chunk.text.rstrip()
        assert blank_lines(chunk.text) == 0
    if not full.strip():
        assert [c.text for c in chunks] == [""]
    else:
        assert_covers(full, chunks)


@given(SECTIONS, BUDGETS, st.booleans())
def test_split_is_deterministic_and_spans_locate_the_chunks(
    sections: list[Section], budget: int, code: bool
) -> None:
    full = joined(sections)
    chunks = split(sections, budget, code=code)
    assert split(sections, budget, code=code) == chunks
    located = spans(sections, budget, code=code)
    if full.strip():
        assert [full[a:b] for a, b in located] == [c.text for c in chunks]


@given(SECTIONS, BUDGETS)
def test_pages_are_the_first_and_last_page_a_chunk_holds_text_of(
    sections: list[Section], budget: int
) -> None:
    chunks = split(sections, budget)
    bounds = section_bounds(sections)
    for chunk, (a, b) in zip(chunks, spans(sections, budget), strict=False):
        pages = [
            s.page
            for s, (start, end) in zip(sections, bounds, strict=True)
            if max(start, a) < min(end, b) and s.page is not None
        ]
        assert chunk.pages == ((min(pages), max(pages)) if pages else None)


@given(SECTIONS, BUDGETS, st.booleans(), st.sampled_from([0, 0, 5, 30]))
def test_a_page_that_fits_on_its_own_is_never_split(
    sections: list[Section], budget: int, code: bool, overlap: int
) -> None:
    located = spans(sections, budget, overlap=overlap, code=code)
    for (start, _), section in zip(section_bounds(sections), sections, strict=True):
        text = section.text
        lead = blank_lines(text)
        content = text[lead:].rstrip()
        if not content.strip() or estimate_text(content) > budget:
            continue
        first, last = start + lead, start + lead + len(content)
        assert any(a <= first and last <= b for a, b in located), "a fitting page was split"


@given(SECTIONS, BUDGETS, st.integers(1, 200), st.booleans())
def test_overlap_repeats_at_most_its_tokens_and_still_covers(
    sections: list[Section], budget: int, overlap: int, code: bool
) -> None:
    overlap = min(overlap, budget // 2)
    full = joined(sections)
    chunks = split(sections, budget, overlap=overlap, code=code)
    located = spans(sections, budget, overlap=overlap, code=code)
    if not full.strip():
        return
    assert [full[a:b] for a, b in located] == [c.text for c in chunks]
    assert all(c.tokens <= budget for c in chunks)
    assert not full[: located[0][0]].strip()
    assert not full[located[-1][1] :].strip()
    for ((a0, b0), (a1, b1)), before in zip(pairwise(located), chunks, strict=False):
        assert a0 < a1  # each chunk brings new text
        assert b0 < b1
        if a1 < b0:  # the repeated stretch: the end of the previous chunk, within budget
            assert before.text.endswith(full[a1:b0])
            assert estimate_text(full[a1:b0]) <= overlap
        else:  # no repeat: the chunks simply follow each other
            assert not full[b0:a1].strip()


@given(st.lists(st.integers(0, 500), max_size=40), st.integers(1, 1_000), st.integers(0, 20))
def test_reduce_groups_are_consecutive_fit_and_are_fewest(
    counts: list[int], budget: int, overhead: int
) -> None:
    groups = reduce_groups(counts, budget, overhead=overhead)
    assert [i for g in groups for i in g] == list(range(len(counts)))
    assert all(groups)

    def total(group: list[int]) -> int:
        return sum(counts[i] + overhead for i in group)

    for group in groups:
        assert total(group) <= budget or len(group) == 1
    for group, following in pairwise(groups):
        # Greedy: the next item would not have fitted, so no grouping has fewer groups.
        assert total(group) + counts[following[0]] + overhead > budget


def test_reduce_groups_examples() -> None:
    assert reduce_groups([], 100) == []
    assert reduce_groups([30, 30, 30, 30], 100) == [[0, 1, 2], [3]]
    assert reduce_groups([30, 500, 30], 100) == [[0], [1], [2]]  # too big: on its own
    assert reduce_groups([30, 30], 100, overhead=25) == [[0], [1]]
    with pytest.raises(ValueError, match="at least 1"):
        reduce_groups([1], 0)
    with pytest.raises(ValueError, match="negative"):
        reduce_groups([-1], 10)


# ---- boundaries, one by one -----------------------------------------------------------------


def sentence(n: int) -> str:
    return f"Sentence number {n} talks about the weather and the harvest in the valley."


def lines(count: int, start: int = 0) -> str:
    return "\n".join(sentence(n) for n in range(start, start + count))


def test_a_paragraph_break_is_chosen_over_a_later_line_break() -> None:
    first = lines(12)  # about 60% of the budget
    second = lines(30, start=100)
    budget = int(estimate_text(first) / 0.6)
    chunks = split([Section(f"{first}\n\n{second}")], budget)
    assert chunks[0].text == first
    assert chunks[1].text.startswith(sentence(100))


def test_lines_are_chosen_over_sentences_and_sentences_over_spaces() -> None:
    text = lines(60)
    budget = estimate_text(lines(20)) + 5
    assert all(c.text.endswith(".") for c in split([Section(text)], budget))
    one_line = " ".join(sentence(n) for n in range(60))
    for chunk in split([Section(one_line)], budget)[:-1]:
        assert chunk.text.endswith("valley.")
    no_stops = " ".join(f"word{n}" for n in range(2_000))
    chunks = split([Section(no_stops)], 200)
    assert len(chunks) > 2
    assert all(re.fullmatch(r"word\d+( word\d+)*", c.text) for c in chunks)


def test_a_small_first_paragraph_does_not_make_a_tiny_chunk() -> None:
    title = "Annual report"
    body = lines(80)
    budget = estimate_text(lines(20))
    chunks = split([Section(f"{title}\n\n{body}")], budget)
    assert chunks[0].text.startswith(title + "\n\n")
    assert chunks[0].tokens > budget // 2


def test_pages_are_packed_and_a_fitting_page_is_never_split() -> None:
    small = [Section(lines(1, start=n), page=n + 1) for n in range(6)]
    budget = estimate_text(SECTION_JOINER.join(s.text for s in small[:3])) + 10
    packed = split(small, budget)
    assert [c.pages for c in packed] == [(1, 3), (4, 6)]
    assert packed[0].text == SECTION_JOINER.join(s.text for s in small[:3])

    budget = 300
    a, b, c = lines(4), lines(8, start=10), lines(3, start=20)
    assert estimate_text(b) <= budget < estimate_text(a + "\n\n" + b)
    assert budget < estimate_text(b + "\n\n" + c)
    chunks = split([Section(a, page=1), Section(b, page=2), Section(c, page=3)], budget)
    assert [ch.text for ch in chunks] == [a, b, c]
    assert [ch.pages for ch in chunks] == [(1, 1), (2, 2), (3, 3)]


def test_a_page_larger_than_the_budget_is_split_and_its_tail_packs_with_the_next() -> None:
    big, after = lines(35), lines(1, start=50)  # ten lines to a chunk: a tail of five
    chunks = split([Section(big, page=1), Section(after, page=2)], 300)
    assert len(chunks) == 4
    assert chunks[0].pages == (1, 1)
    assert chunks[-1].pages == (1, 2)
    assert chunks[-1].text.endswith(after)
    assert_covers(big + SECTION_JOINER + after, chunks)


FUNCTION = '''def {name}(rows):
    """Sum the rows that are not empty."""
    total = 0

    for row in rows:
        if row:
            total += len(row)

    return total
'''


def test_code_splits_where_a_top_level_definition_starts() -> None:
    first = "\n\n".join(FUNCTION.format(name=f"first_{n}") for n in range(3))
    second = "# Helpers for the report.\n@cache\n" + FUNCTION.format(name="second")
    third = "\n\n".join(FUNCTION.format(name=f"third_{n}") for n in range(3))
    text = f"{first}\n\n{second}\n\n{third}"
    # The budget reaches past the first blank line inside third_0, but not its second.
    budget = estimate_text(text[: text.index("    for row", text.index("def third_0"))]) + 2
    chunks = split([Section(text)], budget, code=True)
    assert chunks[0].text == f"{first}\n\n{second}".rstrip()
    assert chunks[1].text.startswith("def third_0(")
    # As prose, the same text is cut at the last blank line that fits, inside the function.
    prose = split([Section(text)], budget)
    assert prose[1].text.startswith("    for row in rows:")


def test_a_comment_and_decorator_stay_with_their_definition() -> None:
    head = "\n\n".join(FUNCTION.format(name=f"f{n}") for n in range(4))
    tail = "// Parse a row.\n@decorated\n" + FUNCTION.format(name="parse") * 3
    budget = int(estimate_text(head) / 0.8)
    chunks = split([Section(f"{head}\n\n{tail}")], budget, code=True)
    assert chunks[0].text == head.rstrip()
    assert chunks[1].text.startswith("// Parse a row.\n@decorated\ndef parse(")


def test_code_keeps_the_indentation_of_a_chunk_first_line() -> None:
    body = "\n".join(f"    value_{n} = compute({n}, other_{n})" for n in range(300))
    chunks = split([Section(f"def big():\n{body}\n")], 300, code=True)
    assert all(c.text.startswith("    value_") for c in chunks[1:])


def test_a_huge_single_line_is_cut_hard() -> None:
    line = ("x" * 997 + "y=1") * 2_000  # 2 MB, no white space at all
    chunks = split([Section(line)], 20_000)
    assert "".join(c.text for c in chunks) == line
    assert all(c.tokens <= 20_000 for c in chunks)
    assert min(c.tokens for c in chunks[:-1]) > 19_990  # hard cuts fill the chunk


def test_five_megabytes_split_into_covering_chunks() -> None:
    # Speed is measured in bench/, not asserted here.
    text = "\n\n".join(lines(10, start=n) for n in range(0, 70_000, 10))[:5_000_000]
    chunks = split([Section(text)], 100_000)
    assert len(chunks) >= 15
    assert_covers(text, chunks)


def test_overlap_starts_with_the_end_of_the_previous_chunk() -> None:
    text = "\n".join(sentence(n) for n in range(100))
    chunks = split([Section(text)], 300, overlap=60)
    for before, after in pairwise(chunks):
        first_line = after.text.split("\n")[0]
        assert first_line in before.text.split("\n")  # it starts at a line of the previous
        repeated = before.text[before.text.rindex(first_line) :]
        assert after.text.startswith(repeated)
        assert 0 < estimate_text(repeated) <= 60


def test_an_empty_document_is_one_empty_chunk() -> None:
    assert split([], 100) == [Chunk(0, 1, "", 0, None)]
    assert split([Section(" \n\n ", page=1)], 100) == [Chunk(0, 1, "", 0, None)]


def test_a_document_that_fits_is_one_chunk_without_surrounding_blank_lines() -> None:
    sections = [Section("\n\n  Title\n", page=1), Section("Body text.\n\n", page=2)]
    assert split(sections, 100) == [
        Chunk(0, 1, "  Title\n\n\nBody text.", estimate_text("  Title\n\n\nBody text."), (1, 2))
    ]


def test_bad_budgets_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match=f"at least {MIN_BUDGET} tokens, got 10"):
        split([Section("text")], 10)
    with pytest.raises(ValueError, match="overlap must be between 0 and half the budget"):
        split([Section("text")], 100, overlap=60)
    with pytest.raises(ValueError, match="overlap"):
        split([Section("text")], 100, overlap=-1)
