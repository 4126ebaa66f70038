"""The policy a fresh installation starts with, before the council imports its own.

It errs on the side of the regulations: students are blocked from the mandatory categories
and from the usual ways round a filter; staff are not; unknown clients are guests.
"""

from __future__ import annotations

from typing import Any

from policies.categories import DEFAULT_CATEGORIES

SERIOUS = ["drugs", "gambling", "hacking", "phishing", "malware", "proxy_vpn", "doh", "dating",
           "warez"]
MANDATORY = ["adult", "violence", "terrorism", "extremism", "hatred"]

# Regional education resources that must work out of the box (DESIGN.md).
EDUCATION_SITES = [
    "bilimland.kz", "daryn.online", "lib.kg", "kundalik.com", "emaktab.uz", "kundelik.kz",
    "onlinemektep.org", "edu.gov.kg", "edu.gov.kz", "uzedu.uz", "ziyonet.uz",
    "testing.kg",
]
GOVERNMENT_SITES = ["gov.kg", "gov.kz", "egov.kz", "gov.uz", "my.gov.uz", "president.kg"]
REFERENCE_SITES = ["wikipedia.org", "wiktionary.org", "wikimedia.org", "openstreetmap.org"]
DOH_SITES = ["dns.google", "cloudflare-dns.com", "mozilla.cloudflare-dns.com", "dns.quad9.net",
             "doh.opendns.com", "dns.adguard-dns.com", "dns.nextdns.io"]


def category_entries() -> list[dict[str, Any]]:
    return [{"id": c.id, "mandatory": c.mandatory, "names": dict(c.names)}
            for c in DEFAULT_CATEGORIES]


def group(gid: str, name: str, *, kind: str = "student", mode: str = "blocklist",
          safe_search: bool = True, youtube: str = "off", session_required: bool = False,
          downloads: bool = False, schedule: list[dict[str, str]] | None = None,
          allow: list[str] | None = None, block: list[str] | None = None,
          sites_allow: list[str] | None = None, sites_block: list[str] | None = None,
          ) -> dict[str, Any]:
    return {
        "id": gid, "name": name, "kind": kind, "mode": mode, "safe_search": safe_search,
        "youtube": youtube, "session_required": session_required, "downloads": downloads,
        "schedule": schedule or [],
        "categories": {"allow": allow or [], "block": block or []},
        "sites": {"allow": sites_allow or [], "block": sites_block or []},
    }


def default_policy_data(school_id: str = "school", name: str = "School",
                        language: str = "ky", timezone: str = "Asia/Bishkek") -> dict[str, Any]:
    return {
        "kalkan_policy": 1,
        "school": {"id": school_id, "name": name, "language": language, "timezone": timezone},
        "categories": category_entries(),
        "groups": [
            group("students", "Students", youtube="strict",
                  allow=["education", "government", "reference"],
                  block=[*MANDATORY, *SERIOUS]),
            group("teachers", "Teachers", kind="staff", safe_search=False, downloads=True,
                  block=["adult", "malware", "phishing"]),
            group("guests", "Guests", kind="guest", youtube="strict",
                  block=[*MANDATORY, *SERIOUS]),
        ],
        "rooms": [],
        "devices": [],
        "sites": {"allow": [], "block": []},
        "category_sites": {
            "education": EDUCATION_SITES,
            "government": GOVERNMENT_SITES,
            "reference": REFERENCE_SITES,
            "doh": DOH_SITES,
        },
    }
