"""Background noise: requests that no person made on purpose.

A blocked request is noise when it is an advert or tracker (category ``ads``), telemetry of
the operating system or browser (``telemetry.txt`` and ``alerts.noise_domains``), a
prefetch, or a third-party resource of an allowed page: its referrer is another site, or it
came within ``third_party_seconds`` after an allowed request from the same client (a page
that loads a blocked widget asks for it right after the page itself). The writer marks
events with :meth:`NoiseFilter.classify`; the detector decides what each mark means.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources

from gateway.events.models import Noise

ADS_CATEGORY = "ads"


def shipped_telemetry_domains() -> list[str]:
    """The telemetry list that comes with kalkan, without comments."""
    text = resources.files("gateway.alerts").joinpath("telemetry.txt").read_text("utf-8")
    return list(read_domain_lines(text.splitlines()))


def read_domain_lines(lines: Iterable[str]) -> Iterable[str]:
    for line in lines:
        domain = line.split("#", 1)[0].strip().lower().rstrip(".")
        if domain:
            yield domain


class NoiseFilter:
    def __init__(self, domains: Iterable[str] = (), third_party_seconds: float = 2.0) -> None:
        self.domains = frozenset(d.lower().rstrip(".") for d in domains)
        self.third_party_seconds = third_party_seconds
        # client → (time, host) of its latest allowed request: the page a blocked resource
        # most likely belongs to. One entry per client: a school has hundreds, not millions.
        self.last_allowed: dict[str, tuple[float, str]] = {}

    @classmethod
    def with_shipped_list(cls, extra: Iterable[str] = (),
                          third_party_seconds: float = 2.0) -> NoiseFilter:
        return cls([*shipped_telemetry_domains(), *extra], third_party_seconds)

    def allowed(self, client: str, time: float, host: str) -> None:
        """Remember an allowed request: blocked ones right after it are its resources."""
        self.last_allowed[client] = (time, host)

    def is_telemetry(self, host: str) -> bool:
        domains = self.domains
        if host in domains:
            return True
        dot = host.find(".")
        while dot != -1:
            if host[dot + 1:] in domains:
                return True
            dot = host.find(".", dot + 1)
        return False

    def classify(self, client: str, time: float, host: str, category: str | None,
                 referrer: str | None, prefetch: bool) -> tuple[str | None, str | None]:
        """``(noise, referrer)`` for a blocked request; noise is None for a real attempt."""
        if category == ADS_CATEGORY:
            return Noise.ADS, referrer
        if prefetch:
            return Noise.PREFETCH, referrer
        if self.is_telemetry(host):
            return Noise.TELEMETRY, referrer
        if referrer and referrer != host:
            return Noise.THIRD_PARTY, referrer
        last = self.last_allowed.get(client)
        if last is not None and 0 <= time - last[0] <= self.third_party_seconds \
                and last[1] != host:
            return Noise.THIRD_PARTY, last[1]
        return None, referrer
