"""Who wants which notifications by which channel: one row per staff user (absent = all).

The addresses themselves stay on the account (``staff_users.email``, ``telegram_chat_id``);
this row says which kinds the person wants and on which of their channels.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey
from sqlalchemy.orm import Mapped, Session, mapped_column

from policies.models import Base


class NotifyKind(StrEnum):
    ALERTS = "alerts"  # deliberate attempts by students (regulation 2.7)
    DAILY_STATUS = "daily_status"  # the morning and evening state of the school's network
    REQUESTS = "requests"  # reviews and reports from the block page


class NotificationPreference(Base):
    __tablename__ = "notification_preferences"
    user_id: Mapped[int] = mapped_column(
        ForeignKey("staff_users.id", ondelete="CASCADE"), primary_key=True)
    by_email: Mapped[bool] = mapped_column(Boolean, default=True)
    by_telegram: Mapped[bool] = mapped_column(Boolean, default=True)
    alerts: Mapped[bool] = mapped_column(Boolean, default=True)
    daily_status: Mapped[bool] = mapped_column(Boolean, default=True)
    requests: Mapped[bool] = mapped_column(Boolean, default=True)

    def wants(self, kind: NotifyKind) -> bool:
        return bool(getattr(self, kind.value))


def preference_of(db: Session, user_id: int) -> NotificationPreference:
    """The user's row, or the defaults (everything, on every channel they have)."""
    return db.get(NotificationPreference, user_id) or NotificationPreference(
        user_id=user_id, by_email=True, by_telegram=True, alerts=True, daily_status=True,
        requests=True)


def channels_for(db: Session, user_id: int, kind: NotifyKind) -> tuple[bool, bool]:
    """(email, Telegram): whether the user wants ``kind`` on each channel."""
    pref = preference_of(db, user_id)
    if not pref.wants(kind):
        return False, False
    return pref.by_email, pref.by_telegram
