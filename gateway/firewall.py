"""The nftables rules that send classroom traffic through kalkan, in a table of their own.

Which networks are "classroom networks": the networks of the policy's rooms (the council's
picture of the school, the same CIDRs the engine uses to find a client's room), plus any given
with ``--network``. Not ``dns.allowed_clients``: that is who may *ask* the resolver (loopback,
the staff VPN…), and its default is every private range, which would also catch the router's
own uplink network.

For those sources only, and nothing else:

- DNS, 53/udp and 53/tcp, to kalkan's resolver (a PC set to 8.8.8.8 still gets kalkan's answers);
- HTTP and HTTPS, 80 and 443/tcp, to the transparent proxy;
- DNS-over-TLS and DNS-over-QUIC, 853/tcp and 853/udp, dropped: a resolver of the student's
  own choosing would go round every DNS rule;
- QUIC, 443/udp, dropped: browsers then fall back to TCP, which the proxy sees.

Everything lives in ``table inet kalkan`` with ``policy accept`` chains, so the school's own
firewall is not touched, and removing the table undoes kalkan entirely. ``apply`` loads the new
table in one ``nft -f`` transaction (all or nothing) after saving the table it replaces, which
``rollback`` restores.
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from policies.errors import KalkanError

TABLE = "kalkan"
STATE_DIR = "firewall"
PREVIOUS_FILE = "previous.nft"
APPLIED_FILE = "applied.nft"


@dataclass(frozen=True, slots=True)
class FirewallPlan:
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    dns_port: int
    proxy_port: int
    interface: str | None = None  # only traffic entering here (the classroom interface)

    @property
    def v4(self) -> list[str]:
        return [str(n) for n in self.networks if n.version == 4]

    @property
    def v6(self) -> list[str]:
        return [str(n) for n in self.networks if n.version == 6]


def plan_from(networks: Iterable[str], dns_listen: Iterable[tuple[str, int]],
              transparent_listen: tuple[str, int] | None, *,
              interface: str | None = None) -> FirewallPlan:
    """Check the pieces and put them together; every gap is a :class:`KalkanError`."""
    nets = []
    for text in networks:
        try:
            nets.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise KalkanError(f"{text!r} is not a network",
                              hint="write it as address/prefix, e.g. 10.10.1.0/24") from None
    nets = sorted(set(nets), key=lambda n: (n.version, n))
    if not nets:
        raise KalkanError("no classroom networks: the policy has no rooms with networks",
                          hint="add rooms with networks to the policy, or give --network CIDR")
    if transparent_listen is None:
        raise KalkanError("proxy.transparent_listen is not set, so there is nothing to send "
                          "web traffic to", hint='set it in kalkan.yaml, e.g. "0.0.0.0:8443"')
    ports = {port for _host, port in dns_listen}
    if not ports:
        raise KalkanError("dns.listen is empty", hint='e.g. "0.0.0.0:53"')
    for host, _port in [*dns_listen, transparent_listen]:
        if ipaddress.ip_address(host).is_loopback:
            # `redirect` sends packets to the address of the interface they came in on; a
            # socket bound to 127.0.0.1 never sees them.
            raise KalkanError(f"kalkan listens on {host} only, which redirected classroom "
                              "traffic cannot reach",
                              hint="listen on the router's classroom address or on 0.0.0.0 "
                                   "(dns.listen and proxy.transparent_listen)")
    for version in sorted({n.version for n in nets}):
        _check_family(version, [host for host, _port in dns_listen], "dns.listen",
                      f'"{"[::]" if version == 6 else "0.0.0.0"}:{min(ports)}"')
        _check_family(version, [transparent_listen[0]], "proxy.transparent_listen",
                      f'"0.0.0.0:{transparent_listen[1]}" (every address, IPv4 and IPv6)')
    return FirewallPlan(tuple(nets), min(ports), transparent_listen[1], interface)


def _check_family(version: int, hosts: list[str], key: str, example: str) -> None:
    """Classroom networks of IP ``version`` need a socket of that family to redirect to."""
    for host in hosts:
        address = ipaddress.ip_address(host)
        # The proxy's "0.0.0.0" also binds "::" (master.ProxySettings.modes).
        if address.version == version or (key.startswith("proxy") and address.is_unspecified):
            return
    raise KalkanError(f"the classroom has IPv{version} networks, but {key} has no IPv{version} "
                      "address, so their redirected traffic would reach nothing",
                      hint=f"add {example} to {key} in kalkan.yaml")


def render_ruleset(plan: FirewallPlan) -> str:
    """The nftables script: it creates (or replaces) ``table inet kalkan`` and nothing else."""
    lines = [
        "# kalkan: classroom DNS and web traffic through the filter (kalkan firewall).",
        "# Only this table is changed; delete it to undo: nft delete table inet kalkan",
        f"table inet {TABLE}",
        f"delete table inet {TABLE}",  # with the line above: replace, whether it existed or not
        f"table inet {TABLE} {{",
    ]
    families = []
    if plan.v4:
        lines += ["  set classroom_v4 {", "    type ipv4_addr; flags interval;",
                  f"    elements = {{ {', '.join(plan.v4)} }}", "  }"]
        families.append(("ip", "@classroom_v4"))
    if plan.v6:
        lines += ["  set classroom_v6 {", "    type ipv6_addr; flags interval;",
                  f"    elements = {{ {', '.join(plan.v6)} }}", "  }"]
        families.append(("ip6", "@classroom_v6"))
    iif = f'iifname "{plan.interface}" ' if plan.interface else ""
    lines += ["", "  # Redirect to kalkan's own sockets on the address the packet came in on.",
              "  chain classroom_redirect {",
              "    type nat hook prerouting priority dstnat; policy accept;"]
    for family, source in families:
        lines += [
            f"    {iif}{family} saddr {source} udp dport 53 redirect to :{plan.dns_port}",
            f"    {iif}{family} saddr {source} tcp dport 53 redirect to :{plan.dns_port}",
            f"    {iif}{family} saddr {source} tcp dport {{ 80, 443 }} "
            f"redirect to :{plan.proxy_port}",
        ]
    lines += ["  }", "",
              "  # Forwarded traffic the proxy could not see: encrypted DNS and QUIC.",
              "  chain classroom_forward {",
              "    type filter hook forward priority filter; policy accept;"]
    for family, source in families:
        lines += [
            f"    {iif}{family} saddr {source} tcp dport 853 counter drop  # DNS over TLS",
            f"    {iif}{family} saddr {source} udp dport 853 counter drop  # DNS over QUIC",
            f"    {iif}{family} saddr {source} udp dport 443 counter drop  # QUIC: fall back "
            "to TCP",
        ]
    lines += ["  }", "}", ""]
    return "\n".join(lines)


def _nft(args: list[str], *, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["nft", *args], input=stdin, capture_output=True, text=True,
                              timeout=30)
    except FileNotFoundError:
        raise KalkanError("the nft command is not installed",
                          hint="apt-get install nftables") from None


def current_table() -> str | None:
    """The running ``table inet kalkan``, as nft prints it, or None if there is none."""
    result = _nft(["list", "table", "inet", TABLE])
    return result.stdout if result.returncode == 0 else None


def apply_ruleset(text: str, state_dir: Path) -> Path | None:
    """Save the table being replaced, then load ``text`` atomically; returns the saved file."""
    check = _nft(["-c", "-f", "-"], stdin=text)
    if check.returncode != 0:
        raise KalkanError(f"nft refused the rules: {check.stderr.strip()}",
                          hint="nothing was changed; run `kalkan firewall` to see them")
    state_dir.mkdir(parents=True, exist_ok=True)
    previous = current_table()
    saved = state_dir / PREVIOUS_FILE
    if previous is None:
        saved.write_text("# there was no kalkan table\n", encoding="utf-8")
    else:
        saved.write_text(f"table inet {TABLE}\ndelete table inet {TABLE}\n{previous}",
                         encoding="utf-8")
    result = _nft(["-f", "-"], stdin=text)
    if result.returncode != 0:
        raise KalkanError(f"nft could not apply the rules: {result.stderr.strip()}",
                          hint="nothing was changed (nft applies all or nothing)")
    (state_dir / APPLIED_FILE).write_text(text, encoding="utf-8")
    return saved


def rollback_ruleset(state_dir: Path) -> str:
    """Put back the table saved by the last apply (or remove kalkan's if there was none)."""
    saved = state_dir / PREVIOUS_FILE
    if not saved.exists():
        raise KalkanError("there is nothing to roll back to",
                          hint="`kalkan firewall --apply` saves the table it replaces")
    text = saved.read_text(encoding="utf-8")
    if text.startswith("# there was no kalkan table"):
        text = f"table inet {TABLE}\ndelete table inet {TABLE}\n"
        what = "removed kalkan's table (there was none before)"
    else:
        what = "restored the previous kalkan table"
    result = _nft(["-f", "-"], stdin=text)
    if result.returncode != 0:
        raise KalkanError(f"nft could not roll back: {result.stderr.strip()}",
                          hint=f"the saved rules are in {saved}")
    saved.unlink()
    return what


def room_networks(sessions: object) -> list[str]:
    """The CIDRs of the policy's rooms."""
    from sqlalchemy import select

    from policies.models import Network

    with sessions() as db:  # type: ignore[operator]
        return list(db.scalars(select(Network.cidr).order_by(Network.cidr)))
