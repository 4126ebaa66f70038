"""Downloads of programs and media files, blocked for students (regulation 3.3) unless their
group allows them (``downloads: true``; the group in force during a session is the class's) or
their session does (the teacher's switch, ``kalkan session open --allow-downloads``).

Checked twice, both cheap: the URL's extension when the request leaves (nothing is fetched),
and the response's ``Content-Type`` and ``Content-Disposition`` when its headers arrive (a
download behind ``/get?id=7``). Media is blocked only as a *download* (an attachment, or a
media extension in the URL), so that video and sound still play inside lesson pages.

A response refused at its headers gets the block page at once, but the origin's body still
drains through the proxy (mitmproxy cannot close a server connection from a hook); the
extension check at the request catches most downloads before that.
"""

from __future__ import annotations

import re
from email.message import Message
from urllib.parse import unquote, urlsplit

from mitmproxy import http

from gateway.proxy.block_page import BlockPage
from gateway.proxy.http_policy import DECISION, URL
from policies.decision import Action, Decision, Reason
from policies.engine import Engine
from policies.snapshot import Snapshot

PROGRAM_EXTENSIONS = frozenset({
    "exe", "msi", "msix", "msixbundle", "appx", "bat", "cmd", "com", "scr", "ps1", "vbs",
    "jar", "apk", "xapk", "aab", "ipa", "dmg", "pkg", "deb", "rpm", "appimage", "snap",
    "sh", "run", "bin", "iso", "img", "torrent",
})
MEDIA_EXTENSIONS = frozenset({
    "mp4", "mkv", "avi", "mov", "wmv", "flv", "webm", "m4v", "3gp", "mpg", "mpeg",
    "mp3", "m4a", "aac", "wav", "flac", "ogg", "oga", "opus", "wma",
})
PROGRAM_TYPES = frozenset({
    "application/x-msdownload", "application/x-msi", "application/x-ms-installer",
    "application/vnd.microsoft.portable-executable", "application/x-dosexec",
    "application/vnd.android.package-archive", "application/x-apple-diskimage",
    "application/x-debian-package", "application/vnd.debian.binary-package",
    "application/x-rpm", "application/x-redhat-package-manager", "application/java-archive",
    "application/x-executable", "application/x-sh", "application/x-iso9660-image",
    "application/x-bittorrent",
})
_EXT = re.compile(r"\.([A-Za-z0-9]{1,12})$")

DOWNLOAD = "kalkan.download"  # flow.metadata: the download decision that replaced the policy's


def extension(name: str) -> str | None:
    """``setup.EXE`` → ``exe``; None without one."""
    match = _EXT.search(name)
    return match.group(1).lower() if match else None


def url_is_download(url: str) -> str | None:
    """What the URL's (or path's) last segment says: a program's extension, or None."""
    path = url.split("?", 1)[0].split("#", 1)[0]
    if "://" in path:
        path = urlsplit(path).path
    if "%" in path:
        path = unquote(path)
    ext = extension(path.rsplit("/", 1)[-1])
    return ext if ext in PROGRAM_EXTENSIONS else None


def response_is_download(content_type: str | None, disposition: str | None) -> str | None:
    """What the response headers say it is: ``program``/``media`` with a detail, or None."""
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    if mime in PROGRAM_TYPES:
        return f"a program ({mime})"
    attachment = False
    filename = None
    if disposition:
        message = Message()
        message["content-disposition"] = disposition
        attachment = message.get_content_disposition() == "attachment"
        filename = message.get_filename()
    ext = extension(filename) if filename else None
    if ext in PROGRAM_EXTENSIONS:
        return f"a program ({filename})"
    if attachment and (ext in MEDIA_EXTENSIONS or mime.startswith(("video/", "audio/"))):
        return f"a media file ({filename or mime})"
    return None


def session_allows_downloads(snapshot: Snapshot, decision: Decision) -> bool:
    """True if the teacher's session that ``decision`` was made under allows downloads."""
    if decision.session is None or decision.room is None:
        return False
    for session in snapshot.sessions.get(decision.room, ()):
        if session.id == decision.session:
            return session.downloads
    return False


class DownloadsAddon:
    def __init__(self, engine: Engine, page: BlockPage) -> None:
        self.engine = engine
        self.page = page

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or not self._restricted(flow):
            return
        ext = url_is_download(flow.request.path)
        if ext:
            self._block(flow, f"a program (.{ext})")

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if DOWNLOAD in flow.metadata or flow.response is None or not self._restricted(flow):
            return
        headers = flow.response.headers
        what = response_is_download(headers.get("content-type"),
                                    headers.get("content-disposition"))
        if what is None:
            return
        self._block(flow, what)
        # The headers go to the client now (the block page's); the origin's body is dropped.
        page = flow.response.content or b""
        sent = False

        def drop_body(chunk: bytes) -> bytes:
            nonlocal sent
            if sent:
                return b""
            sent = True
            return page

        flow.response.stream = drop_body

    def _restricted(self, flow: http.HTTPFlow) -> bool:
        decision: Decision | None = flow.metadata.get(DECISION)
        if decision is None or decision.blocked:
            return False
        snapshot = self.engine.snapshot
        group = snapshot.groups.get(decision.group or "")
        if group is None or not group.is_student or group.downloads:
            return False
        return not session_allows_downloads(snapshot, decision)

    def _block(self, flow: http.HTTPFlow, what: str) -> None:
        decision = flow.metadata[DECISION]._replace(
            action=Action.BLOCK, reason=Reason.DOWNLOAD, detail=f"download of {what}")
        flow.metadata[DOWNLOAD] = decision
        flow.metadata[DECISION] = decision
        flow.response = self.page.response(decision, flow.request,
                                           url=flow.metadata.get(URL))
