"""Notification settings: each person's address, chat id, kinds and channels, kept in the
database and read by the outbox; the test message goes through a real SMTP server and a
Telegram Bot API stand-in on loopback."""

# ruff: noqa: F811 - the fixtures imported from pipeline_harness are parameters here
from __future__ import annotations

import pytest
from flask import Flask
from pipeline_harness import bot_api, notify_sections, smtp  # noqa: F401  (fixtures)
from sqlalchemy import select

from admin_ui.models import AuditEntry
from gateway.config import NotificationsConfig
from gateway.notify.preferences import NotificationPreference
from policies.models import StaffUser
from tests.admin_ui.admin_client import make_app

pytest_plugins = ["tests.admin_ui.admin_client",  # fixtures: school, staff
                  "tests.admin_ui.people_client"]  # english, admin


@pytest.fixture
def app(school, sqlite_url: str, smtp, bot_api) -> Flask:
    return make_app(sqlite_url, NOTIFICATIONS=NotificationsConfig.model_validate(
        notify_sections(smtp, bot_api)))


def user(school, username: str) -> tuple[StaffUser, NotificationPreference | None]:
    with school() as db:
        row = db.scalar(select(StaffUser).where(StaffUser.username == username))
        return row, db.get(NotificationPreference, row.id)


def test_a_teacher_sets_her_own_channels_and_kinds(english, staff, school):
    aigul = staff("aigul")
    response = aigul.post("/notifications/", email="aigul@school.kg",
                          telegram_chat_id="1001", by_telegram="on", alerts="on")
    assert response.status_code == 302
    row, pref = user(school, "aigul")
    assert (row.email, row.telegram_chat_id) == ("aigul@school.kg", "1001")
    assert (pref.by_email, pref.by_telegram, pref.alerts, pref.daily_status,
            pref.requests) == (False, True, True, False, False)
    html = aigul.page("/notifications/")
    assert 'value="aigul@school.kg"' in html and "Everyone" not in html
    assert aigul.get(f"/notifications/{row.id}").status_code == 403  # not someone else's


def test_bad_addresses_are_refused_with_what_to_write(english, staff, school):
    aigul = staff("aigul")
    response = aigul.post("/notifications/", email="aigul at school", alerts="on")
    assert response.status_code == 400
    assert "write it like name@school.kg" in response.get_data(as_text=True)
    response = aigul.post("/notifications/", telegram_chat_id="my chat<script>")
    assert response.status_code == 400
    assert "<script>" not in response.get_data(as_text=True)
    assert user(school, "aigul")[1] is None  # nothing saved


def test_the_responsible_person_sets_anyones_and_the_test_message_arrives(admin, school,
                                                                          smtp, bot_api):
    bakyt, _ = user(school, "bakyt")
    html = admin.page("/notifications/")
    assert "Everyone" in html and f"/notifications/{bakyt.id}" in html
    assert admin.post(f"/notifications/{bakyt.id}", email="bakyt@school.kg",
                      telegram_chat_id="1002", by_email="on", by_telegram="on",
                      alerts="on").status_code == 302
    response = admin.post(f"/notifications/{bakyt.id}/test")
    assert response.status_code == 302, response.get_data(as_text=True)
    [mail] = smtp.mailbox.to("bakyt@school.kg")
    assert "test message" in mail["Subject"]
    [message] = bot_api.to("1002")
    assert "test message" in message["text"]
    with school() as db:
        actions = db.scalars(select(AuditEntry.action).where(
            AuditEntry.target == "bakyt")).all()
    assert actions == ["notifications_saved", "notification_test_sent"]


def test_a_test_message_that_cannot_go_says_why(english, staff, school, sqlite_url):
    aigul = staff()
    aigul.client = make_app(sqlite_url).test_client()  # kalkan.yaml with every channel off
    aigul.client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    aigul.sign_in("aigul")
    response = aigul.post("/notifications/test")
    assert response.status_code == 400
    assert "no email address or Telegram chat id" in response.get_data(as_text=True)
    aigul.post("/notifications/", email="aigul@school.kg", by_email="on", alerts="on")
    response = aigul.post("/notifications/test")
    assert response.status_code == 400
    assert "Email is off" in response.get_data(as_text=True)
