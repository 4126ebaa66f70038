"""The "internet" of the classroom test, run inside its network namespace:

- a web origin on 80 (HTTP) and 443 (HTTPS with the test CA's certificate) that answers
  ``origin <host> <path>`` on every address of the namespace;
- an upstream DNS on 53/udp and 53/tcp for the zone given on the command line;
- a DNS-over-TLS port (853/tcp) that accepts connections, and UDP echo on 443 (where QUIC
  would go) and 4433 (a control: other UDP must still pass).

Usage: python netns_internet.py DIR "name=address[/address6],…"; writes DIR/internet.ready
when up. Everything listens on IPv4 and IPv6.
"""

from __future__ import annotations

import http.server
import socket
import socketserver
import ssl
import sys
import threading
from pathlib import Path

from dnslib import AAAA, QTYPE, RR, A
from dnslib.server import BaseResolver, DNSServer


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = f"origin {self.headers.get('Host', '')} {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class Zone(BaseResolver):
    def __init__(self, records: dict[str, str]) -> None:
        self.records = {name: value.split("/") for name, value in records.items()}

    def resolve(self, request, handler):
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        addresses = self.records.get(name)
        if addresses is None:
            reply.header.rcode = 3  # NXDOMAIN
        elif request.q.qtype == QTYPE.A:
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(addresses[0]), ttl=60))
        elif request.q.qtype == QTYPE.AAAA and len(addresses) > 1:
            reply.add_answer(RR(request.q.qname, QTYPE.AAAA, rdata=AAAA(addresses[1]), ttl=60))
        return reply


class Http6Server(http.server.ThreadingHTTPServer):
    """IPv6 only: the IPv4 server holds the same port."""

    address_family = socket.AF_INET6

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        super().server_bind()


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        sock.sendto(data, self.client_address)


def serve(server: socketserver.BaseServer) -> None:
    threading.Thread(target=server.serve_forever, daemon=True).start()


def main() -> None:
    directory = Path(sys.argv[1])
    records = dict(item.split("=") for item in sys.argv[2].split(","))
    http.server.ThreadingHTTPServer.allow_reuse_address = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "leaf.pem", directory / "leaf.key")
    for server_class, any_address in ((http.server.ThreadingHTTPServer, "0.0.0.0"),
                                      (Http6Server, "::")):
        serve(server_class((any_address, 80), Handler))
        https = server_class((any_address, 443), Handler)
        https.socket = context.wrap_socket(https.socket, server_side=True)
        serve(https)
    zone = Zone(records)
    for tcp in (False, True):
        DNSServer(zone, address="0.0.0.0", port=53, tcp=tcp).start_thread()
    dot = socket.socket()
    dot.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    dot.bind(("0.0.0.0", 853))
    dot.listen(16)
    for port in (443, 4433):
        serve(socketserver.ThreadingUDPServer(("0.0.0.0", port), Echo))
    (directory / "internet.ready").write_text("ok")
    while True:
        conn, _ = dot.accept()
        conn.close()


if __name__ == "__main__":
    main()
