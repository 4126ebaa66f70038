"""What ``kalkan setup`` writes: kalkan.yaml from the answers, and the systemd units."""

from __future__ import annotations

from pathlib import Path

import pytest

import gateway.cli  # noqa: F401  (first: the command modules import it, it imports them)
from gateway.config import ConfigError, parse_config
from gateway.setup_cli import (
    UNITS,
    Answers,
    _firewall_args_of,
    config_text,
    render_units,
    templates_dir,
)


def test_answers_land_in_a_config_that_loads() -> None:
    text = config_text(Answers(school_id="bishkek-61", language="ru",
                               networks=("192.168.10.0/24", "100.64.5.0/24"),
                               upstreams=("9.9.9.9", "tls://dns.quad9.net")),
                       Path("/var/lib/kalkan"))
    config = parse_config(text)
    assert (config.school_id, config.language) == ("bishkek-61", "ru")
    assert config.dns.upstreams == ["9.9.9.9", "tls://dns.quad9.net"]
    # Classroom networks: DNS on every interface, the transparent proxy on, and a network
    # outside the private ranges let in (the private one already is).
    assert config.dns.listen == ["0.0.0.0:53"]
    assert config.proxy.transparent_listen == "0.0.0.0:8443"
    assert "100.64.5.0/24" in config.dns.allowed_clients
    assert "192.168.10.0/24" not in config.dns.allowed_clients
    assert "# The resolvers that kalkan forwards" in text  # still the commented file


def test_a_bad_answer_is_refused_before_anything_is_written() -> None:
    with pytest.raises(ConfigError, match="school_id"):
        config_text(Answers(school_id="Школа 61"), Path("/var/lib/kalkan"))


def test_units_are_complete_and_keep_their_firewall_networks(tmp_path: Path) -> None:
    units = render_units(templates_dir(), prefix=Path("/opt/kalkan"),
                         config=Path("/etc/kalkan/kalkan.yaml"), data_dir=Path("/var/lib/kalkan"),
                         writable=[Path("/var/lib/kalkan")], networks=("10.1.0.0/16",),
                         interface="eth1")
    assert set(units) == set(UNITS)
    for name, text in units.items():
        assert "@" not in text, name  # every placeholder filled
        if name.endswith(".service"):
            assert "User=kalkan" in text and "NoNewPrivileges=yes" in text
            assert "ProtectSystem=strict" in text and "ReadWritePaths=/var/lib/kalkan" in text
    assert "CAP_NET_ADMIN" in units["kalkan-firewall.service"]
    settings = {n: [line for line in t.splitlines() if not line.startswith("#")]
                for n, t in units.items()}
    assert not any("CAP_NET_ADMIN" in line for n in UNITS if n != "kalkan-firewall.service"
                   for line in settings[n])
    assert "Before=network-online.target" in units["kalkan-dns.service"]
    unit = tmp_path / "kalkan-firewall.service"
    unit.write_text(units["kalkan-firewall.service"])
    assert _firewall_args_of(unit) == (("10.1.0.0/16",), "eth1")


def test_questions_on_a_terminal_offer_the_options_as_defaults() -> None:
    import click
    from click.testing import CliRunner

    from gateway.setup_cli import ask

    @click.command()
    def questions() -> None:
        click.echo(repr(ask(Answers(language="ru"))))

    typed = "school-7\n\n10.5.0.0/24 10.6.0.0/24\n\n\n\n"  # Enter keeps the offered value
    result = CliRunner().invoke(questions, input=typed)
    assert result.exit_code == 0, result.output
    assert ("Answers(school_id='school-7', language='ru', networks=('10.5.0.0/24', "
            "'10.6.0.0/24'), upstreams=('9.9.9.9', '1.1.1.1'), dns_listen=('0.0.0.0:53',), "
            "admin_listen='127.0.0.1:8080'") in result.output
