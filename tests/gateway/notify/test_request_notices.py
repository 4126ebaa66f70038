"""Requests from the block page reach the people who answer them, by email (a real SMTP
server) and Telegram (a fake Bot API on loopback), once, in their language, as their
notification settings allow."""

# ruff: noqa: F811 - the fixtures imported from pipeline_harness are parameters here
from __future__ import annotations

from pathlib import Path

from pipeline_harness import (  # noqa: F401  (fixtures)
    bot_api,
    notify_sections,
    pipeline_config,
    school,
    session_id,
    smtp,
)
from sqlalchemy import select, update

from gateway.notify.preferences import NotificationPreference
from gateway.notify.sender import Notifier
from policies.database import utcnow
from policies.models import RequestKind, SiteRequest, StaffUser


def ask(school, kind: RequestKind, host: str, message: str = "", session: int | None = None,
        ) -> None:
    with school() as db:
        db.add(SiteRequest(kind=kind.value, created_at=utcnow(), client="10.10.1.101",
                           room_id="loopback", session_id=session, host=host,
                           url=f"http://{host}/page", message=message, language="ky"))
        db.commit()


def test_reviews_reports_and_lesson_requests_reach_who_answers_them(
        school, smtp, bot_api, tmp_path: Path) -> None:
    config = pipeline_config(tmp_path, notifications=notify_sections(smtp, bot_api))
    with school() as db:
        db.execute(update(StaffUser).where(StaffUser.username == "council").values(
            email="council@school.kg", language="ru"))
        db.execute(update(StaffUser).where(StaffUser.username == "admin").values(
            email="admin@school.kg", telegram_chat_id="2000", language="en"))
        admin = db.scalar(select(StaffUser).where(StaffUser.username == "admin"))
        # The responsible person wants requests by Telegram only.
        db.add(NotificationPreference(user_id=admin.id, by_email=False, by_telegram=True,
                                      alerts=True, daily_status=True, requests=True))
        db.commit()
    ask(school, RequestKind.REVIEW, "old.example")  # before kalkan looked: not sent
    notifier = Notifier(school, config)
    assert notifier.poll() == 0

    ask(school, RequestKind.REVIEW, "wiki.example", message="<b>for the history lesson</b>")
    ask(school, RequestKind.REPORT, "bad.example")
    ask(school, RequestKind.LESSON, "roblox.com", session=session_id(school))
    sent = notifier.poll()
    assert notifier.poll() == 0  # each once

    [review, report] = sorted(smtp.mailbox.to("council@school.kg"), key=lambda m: m["Subject"])
    assert review["Subject"] == "kalkan: ученик просит пересмотреть блокировку сайта"
    text = review.get_content()
    assert "Сайт: wiki.example" in text and "Слова ученика: <b>for the history lesson</b>" in text
    assert "Пересмотры и сообщения" in text
    assert report["Subject"] == "kalkan: ученик сообщает о вредном сайте"
    assert smtp.mailbox.to("admin@school.kg") == []  # email is off for requests
    assert sorted(m["text"].split("\n")[0] for m in bot_api.to("2000")) == [
        "kalkan: a student asks to review a blocked site",
        "kalkan: a student reports a harmful site"]
    # bakyt opened the session (Russian): he alone hears of the lesson request.
    [lesson] = smtp.mailbox.to("bakyt@school.kg")
    assert lesson["Subject"] == "kalkan: ученик просит открыть сайт для вашего урока"
    assert "roblox.com" in lesson.get_content()
    assert [m["text"].split("\n")[0] for m in bot_api.to("1002")] == [
        "kalkan: ученик просит открыть сайт для вашего урока"]
    assert smtp.mailbox.to("aigul@school.kg") == [] and bot_api.to("1001") == []
    assert "old.example" not in "".join(m.get_content() for m in smtp.mailbox.messages)
    assert sent == 2 + 2 + 2  # council 2 emails, admin 2 Telegram, bakyt email and Telegram
