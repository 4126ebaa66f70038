"""The text of a notification, in the recipient's language: what, who, where, when, what to do.

Short on purpose: it is read on a phone between lessons. Numbers are written as "attempts:
6" style where a language would need plural forms, so one template fits every count.
"""

from __future__ import annotations

from dataclasses import dataclass

LANGUAGES = ("ky", "ru", "kk", "uz", "en")

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "named": "{name}, class {cls}",
        "class_device": "A student of class {cls} at computer {device}",
        "device": "Computer {device}",
        "client": "The computer with address {client}",
        "repeated_attempts": "{who} tried {n} times to open sites of the category “{category}”.",
        "many_sites": "{who} tried to open {sites_n} different blocked sites.",
        "bypass": "{who} tried to get round the school's filter (VPN, proxy or similar).",
        "search_terms": "{who} searched for forbidden terms.",
        "where": "Where: {room}.",
        "where_device": "Where: {room}, computer {device}.",
        "when": "When: {date} {start}–{end}.",
        "sites": "Sites: {sites}.",
        "todo": "What you can do: talk to the student; the sites stay blocked. Alert No {id} "
                "in kalkan's admin pages has the details.",
        "todo_session": "During the lesson you can also close the session: kalkan session "
                        "close {session}.",
        "follow_up": "Update to alert No {id}: {n} attempts now, severity raised to "
                     "“{severity}”.",
        "subject": "kalkan: {category}, {where}",
        "subject_follow_up": "kalkan: alert No {id} — severity {severity}",
        "subject_many": "kalkan: {n} alerts",
        "no_consent": "(student not named: no consent on record)",
        "low": "low", "medium": "medium", "high": "high",
        "various": "various", "bypass_category": "getting round the filter",
        "search_category": "forbidden searches", "address": "address {client}",
    },
    "ru": {
        "named": "{name}, класс {cls}",
        "class_device": "Ученик класса {cls} за компьютером {device}",
        "device": "Компьютер {device}",
        "client": "Компьютер с адресом {client}",
        "repeated_attempts": "{who} — попыток открыть сайты категории «{category}»: {n}.",
        "many_sites": "{who} — попытки открыть разные заблокированные сайты: {sites_n}.",
        "bypass": "{who} — попытка обойти школьный фильтр (VPN, прокси и т. п.).",
        "search_terms": "{who} — поиск запрещённых слов.",
        "where": "Где: {room}.",
        "where_device": "Где: {room}, компьютер {device}.",
        "when": "Когда: {date} {start}–{end}.",
        "sites": "Сайты: {sites}.",
        "todo": "Что можно сделать: поговорить с учеником; сайты остаются заблокированными. "
                "Подробности — в тревоге № {id} на страницах администрирования kalkan.",
        "todo_session": "Во время урока можно также закрыть сеанс: kalkan session close "
                        "{session}.",
        "follow_up": "Обновление тревоги № {id}: попыток уже {n}, важность повышена до "
                     "«{severity}».",
        "subject": "kalkan: {category}, {where}",
        "subject_follow_up": "kalkan: тревога № {id} — важность «{severity}»",
        "subject_many": "kalkan: тревог: {n}",
        "no_consent": "(ученик не назван: согласие не оформлено)",
        "low": "низкая", "medium": "средняя", "high": "высокая",
        "various": "разные", "bypass_category": "обход фильтра",
        "search_category": "запрещённые запросы", "address": "адрес {client}",
    },
    "ky": {
        "named": "{name}, {cls} класс",
        "class_device": "{cls} класстын окуучусу, {device} компьютеринде",
        "device": "{device} компьютери",
        "client": "{client} дарегиндеги компьютер",
        "repeated_attempts": "{who}: «{category}» категориясындагы сайттарды ачууга {n} жолу "
                             "аракет кылды.",
        "many_sites": "{who}: {sites_n} башка-башка бөгөттөлгөн сайтты ачууга аракет кылды.",
        "bypass": "{who}: мектептин чыпкасын айланып өтүүгө аракет кылды (VPN, прокси ж.б.).",
        "search_terms": "{who}: тыюу салынган сөздөрдү издеди.",
        "where": "Кайда: {room}.",
        "where_device": "Кайда: {room}, {device} компьютери.",
        "when": "Качан: {date} {start}–{end}.",
        "sites": "Сайттар: {sites}.",
        "todo": "Эмне кылсаңыз болот: окуучу менен сүйлөшүңүз; сайттар бөгөттөлгөн бойдон "
                "калат. Толук маалымат kalkan башкаруу барактарында, № {id} эскертүүдө.",
        "todo_session": "Сабак учурунда сеансты жапсаңыз да болот: kalkan session close "
                        "{session}.",
        "follow_up": "№ {id} эскертүү жаңыланды: азыр {n} аракет, маанилүүлүгү «{severity}» "
                     "деңгээлине көтөрүлдү.",
        "subject": "kalkan: {category}, {where}",
        "subject_follow_up": "kalkan: № {id} эскертүү — маанилүүлүгү «{severity}»",
        "subject_many": "kalkan: {n} эскертүү",
        "no_consent": "(окуучунун аты жазылган эмес: макулдук катталган эмес)",
        "low": "төмөн", "medium": "орточо", "high": "жогору",
        "various": "ар түрдүү", "bypass_category": "чыпканы айланып өтүү",
        "search_category": "тыюу салынган издөөлөр", "address": "дареги {client}",
    },
    "kk": {
        "named": "{name}, {cls} сынып",
        "class_device": "{cls} сыныбының оқушысы, {device} компьютерінде",
        "device": "{device} компьютері",
        "client": "{client} мекенжайындағы компьютер",
        "repeated_attempts": "{who}: «{category}» санатындағы сайттарды ашуға {n} рет әрекет "
                             "жасады.",
        "many_sites": "{who}: {sites_n} түрлі бұғатталған сайтты ашуға әрекет жасады.",
        "bypass": "{who}: мектеп сүзгісін айналып өтуге әрекет жасады (VPN, прокси т.б.).",
        "search_terms": "{who}: тыйым салынған сөздерді іздеді.",
        "where": "Қайда: {room}.",
        "where_device": "Қайда: {room}, {device} компьютері.",
        "when": "Қашан: {date} {start}–{end}.",
        "sites": "Сайттар: {sites}.",
        "todo": "Не істеуге болады: оқушымен сөйлесіңіз; сайттар бұғатталған күйде қалады. "
                "Толығырақ kalkan басқару беттерінде, № {id} ескертуде.",
        "todo_session": "Сабақ кезінде сеансты жабуға да болады: kalkan session close "
                        "{session}.",
        "follow_up": "№ {id} ескерту жаңартылды: қазір {n} әрекет, маңыздылығы «{severity}» "
                     "деңгейіне көтерілді.",
        "subject": "kalkan: {category}, {where}",
        "subject_follow_up": "kalkan: № {id} ескерту — маңыздылығы «{severity}»",
        "subject_many": "kalkan: {n} ескерту",
        "no_consent": "(оқушының аты көрсетілмеген: келісім тіркелмеген)",
        "low": "төмен", "medium": "орташа", "high": "жоғары",
        "various": "әртүрлі", "bypass_category": "сүзгіні айналып өту",
        "search_category": "тыйым салынған іздеулер", "address": "мекенжайы {client}",
    },
    "uz": {
        "named": "{name}, {cls} sinf",
        "class_device": "{cls} sinf o‘quvchisi, {device} kompyuterida",
        "device": "{device} kompyuteri",
        "client": "{client} manzilli kompyuter",
        "repeated_attempts": "{who}: «{category}» toifasidagi saytlarni ochishga {n} marta "
                             "urindi.",
        "many_sites": "{who}: {sites_n} ta turli bloklangan saytni ochishga urindi.",
        "bypass": "{who}: maktab filtrini chetlab o‘tishga urindi (VPN, proksi va h.k.).",
        "search_terms": "{who}: taqiqlangan so‘zlarni qidirdi.",
        "where": "Qayerda: {room}.",
        "where_device": "Qayerda: {room}, {device} kompyuteri.",
        "when": "Qachon: {date} {start}–{end}.",
        "sites": "Saytlar: {sites}.",
        "todo": "Nima qilish mumkin: o‘quvchi bilan gaplashing; saytlar bloklangan holda "
                "qoladi. Batafsil ma’lumot kalkan boshqaruv sahifalarida, № {id} "
                "ogohlantirishda.",
        "todo_session": "Dars paytida seansni yopishingiz ham mumkin: kalkan session close "
                        "{session}.",
        "follow_up": "№ {id} ogohlantirish yangilandi: endi {n} ta urinish, muhimligi "
                     "«{severity}» darajasiga ko‘tarildi.",
        "subject": "kalkan: {category}, {where}",
        "subject_follow_up": "kalkan: № {id} ogohlantirish — muhimligi «{severity}»",
        "subject_many": "kalkan: {n} ta ogohlantirish",
        "no_consent": "(o‘quvchi nomi ko‘rsatilmagan: rozilik qayd etilmagan)",
        "low": "past", "medium": "o‘rta", "high": "yuqori",
        "various": "turli", "bypass_category": "filtrni chetlab o‘tish",
        "search_category": "taqiqlangan qidiruvlar", "address": "manzil {client}",
    },
}


@dataclass(frozen=True, slots=True)
class AlertFacts:
    """What a message says about one alert, already in school time and display names."""

    id: int
    rule: str
    category: str  # the category id; ``category_names`` has its translations
    category_names: dict[str, str]
    severity: str
    attempts: int
    date: str  # 25.11.2026
    start: str  # 10:02
    end: str
    client: str
    device: str | None
    room: str | None  # the room's name
    class_id: str | None
    student_name: str | None  # only where consent is recorded
    sites: tuple[str, ...]
    session_id: int | None
    version: int = 1


def _category(facts: AlertFacts, t: dict[str, str], lang: str) -> str:
    if facts.rule == "many_sites":
        return t["various"]
    if facts.rule == "bypass":
        return t["bypass_category"]
    if facts.rule == "search_terms":
        return t["search_category"]
    return facts.category_names.get(lang) or facts.category_names.get("en") or facts.category


def _who(facts: AlertFacts, t: dict[str, str]) -> str:
    if facts.student_name and facts.class_id:
        return t["named"].format(name=facts.student_name, cls=facts.class_id)
    if facts.class_id and facts.device:
        return t["class_device"].format(cls=facts.class_id, device=facts.device)
    if facts.device:
        return t["device"].format(device=facts.device)
    return t["client"].format(client=facts.client)


def render(facts: AlertFacts, lang: str) -> tuple[str, str]:
    """``(subject, text)`` about one alert in ``lang`` (English if kalkan lacks it)."""
    t = TEXTS.get(lang) or TEXTS["en"]
    category = _category(facts, t, lang)
    severity = t.get(facts.severity, facts.severity)
    room = facts.room or t["address"].format(client=facts.client)
    if facts.version > 1:
        text = t["follow_up"].format(id=facts.id, n=facts.attempts, severity=severity)
        return t["subject_follow_up"].format(id=facts.id, severity=severity), text
    who = _who(facts, t)
    lines = [t[facts.rule].format(who=who, n=facts.attempts, category=category,
                                  sites_n=len(facts.sites))]
    if not facts.student_name and facts.class_id:
        lines[0] += " " + t["no_consent"]
    lines.append((t["where_device"] if facts.device else t["where"]).format(
        room=room, device=facts.device))
    lines.append(t["when"].format(date=facts.date, start=facts.start, end=facts.end))
    if facts.sites:
        lines.append(t["sites"].format(sites=", ".join(facts.sites[:5])))
    todo = t["todo"].format(id=facts.id)
    if facts.session_id is not None:
        todo += " " + t["todo_session"].format(session=facts.session_id)
    lines.append(todo)
    where = facts.class_id or facts.room or facts.client
    return t["subject"].format(category=category, where=where), "\n".join(lines)


def render_many(items: list[AlertFacts], lang: str) -> tuple[str, str]:
    """One message about several alerts (the digest, or what the throttle held back)."""
    if len(items) == 1:
        return render(items[0], lang)
    t = TEXTS.get(lang) or TEXTS["en"]
    parts = [render(facts, lang)[1] for facts in items]
    return t["subject_many"].format(n=len(items)), "\n\n".join(parts)
