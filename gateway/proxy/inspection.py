"""Which HTTPS connections the proxy decrypts: opt-in per group, never for listed sites.

The policy has no "inspect" flag (yet): inspection needs the school CA on every computer of a
group, which is an installation matter, so it is chosen in kalkan.yaml
(``proxy.inspect_groups``). Sites that break when decrypted (banks, e-diaries, pinned apps,
OS updates) are never decrypted: ``do_not_inspect.txt`` ships with kalkan, and the school may
add its own file (``proxy.do_not_inspect_file``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from policies.domain import InvalidDomain, normalise_domain
from policies.errors import KalkanError

SHIPPED_FILE = "do_not_inspect.txt"


def parse_site_list(text: str, file: str) -> frozenset[str]:
    """Names, one a line, ``#`` comments; a bad name is an error naming file and line."""
    names = set()
    for number, line in enumerate(text.splitlines(), 1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            names.add(normalise_domain(entry))
        except InvalidDomain as exc:
            raise KalkanError(f"{file}:{number}: {exc}",
                              hint="write one site name a line, e.g. mbank.kg") from None
    return frozenset(names)


def shipped_do_not_inspect() -> frozenset[str]:
    text = resources.files("gateway.proxy").joinpath(SHIPPED_FILE).read_text(encoding="utf-8")
    return parse_site_list(text, SHIPPED_FILE)


@dataclass(frozen=True, slots=True)
class Inspection:
    groups: frozenset[str] = frozenset()
    never: frozenset[str] = frozenset()

    @classmethod
    def load(cls, groups: Iterable[str], extra_file: Path | None = None) -> Inspection:
        never = shipped_do_not_inspect()
        if extra_file is not None:
            try:
                text = Path(extra_file).read_text(encoding="utf-8")
            except OSError as exc:
                raise KalkanError(
                    f"cannot read proxy.do_not_inspect_file {extra_file}: {exc.strerror}",
                    hint="fix the path or set it to null") from None
            never |= parse_site_list(text, str(extra_file))
        return cls(frozenset(groups), never)

    @property
    def enabled(self) -> bool:
        return bool(self.groups)

    def inspects(self, group: str | None, host: str | None) -> bool:
        """True if a connection of ``group`` to ``host`` is to be decrypted."""
        if group not in self.groups or not host:
            return False
        return not self.excluded(host)

    def excluded(self, host: str) -> bool:
        name = host.lower().rstrip(".")
        while True:
            if name in self.never:
                return True
            dot = name.find(".")
            if dot < 0:
                return False
            name = name[dot + 1:]
