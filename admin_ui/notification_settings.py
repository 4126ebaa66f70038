"""Notification settings: each person's email address and Telegram chat id, which kinds they
want (alerts, the daily status, block-page requests) and on which channel, and a button that
sends a test message. Everyone sets their own; the responsible person sees and sets everyone's.

The rows are :class:`gateway.notify.preferences.NotificationPreference`; the outbox reads them
(:func:`gateway.notify.outbox.enqueue`). The channels themselves (SMTP server, bot token) are
in kalkan.yaml (``notifications:``), given to the app as ``NOTIFICATIONS``.
"""

from __future__ import annotations

import re
import time
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from admin_ui.access import roles, signed_in
from admin_ui.audit import record
from admin_ui.db import get_db
from admin_ui.models import AuditAction
from gateway.notify.channels import DeliveryError, EmailChannel, TelegramChannel
from gateway.notify.preferences import NotificationPreference, NotifyKind, preference_of
from policies.errors import KalkanError
from policies.models import Role, StaffUser

bp = Blueprint("notifications", __name__, url_prefix="/notifications")

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
CHAT_ID = re.compile(r"^-?\d{1,20}$|^@[A-Za-z0-9_]{5,32}$")
KINDS = tuple(k.value for k in NotifyKind)


def save_preferences(db: Session, user: StaffUser, form: Any) -> NotificationPreference:
    """Check and store the form's address, chat id, kinds and channels; the caller commits."""
    email = form.get("email", "").strip()
    chat_id = form.get("telegram_chat_id", "").strip()
    if email and not EMAIL.match(email):
        raise KalkanError(_("%(email)s is not an email address: write it like name@school.kg.",
                            email=email))
    if chat_id and not CHAT_ID.match(chat_id):
        raise KalkanError(_("A Telegram chat id is a number such as 123456789 (write /start to "
                            "the school's bot to get it) or a channel name such as @school."))
    user.email, user.telegram_chat_id = email or None, chat_id or None
    pref = db.get(NotificationPreference, user.id) or NotificationPreference(user_id=user.id)
    pref.by_email, pref.by_telegram = "by_email" in form, "by_telegram" in form
    for kind in KINDS:
        setattr(pref, kind, kind in form)
    db.add(pref)
    return pref


def channels() -> tuple[EmailChannel | None, TelegramChannel | None]:
    """The channels kalkan.yaml turns on (None for one that is off or not configured)."""
    n = current_app.config.get("NOTIFICATIONS")
    if n is None:
        return None, None
    return (EmailChannel.from_config(n.email) if n.email.enabled else None,
            TelegramChannel.from_config(n.telegram) if n.telegram.enabled else None)


def send_test(user: StaffUser) -> list[str]:
    """Send a test message on each channel the user has; returns what was sent, raises
    :class:`KalkanError` naming each channel that failed and what to do."""
    email, telegram = channels()
    subject = _("kalkan: test message")
    text = _("This is a test message from kalkan. Notifications for %(name)s arrive here.",
             name=user.full_name)
    sent, problems = [], []
    if user.email:
        if email is None:
            problems.append(_("Email is off: turn it on under notifications: email: in "
                              "kalkan.yaml and restart kalkan."))
        else:
            try:
                email.send(user.email, subject, text, message_key=f"test-{time.time_ns()}")
                sent.append(user.email)
            except DeliveryError as exc:
                problems.append(_("Email to %(a)s failed: %(e)s. Check the address and the "
                                  "SMTP settings in kalkan.yaml.", a=user.email, e=str(exc)))
    if user.telegram_chat_id:
        if telegram is None:
            problems.append(_("Telegram is off: set notifications: telegram: in kalkan.yaml "
                              "and restart kalkan."))
        else:
            try:
                telegram.send(user.telegram_chat_id, f"{subject}\n\n{text}")
                sent.append(f"Telegram {user.telegram_chat_id}")
            except DeliveryError as exc:
                problems.append(_("Telegram to %(a)s failed: %(e)s. Check the chat id; the "
                                  "person must have written /start to the bot.",
                                  a=user.telegram_chat_id, e=str(exc)))
    if not user.email and not user.telegram_chat_id:
        problems.append(_("There is no email address or Telegram chat id to send to: add one "
                          "and save first."))
    if problems:
        raise KalkanError(" ".join(problems + ([_("Sent: %(to)s.", to=", ".join(sent))]
                                               if sent else [])))
    return sent


def _user_or_404(user_id: int) -> StaffUser:
    user = get_db().get(StaffUser, user_id)
    if user is None:
        abort(404)
    return user


def _page(user: StaffUser, status: int = 200, **extra: Any) -> tuple[str, int]:
    db = get_db()
    everyone = []
    if current_user.role == Role.RESPONSIBLE:
        everyone = [(u, preference_of(db, u.id)) for u in db.scalars(
            select(StaffUser).order_by(StaffUser.role, StaffUser.username))]
    email, telegram = channels()
    return render_template("people/notifications.html", user=user,
                           pref=preference_of(db, user.id), everyone=everyone,
                           email_on=email is not None, telegram_on=telegram is not None,
                           mine=user.id == current_user.id, **extra), status


def _save(user: StaffUser, back: str) -> Response | tuple[str, int]:
    db = get_db()
    try:
        pref = save_preferences(db, user, request.form)
    except KalkanError as exc:
        db.rollback()
        return _page(user, 400, error=str(exc))
    record(db, AuditAction.NOTIFICATIONS_SAVED, user.username, email=bool(user.email),
           telegram=bool(user.telegram_chat_id), by_email=pref.by_email,
           by_telegram=pref.by_telegram, **{k: getattr(pref, k) for k in KINDS})
    db.commit()
    flash(_("Notification settings saved."))
    return redirect(back)


def _test(user: StaffUser, back: str) -> Response | tuple[str, int]:
    db = get_db()
    try:
        sent = send_test(user)
    except KalkanError as exc:
        record(db, AuditAction.NOTIFICATION_TEST_SENT, user.username, ok=False)
        db.commit()
        return _page(user, 400, error=str(exc))
    record(db, AuditAction.NOTIFICATION_TEST_SENT, user.username, ok=True, to=sent)
    db.commit()
    flash(_("Test message sent to %(to)s.", to=", ".join(sent)))
    return redirect(back)


@bp.get("/")
@signed_in
def mine() -> tuple[str, int]:
    return _page(_user_or_404(int(current_user.id)))


@bp.post("/")
@signed_in
def save_mine() -> Response | tuple[str, int]:
    return _save(_user_or_404(int(current_user.id)), url_for("notifications.mine"))


@bp.post("/test")
@signed_in
def test_mine() -> Response | tuple[str, int]:
    return _test(_user_or_404(int(current_user.id)), url_for("notifications.mine"))


@bp.get("/<int:user_id>")
@roles(Role.RESPONSIBLE)
def user(user_id: int) -> tuple[str, int]:
    return _page(_user_or_404(user_id))


@bp.post("/<int:user_id>")
@roles(Role.RESPONSIBLE)
def save_user(user_id: int) -> Response | tuple[str, int]:
    return _save(_user_or_404(user_id), url_for("notifications.user", user_id=user_id))


@bp.post("/<int:user_id>/test")
@roles(Role.RESPONSIBLE)
def test_user(user_id: int) -> Response | tuple[str, int]:
    return _test(_user_or_404(user_id), url_for("notifications.user", user_id=user_id))
