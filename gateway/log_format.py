"""Log lines for people, or for the journal: ``key=value`` or JSON with level and component.

Under systemd (``JOURNAL_STREAM`` is set when stderr is connected to the journal) each line
starts with its syslog priority in angle brackets (``<4>``), which journald turns into the
entry's PRIORITY (``journalctl -p warning`` then works), followed by ``level=warning
component=gateway.dns.upstream message="..."``; a traceback goes into ``exception="..."`` on
the same line, so one event stays one journal entry.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Literal

LogFormat = Literal["auto", "text", "keyvalue", "json"]
TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# syslog priorities (RFC 5424) of Python's levels
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6,
             logging.DEBUG: 7}


def _priority(levelno: int) -> int:
    for level in sorted(_PRIORITY, reverse=True):
        if levelno >= level:
            return _PRIORITY[level]
    return 7


def _quote(value: str) -> str:
    if value and all(c.isalnum() or c in "-_.:/@" for c in value):
        return value
    return json.dumps(value, ensure_ascii=False)  # quotes, and escapes newlines


class KeyValueFormatter(logging.Formatter):
    """``<4>level=warning component=gateway.dns message="..."`` (one line per record)."""

    def __init__(self, *, priority_prefix: bool = True) -> None:
        super().__init__()
        self.priority_prefix = priority_prefix

    def fields(self, record: logging.LogRecord) -> dict[str, str]:
        data = {"level": record.levelname.lower(), "component": record.name,
                "message": record.getMessage()}
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return data

    def format(self, record: logging.LogRecord) -> str:
        text = " ".join(f"{k}={_quote(v)}" for k, v in self.fields(record).items())
        return f"<{_priority(record.levelno)}>{text}" if self.priority_prefix else text


class JsonFormatter(KeyValueFormatter):
    """``<4>{"level": "warning", "component": "...", "message": "..."}``."""

    def format(self, record: logging.LogRecord) -> str:
        text = json.dumps(self.fields(record), ensure_ascii=False)
        return f"<{_priority(record.levelno)}>{text}" if self.priority_prefix else text


def formatter_for(form: LogFormat, environ: dict[str, str] | None = None) -> logging.Formatter:
    """The formatter ``logging.format`` asks for; ``auto`` is keyvalue under systemd."""
    journal = "JOURNAL_STREAM" in (os.environ if environ is None else environ)
    if form == "auto":
        form = "keyvalue" if journal else "text"
    if form == "keyvalue":
        return KeyValueFormatter(priority_prefix=journal)
    if form == "json":
        return JsonFormatter(priority_prefix=journal)
    return logging.Formatter(TEXT)


def configure_logging(level: str, form: LogFormat = "auto") -> None:
    """Set up the root logger once per process (a second call changes nothing)."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter_for(form))
    root.addHandler(handler)
    root.setLevel(level.upper())
