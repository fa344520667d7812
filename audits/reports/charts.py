"""Charts drawn by the node as SVG: a line chart and a bar chart, with axes and labels.

Each chart is one <svg> sized by its viewBox (it shrinks to a 360 px phone), with a <title>
and a <desc> that a screen reader says instead of the picture (the page shows the figures
as tables too). No script, no style attribute (the pages' Content-Security-Policy forbids
inline styles): colours are presentation attributes. The same text goes into the PDF.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

WIDTH, HEIGHT = 360, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 10, 30, 40  # margins: the axes' labels and the legend
COLOURS = ("#1f5f8b", "#b8541a", "#2e7d32", "#6a3d9a")  # dark enough on white (WCAG AA)
FONT = 'font-family="Helvetica" font-size="10"'


@dataclass(frozen=True)
class Series:
    """One line, or one colour of bars: its name (the legend) and a value per point."""

    name: str
    values: Sequence[int]


def _nice_step(span: int, ticks: int = 4) -> int:
    """A round step (1, 2 or 5 times a power of ten) giving at most `ticks` intervals."""
    raw = max(span, 1) / ticks
    power = 1
    while power * 10 <= raw:
        power *= 10
    for factor in (1, 2, 5, 10):
        if power * factor >= raw:
            return power * factor
    return power * 10


def y_scale(values: Sequence[int]) -> tuple[int, int, int]:
    """(bottom, top, step) of the vertical axis: from zero (or the lowest value below it) to
    a round value at or above the highest."""
    low, high = min([0, *values]), max([0, *values])
    step = _nice_step(high - low)
    bottom = -(-low // step) * step if low >= 0 else (low // step) * step
    top = max(-(-high // step) * step, bottom + step)
    return bottom, top, step


def _y(value: int, bottom: int, top: int) -> float:
    plot = HEIGHT - TOP - BOTTOM
    return round(TOP + plot - (value - bottom) / (top - bottom) * plot, 1)


def _open(chart_id: str, title: str, desc: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" class="chart" role="img" id={quoteattr(chart_id)} '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc">',
        f'<title id="{chart_id}-title">{escape(title)}</title>',
        f'<desc id="{chart_id}-desc">{escape(desc)}</desc>',
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
    ]


def _y_axis(bottom: int, top: int, step: int, label: Callable[[int], str]) -> list[str]:
    parts = ['<g class="y-axis">']
    for tick in range(bottom, top + 1, step):
        y = _y(tick, bottom, top)
        parts.append(
            f'<line x1="{LEFT}" y1="{y}" x2="{WIDTH - RIGHT}" y2="{y}" stroke="#d0d0d0" '
            'stroke-width="0.5"/>'
        )
        parts.append(
            f'<text x="{LEFT - 4}" y="{y + 3}" text-anchor="end" {FONT} fill="#333333">'
            f"{escape(label(tick))}</text>"
        )
    base = _y(max(bottom, 0) if bottom <= 0 <= top else bottom, bottom, top)
    parts.append(
        f'<line x1="{LEFT}" y1="{base}" x2="{WIDTH - RIGHT}" y2="{base}" stroke="#333333"/>'
    )
    parts.append(
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}" stroke="#333333"/>'
    )
    parts.append("</g>")
    return parts


def _x_labels(labels: Sequence[str], xs: Sequence[float], most: int = 6) -> list[str]:
    """At most `most` labels along the horizontal axis, evenly picked, the last one always."""
    if not labels:
        return []
    every = max(1, -(-len(labels) // most))
    picked = list(range(0, len(labels), every))
    last = len(labels) - 1
    if picked[-1] != last:
        if last - picked[-1] < every / 2 and len(picked) > 1:
            picked.pop()  # too close to the last label: they would overlap
        picked.append(last)
    parts = ['<g class="x-axis">']
    for i in picked:
        parts.append(
            f'<text x="{round(xs[i], 1)}" y="{HEIGHT - BOTTOM + 13}" text-anchor="middle" '
            f'{FONT} fill="#333333">{escape(labels[i])}</text>'
        )
    parts.append("</g>")
    return parts


def _legend(series: Sequence[Series]) -> list[str]:
    parts = ['<g class="legend">']
    x = LEFT
    for i, one in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        parts.append(f'<rect x="{x}" y="{HEIGHT - 14}" width="10" height="10" fill="{colour}"/>')
        parts.append(
            f'<text x="{x + 14}" y="{HEIGHT - 5}" {FONT} fill="#333333">{escape(one.name)}</text>'
        )
        x += 24 + 6 * len(one.name)
    parts.append("</g>")
    return parts


def line_chart(
    chart_id: str,
    title: str,
    desc: str,
    x_labels: Sequence[str],
    series: Sequence[Series],
    label: Callable[[int], str],
) -> str:
    """Lines over time (a point per label), each series in its colour, as SVG text."""
    values = [v for one in series for v in one.values]
    bottom, top, step = y_scale(values)
    count = len(x_labels)
    plot = WIDTH - LEFT - RIGHT
    xs = [LEFT + (plot * i / (count - 1) if count > 1 else plot / 2) for i in range(count)]
    parts = _open(chart_id, title, desc)
    parts += _y_axis(bottom, top, step, label)
    parts += _x_labels(x_labels, xs)
    for i, one in enumerate(series):
        points = " ".join(
            f"{round(x, 1)},{_y(v, bottom, top)}" for x, v in zip(xs, one.values, strict=True)
        )
        parts.append(
            f'<polyline class="line" data-series={quoteattr(one.name)} points="{points}" '
            f'fill="none" stroke="{COLOURS[i % len(COLOURS)]}" stroke-width="2"/>'
        )
    parts += _legend(series)
    parts.append("</svg>")
    return "\n".join(parts)


def bar_chart(
    chart_id: str,
    title: str,
    desc: str,
    categories: Sequence[str],
    series: Sequence[Series],
    label: Callable[[int], str],
) -> str:
    """Bars side by side for each category (a month...), a colour per series, as SVG text."""
    values = [v for one in series for v in one.values]
    bottom, top, step = y_scale(values)
    plot = WIDTH - LEFT - RIGHT
    slot = plot / max(len(categories), 1)
    bar = slot * 0.8 / max(len(series), 1)
    centres = [LEFT + slot * (i + 0.5) for i in range(len(categories))]
    parts = _open(chart_id, title, desc)
    parts += _y_axis(bottom, top, step, label)
    parts += _x_labels(categories, centres)
    zero = _y(0, bottom, top)
    for s, one in enumerate(series):
        parts.append(f'<g class="bars" data-series={quoteattr(one.name)}>')
        for c, value in enumerate(one.values):
            x = round(centres[c] - slot * 0.4 + s * bar, 1)
            y = _y(value, bottom, top)
            parts.append(
                f'<rect x="{x}" y="{min(y, zero)}" width="{round(bar, 1)}" '
                f'height="{round(abs(zero - y), 1)}" fill="{COLOURS[s % len(COLOURS)]}" '
                f'data-value="{value}"><title>{escape(categories[c])}: '
                f"{escape(label(value))}</title></rect>"
            )
        parts.append("</g>")
    parts += _legend(series)
    parts.append("</svg>")
    return "\n".join(parts)
