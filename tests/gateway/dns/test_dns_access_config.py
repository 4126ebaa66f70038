"""The per-client rate limit comes from kalkan.yaml; the command line may override it."""

from __future__ import annotations

from gateway.config import parse_config
from gateway.dns.access import AccessConfig


def test_the_rate_limit_is_read_from_kalkan_yaml():
    config = parse_config("dns:\n  rate_limit: 50\n  rate_burst: 120\n")
    access = AccessConfig.from_dns_config(config.dns)
    assert (access.rate, access.burst) == (50, 120)
    assert "at most 50 queries/s per client (burst 120)" in access.describe()


def test_the_command_line_overrides_kalkan_yaml():
    config = parse_config("dns:\n  rate_limit: 50\n")
    assert AccessConfig.from_dns_config(config.dns, rate=10, burst=20).rate == 10


def test_an_impossible_rate_limit_is_refused_with_its_line():
    import pytest

    from policies.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        parse_config("dns:\n  rate_limit: 0\n", "k.yaml")
    assert "k.yaml:2" in str(caught.value)
