"""Charts drawn as inline SVG on the server: no script, no network, a few kilobytes each.

Three shapes cover the page: a line over time against a limit with marks below it, a
histogram with marked quantiles, and labelled horizontal bars. Every piece of text goes
through ``escape``: labels can be file names or model output (control characters are
written as the console writes them). The charts scale with the page's width
(``viewBox``), print as vectors, and carry an ``aria-label``; the numbers they show are
also written as text beside them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup
from markupsafe import escape as escape_markup

from pipeline.core.logs import escape_controls

WIDTH, LEFT, RIGHT, TOP = 720, 64, 16, 12
_ANCHORS = {0.0: "start", 0.5: "middle", 1.0: "end"}  # axis labels kept inside the chart
MARK_COLOURS = {"429": "#c62828", "retry": "#ef6c00", "failed": "#6a1b9a"}


@dataclass(frozen=True)
class Marks:
    """Counts per sample of events to mark under a time chart, by what happened."""

    name: str  # a key of MARK_COLOURS
    counts: Sequence[int]


def escape(text: str) -> Markup:
    """Text in a chart: markup escaped, control characters written as the console does."""
    return escape_markup(escape_controls(text))


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _svg(height: int, label: str, body: list[str], css_class: str, data: str = "") -> Markup:
    return Markup(
        f'<svg class="{css_class}" viewBox="0 0 {WIDTH} {height}" role="img"{data} '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(label)}</title>{''.join(body)}</svg>"
    )


def _axis(top: float, height: float, highest: float, fmt: str = "{:,.0f}") -> list[str]:
    parts = []
    for share in (0.0, 0.5, 1.0):
        y = top + height * (1 - share)
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{_num(y)}" y2="{_num(y)}"/>'
            f'<text class="tick" x="{LEFT - 6}" y="{_num(y + 4)}" text-anchor="end">'
            f"{escape(fmt.format(highest * share))}</text>"
        )
    return parts


def clock(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _moment(seconds: float, span: float) -> str:
    """A time axis label: seconds for a short run, minutes and hours for a night."""
    if span < 10:
        return f"{seconds:.2f} s"
    return f"{seconds:.0f} s" if span < 120 else clock(seconds)


def over_time(
    at: Sequence[float],
    values: Sequence[float],
    *,
    label: str,
    limit: float | None = None,
    marks: Sequence[Marks] = (),
) -> Markup:
    """``values`` at the moments ``at`` (seconds from the start) as a line, the limit as
    a dashed line, and a strip per kind of mark with a tick where each happened."""
    plot_h = 150
    highest = max([*values, limit or 0, 1])
    span = max(at[-1], 1e-9)
    inner = WIDTH - LEFT - RIGHT

    def x(t: float) -> float:
        return LEFT + inner * t / span

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / highest)

    points = " ".join(f"{_num(x(t))},{_num(y(v))}" for t, v in zip(at, values, strict=True))
    body = _axis(TOP, plot_h, highest)
    body.append(f'<polyline class="series" fill="none" points="{LEFT},{_num(y(0))} {points}"/>')
    if limit:
        body.append(
            f'<line class="limit" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{_num(y(limit))}" '
            f'y2="{_num(y(limit))}"/><text class="limit-label" x="{WIDTH - RIGHT}" '
            f'y="{_num(y(limit) - 4)}" text-anchor="end">limit {limit:,.0f}</text>'
        )
    row = TOP + plot_h + 24
    for mark in marks:
        body.append(_mark_row(mark, at, x, row))
        row += 16
    for share in (0.0, 0.5, 1.0):
        body.append(
            f'<text class="tick" x="{_num(LEFT + inner * share)}" y="{row + 4}" '
            f'text-anchor="{_ANCHORS[share]}">{_moment(span * share, span)}</text>'
        )
    # The time scale, for whoever reads the chart back (the tests do).
    data = f' data-span="{span:.6f}" data-step="{span / len(at):.6f}"'
    return _svg(row + 10, label, body, "chart time", data)


def _mark_row(mark: Marks, at: Sequence[float], place: Callable[[float], float], row: int) -> str:
    """One tick per sample that had events of this kind: a single path (a few bytes a
    tick, so a night with a 429 in every sample stays small), the counts in order in
    ``data-counts`` and their total in ``data-count``."""
    marked = [(t, count) for t, count in zip(at, mark.counts, strict=True) if count]
    ticks = "".join(f"M{_num(place(t))} {row - 9}v10" for t, _ in marked)
    return (
        f'<g class="marks" data-kind="{mark.name}" data-count="{sum(mark.counts)}" '
        f'data-counts="{" ".join(str(count) for _, count in marked)}">'
        f'<text class="tick" x="{LEFT - 6}" y="{row}" text-anchor="end">{mark.name}</text>'
        f'<path d="{ticks}" stroke="{MARK_COLOURS[mark.name]}" stroke-width="3"/></g>'
    )


def histogram(values: Sequence[float], *, label: str, quantiles: dict[str, float]) -> Markup:
    """``values`` in 24 bins from 0 to the largest, with each quantile marked."""
    plot_h, bins = 150, 24
    top = max(values) if values else 1.0
    width = max(top, 1e-9) / bins
    counts = [0] * bins
    for value in values:
        counts[min(bins - 1, int(value / width))] += 1
    highest = max([*counts, 1])
    inner = WIDTH - LEFT - RIGHT
    body = _axis(TOP, plot_h, highest)
    for n, count in enumerate(counts):
        h = plot_h * count / highest
        body.append(
            f'<rect class="bar" x="{_num(LEFT + inner * n / bins + 1)}" '
            f'y="{_num(TOP + plot_h - h)}" width="{_num(inner / bins - 2)}" height="{_num(h)}">'
            f"<title>{count:,} between {width * n:.2f} and {width * (n + 1):.2f} s</title></rect>"
        )
    for n, (name, value) in enumerate(quantiles.items()):
        qx = LEFT + inner * min(value / max(top, 1e-9), 1.0)
        right = qx > LEFT + inner * 0.75  # near the right edge: the label goes left of it
        body.append(
            f'<line class="quantile" x1="{_num(qx)}" x2="{_num(qx)}" y1="{TOP}" '
            f'y2="{TOP + plot_h}"/><text class="quantile-label" '
            f'x="{_num(qx - 4 if right else qx + 4)}" y="{TOP + 10 + 14 * n}" '
            f'text-anchor="{"end" if right else "start"}">{escape(name)} {value:.2f} s</text>'
        )
    base = TOP + plot_h + 16
    for share in (0.0, 0.5, 1.0):
        body.append(
            f'<text class="tick" x="{_num(LEFT + inner * share)}" y="{base}" '
            f'text-anchor="{_ANCHORS[share]}">{top * share:.2f} s</text>'
        )
    return _svg(base + 8, label, body, "chart histogram")


def bars(items: Sequence[tuple[str, float]], *, label: str, fmt: str = "{:,.0f}") -> Markup:
    """One horizontal bar per ``(name, value)``, the name on the left, the value on the
    right: the names may be anything (escaped), the values are numbers."""
    row_h, name_w, value_w = 22, 220, 110
    highest = max([value for _, value in items] + [1e-12])
    inner = WIDTH - name_w - value_w
    body = []
    for n, (name, value) in enumerate(items):
        y = TOP + n * row_h
        shown = name if len(name) <= 32 else name[:31] + "\u2026"
        body.append(
            f"<g><title>{escape(name)}</title>"
            f'<text class="name" x="{name_w - 8}" y="{y + 15}" text-anchor="end">'
            f"{escape(shown)}</text></g>"
            f'<rect class="bar" x="{name_w}" y="{y + 3}" height="16" '
            f'width="{_num(max(inner * value / highest, 1.0 if value else 0.0))}"/>'
            f'<text class="value" x="{WIDTH - value_w + 8}" y="{y + 15}">'
            f"{escape(fmt.format(value))}</text>"
        )
    return _svg(TOP + len(items) * row_h + 8, label, body, "chart bars")
