"""The categories kalkan knows out of the box, with names in the school's five languages.

Ids are stored values (in the database, YAML and logs): chosen once, never renamed.
The mandatory set is regulation 3.3: students are barred from pornography, violence,
terrorism, political or religious extremism and ethnic or racial hatred.
"""

from __future__ import annotations

from dataclasses import dataclass

LANGUAGES = ("ky", "ru", "kk", "uz", "en")

MANDATORY_FOR_STUDENTS = frozenset({"adult", "violence", "terrorism", "extremism", "hatred"})


@dataclass(frozen=True, slots=True)
class CategoryInfo:
    id: str
    mandatory: bool
    names: dict[str, str]


def _c(cid: str, en: str, ru: str, ky: str, kk: str, uz: str) -> CategoryInfo:
    names = {"en": en, "ru": ru, "ky": ky, "kk": kk, "uz": uz}
    return CategoryInfo(cid, cid in MANDATORY_FOR_STUDENTS, names)


DEFAULT_CATEGORIES: tuple[CategoryInfo, ...] = (
    _c("adult", "Pornography", "Порнография", "Порнография", "Порнография", "Pornografiya"),
    _c("violence", "Violence", "Насилие", "Зомбулук", "Зорлық-зомбылық", "Zo'ravonlik"),
    _c("terrorism", "Terrorism", "Терроризм", "Терроризм", "Терроризм", "Terrorizm"),
    _c("extremism", "Political or religious extremism", "Экстремизм", "Экстремизм",
       "Экстремизм", "Ekstremizm"),
    _c("hatred", "Ethnic or racial hatred", "Разжигание розни", "Улуттук жана расалык кастык",
       "Ұлттық және нәсілдік араздық", "Millatlararo adovat"),
    _c("drugs", "Drugs", "Наркотики", "Баңгизат", "Есірткі", "Giyohvand moddalar"),
    _c("gambling", "Gambling", "Азартные игры", "Кумар оюндары", "Құмар ойындар",
       "Qimor o'yinlari"),
    _c("hacking", "Hacking", "Взлом", "Хакерлик", "Бұзу", "Xakerlik"),
    _c("phishing", "Phishing", "Фишинг", "Фишинг", "Фишинг", "Fishing"),
    _c("malware", "Malware", "Вредоносное ПО", "Зыяндуу программалар", "Зиянды бағдарлама",
       "Zararli dasturlar"),
    _c("proxy_vpn", "Proxies and VPNs", "Прокси и VPN", "Прокси жана VPN", "Прокси және VPN",
       "Proksi va VPN"),
    _c("doh", "DNS over HTTPS servers", "Серверы DNS-over-HTTPS", "DNS-over-HTTPS серверлери",
       "DNS-over-HTTPS серверлері", "DNS-over-HTTPS serverlari"),
    _c("dating", "Dating", "Знакомства", "Таанышуу", "Танысу", "Tanishuv"),
    _c("warez", "Pirated software", "Пиратское ПО", "Каракчылык программалар",
       "Қарақшылық бағдарламалар", "Qaroqchilik dasturlari"),
    _c("social", "Social networks", "Социальные сети", "Социалдык тармактар",
       "Әлеуметтік желілер", "Ijtimoiy tarmoqlar"),
    _c("games", "Games", "Игры", "Оюндар", "Ойындар", "O'yinlar"),
    _c("video", "Video", "Видео", "Видео", "Бейне", "Video"),
    _c("chat", "Chat and messengers", "Чаты и мессенджеры", "Чаттар жана мессенджерлер",
       "Чаттар мен мессенджерлер", "Chatlar va messenjerlar"),
    _c("shopping", "Shopping", "Покупки", "Соода", "Сауда", "Xaridlar"),
    _c("paid_services", "Paid services", "Платные услуги", "Акы төлөнүүчү кызматтар",
       "Ақылы қызметтер", "Pullik xizmatlar"),
    _c("ads", "Advertising and trackers", "Реклама и трекеры", "Жарнама жана трекерлер",
       "Жарнама және трекерлер", "Reklama va trekerlar"),
    _c("education", "Education", "Образование", "Билим берүү", "Білім беру", "Ta'lim"),
    _c("government", "Government services", "Госуслуги", "Мамлекеттик кызматтар",
       "Мемлекеттік қызметтер", "Davlat xizmatlari"),
    _c("reference", "Reference and encyclopedias", "Справочники и энциклопедии",
       "Маалымдамалар жана энциклопедиялар", "Анықтамалықтар мен энциклопедиялар",
       "Ma'lumotnomalar va ensiklopediyalar"),
)
