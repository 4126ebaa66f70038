"""Bar charts as geometry for inline SVG: no JavaScript library, nothing from a CDN.

The template draws ``<rect>``s with classes (colours are in kalkan.css: the CSP allows no
style attribute). Each bar is a stack: allowed below, blocked on top.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH, HEIGHT = 720, 180
LEFT, BOTTOM, TOP = 44, 22, 8  # room for the scale on the left and the labels below


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    allowed: int
    blocked: int
    x: float
    width: float
    allowed_y: float
    allowed_height: float
    blocked_y: float
    blocked_height: float
    show_label: bool


@dataclass(frozen=True, slots=True)
class Chart:
    bars: list[Bar]
    peak: int
    ticks: list[tuple[float, int]]  # (y, value) of the scale lines
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    baseline: float = HEIGHT - BOTTOM


def stacked_bars(points: Sequence[tuple[str, int, int]], label_every: int = 1) -> Chart:
    """``points``: (label, allowed, blocked) from left to right."""
    peak = max((a + b for _, a, b in points), default=0)
    scale_top = round_up_scale(peak)
    plot = HEIGHT - BOTTOM - TOP
    step = (WIDTH - LEFT) / max(len(points), 1)
    base = HEIGHT - BOTTOM
    bars = []
    for i, (label, allowed, blocked) in enumerate(points):
        h_allowed = plot * allowed / scale_top
        h_blocked = plot * blocked / scale_top
        bars.append(Bar(label, allowed, blocked, x=round(LEFT + i * step + step * 0.1, 1),
                        width=round(step * 0.8, 1), allowed_y=round(base - h_allowed, 1),
                        allowed_height=round(h_allowed, 1),
                        blocked_y=round(base - h_allowed - h_blocked, 1),
                        blocked_height=round(h_blocked, 1), show_label=i % label_every == 0))
    ticks = [(round(base - plot * f, 1), int(scale_top * f)) for f in (0.5, 1.0)]
    return Chart(bars, peak, ticks)


def round_up_scale(value: float) -> int:
    """A round top for the scale (1, 2 or 5 times a power of ten), at least 1."""
    top = 1
    while True:
        for m in (1, 2, 5):
            if top * m >= value:
                return top * m
        top *= 10
