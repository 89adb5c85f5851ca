"""The dashboard's charts: inline SVG drawn here (no script, no file, nothing from another
host), over equal time `Buckets`."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from markupsafe import Markup

from computeshare.format import duration, utc_text


@dataclass(frozen=True)
class Buckets:
    """Equal time buckets covering [first, last]: hours, days, weeks, months or years."""

    start: int
    size: int
    count: int

    @classmethod
    def covering(cls, times: Iterable[int], most: int = 24) -> Buckets | None:
        times = [int(t) for t in times if t]
        if not times:
            return None
        first, last = min(times), max(times)
        for size in (3_600, 6 * 3_600, 86_400, 7 * 86_400, 30 * 86_400, 365 * 86_400):
            start = first - first % size
            count = (last - start) // size + 1
            if count <= most:
                return cls(start, size, count)
        size = math.ceil((last - first + 1) / most)
        return cls(first, size, (last - first) // size + 1)

    def of(self, timestamp: int) -> int:
        return min(max((int(timestamp) - self.start) // self.size, 0), self.count - 1)

    def label(self, i: int) -> str:
        moment = datetime.fromtimestamp(self.start + i * self.size, UTC)
        return moment.strftime("%Y-%m-%d %H:%M" if self.size < 86_400 else "%Y-%m-%d")

    def totals(self, pairs: Iterable[tuple[int, float]]) -> list[float]:
        sums = [0.0] * self.count
        for timestamp, value in pairs:
            sums[self.of(timestamp)] += value
        return sums


WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 14, 40


def _nice(top: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above `top` (at least 1)."""
    if top <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(top))
    for step in (1, 2, 5, 10):
        if step * power >= top:
            return float(step * power)
    return float(10 * power)


def _number(value: float) -> str:
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _frame(chart_id: str, title: str, description: str, body: list[str], ymax: float) -> Markup:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [
        Markup(
            '<svg class="chart" viewBox="0 0 {w} {h}" role="img" '
            'aria-labelledby="{id}-title {id}-desc" font-size="13" '
            'font-family="system-ui, sans-serif">'
        ).format(w=WIDTH, h=HEIGHT, id=chart_id),
        Markup('<title id="{}-title">{}</title>').format(chart_id, title),
        Markup('<desc id="{}-desc">{}</desc>').format(chart_id, description),
    ]
    for fraction in (0, 0.5, 1):
        y = TOP + plot_h * (1 - fraction)
        parts.append(
            Markup(
                '<line x1="{x1}" x2="{x2}" y1="{y:.1f}" y2="{y:.1f}" stroke="currentColor" '
                'stroke-opacity="{o}"/><text x="{tx}" y="{ty:.1f}" text-anchor="end" '
                'fill="currentColor">{label}</text>'
            ).format(
                x1=LEFT,
                x2=WIDTH - RIGHT,
                y=y,
                o=0.6 if fraction == 0 else 0.15,
                tx=LEFT - 6,
                ty=y + 4,
                label=_number(ymax * fraction),
            )
        )
    parts.extend(Markup(p) for p in body)
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def _x_labels(buckets: Buckets) -> list[Markup]:
    plot_w = WIDTH - LEFT - RIGHT
    step = max(1, math.ceil(buckets.count / 6))
    labels = []
    for i in range(0, buckets.count, step):
        x = LEFT + plot_w * (i + 0.5) / buckets.count
        labels.append(
            Markup(
                '<text x="{:.1f}" y="{}" text-anchor="middle" fill="currentColor">{}</text>'
            ).format(x, HEIGHT - BOTTOM + 16, buckets.label(i))
        )
    return labels


def bar_chart(
    chart_id: str,
    title: str,
    buckets: Buckets,
    series: dict[str, list[float]],
    colours: dict[str, str],
    unit: str,
) -> Markup:
    """Stacked bars, one per bucket, one colour per series; each bar has a tooltip."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    totals = [sum(values[i] for values in series.values()) for i in range(buckets.count)]
    ymax = _nice(max(totals, default=0))
    slot = plot_w / buckets.count
    body: list[Markup] = []
    for i in range(buckets.count):
        height_so_far = 0.0
        for name, values in series.items():
            value = values[i]
            if not value:
                continue
            h = value / ymax * plot_h
            body.append(
                Markup(
                    '<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{c}">'
                    "<title>{label}: {value} {unit} {name}</title></rect>"
                ).format(
                    x=LEFT + i * slot + slot * 0.15,
                    y=TOP + plot_h - height_so_far - h,
                    w=slot * 0.7,
                    h=h,
                    c=colours.get(name, "#2f6fd1"),
                    label=buckets.label(i),
                    value=_number(value),
                    unit=unit,
                    name=name,
                )
            )
            height_so_far += h
    body.extend(_x_labels(buckets))
    what = ", ".join(series)
    description = f"{unit} per {duration(buckets.size)} from {buckets.label(0)}: {what}"
    return _frame(chart_id, title, description, body, ymax)


def step_chart(
    chart_id: str, title: str, buckets: Buckets, points: list[tuple[int, float]], colour: str
) -> Markup:
    """A value over time as a step line (the treasury's balance), a dot at each reading."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    ymax = _nice(max((v for _, v in points), default=0))
    first, last = buckets.start, buckets.start + buckets.count * buckets.size

    def x(t: int) -> float:
        return LEFT + plot_w * (t - first) / max(last - first, 1)

    def y(v: float) -> float:
        return TOP + plot_h - v / ymax * plot_h

    body: list[Markup] = []
    if points:
        path = [f"M{x(points[0][0]):.1f},{y(points[0][1]):.1f}"]
        for t, v in points[1:]:
            path.append(f"H{x(t):.1f}V{y(v):.1f}")
        path.append(f"H{x(last):.1f}")
        body.append(
            Markup('<path d="{}" fill="none" stroke="{}" stroke-width="2"/>').format(
                "".join(path), colour
            )
        )
        for t, v in points:
            body.append(
                Markup(
                    '<circle cx="{:.1f}" cy="{:.1f}" r="3" fill="{}"><title>{}: {} tokens'
                    "</title></circle>"
                ).format(x(t), y(v), colour, utc_text(t), _number(v))
            )
    body.extend(_x_labels(buckets))
    return _frame(chart_id, title, "tokens at each reading over time", body, ymax)
