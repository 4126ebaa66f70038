"""The two channels that leave the gateway: email (SMTP) and Telegram (Bot API).

Each ``send`` either returns (the server accepted the message) or raises
:class:`DeliveryError`, which says whether trying again can help.
"""

from __future__ import annotations

import json
import smtplib
import ssl
import urllib.error
import urllib.request
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any


class DeliveryError(Exception):
    def __init__(self, message: str, *, permanent: bool = False,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


class EmailChannel:
    """SMTP with STARTTLS (or TLS from the start on port 465) and an optional login."""

    def __init__(self, host: str, port: int, *, starttls: bool = True,
                 username: str | None = None, password: str | None = None,
                 sender: str = "kalkan@localhost", timeout: float = 20.0,
                 tls_context: ssl.SSLContext | None = None) -> None:
        self.host, self.port = host, port
        self.starttls = starttls
        self.username, self.password = username, password
        self.sender = sender
        self.timeout = timeout
        self.tls_context = tls_context

    @classmethod
    def from_config(cls, email: Any) -> EmailChannel:
        return cls(email.host, email.port, starttls=email.starttls, username=email.username,
                   password=email.password, sender=email.sender)

    def send(self, address: str, subject: str, text: str, *, message_key: str) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = address
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False)
        # Stable per outbox row: should a message ever be sent twice, mail clients show it once.
        message["Message-ID"] = f"<kalkan-notification-{message_key}@kalkan>"
        message.set_content(text)
        context = self.tls_context or ssl.create_default_context()
        try:
            if self.port == 465:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                                      context=context)
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with smtp:
                if self.starttls and self.port != 465:
                    smtp.starttls(context=context)
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(message)
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"SMTP login refused: {exc.smtp_code}", permanent=True) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"address refused: {address}", permanent=True) from exc
        except smtplib.SMTPResponseException as exc:
            # 5xx: the server will not take it; 4xx: try later.
            raise DeliveryError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}",
                                permanent=500 <= exc.smtp_code < 600) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise DeliveryError(f"SMTP server {self.host}:{self.port}: {exc}") from None


class TelegramChannel:
    """``sendMessage`` of the Bot API at ``api_base_url`` (a mirror, or the tests' fake)."""

    def __init__(self, token: str, api_base_url: str = "https://api.telegram.org", *,
                 timeout: float = 20.0) -> None:
        self.url = f"{api_base_url.rstrip('/')}/bot{token}/sendMessage"
        self.timeout = timeout

    @classmethod
    def from_config(cls, telegram: Any) -> TelegramChannel:
        return cls(telegram.bot_token or "", telegram.api_base_url)

    def send(self, chat_id: str, text: str) -> None:
        body = json.dumps({"chat_id": chat_id, "text": text[:4096],
                           "disable_web_page_preview": True}).encode("utf-8")
        request = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                answer = json.loads(exc.read() or b"{}")
            except ValueError:
                answer = {}
            description = answer.get("description") or exc.reason
            retry_after = (answer.get("parameters") or {}).get("retry_after")
            # 429: too many requests; 5xx: Telegram's trouble. 400/403: chat gone, bot blocked.
            permanent = exc.code in (400, 401, 403, 404)
            raise DeliveryError(f"Telegram {exc.code}: {description}", permanent=permanent,
                                retry_after=retry_after) from None
        except (OSError, ValueError) as exc:
            raise DeliveryError(f"Telegram API unreachable: {exc}") from None
        if not answer.get("ok"):
            raise DeliveryError(f"Telegram: {answer.get('description', 'not ok')}")
