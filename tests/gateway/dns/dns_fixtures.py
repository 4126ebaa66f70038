"""Fixtures of the DNS tests: the loopback school, a fake upstream, running resolvers.

Loaded by the test modules with ``pytest_plugins = ["dns_fixtures"]``; see ``dns_harness.py``
for the school they describe.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from dns_fake_upstream import FakeUpstream
from dns_harness import BIG_TXT, STUDENT, ZONE, import_revision, loopback_policy
from sqlalchemy.orm import Session, sessionmaker

from gateway.config import Config
from gateway.dns.service import DnsService
from policies.sessions import open_session


@pytest.fixture
def school(demo: sessionmaker[Session]) -> sessionmaker[Session]:
    import_revision(demo, loopback_policy())
    with demo() as db:
        open_session(db, room="loopback", teacher="aigul", class_id="7B", minutes=120)
    return demo


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream(ZONE + "\n".join(BIG_TXT), host="127.0.0.77").start()
    yield fake
    fake.stop()


Server = Callable[..., DnsService]


@pytest.fixture
def start_server(school: sessionmaker[Session], upstream: FakeUpstream,
                 tmp_path: Any) -> Iterator[Server]:
    """``start_server(dns={...}, proxy={...}, listen=[...], **service options)``."""
    started: list[DnsService] = []

    def start(*, dns: dict[str, Any] | None = None, proxy: dict[str, Any] | None = None,
              listen: list[tuple[str, int]] | None = None, upstreams: list[str] | None = None,
              **options: Any) -> DnsService:
        settings = {"upstreams": upstreams or [upstream.address], **(dns or {})}
        config = Config.model_validate({"dns": settings, "proxy": proxy or {},
                                        "data_dir": str(tmp_path)})
        service = DnsService(config, school, listen=listen or [(STUDENT, 0)], **options)
        started.append(service.start_in_thread())
        return service

    yield start
    for service in started:
        service.stop_thread()


@pytest.fixture
def server(start_server: Server) -> DnsService:
    return start_server()
