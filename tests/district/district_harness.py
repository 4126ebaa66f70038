"""What the district tests share: a TCP relay to PostgreSQL that the test can cut, a loopback
port finder, DNS questions, and the kalkan command line as a child process."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading

import dns.message
import dns.query
import dns.rcode

# The `kalkan` console script, run by this interpreter.
KALKAN = [sys.executable, "-c", "import sys; from gateway.cli import main; sys.exit(main())"]


def free_udp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def answer_of(host: str, port: int, qname: str, timeout: float = 1.0) -> str:
    """``A 0.0.0.0`` style text of the first answer, else the rcode's name (``SERVFAIL``)."""
    query = dns.message.make_query(qname, "A")
    reply = dns.query.udp(query, host, port=port, timeout=timeout)
    for rrset in reply.answer:
        for rr in rrset:
            return f"A {rr.address}"
    return dns.rcode.to_text(reply.rcode())


class Relay:
    """127.0.0.1:port → PostgreSQL's Unix socket; :meth:`cut` drops every connection and
    stops listening, :meth:`restore` listens again on the same port."""

    def __init__(self, unix_path: str) -> None:
        self.unix_path = unix_path
        self.port = 0
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> Relay:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            upstream = socket.socket(socket.AF_UNIX)
            try:
                upstream.connect(self.unix_path)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def restore(self) -> None:
        self.start()
