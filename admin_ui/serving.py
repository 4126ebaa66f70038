"""How ``kalkan admin`` and ``kalkan run`` serve the pages: waitress, in several processes that
share one listening socket.

A page costs a few milliseconds of Python, and one process runs Python on one core at a time
(the GIL), whatever its threads: 20 people at once wait on each other. So the process that
binds the socket starts ``processes - 1`` more (``kalkan admin --web-only --listen-fd N``,
fresh interpreters, not forks: the first one already runs threads), which inherit the socket
and serve pages only; the background jobs stay in the first one, so they run exactly once.
Every process waits on the same socket and whichever is free accepts a connection, so a busy
one is not handed more. werkzeug's development server, used before, cost about as much per
request as the page itself; waitress parses HTTP in one thread per process and runs the app
in a pool of ``THREADS``.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

THREADS = 6  # per process: enough for what waits on the database, few enough to share a core
BACKLOG = 1024
MAX_PROCESSES = 2  # each process holds its own policy snapshot: ~250 MB; a router is small


def default_processes() -> int:
    """One per core (at least two, so that a slow page does not hold up the rest)."""
    return max(2, min(MAX_PROCESSES, os.cpu_count() or 1))


def listen_socket(host: str, port: int) -> socket.socket:
    """The admin's listening socket (port 0: a free one), inheritable by the other processes."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    return sock


def inherited_socket(fd: int) -> socket.socket:
    """The socket the first process bound, in one it started (``--listen-fd``)."""
    sock = socket.socket(fileno=fd)
    if sock.type != socket.SOCK_STREAM:
        raise SystemExit(f"--listen-fd {fd} is not a listening TCP socket")
    return sock


def die_with_parent() -> None:
    """In a process :func:`start_web_processes` started: end when the first process ends,
    however it ends (killed too), rather than serve on alone."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: stop_processes still ends them on a normal stop
    if os.getppid() == 1:  # it ended before we asked
        raise SystemExit(0)


def start_web_processes(config_path: str | None, sock: socket.socket,
                        count: int) -> list[subprocess.Popen[bytes]]:
    """``count`` more processes serving the pages on ``sock``; no background jobs in them."""
    if count <= 0:
        return []
    fd = sock.fileno()
    # Not `-m gateway.cli`: as __main__ it would be a second copy of the module that the
    # command modules importing gateway.cli do not see.
    command = [sys.executable, "-c", "import sys; from gateway.cli import main; sys.exit(main())"]
    if config_path:
        command += ["--config", str(config_path)]
    command += ["admin", "--web-only", "--listen-fd", str(fd)]
    # systemd hears from the first process only (NotifyAccess=main).
    env = {k: v for k, v in os.environ.items()
           if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    return [subprocess.Popen(command, pass_fds=(fd,), env=env) for _ in range(count)]


def serve(app: Flask, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` until the process is stopped."""
    import waitress

    # "Task queue depth" is waitress saying all threads are busy: normal under a burst.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    server = waitress.create_server(app, sockets=[sock], threads=THREADS, backlog=BACKLOG)
    server.run()
