"""Split a document into chunks that each fit a token budget, at natural boundaries; and plan
the reduce steps of map-reduce.

The text. A document's text is its sections joined with a blank line, ``"\\n\\n"`` (exactly
``Document.text``); call it T. Every chunk's text is a slice of T, so sections packed into one
chunk are joined with ``"\\n\\n"`` and a chunk that continues a split page or paragraph carries
its text as it is. A chunk's text has no trailing white space and no leading blank lines; the
indentation of its first line is kept (code). ``Chunk.tokens`` is ``estimate_text(text)`` and
is never above the budget.

Where a chunk ends. From the chunk's start, the longest slice of T that fits the budget is
found (``TokenIndex.longest_fit``); the chunk ends at the best boundary inside that slice:

1. a section (PDF page) boundary, the last one in the slice. Small pages are packed together,
   and a page that fits the budget on its own is never split: if the slice ends inside such a
   page, the chunk ends before it, and the next chunk starts with it;
2. for prose: a blank line (a paragraph break). For code (``code=True``): first a line at
   column 0 that starts a top-level definition (``def``, ``class``, ``function``, ``func``,
   ``fn``, ``pub``, ``public``, ``export``, ``impl``, ``struct``, ... together with the comment,
   decorator or attribute lines right above it), then a blank line;
3. a line break;
4. a sentence end (prose only);
5. white space;
6. anywhere: a hard cut by characters, the last resort (a 50 MB line with no spaces).

A boundary below the section level is taken only if it keeps at least half of the slice (by
characters) in the chunk; if no boundary of any level does, the levels are tried again without
that rule, and only then is the text cut hard. So a paragraph break is chosen over a line break
when both are in the second half of the slice, and a paragraph break 3% of the way in does not
make a tiny chunk. (Section boundaries are exempt when the next page fits on its own.)

Coverage, exactly (property-tested): with ``overlap=0``, the chunks' texts are consecutive,
non-overlapping slices of T, in order, and everything of T before the first, between two
consecutive ones and after the last is white space. Only white space at the cut points is
lost. With ``overlap > 0``, each chunk after the first starts at a boundary (section, paragraph
or definition, line, sentence or word start, the strongest found in the first half of the
allowed stretch) inside the previous chunk's new text, such that the repeated stretch costs at
most ``overlap`` tokens; its new text then continues exactly where the previous chunk's ended.
``spans`` returns each chunk's (start, end) in T, which the tests use to check this exactly.

An empty (or all white space) document gives one empty chunk, so every document has at least
one request's worth of work.

Speed. ``TokenIndex`` answers "how far from here fits the budget" with a bisection over
per-block counts, and each boundary search is a C-level scan (``str.rfind``, a regular
expression) over at most one budget's worth of text, so splitting is linear. Measured with
``time.perf_counter`` on this machine, best of 3, into 100,000-token chunks: 5 MB of English
prose 0.12 s (20 chunks); 5 MB of Python source 0.14 s (23 chunks); 1,667 PDF-like pages of
3 KB 0.11 s; one 50 MB line with no white space 1.2 s (139 hard cuts; building the index is
most of it); one 50 MB line of words 1.2 s. A document that fits costs one pass.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence

from pipeline.core.models import Chunk, Section
from pipeline.shaping.tokens import TokenIndex

MIN_BUDGET = 64
SECTION_JOINER = "\n\n"
_FILL = 0.5  # a boundary below the section level must keep this share of the slice

_BLANK_LINES = re.compile(r"(?:[^\S\n]*\n)*")
_SPACES = re.compile(r"[^\S\n]*")
_VISIBLE = re.compile(r"\S")
_PARAGRAPH = re.compile(r"\n[^\S\n]*\n")
_SENTENCE = re.compile(
    r"[.!?][\"'\u201d\u2019)\]]*\s+|[\u3002\uff01\uff1f][\u201d\u2019\u300d\u300f)\]]*\s*"
)
_SENTENCE_MARKS = ".!?\u3002\uff01\uff1f"
_SENTENCE_TRIES = 32
_WORD_START = re.compile(r"(?<=\s)\S")
_WORD_BREAKS = " \n\t"
_DEFINITION = re.compile(
    r"^(?:(?://|/\*| ?\*|#|@)[^\n]*\n){0,30}"  # doc comments, decorators, attributes
    r"(?:pub\b|(?:def|class|async|function|func|fn|public|private|protected|static|export"
    r"|impl|struct|enum|interface|trait|module|type)[ \t])",
    re.MULTILINE,
)
_DEFINITION_REACH = 4096  # a definition's match may run this far past the slice

Span = tuple[int, int]
# A finder returns the best boundary p with low < p <= high (last) or low <= p < high (first).
_Finder = Callable[[str, int, int], int]


def split(
    sections: Sequence[Section], budget: int, *, overlap: int = 0, code: bool = False
) -> list[Chunk]:
    """Chunks of the sections' text, each within ``budget`` estimated tokens (module doc)."""
    plan = _Plan(sections, budget, overlap, code)
    spans = plan.spans()
    if not spans:
        return [Chunk(0, 1, "", 0, None)]
    return [
        Chunk(i, len(spans), plan.text[a:b], plan.estimate(a, b), plan.pages(a, b))
        for i, (a, b) in enumerate(spans)
    ]


def spans(
    sections: Sequence[Section], budget: int, *, overlap: int = 0, code: bool = False
) -> list[Span]:
    """Where ``split``'s chunks lie: (start, end) offsets into the sections' texts joined with
    ``SECTION_JOINER``; ``split(...)[i].text == joined[start:end]``. Empty for no text."""
    return _Plan(sections, budget, overlap, code).spans()


def reduce_groups(
    token_counts: Sequence[int], budget: int, *, overhead: int = 0
) -> list[list[int]]:
    """Group consecutive items so that each group's total fits ``budget``: for map-reduce.

    ``token_counts`` are the estimated sizes of the partial results, in order; ``overhead`` is
    what each item adds once joined (a part header, the joiner). Greedy, which for consecutive
    groups gives the fewest. An item larger than the budget on its own is a group of one.
    The runner applies this to the reduce step's own results until one group is left; that
    ends because each reduce answer is limited by ``max_tokens``, so totals shrink.
    """
    if budget < 1:
        raise ValueError(f"reduce budget must be at least 1 token, got {budget}")
    if overhead < 0 or any(count < 0 for count in token_counts):
        raise ValueError("token counts and overhead must not be negative")
    groups: list[list[int]] = []
    current: list[int] = []
    total = 0
    for index, count in enumerate(token_counts):
        size = count + overhead
        if current and total + size > budget:
            groups.append(current)
            current, total = [], 0
        current.append(index)
        total += size
    if current:
        groups.append(current)
    return groups


def _skip(pattern: re.Pattern[str], text: str, at: int) -> int:
    match = pattern.match(text, at)
    return match.end() if match else at


# ---- boundary finders: the last boundary in (low, high] --------------------------------------


def _last_paragraph(text: str, low: int, high: int) -> int:
    last = -1
    for match in _PARAGRAPH.finditer(text, low, high):
        last = match.end()
    return last


def _last_definition(text: str, low: int, high: int) -> int:
    last = -1
    for match in _DEFINITION.finditer(text, low + 1, high + _DEFINITION_REACH):
        if match.start() > high:
            break
        last = match.start()
    return last


def _last_line(text: str, low: int, high: int) -> int:
    found = text.rfind("\n", low, high)
    return found + 1 if found >= 0 else -1


def _last_sentence(text: str, low: int, high: int) -> int:
    # Walk back over the sentence-ending characters, nearest first, with str.rfind (a regular
    # expression over the whole slice is several times slower); give up after a few dozen
    # that end no sentence ("3.14", "a.b.c"): the word level is next.
    nearest = {mark: text.rfind(mark, low, high) for mark in _SENTENCE_MARKS}
    for _ in range(_SENTENCE_TRIES):
        mark = max(nearest, key=nearest.__getitem__)
        at = nearest[mark]
        if at < 0:
            return -1
        match = _SENTENCE.match(text, at, high)
        if match is not None:
            return match.end()
        nearest[mark] = text.rfind(mark, low, at)
    return -1


def _last_word(text: str, low: int, high: int) -> int:
    found = max(text.rfind(space, low, high) for space in _WORD_BREAKS)
    return found + 1 if found >= 0 else -1


# ---- and the first boundary in [low, high), for where an overlap starts ----------------------


def _first_paragraph(text: str, low: int, high: int) -> int:
    match = _PARAGRAPH.search(text, low, high)
    return -1 if match is None else match.end()


def _first_definition(text: str, low: int, high: int) -> int:
    match = _DEFINITION.search(text, low, high + _DEFINITION_REACH)
    return -1 if match is None else match.start()


def _first_line(text: str, low: int, high: int) -> int:
    found = text.find("\n", max(low - 1, 0), high)
    return found + 1 if found >= 0 else -1


def _first_sentence(text: str, low: int, high: int) -> int:
    match = _SENTENCE.search(text, low, high)
    return -1 if match is None else match.end()


def _first_word(text: str, low: int, high: int) -> int:
    match = _WORD_START.search(text, low, high)
    return -1 if match is None else match.start()


_PROSE_LAST = (_last_paragraph, _last_line, _last_sentence, _last_word)
_CODE_LAST = (_last_definition, _last_paragraph, _last_line, _last_word)
_PROSE_FIRST = (_first_paragraph, _first_line, _first_sentence, _first_word)
_CODE_FIRST = (_first_definition, _first_paragraph, _first_line, _first_word)


class _Plan:
    """One document's split: the joined text, where its sections lie, and the cuts."""

    def __init__(self, sections: Sequence[Section], budget: int, overlap: int, code: bool):
        if budget < MIN_BUDGET:
            raise ValueError(
                f"chunk budget must be at least {MIN_BUDGET} tokens, got {budget}: "
                "leave more of the context window for the document"
            )
        if not 0 <= overlap <= budget // 2:
            raise ValueError(
                f"chunk overlap must be between 0 and half the budget ({budget // 2} tokens), "
                f"got {overlap}"
            )
        self.budget = budget
        self.overlap = overlap
        self.sections = tuple(sections)
        self.text = SECTION_JOINER.join(section.text for section in self.sections)
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.content_ends: list[int] = []  # before the section's trailing white space
        at = 0
        for section in self.sections:
            self.starts.append(at)
            self.ends.append(at + len(section.text))
            self.content_ends.append(at + len(section.text.rstrip()))
            at += len(section.text) + len(SECTION_JOINER)
        self.end = len(self.text.rstrip())  # where the last chunk ends
        self.last_finders = _CODE_LAST if code else _PROSE_LAST
        self.first_finders = _CODE_FIRST if code else _PROSE_FIRST
        self._index: TokenIndex | None = None
        self._fits: dict[int, bool] = {}

    @property
    def index(self) -> TokenIndex:
        if self._index is None:
            self._index = TokenIndex(self.text)
        return self._index

    def estimate(self, start: int, end: int) -> int:
        return self.index.estimate(start, end)

    def pages(self, start: int, end: int) -> tuple[int, int] | None:
        first, last = bisect_right(self.ends, start), bisect_left(self.starts, end)
        numbers = [s.page for s in self.sections[first:last] if s.page is not None]
        return (min(numbers), max(numbers)) if numbers else None

    def content_start(self, at: int) -> int | None:
        """The start of the next chunk's text from ``at``: past blank lines, not indentation."""
        text = self.text
        start = _skip(_BLANK_LINES, text, at)
        if start > 0 and text[start - 1] != "\n":  # mid-line: no indentation to keep
            start = _skip(_SPACES, text, start)
        return start if start < self.end else None

    def first_visible(self, at: int) -> int:
        match = _VISIBLE.search(self.text, at)
        return match.start() if match else len(self.text)

    def fits_alone(self, section: int) -> bool:
        """Does this section, as a chunk of its own, fit the budget?"""
        if section not in self._fits:
            start = self.content_start(self.starts[section])
            end = self.content_ends[section]
            fits = start is None or start >= end or self.index.estimate(start, end) <= self.budget
            self._fits[section] = fits
        return self._fits[section]

    # ---- the cuts -----------------------------------------------------------------------

    def spans(self) -> list[Span]:
        start = self.content_start(0)
        if start is None:
            return []
        if self.index.estimate(start, self.end) <= self.budget:
            return [(start, self.end)]
        spans: list[Span] = []
        previous: Span | None = None  # the previous chunk's new text
        while start is not None:
            begin = start
            if previous is not None and self.overlap:
                overlapped = self.overlap_start(*previous)
                begin = start if overlapped is None else overlapped
            window = self.index.longest_fit(begin, self.budget, self.end)
            if begin < start and self.overlap_hurts(start, window):
                begin, window = start, self.index.longest_fit(start, self.budget, self.end)
            if window >= self.end:
                spans.append((begin, self.end))
                break
            cut = self.cut(start, window)
            spans.append((begin, begin + len(self.text[begin:cut].rstrip())))
            previous = (start, cut)
            start = self.content_start(cut)
        return spans

    def overlap_hurts(self, start: int, window: int) -> bool:
        """Would starting with the overlap split a page that fits on its own, or leave no
        room for new text?"""
        if window <= self.first_visible(start):
            return True
        section = bisect_right(self.starts, start) - 1
        return self.content_ends[section] > window and self.fits_alone(section)

    def cut(self, start: int, window: int) -> int:
        """Where a chunk whose new text starts at ``start`` ends, the slice fitting up to
        ``window``: the best boundary (module doc)."""
        floor = self.first_visible(start)
        half = floor + int((window - floor) * _FILL)
        low, section_cut = floor, -1
        last = bisect_right(self.content_ends, window) - 1  # the last section that ends in it
        if last >= 0 and self.content_ends[last] > floor:
            section_cut = self.content_ends[last]
            following = last + 1
            if (
                window < self.starts[following]  # the slice ends between the two
                or self.fits_alone(following)
                or section_cut >= half
            ):
                return section_cut
            low = section_cut  # the next page is split anyway: cut inside it if that fills more
        for finder in self.last_finders:
            found = finder(self.text, max(low, half), window)
            if found > max(low, half):
                return found
        if section_cut >= 0:
            return section_cut
        for finder in self.last_finders:
            found = finder(self.text, low, window)
            if found > low:
                return found
        return window

    def overlap_start(self, start: int, cut: int) -> int | None:
        """Where a chunk starts that repeats the end of the previous one's new text
        ``[start, cut)``: within ``overlap`` tokens of ``cut``, at the best boundary; None
        if no boundary is close enough."""
        # The earliest start whose repeat fits, after ``start``: never the whole previous chunk.
        low, high = start + 1, cut
        while low < high:
            middle = (low + high) // 2
            if self.index.estimate(middle, cut) <= self.overlap:
                high = middle
            else:
                low = middle + 1
        earliest = low
        halfway = earliest + (cut - earliest) // 2
        section = bisect_left(self.starts, earliest)
        found = -1
        if section < len(self.starts) and self.starts[section] <= halfway:
            found = self.starts[section]
        for finder in self.first_finders:
            if found >= 0:
                break
            found = finder(self.text, earliest, cut)
            found = found if found <= halfway else -1
        if found < 0:
            found = _first_word(self.text, earliest, cut)
        begin = self.content_start(found) if 0 <= found < cut else None
        return begin if begin is not None and begin < cut else None
