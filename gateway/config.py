"""kalkan.yaml: the settings of one installation (addresses, paths, database, notifications).

The policy itself (groups, rooms, categories) lives in the database; this file holds only what
differs between machines. :func:`load_config` turns every mistake in it into one
:class:`~policies.errors.ConfigError` that names the file, the line, the key and what to write
instead, because the person reading it is a school's ICT teacher, not a Python programmer.
"""

from __future__ import annotations

import contextlib
import difflib
import ipaddress
import json
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError, PydanticUndefined

from policies.errors import ConfigError
from policies.yamlfile import Located, load_located

# Searched in this order when no --config is given; the first that exists wins.
ENV_VAR = "KALKAN_CONFIG"
SEARCH_PATHS = (Path("kalkan.yaml"), Path("/etc/kalkan/kalkan.yaml"))

DEFAULT_FILE = "kalkan.default.yaml"

Language = Literal["ky", "ru", "kk", "uz", "en"]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _problem(message: str, hint: str, *, at: str | None = None) -> PydanticCustomError:
    """A validation error that carries its own hint through pydantic to :func:`load_config`.

    ``at`` names a sibling key whose line to report when the failing key is not in the file
    (a missing bot_token is reported on ``enabled: true``).
    """
    return PydanticCustomError("kalkan", "{message}",
                               {"message": message, "hint": hint, "at": at})


# --- addresses ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Upstream:
    """One upstream resolver: plain DNS on ``host:port``, or DNS-over-TLS when ``tls``."""

    host: str  # an IP literal; for tls:// also a DNS name, resolved when connecting
    port: int
    tls: bool = False
    server_name: str | None = None  # the name the TLS certificate must carry


_HOSTNAME = re.compile(
    r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?",
    re.IGNORECASE,
)


def _split_host_port(text: str) -> tuple[str, str | None]:
    """Split ``host:port``, ``[v6]:port``, ``host`` or a bare IPv6 address; no port is None."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError("unbalanced [ ]")
        if ":" not in host:
            raise ValueError("only IPv6 addresses go in [ ]")
        return host, rest[1:] if rest else None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, port
    return text, None  # no colon, or several: a bare IPv6 address, which cannot carry a port


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 65535:
        raise ValueError(f"port {text!r} is not a number from 1 to 65535")
    return int(text)


def parse_listen(text: str) -> tuple[str, int]:
    """Parse a listening address ``127.0.0.1:53`` or ``[::1]:53`` into ``(host, port)``.

    The host must be an IP literal: a name would have to be resolved before kalkan's own
    resolver is up. The returned host has no brackets (``::1``), ready for ``socket.bind``.
    """
    host, port = _split_host_port(text.strip())
    if port is None:
        raise ValueError(f"{text!r} has no port")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{host!r} is not an IP address") from None
    if isinstance(address, ipaddress.IPv6Address) and not text.strip().startswith("["):
        raise ValueError("an IPv6 address with a port goes in brackets")
    return str(address), _port(port)


def parse_upstream(text: str) -> Upstream:
    """Parse ``9.9.9.9``, ``9.9.9.9:5353``, ``[2620:fe::fe]:53``, ``2620:fe::fe``,
    ``tls://dns.quad9.net`` or ``tls://9.9.9.9#dns.quad9.net`` (port 53, or 853 for TLS)."""
    text = text.strip()
    tls = text.lower().startswith("tls://")
    if "://" in text and not tls:
        raise ValueError(f"{text.split('://')[0]}:// upstreams are not supported")
    rest, _, server_name = text[len("tls://"):].partition("#") if tls else (text, "", "")
    if tls and "#" in text and not _HOSTNAME.fullmatch(server_name):
        raise ValueError(f"{server_name!r} after '#' is not a server name")
    host, port = _split_host_port(rest)
    try:
        host = str(ipaddress.ip_address(host))
        is_ip = True
    except ValueError:
        is_ip = False
    if not is_ip and tls and not _HOSTNAME.fullmatch(host):
        raise ValueError(f"{host!r} is neither an IP address nor a server name")
    if not is_ip and not tls:
        # A plain-DNS upstream given by name would need DNS to find the DNS server.
        raise ValueError(f"{host!r} is not an IP address; plain DNS upstreams need one")
    return Upstream(
        host=host,
        port=_port(port) if port is not None else (853 if tls else 53),
        tls=tls,
        server_name=server_name or (None if is_ip or not tls else host),
    )


def _check_listen(text: str) -> str:
    try:
        parse_listen(text)
    except ValueError as exc:
        raise _problem(
            f"{text!r} is not a listening address: {exc}",
            'write an IP address and a port, e.g. "127.0.0.1:53", "0.0.0.0:3128" or "[::1]:53"',
        ) from None
    return text


def _check_upstream(text: str) -> str:
    try:
        parse_upstream(text)
    except ValueError as exc:
        raise _problem(
            f"{text!r} is not an upstream resolver: {exc}",
            'write an IP address with an optional port, e.g. 9.9.9.9, "9.9.9.9:5353" or '
            '"[2620:fe::fe]:53", or tls://dns.quad9.net or "tls://9.9.9.9#dns.quad9.net" '
            "for DNS-over-TLS",
        ) from None
    return text


def _check_network(text: str) -> str:
    try:
        ipaddress.ip_network(text)
    except ValueError as exc:
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            hint = "write a network as address/prefix, e.g. 192.168.0.0/16, or one address"
        else:  # host bits set: say which network was probably meant
            hint = f"write the network's first address: {network}"
        raise _problem(f"{text!r} is not a network: {exc}", hint) from None
    return text


def _check_ip(text: str) -> str:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise _problem(f"{text!r} is not an IP address",
                       "write one IP address without a port, e.g. 192.168.1.1") from None
    return text


ListenAddress = Annotated[str, AfterValidator(_check_listen)]
UpstreamAddress = Annotated[str, AfterValidator(_check_upstream)]
Network = Annotated[str, AfterValidator(_check_network)]
IPAddressText = Annotated[str, AfterValidator(_check_ip)]
# Strict: YAML already types numbers and booleans, so a quoted "53" or a `true` port is a mistake.
Port = Annotated[int, Field(strict=True, ge=1, le=65535)]
Days = Annotated[int, Field(strict=True, ge=1, le=3650)]


# --- sections -------------------------------------------------------------------------------

class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_is_default(cls, data: Any) -> Any:
        # `email:` with every key below it commented out parses as null: that means "defaults".
        return {} if data is None else data


class DatabaseConfig(_Section):
    url: str | None = Field(
        default=None, examples=["postgresql+psycopg://kalkan@localhost/kalkan"])

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str | None) -> str | None:
        if url is None:
            return None
        scheme = url.partition("://")[0] if "://" in url else ""
        if not re.fullmatch(r"(sqlite|postgresql)(\+\w+)?", scheme):
            hint = ("write sqlite:////absolute/path/kalkan.db or "
                    "postgresql+psycopg://user@host/dbname, or null for the SQLite file in "
                    "data_dir")
            if scheme.startswith("postgres"):
                hint = "SQLAlchemy spells the scheme postgresql:// (or postgresql+psycopg://)"
            raise _problem(f"{url!r} is not an SQLite or PostgreSQL database URL", hint)
        return url


DEFAULT_ALLOWED_CLIENTS = [
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8",
    "::1/128", "fc00::/7", "fe80::/10",
]


class DnsConfig(_Section):
    listen: list[ListenAddress] = Field(
        default_factory=lambda: ["127.0.0.1:53", "[::1]:53"], min_length=1)
    upstreams: list[UpstreamAddress] = Field(
        default_factory=lambda: ["9.9.9.9", "1.1.1.1"], min_length=1)
    # Only the school's own networks: an open resolver on a router gets abused for amplification.
    allowed_clients: list[Network] = Field(
        default_factory=lambda: list(DEFAULT_ALLOWED_CLIENTS), min_length=1)
    block_answer: Literal["blockpage", "nxdomain", "null"] = "blockpage"
    cache_size: Annotated[int, Field(strict=True, ge=0)] = 10000
    min_ttl: Annotated[int, Field(strict=True, ge=0)] = 0
    max_ttl: Annotated[int, Field(strict=True, ge=0, validate_default=True)] = 86400
    # Per client: a classroom PC asks a few queries a second; a flood is refused (REFUSED).
    rate_limit: Annotated[float, Field(ge=1, le=100000)] = 200.0
    rate_burst: Annotated[float, Field(ge=1, le=1000000)] = 1000.0

    @field_validator("max_ttl")
    @classmethod
    def _not_below_min(cls, max_ttl: int, info: ValidationInfo) -> int:
        min_ttl = info.data.get("min_ttl")  # absent if min_ttl itself was invalid
        if min_ttl is not None and max_ttl < min_ttl:
            raise _problem(f"max_ttl {max_ttl} is below min_ttl {min_ttl}",
                           "make max_ttl at least min_ttl, e.g. min_ttl: 0 and max_ttl: 86400",
                           at="min_ttl")
        return max_ttl

    @property
    def listen_addresses(self) -> list[tuple[str, int]]:
        return [parse_listen(text) for text in self.listen]

    @property
    def upstream_servers(self) -> list[Upstream]:
        return [parse_upstream(text) for text in self.upstreams]

    @property
    def allowed_networks(self) -> list[IPNetwork]:
        return [ipaddress.ip_network(text) for text in self.allowed_clients]


class ProxyConfig(_Section):
    listen: ListenAddress = "127.0.0.1:3128"
    transparent_listen: ListenAddress | None = Field(default=None, examples=["0.0.0.0:8443"])
    block_page_address: IPAddressText | None = Field(default=None, examples=["192.168.1.1"])
    # Groups whose HTTPS is decrypted with the school CA (opt-in; the policy has no such flag).
    inspect_groups: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, examples=[["primary", "middle"]])
    do_not_inspect_file: Path | None = Field(default=None,
                                             examples=["/etc/kalkan/do-not-inspect.txt"])
    verify_destination: Annotated[bool, Field(strict=True)] = True
    workers: Annotated[int, Field(strict=True, ge=0, le=64)] = 0  # 0: one per processor core
    site_requests_per_hour: Annotated[int, Field(strict=True, ge=1, le=1000)] = 10

    @property
    def listen_address(self) -> tuple[str, int]:
        return parse_listen(self.listen)

    @property
    def transparent_listen_address(self) -> tuple[str, int] | None:
        return parse_listen(self.transparent_listen) if self.transparent_listen else None

    @property
    def block_page_ip(self) -> IPAddress | None:
        return ipaddress.ip_address(self.block_page_address) if self.block_page_address else None


class AdminConfig(_Section):
    listen: ListenAddress = "127.0.0.1:8080"
    secret_key_file: Path | None = Field(default=None, examples=["/etc/kalkan/secret_key"])

    @property
    def listen_address(self) -> tuple[str, int]:
        return parse_listen(self.listen)


class PolicyConfig(_Section):
    default_group: Annotated[str, Field(min_length=1)] = "guests"
    reload_interval: Annotated[float, Field(strict=True, ge=0.1, le=60)] = 1.0


LEASE_FORMATS = ("dnsmasq", "kea", "networkd")


class IdentityConfig(_Section):
    """Knowing a classroom PC by its MAC (gateway/identity): leases and the neighbour table."""

    enabled: Annotated[bool, Field(strict=True)] = True
    # "format:path"; [] looks for the usual files of dnsmasq, Kea and systemd-networkd.
    leases: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, examples=[["dnsmasq:/var/lib/misc/dnsmasq.leases"]])
    neighbours: Annotated[bool, Field(strict=True)] = True
    poll_interval: Annotated[float, Field(ge=0.5, le=60)] = 2.0
    record_interval: Annotated[float, Field(ge=1, le=3600)] = 30.0

    @field_validator("leases")
    @classmethod
    def _format_and_path(cls, leases: list[str]) -> list[str]:
        for item in leases:
            kind, sep, path = item.partition(":")
            if not sep or kind not in LEASE_FORMATS or not path.startswith("/"):
                raise _problem(
                    f"{item!r} is not a lease file as format:path",
                    "write e.g. dnsmasq:/var/lib/misc/dnsmasq.leases, "
                    "kea:/var/lib/kea/kea-leases4.csv or "
                    "networkd:/var/lib/systemd/network/dhcp-server-lease (a directory); "
                    "the formats are " + ", ".join(LEASE_FORMATS))
        return leases


class EmailConfig(_Section):
    enabled: Annotated[bool, Field(strict=True)] = False
    host: Annotated[str, Field(min_length=1)] = "localhost"
    port: Port = 587
    starttls: Annotated[bool, Field(strict=True)] = True
    username: str | None = Field(default=None, examples=["kalkan@school.kg"])
    password: str | None = Field(default=None, examples=["app-password"], validate_default=True)
    sender: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")] = "kalkan@localhost"

    @field_validator("password")
    @classmethod
    def _with_username(cls, password: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("username") and password is None:
            raise _problem("username is set but password is not",
                           "add the password, or remove username to send without logging in",
                           at="username")
        return password


class TelegramConfig(_Section):
    enabled: Annotated[bool, Field(strict=True)] = False
    bot_token: str | None = Field(
        default=None, examples=["123456789:AAE-example-token"], validate_default=True)
    api_base_url: Annotated[str, Field(pattern=r"^https?://\S+$")] = "https://api.telegram.org"

    @field_validator("bot_token")
    @classmethod
    def _required_when_enabled(cls, token: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("enabled") and not token:
            raise _problem("Telegram is enabled but bot_token is not set",
                           "add the token that @BotFather gave you, e.g. bot_token: "
                           '"123456789:AAE...", or set enabled: false', at="enabled")
        return token


LocalTime = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", examples=["16:00"])]


class NotificationsConfig(_Section):
    email: EmailConfig = Field(default_factory=EmailConfig)
    telegram: TelegramConfig = Field(default_factory=TelegramConfig)
    # Whether the responsible person gets every alert too, not only the teachers (rule 2.7).
    notify_responsible: Annotated[bool, Field(strict=True)] = True
    # Messages one person gets per hour and channel; more wait and go out together.
    max_per_hour: Annotated[int, Field(strict=True, ge=1, le=1000)] = 6
    digest: Annotated[bool, Field(strict=True)] = True
    digest_at: LocalTime = "16:00"
    retry_seconds: Annotated[float, Field(strict=True, ge=1, le=3600)] = 30.0
    max_attempts: Annotated[int, Field(strict=True, ge=1, le=100)] = 12


class RetentionConfig(_Section):
    blocked_events_days: Days = 30
    allowed_events_days: Days = 30
    allowed_events: Literal["off", "counts", "full"] = "counts"
    alerts_days: Days = 365
    max_event_store_mb: Annotated[int, Field(strict=True, ge=0)] = 4096
    minimum_days: Annotated[int, Field(strict=True, ge=0, le=3650)] = 7
    purge_interval_minutes: Annotated[int, Field(strict=True, ge=1, le=1440)] = 10


class EventsConfig(_Section):
    flush_interval: Annotated[float, Field(strict=True, ge=0.05, le=1.0)] = 0.25
    database_timeout: Annotated[float, Field(strict=True, ge=0.05, le=5.0)] = 0.3
    journal_max_mb: Annotated[int, Field(strict=True, ge=1)] = 1024
    third_party_seconds: Annotated[float, Field(strict=True, ge=0, le=30)] = 2.0


class AlertsConfig(_Section):
    enabled: Annotated[bool, Field(strict=True)] = True
    window_minutes: Annotated[int, Field(strict=True, ge=1, le=1440)] = 10
    attempts: Annotated[int, Field(strict=True, ge=1, le=1000)] = 3
    serious_categories: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=lambda: ["drugs", "gambling", "hacking", "proxy_vpn", "doh", "dating",
                                 "warez"])
    distinct_sites: Annotated[int, Field(strict=True, ge=2, le=1000)] = 5
    bypass: Annotated[bool, Field(strict=True)] = True
    search_terms: list[Annotated[str, Field(min_length=2)]] = Field(
        default_factory=list, examples=[["how to make a bomb"]])
    shipped_search_terms: Annotated[bool, Field(strict=True)] = True
    episode_seconds: Annotated[float, Field(strict=True, ge=0.1, le=60)] = 2.0
    dns_repeats: Annotated[int, Field(strict=True, ge=1, le=100)] = 2
    escalate_after: Annotated[int, Field(strict=True, ge=2, le=10000)] = 10
    noise_domains: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, examples=[["updates.example-vendor.com"]])


class BlocklistsConfig(_Section):
    auto_update: Annotated[bool, Field(strict=True)] = True
    update_at: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
                                    examples=["03:30"])] = "03:30"
    jitter_minutes: Annotated[int, Field(strict=True, ge=0, le=720)] = 60
    download_timeout: Annotated[float, Field(strict=True, ge=1, le=3600)] = 120.0
    max_download_mb: Annotated[int, Field(strict=True, ge=1, le=10240)] = 512


class DailyStatusConfig(_Section):
    """The uplink and upstream measurements and the morning and evening report (issue 10)."""

    enabled: Annotated[bool, Field(strict=True)] = True
    sample_seconds: Annotated[float, Field(strict=True, ge=1, le=3600)] = 60.0
    # null: the interface of the default route (read from /proc/net/route).
    uplink_interface: Annotated[str, Field(min_length=1, max_length=15)] | None = Field(
        default=None, examples=["eth0"])
    speed_check_url: Annotated[str, Field(pattern=r"^https?://\S+$")] | None = Field(
        default=None, examples=["http://speedtest.example.kg/10MB.bin"])
    speed_check_at: list[LocalTime] = Field(default_factory=list, examples=[["07:30", "13:00"]])
    speed_check_max_mb: Annotated[int, Field(strict=True, ge=1, le=1000)] = 10
    tariff_mbit: Annotated[float, Field(gt=0, le=100000)] | None = Field(
        default=None, examples=[50.0])
    morning_at: LocalTime = "08:00"
    evening_at: LocalTime = "17:00"
    send_reports: Annotated[bool, Field(strict=True)] = True
    district_emails: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(
        default_factory=list, examples=[["ict@district.kg"]])
    district_telegram_chats: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, examples=[["-1001234567890"]])
    district_language: Language | None = None


class MetricsConfig(_Section):
    """Who may read /metrics and the health endpoints of the admin."""

    networks: list[Network] = Field(default_factory=lambda: ["127.0.0.0/8", "::1/128"])
    token_file: Path | None = Field(default=None, examples=["/etc/kalkan/metrics-token"])

    @property
    def allowed_networks(self) -> list[IPNetwork]:
        return [ipaddress.ip_network(text) for text in self.networks]


class BackupConfig(_Section):
    # Nightly backups let a corrupt database be replaced at start (gateway/database_check.py).
    nightly: Annotated[bool, Field(strict=True)] = True
    at: Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", examples=["02:30"])] = "02:30"
    keep_days: Annotated[int, Field(strict=True, ge=1, le=3650)] = 14
    directory: Path | None = Field(default=None, examples=["/var/backups/kalkan"])
    passphrase_file: Path | None = Field(default=None, examples=["/etc/kalkan/backup-passphrase"])


class LoggingConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    # auto: key=value lines when started by systemd (JOURNAL_STREAM set), plain text otherwise.
    format: Literal["auto", "text", "keyvalue", "json"] = "auto"


class DistrictConfig(_Section):
    # The district's PostgreSQL; this school's rows live in its own schema there (district/).
    url: str | None = Field(
        default=None, examples=["postgresql+psycopg://kalkan@db.district.kg/district"])

    @field_validator("url")
    @classmethod
    def _postgresql_only(cls, url: str | None) -> str | None:
        if url is not None and not re.fullmatch(r"postgresql(\+\w+)?", url.partition("://")[0]):
            raise _problem(f"{url!r} is not a PostgreSQL database URL",
                           "a district database is PostgreSQL: write "
                           "postgresql+psycopg://user:password@host/dbname, or null")
        return url


class Config(_Section):
    """Everything in kalkan.yaml; ``Config()`` is the installation with no file at all."""

    school_id: Annotated[str, Field(pattern=r"^[a-z0-9_-]+$", max_length=64)] = "school"
    language: Language = "ky"
    data_dir: Path = Path("/var/lib/kalkan")
    # null: data_dir/status. A RAM disk (/run/kalkan/status) keeps `kalkan status` current
    # even when the data disk is full.
    status_dir: Path | None = Field(default=None, examples=["/run/kalkan/status"])
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    dns: DnsConfig = Field(default_factory=DnsConfig)
    proxy: ProxyConfig = Field(default_factory=ProxyConfig)
    admin: AdminConfig = Field(default_factory=AdminConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    identity: IdentityConfig = Field(default_factory=IdentityConfig)
    notifications: NotificationsConfig = Field(default_factory=NotificationsConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    blocklists: BlocklistsConfig = Field(default_factory=BlocklistsConfig)
    daily_status: DailyStatusConfig = Field(default_factory=DailyStatusConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    backup: BackupConfig = Field(default_factory=BackupConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    district: DistrictConfig = Field(default_factory=DistrictConfig)

    @model_validator(mode="after")
    def _one_database(self) -> Config:
        if self.district.url and self.database.url:
            raise _problem("both database.url and district.url are set",
                           "a school of a district keeps its data in the district database: "
                           "set database.url to null")
        return self

    @field_validator("data_dir")
    @classmethod
    def _not_empty(cls, data_dir: Path) -> Path:
        if str(data_dir) in ("", "."):  # Path("") is ".": the service's working directory
            raise _problem("data_dir is empty", "write a directory, e.g. /var/lib/kalkan")
        return data_dir

    @property
    def status_directory(self) -> Path:
        """Where the processes write their status files (``kalkan status`` reads them)."""
        return self.status_dir or self.data_dir / "status"

    @property
    def database_url(self) -> str:
        """The configured URL, else this school's schema of the district database, else an
        SQLite file in ``data_dir``."""
        if self.district.url:
            from district.schools import school_database_url

            return school_database_url(self.district.url, self.school_id)
        return self.database.url or f"sqlite:///{self.data_dir}/kalkan.db"

    @property
    def backup_dir(self) -> Path:
        """Where ``kalkan backup`` and the nightly backup write, by default."""
        return self.backup.directory or self.data_dir / "backups"


# --- errors -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Problem:
    """One mistake in kalkan.yaml: where it is, what is wrong and what to write instead."""

    path: str  # dotted key path, list items as [i]: dns.upstreams[1]
    line: int | None
    message: str
    hint: str | None

    def render(self, file: str) -> str:
        where = f"{file}:{self.line}" if self.line else file
        text = f"{where}: {self.path}: {self.message}"
        return f"{text}\n  → {self.hint}" if self.hint else text


class InvalidConfig(ConfigError):
    """kalkan.yaml parsed but some values are wrong; ``problems`` lists each, top to bottom."""

    def __init__(self, problems: list[Problem], file: str) -> None:
        first = problems[0]
        if len(problems) == 1:
            super().__init__(f"{first.path}: {first.message}", file=file, line=first.line,
                             hint=first.hint)
        else:  # each problem carries its own hint, so the listing is the whole message
            listing = "\n".join(p.render(file) for p in problems)
            super().__init__(f"{len(problems)} problems, fix them from the top:\n{listing}",
                             file=file, line=first.line)
        self.problems = problems


def _dotted(loc: tuple[str | int, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _section_at(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model class of the section at ``loc`` (``()`` is the top level)."""
    model: type[BaseModel] = Config
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None or not _is_model(field.annotation):
            return None
        model = field.annotation
    return model


def _field_at(loc: tuple[str | int, ...]) -> tuple[str, FieldInfo] | None:
    """The field a value at ``loc`` belongs to; list indexes after it are ignored."""
    names = [part for part in loc if isinstance(part, str)]
    if not names:
        return None
    model = _section_at(tuple(names[:-1]))
    field = model.model_fields.get(names[-1]) if model else None
    return (names[-1], field) if field else None


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _bare(annotation: Any) -> Any:
    """``int`` for ``int | None``; Annotated metadata is already on the FieldInfo."""
    if get_origin(annotation) in (Union, UnionType):
        args = [arg for arg in get_args(annotation) if arg is not NoneType]
        annotation = args[0] if len(args) == 1 else annotation
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def _example(name: str, field: FieldInfo) -> str:
    value = field.get_default(call_default_factory=True)
    if (value is None or value is PydanticUndefined) and field.examples:
        value = field.examples[0]
    if value is None or value is PydanticUndefined:
        return f"{name}: ..."
    # JSON is valid YAML and quotes the strings that need it (colons, brackets).
    text = json.dumps(str(value) if isinstance(value, Path) else value, ensure_ascii=False)
    return f"{name}: {text}"


_KINDS = {int: "a whole number", float: "a number", bool: "true or false", str: "text",
          Path: "a file or directory path", list: "a list"}


def _kind(annotation: Any) -> str:
    bare = _bare(annotation)
    if _is_model(bare):
        return "a section of keys"
    return _KINDS.get(get_origin(bare) or bare, "a value")


def _range(field: FieldInfo) -> str:
    low = high = None
    for rule in field.metadata:
        if isinstance(rule, annotated_types.Ge):
            low = rule.ge
        elif isinstance(rule, annotated_types.Le):
            high = rule.le
    if low is not None and high is not None:
        return f"from {low} to {high}"
    return f"at least {low}" if low is not None else f"at most {high}"


def _unknown_key_hint(key: Any, section: tuple[str | int, ...]) -> str:
    model = _section_at(section)
    allowed = list(model.model_fields) if model else []
    where = f"{_dotted(section)}" if section else "the top level"
    hint = f"{where} takes: {', '.join(allowed)}"
    close = difflib.get_close_matches(str(key), allowed, n=1)
    if close:
        return f"did you mean {close[0]!r}? {hint}"
    # A key one level too high or low is a common indentation slip; say where it belongs.
    for name, field in Config.model_fields.items():
        if _is_model(field.annotation) and key in field.annotation.model_fields:
            return f"{key!r} belongs under {name}: (check its indentation); {hint}"
    return f"remove {key!r} or fix its spelling; {hint}"


def _describe(error: Any, loc: tuple[str | int, ...]) -> tuple[str, str | None]:
    """Say what is wrong with one pydantic error and what to write instead."""
    kind, value = error["type"], error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "kalkan":
        return ctx["message"], ctx["hint"]
    if kind in ("extra_forbidden", "invalid_key"):  # invalid_key: a number or true as a key
        key = loc[-1] if kind == "extra_forbidden" else _show(value)
        return "no such key", _unknown_key_hint(key, loc[:-1])
    found = _field_at(loc)
    if found is None:
        return error["msg"], None
    name, field = found
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        model = _bare(field.annotation)
        keys = ", ".join(model.model_fields) if _is_model(model) else "..."
        return (f"{name} is a section, not {_show(value)}",
                f"write its keys indented on the lines below `{name}:`; it takes: {keys}")
    if kind == "literal_error":
        choices = [str(c) for c in get_args(_bare(field.annotation))]
        hint = f"use one of: {', '.join(choices)}"
        if isinstance(value, bool):  # YAML 1.1 reads bare off/on/yes/no as booleans
            hint += '; put words like "off" in quotes, since YAML reads a bare off as false'
        return f"{_show(value)} is not allowed", hint
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"{_show(value)} is out of range", f"use a value {_range(field)}"
    if kind == "too_short":
        return f"{name} is an empty list", f"list at least one, e.g. {_example(name, field)}"
    if kind == "string_too_short":
        return f"{name} is empty", f"write e.g. {_example(name, field)}"
    if kind == "string_too_long":
        return f"{name} is too long", f"use at most {ctx.get('max_length')} characters"
    if kind == "string_pattern_mismatch":
        return f"{_show(value)} has the wrong form", _PATTERN_HINTS.get(name, _example(name, field))
    if kind.endswith(("_type", "_parsing")) or kind == "int_from_float":
        hint = f"write {_kind(field.annotation)}, e.g. {_example(name, field)}"
        if isinstance(value, (list, dict)) and _bare(field.annotation) is str:
            hint += ' (quote addresses that start with "[": YAML reads [...] as a list)'
        elif isinstance(value, str) and _unquoted_fits(value, _bare(field.annotation)):
            hint += " (without quotes)"  # "587" in quotes is text to YAML
        return f"expected {_kind(field.annotation)}, got {_show(value)}", hint
    return error["msg"], f"see the comment above {name} in the file `kalkan init` writes"


def _unquoted_fits(text: str, expected: Any) -> bool:
    """Whether ``text`` written without quotes would be read as the ``expected`` type."""
    if expected not in (int, float, bool):
        return False
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    if expected is bool or isinstance(value, bool):
        return expected is bool and isinstance(value, bool)
    return isinstance(value, (int, float) if expected is float else expected)


def _show(value: Any) -> str:
    """A value as it would be written in YAML: false, null, "text"."""
    return json.dumps(value, ensure_ascii=False, default=str)


_PATTERN_HINTS = {
    "school_id": "use lowercase Latin letters, digits, '-' and '_', e.g. bishkek-school-61",
    "sender": "write an email address, e.g. kalkan@school.kg",
    "api_base_url": "write a URL starting with https://, e.g. https://api.telegram.org",
}


def _line(located: Located, loc: tuple[str | int, ...], error: Any) -> int | None:
    at = (error.get("ctx") or {}).get("at")
    if loc not in located.lines and at and (*loc[:-1], at) in located.lines:
        return located.lines[(*loc[:-1], at)]
    return located.line_of(loc)


def _validate(data: Any, located: Located, file: str) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            message, hint = _describe(error, loc)
            # pydantic puts a non-text key in loc as is; show it as written, not as a list index.
            shown = (*loc[:-1], _show(error["input"])) if error["type"] == "invalid_key" else loc
            problems.append(Problem(_dotted(shown), _line(located, loc, error), message, hint))
        problems.sort(key=lambda p: p.line or 0)  # the order the reader meets them in the file
        raise InvalidConfig(problems, file) from None


# --- public API -----------------------------------------------------------------------------

def parse_config(text: str, file: str = "kalkan.yaml") -> Config:
    """Validate the text of a kalkan.yaml; an empty text means every default."""
    located = load_located(text, file, error=ConfigError)
    if located.data is None:
        return Config()
    if not isinstance(located.data, dict):
        raise ConfigError("the file must be a set of `key: value` lines, not a single value or a "
                          "list", file=file, line=located.line_of(()),
                          hint="start from the file `kalkan init` writes")
    return _validate(located.data, located, file)


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate kalkan.yaml; every mistake becomes one :class:`ConfigError`."""
    file = os.fspath(path)
    try:
        text = Path(file).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("no such configuration file", file=file,
                          hint="run `kalkan init` to write a commented default") from None
    except UnicodeDecodeError:
        raise ConfigError("not UTF-8 text", file=file,
                          hint="save the file as UTF-8 in your editor") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror}", file=file,
                          hint="check that the path names a file kalkan's user may read") from None
    return parse_config(text, file)


def find_config_path(explicit: str | None) -> Path | None:
    """The file to read: ``explicit``, else ``$KALKAN_CONFIG``, else the first of
    ``./kalkan.yaml`` and ``/etc/kalkan/kalkan.yaml`` that exists, else None."""
    if explicit:
        return Path(explicit)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])  # named on purpose: a missing file is an error later
    return next((path for path in SEARCH_PATHS if path.is_file()), None)


def load_or_default(explicit: str | None) -> Config:
    """The configuration from :func:`find_config_path`, or all defaults if there is no file."""
    path = find_config_path(explicit)
    return Config() if path is None else load_config(path)


def default_config_text() -> str:
    """The commented kalkan.yaml that ``kalkan init`` writes; it loads to ``Config()``."""
    return resources.files("gateway").joinpath(DEFAULT_FILE).read_text(encoding="utf-8")


def write_default_config(
    path: str | os.PathLike[str], *, force: bool = False, data_dir: Path | None = None,
    database_url: str | None = None, unprivileged: bool = False,
) -> Path:
    """Write the commented default file to ``path``, with ``data_dir`` and ``database_url``
    filled in if given (the demo points both at a scratch directory) and, if
    ``unprivileged``, ports a normal user may open. Refuses to replace an
    existing file unless ``force``; refuses values that would not load."""
    target = Path(path)
    text = default_config_text()
    if data_dir is not None:
        text = _replace_line(text, "data_dir", json.dumps(str(data_dir), ensure_ascii=False))
    if database_url is not None:
        text = _replace_line(text, "  url", json.dumps(database_url, ensure_ascii=False))
    if unprivileged:  # the demo runs as a normal user: DNS on 5353 instead of 53
        text = text.replace('    - "127.0.0.1:53"\n    - "[::1]:53"',
                            '    - "127.0.0.1:5353"\n    - "[::1]:5353"', 1)
        # ... and asks the machine's own local resolver (systemd-resolved, dnsmasq), never a
        # public one the user did not choose; with none, allowed names fail to resolve.
        local = demo_upstreams()
        text = text.replace("    - 9.9.9.9\n    - 1.1.1.1",
                            "\n".join(f'    - "{u}"' for u in local), 1)
    parse_config(text, str(target))  # fail before touching the disk
    if target.exists() and not force:
        raise _already_exists(target)
    # 0640: the file may come to hold an SMTP password or a bot token.
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with os.fdopen(os.open(target, flags, 0o640), "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        if isinstance(exc, FileExistsError) and exc.filename == str(target):
            raise _already_exists(target) from None  # created between the check and the open
        raise ConfigError(f"cannot write the file: {exc.strerror} ({exc.filename})",
                          file=str(target), hint="write it as a user who may (root for "
                          "/etc/kalkan), or give another path") from None
    return target


def demo_upstreams(resolv_conf: Path = Path("/etc/resolv.conf")) -> list[str]:
    """The loopback resolvers of /etc/resolv.conf, else 127.0.0.1:53 (for the demo config)."""
    found = []
    try:
        for line in resolv_conf.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                with contextlib.suppress(ValueError):
                    if ipaddress.ip_address(parts[1]).is_loopback:
                        found.append(parts[1])
    except OSError:
        pass
    return found or ["127.0.0.1:53"]


def _already_exists(target: Path) -> ConfigError:
    return ConfigError("the file already exists", file=str(target),
                       hint="use --force to overwrite it, or edit it by hand")


def _replace_line(text: str, key: str, value: str) -> str:
    text, count = re.subn(rf"^{key}:.*$", lambda _: f"{key}: {value}", text, count=1,
                          flags=re.MULTILINE)
    if count != 1:  # the default file and this function must agree on its layout
        raise RuntimeError(f"{DEFAULT_FILE} has no line {key!r}")
    return text
