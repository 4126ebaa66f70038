"""When the nightly blocklist update runs."""

from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

import pytest

from blocklists.schedule import next_update

BISHKEK = ZoneInfo("Asia/Bishkek")


@pytest.mark.parametrize(("now", "expected"), [
    (dt.datetime(2026, 11, 25, 1, 0, tzinfo=BISHKEK), dt.datetime(2026, 11, 25, 3, 30)),
    (dt.datetime(2026, 11, 25, 3, 30, tzinfo=BISHKEK), dt.datetime(2026, 11, 26, 3, 30)),
    (dt.datetime(2026, 11, 25, 14, 0, tzinfo=BISHKEK), dt.datetime(2026, 11, 26, 3, 30)),
])
def test_the_update_runs_at_the_configured_local_time(now, expected):
    run = next_update(now, "03:30", 0)
    assert run.replace(tzinfo=None) == expected and run.tzinfo is BISHKEK


def test_jitter_spreads_the_schools_of_a_district_over_the_window():
    now = dt.datetime(2026, 11, 25, 12, 0, tzinfo=BISHKEK)
    runs = {next_update(now, "03:30", 60, random.Random(seed)) for seed in range(50)}
    earliest = dt.datetime(2026, 11, 26, 3, 30, tzinfo=BISHKEK)
    assert all(earliest <= r <= earliest + dt.timedelta(minutes=60) for r in runs)
    assert len({r.minute for r in runs}) > 10
