"""Errors a user can act on: each names the file, the line and what to do next."""

from __future__ import annotations


class KalkanError(Exception):
    """Base of every error kalkan reports to a person rather than a traceback."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  → {self.hint}"


class SourceError(KalkanError):
    """Bad text in a file: carries the file name and the 1-based line."""

    def __init__(
        self, message: str, *, file: str | None = None, line: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.file = file
        self.line = line

    @property
    def where(self) -> str:
        if self.file and self.line:
            return f"{self.file}:{self.line}"
        return self.file or (f"line {self.line}" if self.line else "")

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        return text if not self.hint else f"{text}\n  → {self.hint}"


class ConfigError(SourceError):
    """kalkan.yaml is malformed or asks for something impossible."""


class PolicyError(SourceError):
    """A policy document or a policy change breaks a rule; the running policy stays."""


class MandatoryCategoryAllowed(PolicyError):
    """A student group would allow a category that regulation 3.3 bars for students."""


class UnknownReference(PolicyError):
    """The document names a category, group, room or class that does not exist."""


class OverlappingNetworks(PolicyError):
    """Two rooms claim the same addresses, so a client would have two rooms."""


class NotFound(KalkanError):
    """A command names a room, class, teacher, session or revision that does not exist."""
