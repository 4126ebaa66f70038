"""What the proxy tests share: a test CA made with ``cryptography``, a local origin (HTTP and
HTTPS), the loopback school, and a client that talks through an explicit proxy.

The loopback school is the demo school without schedules (the tests run at any hour) and with
two more rooms: ``loopback`` (127.0.0.0/16 and ::1, middle school, class 7B's session open) and
``quiet`` (127.1.0.0/16, middle school, no session). 127.0.0.3 is pinned to ``senior`` and
127.0.0.4 to ``teachers``.
"""

from __future__ import annotations

import datetime as dt
import http.client
import http.server
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy.orm import Session, sessionmaker

from policies.decision import CouncilDecision
from policies.demo import demo_policy_data
from policies.document import render_document
from policies.revisions import import_policy
from policies.sessions import open_session

STUDENT = "127.0.0.1"  # room loopback, group middle, session of 7B open
SENIOR = "127.0.0.3"
TEACHER = "127.0.0.4"
NO_SESSION = "127.1.0.1"  # room quiet: middle school, no session
SITES = ["bilimland.kz", "www.bilimland.kz", "roblox.com", "pornhub.com", "vk.com",
         "school1.edu.kg", "www.google.com", "www.youtube.com", "kaspi.kz"]


def loopback_policy() -> dict[str, Any]:
    data = demo_policy_data()
    for group in data["groups"]:
        group["schedule"] = []
    data["rooms"] += [
        {"id": "loopback", "name": "Loopback lab", "default_group": "middle",
         "networks": ["127.0.0.0/16", "::1/128"]},
        {"id": "quiet", "name": "Loopback room without a session", "default_group": "middle",
         "networks": ["127.1.0.0/16"]},
    ]
    data["devices"] += [
        {"id": "senior-pc", "ip": SENIOR, "room": "loopback", "group": "senior"},
        {"id": "teacher-pc", "ip": TEACHER, "room": "loopback", "group": "teachers"},
    ]
    return data


def seed_loopback_school(sessions: sessionmaker[Session]) -> None:
    with sessions() as db:
        import_policy(db, render_document(loopback_policy()), file="loopback policy",
                      decision=CouncilDecision("7", "2026-09-01"), author="test")
        open_session(db, room="loopback", teacher="aigul", class_id="7B", minutes=600)


# --- a test CA ------------------------------------------------------------------------------

@dataclass
class TestCA:
    cert_pem: bytes
    leaf_pem: bytes
    leaf_key_pem: bytes
    leaf_der: bytes

    def write(self, directory: Path) -> tuple[Path, Path, Path]:
        ca, leaf, key = directory / "ca.pem", directory / "leaf.pem", directory / "leaf.key"
        ca.write_bytes(self.cert_pem)
        leaf.write_bytes(self.leaf_pem)
        key.write_bytes(self.leaf_key_pem)
        return ca, leaf, key


def make_test_ca(names: list[str], addresses: list[str] = ()) -> TestCA:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kalkan test origin CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(days=1))
          .not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return TestCA(
        ca.public_bytes(serialization.Encoding.PEM), leaf.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()),
        leaf.public_bytes(serialization.Encoding.DER))


# --- the origin -----------------------------------------------------------------------------

class OriginHandler(http.server.BaseHTTPRequestHandler):
    """Answers ``origin <host> <path>``; a few paths behave like downloads."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = f"origin {self.headers.get('Host', '')} {self.path}\n".encode()
        for name, value in self.headers.items():
            if name.lower() == "youtube-restrict":
                body += f"youtube-restrict: {value}\n".encode()
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self.path.startswith("/big"):  # 4 MB: many relay chunks, flow control at work
            body = bytes(range(256)) * (4 << 12)
        if self.path.startswith("/get"):
            headers = {"Content-Type": "application/octet-stream",
                       "Content-Disposition": 'attachment; filename="setup.exe"'}
        self.send_response(200)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class Origin:
    """HTTP and HTTPS on 127.0.0.1, each on a free port, in threads."""

    def __init__(self, ca: TestCA, directory: Path) -> None:
        self.ca = ca
        _, leaf, key = ca.write(directory)
        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OriginHandler)
        self.https = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OriginHandler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(leaf, key)
        self.https.socket = context.wrap_socket(self.https.socket, server_side=True)
        self.threads = [threading.Thread(target=s.serve_forever, daemon=True)
                        for s in (self.http, self.https)]
        for t in self.threads:
            t.start()

    @property
    def http_port(self) -> int:
        return self.http.server_address[1]

    @property
    def https_port(self) -> int:
        return self.https.server_address[1]

    def close(self) -> None:
        for s in (self.http, self.https):
            s.shutdown()
            s.server_close()


class PointAtOrigin:
    """A test addon: every upstream connection goes to the local origin (port 80 → its HTTP
    port, anything else → its HTTPS port), as if DNS had said so."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin

    def server_connect(self, data: Any) -> None:
        _host, port = data.server.address[:2]
        data.server.address = ("127.0.0.1", self.origin.http_port if port == 80
                               else self.origin.https_port)


# --- a client through an explicit proxy -----------------------------------------------------

@dataclass
class Reply:
    status: int
    body: str
    headers: dict[str, str]
    peer_der: bytes | None = None


def via_proxy(proxy: tuple[str, int], url: str, *, client: str = STUDENT,
              ca_file: Path | None = None, method: str = "GET", body: bytes | None = None,
              headers: dict[str, str] | None = None, timeout: float = 10) -> Reply:
    """One request through the explicit proxy, from the loopback address ``client``."""
    scheme, _, rest = url.partition("://")
    hostport, slash, path = rest.partition("/")
    host, _, port = hostport.partition(":")
    headers = {"Host": hostport, **(headers or {})}
    if scheme == "http":
        conn = http.client.HTTPConnection(*proxy, timeout=timeout, source_address=(client, 0))
        conn.request(method, url, body=body, headers=headers)
        resp = conn.getresponse()
        reply = Reply(resp.status, resp.read().decode("utf-8", "replace"),
                      {k.lower(): v for k, v in resp.getheaders()})
        conn.close()
        return reply
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    conn = http.client.HTTPSConnection(*proxy, timeout=timeout, context=context,
                                       source_address=(client, 0))
    conn.set_tunnel(host, int(port or 443))
    conn.request(method, "/" + path if slash else "/", body=body, headers=headers)
    resp = conn.getresponse()
    peer = conn.sock.getpeercert(binary_form=True)
    reply = Reply(resp.status, resp.read().decode("utf-8", "replace"),
                  {k.lower(): v for k, v in resp.getheaders()}, peer)
    conn.close()
    return reply


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def iter_lines(text: str) -> Iterator[str]:
    return iter(text.splitlines())
