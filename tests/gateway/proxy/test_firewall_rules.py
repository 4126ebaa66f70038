"""`kalkan firewall`: the ruleset for the configuration, and apply/rollback in a namespace."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.firewall import plan_from, render_ruleset
from policies.errors import KalkanError

BIN = Path(sys.executable).parent


def test_ruleset_redirects_classroom_traffic_and_drops_dot_and_quic() -> None:
    plan = plan_from(["10.10.1.0/24", "fd00:10:10:1::/64", "10.10.2.0/24", "10.10.1.0/24"],
                     [("0.0.0.0", 53), ("::", 53)], ("0.0.0.0", 8443))  # 0.0.0.0: both families
    text = render_ruleset(plan)
    assert "table inet kalkan {" in text and "delete table inet kalkan" in text
    assert "elements = { 10.10.1.0/24, 10.10.2.0/24 }" in text
    assert "elements = { fd00:10:10:1::/64 }" in text
    for family, source in (("ip", "@classroom_v4"), ("ip6", "@classroom_v6")):
        assert f"{family} saddr {source} udp dport 53 redirect to :53" in text
        assert f"{family} saddr {source} tcp dport 53 redirect to :53" in text
        assert f"{family} saddr {source} tcp dport {{ 80, 443 }} redirect to :8443" in text
        assert f"{family} saddr {source} tcp dport 853 counter drop" in text
        assert f"{family} saddr {source} udp dport 443 counter drop" in text
    assert "policy accept" in text and "policy drop" not in text  # nothing else touched


def test_interface_restricts_every_rule() -> None:
    text = render_ruleset(plan_from(["10.10.1.0/24"], [("0.0.0.0", 53)], ("0.0.0.0", 8443),
                                    interface="lan0"))
    rules = [line for line in text.splitlines() if "saddr" in line]
    assert rules and all(line.strip().startswith('iifname "lan0"') for line in rules)
    assert "classroom_v6" not in text  # no IPv6 network, no IPv6 rules


@pytest.mark.parametrize(("networks", "dns", "proxy", "message"), [
    ([], [("0.0.0.0", 53)], ("0.0.0.0", 8443), "no classroom networks"),
    (["10.10.1.0/24"], [("0.0.0.0", 53)], None, "transparent_listen is not set"),
    (["10.10.1.0/24"], [("127.0.0.1", 53)], ("0.0.0.0", 8443), "listens on 127.0.0.1"),
    (["10.10.1.300/24"], [("0.0.0.0", 53)], ("0.0.0.0", 8443), "is not a network"),
    # An IPv6 classroom needs IPv6 sockets to redirect to: DNS on "::", the proxy on both.
    (["fd00:10:10:1::/64"], [("0.0.0.0", 53)], ("0.0.0.0", 8443), "no IPv6 address"),
    (["fd00:10:10:1::/64"], [("::", 53)], ("10.10.1.1", 8443),
     "proxy.transparent_listen has no IPv6"),
    (["10.10.1.0/24"], [("::", 53)], ("0.0.0.0", 8443), "dns.listen has no IPv4"),
])
def test_plan_errors_say_what_to_do(networks: list[str], dns: list[tuple[str, int]],
                                    proxy: tuple[str, int] | None, message: str) -> None:
    with pytest.raises(KalkanError, match=message) as caught:
        plan_from(networks, dns, proxy)
    assert caught.value.hint


def _netns_or_skip() -> str:
    if os.geteuid() != 0 or shutil.which("nft") is None or shutil.which("ip") is None:
        reason = "applying nftables rules needs root, ip and nft"
        print(f"\nSKIPPED: {reason}")
        pytest.skip(reason)
    name = f"kfw{os.getpid() % 100000}"
    result = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if result.returncode != 0:
        reason = f"cannot create a network namespace: {result.stderr.strip()}"
        print(f"\nSKIPPED: {reason}")
        pytest.skip(reason)
    return name


def test_apply_and_rollback_in_a_namespace(tmp_path: Path) -> None:
    ns = _netns_or_skip()
    config = tmp_path / "kalkan.yaml"
    config.write_text(f'data_dir: "{tmp_path}"\ndns:\n  listen: ["0.0.0.0:53"]\n'
                      'proxy:\n  transparent_listen: "0.0.0.0:8443"\n')

    def kalkan(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", ns, str(BIN / "kalkan"), "--config",
                               str(config), *args], capture_output=True, text=True, timeout=60)

    def table() -> str:
        return subprocess.run(["ip", "netns", "exec", ns, "nft", "list", "ruleset"],
                              capture_output=True, text=True).stdout

    try:
        subprocess.run(["ip", "netns", "exec", ns, "nft", "add", "table", "inet", "school"],
                       check=True)
        assert kalkan("db", "upgrade").returncode == 0
        first = kalkan("firewall", "--apply", "--network", "10.10.1.0/24")
        assert first.returncode == 0, first.stderr
        assert "10.10.1.0/24" in table() and "table inet school" in table()
        second = kalkan("firewall", "--apply", "--network", "10.10.2.0/24")
        assert second.returncode == 0, second.stderr
        assert "10.10.2.0/24" in table() and "10.10.1.0/24" not in table()
        assert kalkan("firewall", "--rollback").returncode == 0
        assert "10.10.1.0/24" in table() and "10.10.2.0/24" not in table()
        assert kalkan("firewall", "--rollback").returncode == 2  # nothing saved any more
        assert "table inet school" in table()  # the school's own table was never touched
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
