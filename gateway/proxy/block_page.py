"""The block page: what was blocked and why, in the student's language, with two actions.

:class:`BlockPage` renders the page for a :class:`~policies.decision.Decision` (the HTTP policy
and the downloads addon use it). :class:`BlockPageAddon` answers the gateway's own addresses:
the form posts to ``/.kalkan/request`` on the blocked site's own host, so that it works for any
blocked site, over HTTP and over inspected HTTPS, in transparent and explicit mode alike, and
the report form is at ``/.kalkan/report`` and at the root of ``proxy.block_page_address``.

Everything the page reflects (the URL, the host, what a student typed) goes through Jinja2 with
autoescaping. The form carries a signed token that binds it to the client, the host and the
decision: another site cannot make a student's browser file requests (the token cannot be read
across origins), and a student cannot file a request in someone else's name.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import jinja2
from mitmproxy import http
from sqlalchemy.orm import Session, sessionmaker

from gateway.proxy.language import catalog, category_name, pick_language
from gateway.proxy.site_requests import (
    RequestLimiter,
    SiteRequestDraft,
    store_site_request,
)
from policies.categories import LANGUAGES, MANDATORY_FOR_STUDENTS
from policies.decision import Decision, Reason
from policies.models import RequestKind

log = logging.getLogger(__name__)

PREFIX = "/.kalkan/"  # reserved on every host: requests under it never leave the gateway
REQUEST_PATH = PREFIX + "request"
REPORT_PATH = PREFIX + "report"
LANG_PARAM = "kalkan_lang"
TOKEN_LIFETIME = 6 * 3600  # a page left open over the lunch break still works
MAX_FORM = 16 * 1024

_HTML = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store",
         "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
         # The page runs no script and loads nothing: a reflected string can do no harm even if
         # escaping were ever lost, and no third party learns what a student tried to open.
         "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                    "form-action 'self'; frame-ancestors 'none'"}

_LIST_REASONS = (Reason.MANDATORY_CATEGORY, Reason.CATEGORY, Reason.SITE_LIST)


@dataclass(frozen=True, slots=True)
class PageSettings:
    """What the page needs from kalkan.yaml."""

    default_language: str = "ky"
    secret: bytes = b""  # signs the form tokens; shared by all proxy processes of the gateway
    block_page_address: str | None = None
    requests_per_hour: int = 10


class BlockPage:
    """Renders block, report and answer pages, and signs and checks their form tokens."""

    def __init__(self, settings: PageSettings, *, timezone: Callable[[], ZoneInfo] | None = None,
                 category_names: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.settings = settings
        self._timezone = timezone or (lambda: ZoneInfo("UTC"))
        self._names = category_names or {}
        env = jinja2.Environment(loader=jinja2.PackageLoader("gateway.proxy", "templates"),
                                 autoescape=True, auto_reload=False)
        self._template = env.get_template("block.html")

    # --- choosing the language ---------------------------------------------------------------

    def language_of(self, request: http.Request) -> str:
        override = request.query.get(LANG_PARAM) if "?" in request.path else None
        return pick_language(request.headers.get("accept-language"),
                             self.settings.default_language, override)

    # --- pages -------------------------------------------------------------------------------

    def render(self, decision: Decision, request: http.Request, *,
               url: str | None = None) -> bytes:
        """The block page for ``decision`` about ``request``."""
        lang = self.language_of(request)
        t = catalog(lang)
        url = _strip_lang(url or request.pretty_url)
        council = (t.text("council", protocol=decision.council.protocol,
                          date=decision.council.date) if decision.council else None)
        listed = decision.matched if decision.reason in _LIST_REASONS else None
        token = self.sign(_payload(decision, url, "rl" if _lesson_possible(decision) else "r"))
        page = self._template.render(
            lang=lang, t=t, blocked=True, host=decision.host, url=url,
            reason_text=t.reason(decision.reason.value),
            category=category_name(decision.category, lang, self._names),
            listed=listed, council=council, computer=decision.device or decision.client,
            time=self._now(), explain=decision.explain(), token=token,
            can_lesson=_lesson_possible(decision), action=REQUEST_PATH,
            report_token=self._report_token(decision.client),
            languages=self._language_links(request), notice=None)
        return page.encode("utf-8")

    def response(self, decision: Decision, request: http.Request, *,
                 url: str | None = None) -> http.Response:
        return http.Response.make(403, self.render(decision, request, url=url), _HTML)

    def report_page(self, client: str, request: http.Request, *, notice: str | None = None,
                    status: int = 200) -> http.Response:
        """The "report a site" form alone (regulation 3.4), with an optional notice on top."""
        lang = self.language_of(request)
        page = self._template.render(
            lang=lang, t=catalog(lang), blocked=False, notice=notice, action=REQUEST_PATH,
            report_token=self._report_token(client),
            languages=self._language_links(request))
        return http.Response.make(status, page.encode("utf-8"), _HTML)

    def notice_page(self, request: http.Request, lang: str, key: str, status: int,
                    client: str, **values: object) -> http.Response:
        """An answer to a form: thanks, already sent, too many, out of date, unavailable."""
        page = self._template.render(
            lang=lang, t=catalog(lang), blocked=False,
            notice=catalog(lang).text(key, **values), action=REQUEST_PATH,
            report_token=self._report_token(client),
            languages=self._language_links(request))
        headers = dict(_HTML)
        if status == 429:
            headers["Retry-After"] = "600"
        return http.Response.make(status, page.encode("utf-8"), headers)

    # --- tokens ------------------------------------------------------------------------------

    def sign(self, payload: dict[str, Any], now: float | None = None) -> str:
        payload = {**payload, "e": int((now or time.time()) + TOKEN_LIFETIME)}
        body = base64.urlsafe_b64encode(
            json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()).rstrip(b"=")
        mac = hmac.new(self.settings.secret, body, hashlib.sha256).digest()[:16]
        return f"{body.decode()}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"

    def verify(self, token: str, client: str, now: float | None = None) -> dict[str, Any] | None:
        """The token's payload if it is ours, unexpired and made for ``client``; else None."""
        body, _, mac = token.encode("ascii", "replace").partition(b".")
        want = base64.urlsafe_b64encode(
            hmac.new(self.settings.secret, body, hashlib.sha256).digest()[:16]).rstrip(b"=")
        if not body or not hmac.compare_digest(mac, want):
            return None
        try:
            payload = json.loads(base64.urlsafe_b64decode(body + b"=" * (-len(body) % 4)))
        except ValueError:
            return None
        if not isinstance(payload, dict) or payload.get("c") != client:
            return None
        if payload.get("e", 0) < (now or time.time()):
            return None
        return payload

    def _report_token(self, client: str) -> str:
        return self.sign({"c": client, "h": "", "k": "p"})

    # --- pieces ------------------------------------------------------------------------------

    def _now(self) -> str:
        return dt.datetime.now(self._timezone()).strftime("%Y-%m-%d %H:%M")

    def _language_links(self, request: http.Request) -> list[tuple[str, str, str]]:
        parts = urlsplit(request.path)
        query = [(k, v) for k, v in parse_qs(parts.query, keep_blank_values=True).items()
                 if k != LANG_PARAM]
        links = []
        for code in LANGUAGES:
            q = urlencode([*((k, v) for k, vs in query for v in vs), (LANG_PARAM, code)])
            links.append((code, catalog(code)["language_name"],
                          urlunsplit(("", "", parts.path or "/", q, ""))))
        return links


def _payload(decision: Decision, url: str, kinds: str) -> dict[str, Any]:
    return {"c": decision.client, "h": decision.host, "u": url[:2000],
            "r": decision.reason.value, "cat": decision.category, "g": decision.group,
            "room": decision.room, "dev": decision.device, "s": decision.session, "k": kinds}


def _lesson_possible(decision: Decision) -> bool:
    """A teacher can allow a site for the lesson only in a session, and never a mandatory
    category (regulation 3.3), nor an attempt to get round the filter."""
    return (decision.session is not None
            and decision.reason not in (Reason.MANDATORY_CATEGORY, Reason.BYPASS_ATTEMPT)
            and decision.category not in MANDATORY_FOR_STUDENTS)


def _strip_lang(url: str) -> str:
    if LANG_PARAM not in url:
        return url
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qs(parts.query, keep_blank_values=True).items()
             if k != LANG_PARAM]
    return urlunsplit(parts._replace(query=urlencode([(k, v) for k, vs in query for v in vs])))


_KINDS = {"review": RequestKind.REVIEW, "lesson": RequestKind.LESSON,
          "report": RequestKind.REPORT}
_KIND_LETTER = {RequestKind.REVIEW: "r", RequestKind.LESSON: "l", RequestKind.REPORT: "p"}


class BlockPageAddon:
    """Answers the gateway's own pages before the policy sees them: the request form's target,
    the report form, and the block page address itself."""

    def __init__(self, page: BlockPage, sessions: sessionmaker[Session] | None,
                 limiter: RequestLimiter | None = None,
                 gateway_hosts: Iterable[str] = ()) -> None:
        self.page = page
        self.sessions = sessions
        self.limiter = limiter or RequestLimiter(page.settings.requests_per_hour)
        hosts = set(gateway_hosts)
        if page.settings.block_page_address:
            hosts.add(str(ipaddress.ip_address(page.settings.block_page_address)))
        self.gateway_hosts = frozenset(hosts)

    async def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or not flow.live:
            return
        req = flow.request
        path = req.path
        own = path.startswith(PREFIX)
        if not own and req.pretty_host.strip("[]") not in self.gateway_hosts:
            return  # the common case: not ours, the policy decides
        flow.metadata["kalkan.own_page"] = True  # the event tap does not log our own pages
        client = flow.client_conn.peername[0]
        if req.method == "POST" and path.split("?", 1)[0] == REQUEST_PATH:
            flow.response = await self._file_request(flow, client)
        elif req.method in ("GET", "HEAD"):
            flow.response = self.page.report_page(client, req)
        else:
            flow.response = http.Response.make(405, b"", {"Allow": "GET, POST"})

    async def _file_request(self, flow: http.HTTPFlow, client: str) -> http.Response:
        req = flow.request
        lang = self.page.language_of(req)
        form = _form(req)
        lang = form.get("lang") if form.get("lang") in LANGUAGES else lang
        payload = self.page.verify(form.get("token", ""), client)
        kind = _KINDS.get(form.get("kind", ""))
        if payload is None or kind is None or _KIND_LETTER[kind] not in payload.get("k", ""):
            return self.page.notice_page(req, lang, "invalid", 400, client)
        if not self.limiter.allow(client):
            log.warning("client %s sends too many block-page requests; refusing for now", client)
            return self.page.notice_page(req, lang, "flooded", 429, client)
        if kind is RequestKind.REPORT:
            url = form.get("url", "").strip()[:2000]
            host = (urlsplit(url if "//" in url else "//" + url).hostname or "")[:253]
            if not host:
                return self.page.notice_page(req, lang, "invalid", 400, client)
        else:
            url, host = payload.get("u"), payload.get("h") or ""
        draft = SiteRequestDraft(
            kind=kind, client=client, host=host, url=url, device=payload.get("dev"),
            room=payload.get("room"), group=payload.get("g"), session=payload.get("s"),
            category=payload.get("cat"), reason=payload.get("r"),
            message=form.get("message", "").strip()[:500], language=lang)
        if self.sessions is None:
            return self.page.notice_page(req, lang, "unavailable", 503, client)
        try:
            # A rare click, but the database may be slow or away: never in the event loop.
            number, stored = await asyncio.to_thread(store_site_request, self.sessions, draft)
        except Exception:
            log.exception("could not store a %s request from %s", kind.value, client)
            return self.page.notice_page(req, lang, "unavailable", 503, client)
        if stored:
            log.info("%s request No %s from %s about %s", kind.value, number, client, host)
            return self.page.notice_page(req, lang, "sent", 200, client, id=number)
        return self.page.notice_page(req, lang, "already", 200, client)


def _form(request: http.Request) -> dict[str, str]:
    """The urlencoded form, first value of each field; oversized or odd bodies are empty."""
    body = request.raw_content or b""
    if len(body) > MAX_FORM:
        return {}
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=16)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {k: v[0] for k, v in fields.items() if v}
