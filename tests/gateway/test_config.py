"""kalkan.yaml: defaults, and errors that name the line and say what to write instead."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway import config
from gateway.config import (
    Config,
    InvalidConfig,
    IPAddress,
    Upstream,
    default_config_text,
    find_config_path,
    load_config,
    load_or_default,
    parse_listen,
    parse_upstream,
    write_default_config,
)
from policies.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kalkan.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error_for(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.file == str(path)
    return caught.value


# --- defaults ---------------------------------------------------------------------------------

def test_default_text_loads_to_the_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, default_config_text())) == Config()


def test_default_text_sets_every_key_explicitly() -> None:
    # Every key is written out (not commented out), so the file documents the whole schema.
    text = default_config_text()

    def keys(model: type, indent: str) -> None:
        for name, field in model.model_fields.items():
            assert f"\n{indent}{name}:" in text, f"{indent}{name} missing from the default file"
            if isinstance(field.annotation, type) and issubclass(field.annotation,
                                                                 config.BaseModel):
                keys(field.annotation, indent + "  ")

    keys(Config, "")


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n", "---\n"])
def test_empty_file_means_defaults(tmp_path: Path, text: str) -> None:
    assert load_config(write(tmp_path, text)) == Config()


def test_section_with_every_key_commented_out_means_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "notifications:\n  email:\n    # enabled: true\n"))
    assert cfg.notifications.email == config.EmailConfig()


def test_derived_values() -> None:
    cfg = Config()
    assert cfg.database_url == "sqlite:////var/lib/kalkan/kalkan.db"
    assert cfg.dns.listen_addresses == [("127.0.0.1", 53), ("::1", 53)]
    assert cfg.dns.upstream_servers == [Upstream("9.9.9.9", 53), Upstream("1.1.1.1", 53)]
    assert ipaddress.ip_network("192.168.0.0/16") in cfg.dns.allowed_networks
    assert cfg.proxy.listen_address == ("127.0.0.1", 3128)
    assert cfg.proxy.transparent_listen_address is None
    assert cfg.admin.listen_address == ("127.0.0.1", 8080)


def test_values_from_the_file(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, """\
school_id: osh-school-5
language: ru
database:
  url: postgresql+psycopg://kalkan@db/kalkan
dns:
  upstreams: ["tls://9.9.9.9#dns.quad9.net"]
proxy:
  transparent_listen: "0.0.0.0:8443"
  block_page_address: 192.168.1.1
notifications:
  telegram: {enabled: true, bot_token: "123:abc"}
retention:
  allowed_events: "off"
"""))
    assert cfg.school_id == "osh-school-5"
    assert cfg.language == "ru"
    assert cfg.database_url == "postgresql+psycopg://kalkan@db/kalkan"
    assert cfg.dns.upstream_servers == [Upstream("9.9.9.9", 853, True, "dns.quad9.net")]
    assert cfg.proxy.transparent_listen_address == ("0.0.0.0", 8443)
    assert cfg.proxy.block_page_ip == ipaddress.ip_address("192.168.1.1")
    assert cfg.notifications.telegram.bot_token == "123:abc"
    assert cfg.retention.allowed_events == "off"


def test_config_is_frozen() -> None:
    with pytest.raises(ValueError):
        Config().school_id = "other"  # type: ignore[misc]


# --- address parsing --------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:53", ("127.0.0.1", 53)),
    ("0.0.0.0:3128", ("0.0.0.0", 3128)),
    ("[::1]:53", ("::1", 53)),
    ("[2001:db8::1]:8080", ("2001:db8::1", 8080)),
])
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@given(st.ip_addresses(), st.integers(1, 65535))
def test_parse_listen_reads_what_it_is_given(address: IPAddress, port: int) -> None:
    text = f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"
    assert parse_listen(text) == (str(address), port)
    assert parse_upstream(text) == Upstream(str(address), port)


@pytest.mark.parametrize("text", [
    "127.0.0.1", "localhost:53", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:http",
    "::1:53", "[::1]", "[127.0.0.1]:53", "[::1:53", "",
])
def test_parse_listen_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_listen(text)


@pytest.mark.parametrize(("text", "expected"), [
    ("9.9.9.9", Upstream("9.9.9.9", 53)),
    ("9.9.9.9:5353", Upstream("9.9.9.9", 5353)),
    ("2620:fe::fe", Upstream("2620:fe::fe", 53)),
    ("[2620:fe::fe]:5353", Upstream("2620:fe::fe", 5353)),
    ("tls://dns.quad9.net", Upstream("dns.quad9.net", 853, True, "dns.quad9.net")),
    ("tls://9.9.9.9", Upstream("9.9.9.9", 853, True, None)),
    ("tls://9.9.9.9#dns.quad9.net", Upstream("9.9.9.9", 853, True, "dns.quad9.net")),
    ("tls://[2620:fe::fe]:8853#dns.quad9.net", Upstream("2620:fe::fe", 8853, True,
                                                       "dns.quad9.net")),
])
def test_parse_upstream(text: str, expected: Upstream) -> None:
    assert parse_upstream(text) == expected


@pytest.mark.parametrize("text", [
    "dns.quad9.net", "https://dns.quad9.net/dns-query", "9.9.9.9:0", "tls://9.9.9.9#",
    "tls://bad_name", "9.9.9", "",
])
def test_parse_upstream_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_upstream(text)


# --- one problem: line, key path and what to do -------------------------------------------------

# (file text, line, key path, words the message or the hint must contain)
PROBLEMS = [
    ("dns:\n  upstream:\n    - 1.1.1.1\n", 2, "dns.upstream",
     ["no such key", "did you mean 'upstreams'?"]),
    ("school_id: x\nlanguge: ru\n", 2, "languge", ["did you mean 'language'?", "top level takes"]),
    ("notifications:\n  telegram:\n    bot_tokn: x\n", 3, "notifications.telegram.bot_tokn",
     ["did you mean 'bot_token'?"]),
    ("upstreams: [9.9.9.9]\n", 1, "upstreams", ["belongs under dns"]),
    ("notifications:\n  email:\n    port: abc\n", 3, "notifications.email.port",
     ["expected a whole number", "port: 587"]),
    ("notifications:\n  email:\n    port: 70000\n", 3, "notifications.email.port",
     ["out of range", "from 1 to 65535"]),
    ("dns:\n  listen:\n    - \"127.0.0.1:53\"\n    - \"127.0.0.1:70000\"\n", 4,
     "dns.listen[1]", ["not a listening address", "1 to 65535", "127.0.0.1:53"]),
    ("dns:\n  listen: localhost:53\n", 2, "dns.listen", ["expected a list", "listen: ["]),
    ("proxy:\n  listen: 3128\n", 2, "proxy.listen", ["expected text", '"127.0.0.1:3128"']),
    ("dns:\n  min_ttl: 600\n  max_ttl: 60\n", 3, "dns.max_ttl",
     ["below min_ttl", "at least min_ttl"]),
    ("dns:\n  cache_size: 5\n  min_ttl: 100000\n", 3, "dns.max_ttl", ["below min_ttl"]),
    ("dns:\n  cache_size: -1\n", 2, "dns.cache_size", ["out of range", "at least 0"]),
    ("policy:\n  reload_interval: 0\n", 2, "policy.reload_interval",
     ["out of range", "from 0.1 to 60"]),
    ("dns:\n  allowed_clients:\n    - 10.0.0.0/8\n    - 192.168.1.5/24\n", 4,
     "dns.allowed_clients[1]", ["not a network", "192.168.1.0/24"]),
    ("dns:\n  allowed_clients: [school-net]\n", 2, "dns.allowed_clients[0]",
     ["not a network", "address/prefix"]),
    ("dns:\n  allowed_clients: []\n", 2, "dns.allowed_clients", ["empty list", "at least one"]),
    ("dns:\n  upstreams:\n    - dns.google\n", 3, "dns.upstreams[0]",
     ["not an upstream resolver", "tls://"]),
    ("dns:\n  block_answer: refuse\n", 2, "dns.block_answer",
     ["not allowed", "blockpage, nxdomain, null"]),
    ("database:\n  url: mysql://kalkan@db/kalkan\n", 2, "database.url",
     ["not an SQLite or PostgreSQL", "postgresql+psycopg://"]),
    ("database:\n  url: postgres://kalkan@db/kalkan\n", 2, "database.url",
     ["spells the scheme postgresql://"]),
    ("retention:\n  allowed_events: off\n", 2, "retention.allowed_events",
     ["false is not allowed", 'in quotes']),
    ("retention:\n  blocked_events_days: 0\n", 2, "retention.blocked_events_days",
     ["from 1 to 3650"]),
    ("school_id: Bishkek School\n", 1, "school_id", ["lowercase Latin letters"]),
    ("language: de\n", 1, "language", ["ky, ru, kk, uz, en"]),
    ("notifications:\n  telegram:\n    enabled: true\n", 3, "notifications.telegram.bot_token",
     ["bot_token is not set", "@BotFather"]),
    ("notifications:\n  email:\n    username: kalkan\n", 3, "notifications.email.password",
     ["password is not", "add the password"]),
    ("notifications:\n  email:\n    enabled: yes please\n", 3, "notifications.email.enabled",
     ["expected true or false"]),
    ("dns: 9.9.9.9\n", 1, "dns", ["is a section", "upstreams"]),
    ("proxy:\n  block_page_address: 192.168.1.1:80\n", 2, "proxy.block_page_address",
     ["not an IP address", "without a port"]),
    ("data_dir: ''\n", 1, "data_dir", ["empty", "/var/lib/kalkan"]),
    ("notifications:\n  email:\n    port: \"587\"\n", 3, "notifications.email.port",
     ["expected a whole number", "without quotes"]),
    ("dns:\n  true: 1\n", 2, "dns.true", ["no such key", "dns takes: listen"]),
    ("admin:\n  listen: [10.0.0.1]\n", 2, "admin.listen", ["expected text", 'quote addresses']),
]


@pytest.mark.parametrize(("text", "line", "path", "words"), PROBLEMS,
                         ids=[p[2] for p in PROBLEMS])
def test_one_problem(tmp_path: Path, text: str, line: int, path: str, words: list[str]) -> None:
    err = error_for(tmp_path, text)
    assert isinstance(err, InvalidConfig)
    assert err.line == line
    assert err.message.startswith(f"{path}: ")
    assert err.hint  # every problem says what to write instead
    shown = str(err)
    assert shown.startswith(f"{err.file}:{line}: {path}: ")
    for word in words:
        assert word in shown


def test_several_problems_are_listed_in_file_order(tmp_path: Path) -> None:
    err = error_for(tmp_path, "logging:\n  level: loud\ndns:\n  upstream: [1.1.1.1]\n")
    assert isinstance(err, InvalidConfig)
    assert err.line == 2  # the first problem in the file
    assert [(p.path, p.line) for p in err.problems] == [("logging.level", 2), ("dns.upstream", 4)]
    shown = str(err)
    assert f"{err.file}:2: logging.level: " in shown
    assert f"{err.file}:4: dns.upstream: no such key" in shown
    assert "use one of: debug, info, warning, error" in shown
    assert "did you mean 'upstreams'?" in shown


# --- problems before validation --------------------------------------------------------------

@pytest.mark.parametrize(("text", "line", "words"), [
    ("dns:\n  listen: [\"127.0.0.1:53\"\n  upstreams: []\n", 3, ["not valid YAML", "indentation"]),
    ("dns:\n\tupstreams: []\n", 2, ["not valid YAML"]),
    ("dns:\n  cache_size: 1\ndns:\n  cache_size: 2\n", 3, ["appears twice", "keep one"]),
    ("- dns\n- proxy\n", 1, ["key: value", "kalkan init"]),
    ("just words\n", 1, ["key: value", "kalkan init"]),
])
def test_unreadable_files(tmp_path: Path, text: str, line: int, words: list[str]) -> None:
    err = error_for(tmp_path, text)
    assert err.line == line
    assert err.hint
    for word in words:
        assert word in str(err)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nowhere.yaml")
    assert caught.value.file == str(tmp_path / "nowhere.yaml")
    assert caught.value.hint == "run `kalkan init` to write a commented default"


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "kalkan.yaml"
    path.write_bytes("school_id: мектеп\n".encode("cp1251"))
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(path)


# --- finding and writing the file -------------------------------------------------------------

def test_find_config_path_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(config, "SEARCH_PATHS", (Path("kalkan.yaml"), tmp_path / "etc.yaml"))
    monkeypatch.delenv("KALKAN_CONFIG", raising=False)
    assert find_config_path(None) is None
    (tmp_path / "etc.yaml").write_text("")
    assert find_config_path(None) == tmp_path / "etc.yaml"
    (tmp_path / "kalkan.yaml").write_text("")
    assert find_config_path(None) == Path("kalkan.yaml")
    monkeypatch.setenv("KALKAN_CONFIG", "/srv/from-env.yaml")
    assert find_config_path(None) == Path("/srv/from-env.yaml")
    assert find_config_path("given.yaml") == Path("given.yaml")


def test_load_or_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(config, "SEARCH_PATHS", (Path("kalkan.yaml"),))
    monkeypatch.delenv("KALKAN_CONFIG", raising=False)
    assert load_or_default(None) == Config()
    monkeypatch.setenv("KALKAN_CONFIG", str(write(tmp_path, "language: uz\n")))
    assert load_or_default(None).language == "uz"
    with pytest.raises(ConfigError, match="kalkan init"):
        load_or_default(str(tmp_path / "missing.yaml"))


def test_write_default_config(tmp_path: Path) -> None:
    path = write_default_config(tmp_path / "etc" / "kalkan.yaml")
    assert path.read_text(encoding="utf-8") == default_config_text()
    assert load_config(path) == Config()
    assert path.stat().st_mode & 0o007 == 0  # may come to hold passwords


def test_write_default_config_where_it_cannot(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError) as caught:
        write_default_config(tmp_path / "file" / "kalkan.yaml")
    assert caught.value.hint is not None and "another path" in caught.value.hint


def test_write_default_config_refuses_to_overwrite(tmp_path: Path) -> None:
    path = write(tmp_path, "language: ru\n")
    with pytest.raises(ConfigError) as caught:
        write_default_config(path)
    assert caught.value.hint is not None and "--force" in caught.value.hint
    assert path.read_text() == "language: ru\n"
    write_default_config(path, force=True)
    assert load_config(path) == Config()


def test_write_default_config_for_the_demo(tmp_path: Path) -> None:
    path = write_default_config(tmp_path / "kalkan.yaml", data_dir=tmp_path / "data",
                                database_url=f"sqlite:///{tmp_path}/demo.db")
    cfg = load_config(path)
    assert cfg.data_dir == tmp_path / "data"
    assert cfg.database_url == f"sqlite:///{tmp_path}/demo.db"
    assert cfg.model_copy(update={"data_dir": Config().data_dir,
                                  "database": Config().database}) == Config()
    assert "# Where the logs" in path.read_text()  # the comments survive


def test_write_default_config_refuses_a_bad_database_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="postgresql"):
        write_default_config(tmp_path / "kalkan.yaml", database_url="mysql://db/kalkan")
    assert not (tmp_path / "kalkan.yaml").exists()
