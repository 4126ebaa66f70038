"""Telling staff about requests from the block page, by email and Telegram.

A review ("wrongly blocked") or a report (regulation 3.4: "harmful and not blocked") goes to
the council and the responsible person(s); "allow it for my lesson" goes to the teacher of the
session it was made in (who also sees it live on the lesson page). Each person gets it only
on the channels their notification settings allow for the kind ``requests``; the admin's
queue shows every request whatever anyone's settings.

The notifier calls :func:`enqueue_new_requests` each round: it remembers the last request it
looked at (``pipeline_state``), so each request is queued once; on its very first round it
starts at the newest request, so an upgrade does not send a backlog of old ones.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.alerts.store import insert_ignoring_duplicates
from gateway.events.models import PipelineState
from gateway.notify.models import Notification, NotifyChannel, NotifyStatus
from gateway.notify.preferences import NotifyKind, channels_for
from policies.models import InternetSession, RequestKind, Role, SiteRequest, StaffUser

STATE_KEY = "notify.site_requests"
BATCH = 500


def recipients(db: Session, request: SiteRequest) -> list[tuple[StaffUser, str]]:
    """``(user, role)`` to tell about ``request``."""
    if request.kind == RequestKind.LESSON.value:
        session = db.get(InternetSession, request.session_id) if request.session_id else None
        found = [(session.teacher, "session_teacher")] if session is not None else []
    else:
        found = [(u, u.role) for u in db.scalars(select(StaffUser).where(
            StaffUser.role.in_((Role.COUNCIL.value, Role.RESPONSIBLE.value)))
            .order_by(StaffUser.id))]
    return [(user, role) for user, role in found if user.active]


def enqueue_new_requests(db: Session, now: dt.datetime, *, email: bool, telegram: bool) -> int:
    """Queue messages about requests made since the last round, due at ``now`` (naive UTC);
    returns how many rows."""
    state = db.get(PipelineState, STATE_KEY)
    if state is None:  # first round: from now on
        newest = db.scalar(select(func.max(SiteRequest.id))) or 0
        db.add(PipelineState(key=STATE_KEY, value=newest, updated_at=now))
        db.commit()
        return 0
    new = list(db.scalars(select(SiteRequest).where(SiteRequest.id > state.value)
                          .order_by(SiteRequest.id).limit(BATCH)))
    if not new:
        return 0
    rows: list[dict[str, Any]] = []
    for request in new:
        for user, role in recipients(db, request):
            by_email, by_telegram = channels_for(db, user.id, NotifyKind.REQUESTS)
            channels = []
            if email and by_email and user.email:
                channels.append(NotifyChannel.EMAIL)
            if telegram and by_telegram and user.telegram_chat_id:
                channels.append(NotifyChannel.TELEGRAM)
            rows += [{"request_id": request.id, "recipient_id": user.id,
                      "channel": channel.value, "alert_version": 0, "role": role[:16],
                      "status": NotifyStatus.PENDING.value, "digest": False, "attempts": 0,
                      "created_at": now, "next_attempt_at": now} for channel in channels]
    insert_ignoring_duplicates(db, Notification.__table__, rows)
    state.value = new[-1].id
    state.updated_at = now
    db.commit()
    return len(rows)


# What the message says, per language: (subject per kind, the lines' labels).
SUBJECTS = {
    "en": {"review": "kalkan: a student asks to review a blocked site",
           "report": "kalkan: a student reports a harmful site",
           "lesson": "kalkan: a student asks to open a site for your lesson"},
    "ru": {"review": "kalkan: ученик просит пересмотреть блокировку сайта",
           "report": "kalkan: ученик сообщает о вредном сайте",
           "lesson": "kalkan: ученик просит открыть сайт для вашего урока"},
    "ky": {"review": "kalkan: окуучу бөгөттөлгөн сайтты кайра карап чыгууну суранат",
           "report": "kalkan: окуучу зыяндуу сайт тууралуу кабарлайт",
           "lesson": "kalkan: окуучу сабагыңыз үчүн сайтты ачууну суранат"},
    "kk": {"review": "kalkan: оқушы бұғатталған сайтты қайта қарауды сұрайды",
           "report": "kalkan: оқушы зиянды сайт туралы хабарлайды",
           "lesson": "kalkan: оқушы сабағыңыз үшін сайтты ашуды сұрайды"},
    "uz": {"review": "kalkan: oʻquvchi bloklangan saytni qayta koʻrib chiqishni soʻramoqda",
           "report": "kalkan: oʻquvchi zararli sayt haqida xabar bermoqda",
           "lesson": "kalkan: oʻquvchi darsingiz uchun saytni ochishni soʻramoqda"},
}
LABELS = {
    "en": ("Site", "Address", "Room", "Student's words", "Answer it in the admin: {page}."),
    "ru": ("Сайт", "Адрес", "Кабинет", "Слова ученика", "Ответьте в админке: {page}."),
    "ky": ("Сайт", "Дарек", "Кабинет", "Окуучунун сөздөрү", "Админкада жооп бериңиз: {page}."),
    "kk": ("Сайт", "Мекенжай", "Кабинет", "Оқушының сөздері", "Әкімшілікте жауап беріңіз: {page}."),
    "uz": ("Sayt", "Manzil", "Xona", "Oʻquvchining soʻzlari", "Adminkada javob bering: {page}."),
}
PAGES = {
    "en": ("Reviews and reports", "My lessons"),
    "ru": ("Пересмотры и сообщения", "Мои уроки"),
    "ky": ("Кайра кароо жана кабарлар", "Менин сабактарым"),
    "kk": ("Қайта қарау және хабарлар", "Менің сабақтарым"),
    "uz": ("Qayta koʻrib chiqish va xabarlar", "Mening darslarim"),
}


def render_request(request: SiteRequest, room: str | None, language: str) -> tuple[str, str]:
    """(subject, text) of the message about ``request`` in ``language`` (English if unknown)."""
    lang = language if language in SUBJECTS else "en"
    site, address, room_label, words, answer = LABELS[lang]
    queue_page, lesson_page = PAGES[lang]
    lines = [f"{site}: {request.host}"]
    if request.url:
        lines.append(f"{address}: {request.url}")
    if room:
        lines.append(f"{room_label}: {room}")
    if request.message:
        lines.append(f"{words}: {request.message}")
    page = lesson_page if request.kind == RequestKind.LESSON.value else queue_page
    lines += ["", answer.format(page=page)]
    kind = request.kind if request.kind in SUBJECTS[lang] else RequestKind.REVIEW.value
    return SUBJECTS[lang][kind], "\n".join(lines) + "\n"
