"""The "no internet" page: an allowed HTTP request whose site cannot be reached (the school's
uplink is down, or the site does not answer) gets a page in the student's language instead of
a browser error or mitmproxy's bare "502 Bad Gateway".

mitmproxy writes its own error page after the ``error`` hook, from ``format_error`` in its
HTTP/1 and HTTP/2 layers. :func:`install` wraps that function once per process; the addon's
``error`` hook leaves the page in a context variable of the connection's hook task, which is
the task that then calls ``format_error``, so no other connection can pick it up. Allowed HTTPS
that is passed through uninspected never reaches an HTTP layer: the browser shows its own
connection error there, and nothing can be done about it.
"""

from __future__ import annotations

import contextvars
import html
from typing import Any

from mitmproxy import http

from gateway.proxy.http_policy import DECISION
from gateway.proxy.language import catalog, pick_language

_PAGE: contextvars.ContextVar[bytes | None] = contextvars.ContextVar("kalkan_offline_page",
                                                                     default=None)
_installed = False


def install() -> None:
    """Make mitmproxy's HTTP/1 and HTTP/2 layers send the page the addon prepared."""
    global _installed
    if _installed:
        return
    from mitmproxy.proxy.layers.http import _http1, _http2

    original = _http1.format_error

    def format_error(status_code: int, message: str) -> bytes:
        page = _PAGE.get()
        if page is not None:
            _PAGE.set(None)
            return page
        return original(status_code, message)

    _http1.format_error = format_error  # type: ignore[assignment]
    _http2.format_error = format_error  # type: ignore[assignment]
    _installed = True


def render_offline_page(host: str, language: str) -> bytes:
    t = catalog(language)
    title = html.escape(t["offline_title"])
    text = html.escape(t.text("offline_text", host=host))
    todo = html.escape(t["offline_todo"])
    return (f'<!doctype html>\n<html lang="{language}"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{title}</title></head>\n<body style=\"font-family:sans-serif;"
            f"max-width:40em;margin:3em auto;padding:0 1em\">\n<h1>{title}</h1>\n"
            f"<p>{text}</p>\n<p>{todo}</p>\n</body></html>\n").encode()


class OfflinePageAddon:
    """Prepares the page when an allowed request could not reach its site."""

    def __init__(self, default_language: str = "ky") -> None:
        self.default_language = default_language
        install()

    def error(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or flow.error is None:
            return  # the site answered (the error came later), or nothing failed
        decision: Any = flow.metadata.get(DECISION)
        if decision is None or decision.blocked or flow.request.method == "CONNECT":
            return  # our own pages, refusals, and tunnels have nothing to show
        language = pick_language(flow.request.headers.get("accept-language"),
                                 self.default_language)
        _PAGE.set(render_offline_page(flow.request.pretty_host, language))
