"""A person's notification preferences change who is told by which channel."""

# ruff: noqa: F811 - the fixtures imported from pipeline_harness are parameters here
from __future__ import annotations

from pipeline_harness import (  # noqa: F401  (fixtures)
    bot_api,
    notify_sections,
    pipeline_config,
    school,
    smtp,
)
from sqlalchemy import select
from test_outbox_delivery import make_alert

from gateway.notify.models import Notification
from gateway.notify.preferences import NotificationPreference
from gateway.notify.sender import Notifier
from policies.models import StaffUser


def prefer(sessions, username: str, **choices: bool) -> None:
    with sessions() as db:
        user = db.scalar(select(StaffUser).where(StaffUser.username == username))
        db.add(NotificationPreference(user_id=user.id, **{
            "by_email": True, "by_telegram": True, "alerts": True, "daily_status": True,
            "requests": True, **choices}))
        db.commit()


def channels_of(sessions, username: str) -> set[str]:
    with sessions() as db:
        user = db.scalar(select(StaffUser).where(StaffUser.username == username))
        return set(db.scalars(select(Notification.channel).where(
            Notification.recipient_id == user.id)))


def test_preferences_choose_the_channels_and_turning_alerts_off_leaves_the_admin_only(
        school, smtp, bot_api, tmp_path):
    prefer(school, "bakyt", by_email=False)  # the session teacher: Telegram only
    prefer(school, "aigul", alerts=False)  # the class teacher: no alerts outside the admin
    make_alert(school, email=True, telegram=True)
    assert channels_of(school, "bakyt") == {"in_app", "telegram"}
    assert channels_of(school, "aigul") == {"in_app"}

    config = pipeline_config(tmp_path, notifications=notify_sections(smtp, bot_api))
    notifier = Notifier(school, config)
    assert notifier.poll() == 1
    assert bot_api.to("1002") and not bot_api.to("1001")
    assert smtp.mailbox.messages == []  # nobody wanted email


def test_without_preferences_everyone_gets_every_channel_they_have(school):
    make_alert(school, email=True, telegram=True)
    assert channels_of(school, "bakyt") == {"in_app", "email", "telegram"}
    assert channels_of(school, "aigul") == {"in_app", "email", "telegram"}
