"""The dashboard's "internet today" section: the daily status the morning and evening reports
send (``gateway.health.today``), drawn for the responsible person, with the uplink's traffic
per hour as a chart.

Only an admin that runs beside the gateway (``kalkan run`` passes ``KALKAN_CONFIG``) knows
the gateway's status files; an admin alone shows no section. The status is read at most
every ``TODAY_CACHE_SECONDS`` (15 s) per school, as the rest of the dashboard's figures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import current_app, g, render_template
from markupsafe import Markup

from admin_ui.charts import round_up_scale
from admin_ui.db import get_db
from gateway.health.today import TodayStatus, today_status

CACHE_SECONDS = 15.0
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 140, 44, 22, 8


@dataclass(frozen=True, slots=True)
class TrafficBar:
    hour: int
    mbit: float | None
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True, slots=True)
class TrafficChart:
    bars: list[TrafficBar]
    top: int  # the scale's top, Mbit/s
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    baseline: float = HEIGHT - BOTTOM


def traffic_chart(hourly_mbit: list[float | None]) -> TrafficChart:
    """Bars of the average Mbit/s per hour of the school day (None: no sample that hour)."""
    peak = max((v for v in hourly_mbit if v is not None), default=0.0)
    top = round_up_scale(peak)  # 1, 2 or 5 times a power of ten, at least 1 Mbit/s
    plot = HEIGHT - BOTTOM - TOP
    step = (WIDTH - LEFT) / max(len(hourly_mbit), 1)
    bars = []
    for hour, mbit in enumerate(hourly_mbit):
        height = plot * (mbit or 0.0) / top
        bars.append(TrafficBar(hour, mbit, x=round(LEFT + hour * step + step * 0.1, 1),
                               y=round(HEIGHT - BOTTOM - height, 1),
                               width=round(step * 0.8, 1), height=round(height, 1)))
    return TrafficChart(bars, top)


def today_section() -> Markup | None:
    """The rendered section, or None when this admin runs without the gateway."""
    config = current_app.config.get("KALKAN_CONFIG")
    if config is None:
        return None
    cache = current_app.extensions.setdefault("kalkan.today", {})
    key = g.get("school")
    cached = cache.get(key)
    if cached is None or time.monotonic() - cached[0] > CACHE_SECONDS:
        cached = cache[key] = (time.monotonic(), today_status(config, get_db()))
    status: TodayStatus = cached[1]
    return Markup(render_template("dashboard/_today.html", today=status,
                                  chart=traffic_chart(status.hourly_mbit)))
