"""What the access-log, alert and notification tests share: event builders, a school with
teachers who can be reached, a real SMTP server (aiosmtpd), a fake Telegram Bot API and a
fake upstream DNS server, all on loopback. Test modules import the fixtures they use.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from gateway.config import Config
from gateway.events.event import AccessEvent, Channel
from policies.decision import CouncilDecision
from policies.demo import demo_policy_data
from policies.document import render_document
from policies.models import StaffUser, Student
from policies.revisions import import_policy
from policies.sessions import open_session

STUDENT_IP = "127.0.0.7"  # device lab-pc07 in room loopback, Aibek Usenov's (consent recorded)
OTHER_IP = "127.0.0.8"  # device lab-pc08, no student registered on it
ADS = ["ads.example.net", "track.example.org", "pixel.example.com", "banner.example.biz",
       "metrics.example.info", "promo.example.kg"]


def event(host: str, *, action: str = "block", t: float | None = None,
          channel: Channel = Channel.DNS, client: str = "10.10.1.101",
          category: str | None = "adult", reason: str = "mandatory_category",
          device: str | None = "lab1-pc01", room: str | None = "lab1",
          group: str | None = "middle", session: int | None = None, url: str | None = None,
          bypass: bool = False, referrer: str | None = None,
          prefetch: bool = False) -> AccessEvent:
    """An access event as the DNS resolver or the proxy makes it."""
    return AccessEvent(time.time() if t is None else t, channel, client, host, action, reason,
                       category, "A" if channel is Channel.DNS else None, url, group, room,
                       device, session, None, 1, bypass, 0.2, referrer, prefetch)


def pipeline_config(tmp_path: Path, **sections: dict[str, Any]) -> Config:
    """A Config for tests: data in tmp_path, fast flushes, and the given sections merged in."""
    data: dict[str, Any] = {"data_dir": str(tmp_path / "data"),
                            "events": {"flush_interval": 0.05, "database_timeout": 0.2}}
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return Config.model_validate(data)


def wait_until(condition: Callable[[], Any], timeout: float = 10.0,
               interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    return condition()


# --- the school -------------------------------------------------------------------------------

def loopback_school_policy() -> dict[str, Any]:
    """The demo policy, any hour, with a lab on the loopback and a list of ad domains."""
    data = demo_policy_data()
    for group in data["groups"]:
        group["schedule"] = []
    data["rooms"].append({"id": "loopback", "name": "Loopback lab (room 101)",
                          "default_group": "middle", "networks": ["127.0.0.0/8"]})
    data["devices"] += [{"id": "lab-pc07", "ip": STUDENT_IP, "room": "loopback", "seat": "7"},
                        {"id": "lab-pc08", "ip": OTHER_IP, "room": "loopback", "seat": "8"}]
    data["category_sites"]["ads"] = ADS
    return data


@pytest.fixture
def school(demo: sessionmaker[Session]) -> sessionmaker[Session]:
    """The demo school with the loopback lab, reachable teachers, and 7B's session open.

    aigul (Kyrgyz) is 7B's class teacher, bakyt (Russian) opened the session, admin is the
    responsible person and has only the in-app channel. Aibek Usenov (consent recorded)
    sits at lab-pc07.
    """
    with demo() as db:
        import_policy(db, render_document(loopback_school_policy()), file="test policy",
                      author="test", decision=CouncilDecision("9", "2026-09-01"))
        db.execute(update(StaffUser).where(StaffUser.username == "aigul").values(
            email="aigul@school.kg", telegram_chat_id="1001"))
        db.execute(update(StaffUser).where(StaffUser.username == "bakyt").values(
            email="bakyt@school.kg", telegram_chat_id="1002"))
        db.execute(update(Student).where(Student.name == "Aibek Usenov").values(
            device_id="lab-pc07"))
        db.commit()
        open_session(db, room="loopback", teacher="bakyt", class_id="7B", minutes=120)
    return demo


def session_id(sessions: sessionmaker[Session]) -> int:
    from policies.models import InternetSession

    with sessions() as db:
        return db.scalar(select(InternetSession.id).where(
            InternetSession.room_id == "loopback"))  # type: ignore[return-value]


# --- a real SMTP server ----------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mailbox:
    """aiosmtpd's handler: keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.logins: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append(message)  # type: ignore[arg-type]
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


class SmtpServer:
    def __init__(self, port: int | None = None, **options: Any) -> None:
        from aiosmtpd.controller import Controller

        self.mailbox = Mailbox()
        self.port = port or free_port()
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port,
                                     **options)

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


# --- a fake Telegram Bot API -----------------------------------------------------------------

class FakeBotApi:
    """Answers ``POST /bot<token>/sendMessage`` like Telegram; ``fail`` makes it refuse."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.fail: tuple[int, dict[str, Any]] | None = None
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if api.fail is not None:
                    code, answer = api.fail
                else:
                    ok = self.path.endswith("/sendMessage") and "/bottest-token/" in self.path
                    code, answer = (200, {"ok": True, "result": {"message_id": len(
                        api.messages) + 1}}) if ok else (404, {"ok": False,
                                                               "description": "Not Found"})
                    if ok:
                        api.messages.append(body)
                data = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> FakeBotApi:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def to(self, chat_id: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if str(m["chat_id"]) == chat_id]


@pytest.fixture
def bot_api() -> Iterator[FakeBotApi]:
    fake = FakeBotApi().start()
    yield fake
    fake.stop()


def notify_sections(smtp: SmtpServer | None, bot_api: FakeBotApi | None) -> dict[str, Any]:
    section: dict[str, Any] = {}
    if smtp is not None:
        section["email"] = {"enabled": True, "host": "127.0.0.1", "port": smtp.port,
                            "starttls": False, "sender": "kalkan@school.kg"}
    if bot_api is not None:
        section["telegram"] = {"enabled": True, "bot_token": "test-token",
                               "api_base_url": bot_api.url}
    return section


# --- a fake upstream resolver, for names the policy allows --------------------------------

class TinyUpstream:
    """Answers every A query with 192.0.2.1 and everything else with no records (UDP)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.53", 0))
        self.address = f"127.0.0.53:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> TinyUpstream:
        self.thread.start()
        return self

    def _serve(self) -> None:
        from dnslib import QTYPE, RR, A, DNSRecord

        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            request = DNSRecord.parse(data)
            reply = request.reply()
            if request.q.qtype == QTYPE.A:
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A("192.0.2.1"), ttl=60))
            self.sock.sendto(reply.pack(), peer)

    def stop(self) -> None:
        self.sock.close()


def self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) TLS contexts for a certificate of 127.0.0.1 made on the spot."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "smtp.pem", tmp_path / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client
