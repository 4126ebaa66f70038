"""The detection rules on stored events, without a database: what counts as an attempt, what
is noise, when an alert is raised and how it is deduplicated."""

from __future__ import annotations

import itertools

import pytest

from gateway.alerts.noise import NoiseFilter
from gateway.alerts.rules import Detector, RuleSettings, StoredEvent
from gateway.alerts.search_terms import SearchTerms, shipped_terms

IDS = itertools.count(1)
T0 = 1_790_000_000.0


def stored(host: str, t: float, *, channel: str = "dns", category: str | None = "adult",
           reason: str = "mandatory_category", noise: str | None = None,
           bypass: bool = False, device: str = "lab1-pc01", session: int | None = 5,
           group: str = "middle", flag: str | None = None,
           action: str = "block") -> StoredEvent:
    return StoredEvent(next(IDS), T0 + t, channel, "10.10.1.101", host, action, reason,
                       category, group, "lab1", device, session, "7B", None, bypass, noise,
                       None, flag)


def run(events: list[StoredEvent], **settings: object) -> list[tuple[str, str, int]]:
    detector = Detector(RuleSettings(**settings), staff_groups={"teachers"})  # type: ignore
    updates = detector.feed(events)
    return [(u.rule, u.category, u.new_attempts) for u in updates]


ADULT = ["pornhub.com", "xvideos.com", "xhamster.com"]


@pytest.mark.parametrize(("events", "expected"), [
    # Looked up once each, never connected to: prefetch or background, not attempts.
    ([stored(h, i) for i, h in enumerate(ADULT)], []),
    # Looked up and connected to (the block page): three attempts → one alert, high.
    ([e for i, h in enumerate(ADULT) for e in (stored(h, 10 * i),
                                                 stored(h, 10 * i + 0.1, channel="tls"))],
     [("repeated_attempts", "adult", 3)]),
    # DNS only, but each asked for again later: a person retrying.
    ([stored(h, 10 * i + d) for d in (0, 5) for i, h in enumerate(ADULT[:2])],
     [("repeated_attempts", "adult", 4)]),
    # A and AAAA within episode_seconds are one attempt, not two.
    ([stored("pornhub.com", t, channel=c) for t, c in ((0, "dns"), (0.01, "dns"),
                                                       (0.1, "tls"))], []),
    # Ads, telemetry and prefetches never count, however many.
    ([stored(f"ad{i}.example", i * 10, channel="tls", category="ads", reason="category",
             noise="ads") for i in range(8)], []),
    ([stored("vortex.data.microsoft.com", i * 10, channel="tls", noise="telemetry",
             category=None, reason="group_default") for i in range(8)], []),
    ([stored(h, 10 * i, channel="tls", noise="prefetch") for i, h in enumerate(ADULT)], []),
    # A third-party resource of an allowed page: only mandatory and repeated counts.
    ([stored(f"w{i}.example", 10 * i, channel="tls", category="social", reason="category",
             noise="third_party") for i in range(6)], []),
    ([stored(h, 10 * i + d, noise="third_party") for d in (0, 5) for i, h in
      enumerate(ADULT[:2])], [("repeated_attempts", "adult", 4)]),
    # Five distinct sites of non-serious categories: many_sites, low.
    ([stored(f"game{i}.example", 10 * i, channel="tls", category="games", reason="category")
      for i in range(5)], [("many_sites", "various", 5)]),
    ([stored(f"game{i}.example", 10 * i, channel="tls", category="games", reason="category")
      for i in range(4)], []),
    # Blocked because no session is open: says nothing about the student.
    ([stored(f"game{i}.example", 10 * i, channel="tls", category=None, reason="no_session")
      for i in range(8)], []),
    # One bypass attempt is enough.
    ([stored("hidemy.name", 0, channel="tls", category="proxy_vpn", reason="category",
             bypass=True)], [("bypass", "bypass", 1)]),
    # A listed search, allowed but flagged by the writer.
    ([stored("google.kg", 0, channel="http", action="allow", category=None,
             reason="category", flag="search_term")], [("search_terms", "search_terms", 1)]),
    # Teachers are not the subject of regulation 2.7.
    ([e for i, h in enumerate(ADULT) for e in (stored(h, 10 * i, group="teachers"),
                                                 stored(h, 10 * i, channel="tls",
                                                        group="teachers"))], []),
    # Serious categories too, with medium severity (see the store); spread beyond the
    # window they do not add up.
    ([stored(f"bet{i}.example", 400 * i, channel="tls", category="gambling",
             reason="category") for i in range(3)], []),
])
def test_what_counts(events: list[StoredEvent], expected: list[tuple[str, str, int]]) -> None:
    assert run(events) == expected


def test_one_alert_per_subject_category_and_session_growing_with_evidence() -> None:
    detector = Detector(RuleSettings())
    first = detector.feed([e for i, h in enumerate(ADULT) for e in (
        stored(h, 10 * i), stored(h, 10 * i + 0.1, channel="tls"))])
    [alert] = first
    later = detector.feed([stored("pornhub.com", 60, channel="tls")])
    assert [(u.key, u.new_attempts) for u in later] == [(alert.key, 1)]
    other_session = detector.feed([stored("pornhub.com", 70, channel="tls", session=6)])
    assert other_session == []  # a new session starts counting afresh
    assert alert.key == "device:lab1-pc01|adult|session:5"


def test_severity_rises_after_escalate_after_attempts() -> None:
    s = RuleSettings(escalate_after=10)
    assert s.severity("repeated_attempts", "gambling", 3).value == "medium"
    assert s.severity("repeated_attempts", "gambling", 10).value == "high"
    assert s.severity("repeated_attempts", "adult", 3).value == "high"
    assert s.severity("many_sites", "various", 12).value == "medium"


def test_noise_filter_marks_ads_telemetry_prefetch_and_page_resources() -> None:
    noise = NoiseFilter.with_shipped_list(third_party_seconds=2.0)
    assert noise.classify("c", 0, "x.ads", "ads", None, False)[0] == "ads"
    assert noise.classify("c", 0, "v10.events.data.microsoft.com", None, None, False)[0] == \
        "telemetry"
    assert noise.classify("c", 0, "pornhub.com", "adult", None, True)[0] == "prefetch"
    noise.allowed("c", 100.0, "lib.kg")
    assert noise.classify("c", 101.5, "facebook.com", "social", None, False) == \
        ("third_party", "lib.kg")
    assert noise.classify("c", 103.0, "facebook.com", "social", None, False) == (None, None)
    assert noise.classify("d", 101.0, "facebook.com", "social", None, False) == (None, None)


@pytest.mark.parametrize(("url", "term"), [
    ("https://www.google.kg/search?q=How+to+make+a+BOMB%3F", "how to make a bomb"),
    ("https://yandex.ru/search/?text=порно+видео", "порн"),
    ("https://www.youtube.com/results?search_query=bomba+yasash", "bomba yasash"),
    ("https://www.google.kg/search?q=bombay+history", None),
    ("https://lib.kg/books?id=12", None),
])
def test_search_terms(url: str, term: str | None) -> None:
    assert SearchTerms(shipped_terms()).match(url) == term
