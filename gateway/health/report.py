"""The morning and evening report: a few lines, read on a phone, in the reader's language.

The facts are those of :func:`gateway.health.today.today_status`, stored with the report
(``daily_reports.facts``); each recipient gets them rendered in their own language when the
notifier sends the row. Recipients: the responsible person(s) by email and Telegram, and the
district's addresses from ``daily_status``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.config import Config
from gateway.health.models import DailyReport
from gateway.health.today import TodayStatus
from gateway.notify.models import Notification, NotifyChannel, NotifyStatus
from gateway.notify.preferences import NotifyKind, channels_for
from policies.database import utcnow
from policies.models import Role, StaffUser

KINDS = ("morning", "evening")

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "morning": "kalkan {school}: morning status, {day} {time}",
        "evening": "kalkan {school}: end-of-day status, {day} {time}",
        "up": "Internet: working.", "down": "Internet: DOWN since {since}.",
        "unknown": "Internet: not measured yet.",
        "outages": "Outages today: {n}, {minutes} min in all ({spans}).",
        "no_outages": "Outages today: none.",
        "dns": "DNS: {up} of {total} upstream resolvers answer{rtt}; failures today: {errors}.",
        "rtt": ", {ms} ms",
        "traffic": "Traffic today: {mb_in} MB in, {mb_out} MB out{peak}.",
        "peak": ", peak {mbit} Mbit/s",
        "speed": "Speed check at {at}: {mbit} Mbit/s{tariff}.",
        "tariff": " of {tariff} Mbit/s contracted ({percent}%)",
        "devices": "Computers seen today: {n}{rooms}.",
        "filtering_ok": "Filtering: working.",
        "filtering_down": "Filtering: NOT RUNNING: {services}.",
        "lost": "Access records lost today: {n}.",
        "now": "now",
    },
    "ru": {
        "morning": "kalkan {school}: утренний отчёт, {day} {time}",
        "evening": "kalkan {school}: отчёт за день, {day} {time}",
        "up": "Интернет: работает.", "down": "Интернет: НЕ РАБОТАЕТ с {since}.",
        "unknown": "Интернет: ещё не измерен.",
        "outages": "Перерывы сегодня: {n}, всего {minutes} мин ({spans}).",
        "no_outages": "Перерывов сегодня не было.",
        "dns": "DNS: отвечают {up} из {total} вышестоящих серверов{rtt}; сбоев сегодня: "
               "{errors}.",
        "rtt": ", {ms} мс",
        "traffic": "Трафик сегодня: получено {mb_in} МБ, отправлено {mb_out} МБ{peak}.",
        "peak": ", пик {mbit} Мбит/с",
        "speed": "Проверка скорости в {at}: {mbit} Мбит/с{tariff}.",
        "tariff": " из {tariff} Мбит/с по договору ({percent}%)",
        "devices": "Компьютеров сегодня: {n}{rooms}.",
        "filtering_ok": "Фильтрация: работает.",
        "filtering_down": "Фильтрация: НЕ ЗАПУЩЕНО: {services}.",
        "lost": "Потеряно записей журнала сегодня: {n}.",
        "now": "сейчас",
    },
    "ky": {
        "morning": "kalkan {school}: эртең мененки отчёт, {day} {time}",
        "evening": "kalkan {school}: күндүн жыйынтыгы, {day} {time}",
        "up": "Интернет: иштейт.", "down": "Интернет: {since} бери ИШТЕБЕЙТ.",
        "unknown": "Интернет: азырынча өлчөнгөн жок.",
        "outages": "Бүгүнкү үзгүлтүктөр: {n}, баары {minutes} мүн ({spans}).",
        "no_outages": "Бүгүн үзгүлтүк болгон жок.",
        "dns": "DNS: {total} жогорку серверден {up} жооп берет{rtt}; бүгүнкү каталар: {errors}.",
        "rtt": ", {ms} мс",
        "traffic": "Бүгүнкү трафик: {mb_in} МБ кирди, {mb_out} МБ чыкты{peak}.",
        "peak": ", эң жогорку {mbit} Мбит/с",
        "speed": "{at} ылдамдык текшерүүсү: {mbit} Мбит/с{tariff}.",
        "tariff": ", келишим боюнча {tariff} Мбит/с ({percent}%)",
        "devices": "Бүгүн көрүнгөн компьютерлер: {n}{rooms}.",
        "filtering_ok": "Чыпкалоо: иштейт.",
        "filtering_down": "Чыпкалоо: ИШТЕБЕЙТ: {services}.",
        "lost": "Бүгүн жоголгон журнал жазуулары: {n}.",
        "now": "азыр",
    },
    "kk": {
        "morning": "kalkan {school}: таңғы есеп, {day} {time}",
        "evening": "kalkan {school}: күн қорытындысы, {day} {time}",
        "up": "Интернет: жұмыс істейді.", "down": "Интернет: {since} бастап ЖҰМЫС ІСТЕМЕЙДІ.",
        "unknown": "Интернет: әлі өлшенген жоқ.",
        "outages": "Бүгінгі үзілістер: {n}, барлығы {minutes} мин ({spans}).",
        "no_outages": "Бүгін үзіліс болған жоқ.",
        "dns": "DNS: {total} жоғарғы серверден {up} жауап береді{rtt}; бүгінгі ақаулар: "
               "{errors}.",
        "rtt": ", {ms} мс",
        "traffic": "Бүгінгі трафик: {mb_in} МБ кірді, {mb_out} МБ шықты{peak}.",
        "peak": ", ең жоғары {mbit} Мбит/с",
        "speed": "{at} жылдамдық тексеруі: {mbit} Мбит/с{tariff}.",
        "tariff": ", шарт бойынша {tariff} Мбит/с ({percent}%)",
        "devices": "Бүгін көрінген компьютерлер: {n}{rooms}.",
        "filtering_ok": "Сүзгі: жұмыс істейді.",
        "filtering_down": "Сүзгі: ЖҰМЫС ІСТЕМЕЙДІ: {services}.",
        "lost": "Бүгін жоғалған журнал жазбалары: {n}.",
        "now": "қазір",
    },
    "uz": {
        "morning": "kalkan {school}: ertalabki hisobot, {day} {time}",
        "evening": "kalkan {school}: kun yakuni, {day} {time}",
        "up": "Internet: ishlayapti.", "down": "Internet: {since} dan beri ISHLAMAYAPTI.",
        "unknown": "Internet: hali o‘lchanmagan.",
        "outages": "Bugungi uzilishlar: {n}, jami {minutes} daq ({spans}).",
        "no_outages": "Bugun uzilish bo‘lmadi.",
        "dns": "DNS: {total} ta yuqori serverdan {up} tasi javob beradi{rtt}; bugungi "
               "nosozliklar: {errors}.",
        "rtt": ", {ms} ms",
        "traffic": "Bugungi trafik: {mb_in} MB kirdi, {mb_out} MB chiqdi{peak}.",
        "peak": ", eng yuqori {mbit} Mbit/s",
        "speed": "{at} dagi tezlik tekshiruvi: {mbit} Mbit/s{tariff}.",
        "tariff": ", shartnoma bo‘yicha {tariff} Mbit/s ({percent}%)",
        "devices": "Bugun ko‘rilgan kompyuterlar: {n}{rooms}.",
        "filtering_ok": "Filtrlash: ishlayapti.",
        "filtering_down": "Filtrlash: ISHGA TUSHMAGAN: {services}.",
        "lost": "Bugun yo‘qolgan jurnal yozuvlari: {n}.",
        "now": "hozir",
    },
}


def _number(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.0f}"


def render_report(kind: str, facts: dict[str, Any], language: str) -> tuple[str, str]:
    """``(subject, text)`` of a ``kind`` report (morning, evening) in ``language``."""
    t = TEXTS.get(language) or TEXTS["en"]
    f = facts
    subject = t[kind].format(school=f["school"], day=f["day"], time=f["time"])
    lines = [subject]
    if f["uplink"] == "down":
        lines.append(t["down"].format(since=f["uplink_since"]))
    else:
        lines.append(t[f["uplink"]])
    outages = f.get("outages") or []
    if outages:
        spans = ", ".join(f"{o['start']}–{o['end'] or t['now']}" for o in outages)
        lines.append(t["outages"].format(n=len(outages), minutes=_number(f["outage_minutes"]),
                                         spans=spans))
    else:
        lines.append(t["no_outages"])
    ups = f.get("upstreams") or []
    rtt = t["rtt"].format(ms=_number(f["dns_rtt_ms"])) if f.get("dns_rtt_ms") is not None else ""
    if ups:  # none: the resolver is not running, which the filtering line says
        lines.append(t["dns"].format(up=sum(1 for u in ups if u["up"]), total=len(ups),
                                     rtt=rtt, errors=f["dns_errors"]))
    peak = t["peak"].format(mbit=_number(f["peak_mbit"])) if f.get("peak_mbit") else ""
    lines.append(t["traffic"].format(mb_in=_number(f["rx_bytes"] / 1e6),
                                     mb_out=_number(f["tx_bytes"] / 1e6), peak=peak))
    if f.get("speed_mbit") is not None:
        tariff = ""
        if f.get("tariff_mbit"):
            tariff = t["tariff"].format(tariff=_number(f["tariff_mbit"]), percent=round(
                100 * f["speed_mbit"] / f["tariff_mbit"]))
        lines.append(t["speed"].format(at=f["speed_at"], mbit=_number(f["speed_mbit"]),
                                       tariff=tariff))
    rooms = f.get("devices_per_room") or {}
    shown = ": " + ", ".join(f"{name} {n}" for name, n in rooms.items()) if rooms else ""
    lines.append(t["devices"].format(n=f["devices"], rooms=shown))
    down = [name for name, up in (f.get("services") or {}).items()
            if not up and name in ("dns", "proxy")]
    lines.append(t["filtering_down"].format(services=", ".join(down)) if down
                 else t["filtering_ok"])
    if f.get("events_lost"):
        lines.append(t["lost"].format(n=f["events_lost"]))
    return subject, "\n".join(lines)


def enqueue_report(db: Session, config: Config, kind: str, status: TodayStatus,
                   now: dt.datetime | None = None) -> DailyReport | None:
    """Store today's ``kind`` report and queue it for every addressee; None if it was
    already made today (another process got there first: the unique key says so)."""
    if kind not in KINDS:
        raise ValueError(f"no such report {kind!r}; one of {', '.join(KINDS)}")
    now = now or utcnow()
    day = dt.date.fromisoformat(status.day)
    if db.scalar(select(DailyReport.id).where(DailyReport.day == day, DailyReport.kind == kind)):
        return None
    report = DailyReport(day=day, kind=kind, created_at=now, facts=status.as_dict())
    db.add(report)
    try:
        db.flush()
    except IntegrityError:
        db.rollback()
        return None
    n = config.notifications
    rows: list[tuple[int | None, str, str, str]] = []  # recipient, role, channel, address
    if config.daily_status.send_reports:
        for user in db.scalars(select(StaffUser).where(
                StaffUser.role == Role.RESPONSIBLE.value).order_by(StaffUser.id)):
            if not user.active:
                continue
            # The person's notification settings (admin: Notifications) may turn it off.
            by_email, by_telegram = channels_for(db, user.id, NotifyKind.DAILY_STATUS)
            if n.email.enabled and by_email and user.email:
                rows.append((user.id, "responsible", NotifyChannel.EMAIL.value, user.email))
            if n.telegram.enabled and by_telegram and user.telegram_chat_id:
                rows.append((user.id, "responsible", NotifyChannel.TELEGRAM.value,
                             user.telegram_chat_id))
        if n.email.enabled:
            rows += [(None, "district", NotifyChannel.EMAIL.value, a)
                     for a in config.daily_status.district_emails]
        if n.telegram.enabled:
            rows += [(None, "district", NotifyChannel.TELEGRAM.value, c)
                     for c in config.daily_status.district_telegram_chats]
    seen = set()
    for recipient, role, channel, address in rows:
        if (channel, address) in seen:
            continue  # the responsible person may also be the district's address
        seen.add((channel, address))
        db.add(Notification(report_id=report.id, recipient_id=recipient, address=address,
                            channel=channel, alert_version=0, role=role,
                            status=NotifyStatus.PENDING.value, digest=False, attempts=0,
                            created_at=now, next_attempt_at=now))
    db.commit()
    return report
