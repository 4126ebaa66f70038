"""The policy document: the whole council policy as one readable YAML file (policy as code).

``parse_document`` turns text into a checked :class:`PolicyDocument` (or a :class:`PolicyError`
naming the file and line); ``render_document`` writes the canonical text. Rendering a parsed
canonical document gives the same text back, byte for byte.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from policies.categories import LANGUAGES
from policies.domain import InvalidDomain, split_site
from policies.errors import PolicyError
from policies.models import GroupKind, GroupMode, YoutubeRestriction
from policies.yamlfile import Located, load_located

FORMAT_VERSION = 1
SLUG = r"^[a-z0-9][a-z0-9_-]{0,63}$"
Slug = Annotated[str, Field(pattern=SLUG)]
HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_list_is_no_entries(cls, data: Any) -> Any:
        # Deleting the last entry under `block:` leaves `block:` with nothing, which YAML reads
        # as null: for a list (or mapping) of entries that means none, not a type error.
        if not isinstance(data, dict):
            return data
        return {key: value for key, value in data.items()
                if value is not None or key not in _ENTRY_FIELDS.get(cls.__name__, ())}


class SchoolSection(_Strict):
    id: Slug = "school"
    name: str = "School"
    language: Literal["ky", "ru", "kk", "uz", "en"] = "ky"
    timezone: str = "Asia/Bishkek"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use a name like Asia/Bishkek, "
                             "Asia/Almaty or Asia/Tashkent") from None
        return value


class CategoryEntry(_Strict):
    id: Slug
    mandatory: bool = False
    names: dict[str, str] = Field(default_factory=dict)

    @field_validator("names")
    @classmethod
    def _known_languages(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(LANGUAGES))
        if unknown:
            raise ValueError(f"unknown language {unknown[0]!r}; use one of {', '.join(LANGUAGES)}")
        return value


class AllowBlock(_Strict):
    """An ``allow:``/``block:`` pair of lists (of categories or of sites)."""

    allow: list[str] = Field(default_factory=list)
    block: list[str] = Field(default_factory=list)


class ScheduleEntry(_Strict):
    days: str = "mon-fri"
    start: str = Field(alias="from")
    end: str = Field(alias="to")

    @field_validator("days")
    @classmethod
    def _days(cls, value: str) -> str:
        parse_days(value)
        return value.replace(" ", "").lower()  # canonical: `Mon - Fri` is stored as mon-fri

    @field_validator("start", "end")
    @classmethod
    def _time(cls, value: str) -> str:
        if not HHMM.match(value):
            raise ValueError(f"{value!r} is not a time of day; write it as \"08:30\" (quoted)")
        return value


class GroupEntry(_Strict):
    id: Slug
    name: str
    kind: GroupKind = GroupKind.STUDENT
    mode: GroupMode = GroupMode.BLOCKLIST
    safe_search: bool = True
    youtube: YoutubeRestriction = YoutubeRestriction.OFF
    session_required: bool = False
    downloads: bool = False
    schedule: list[ScheduleEntry] = Field(default_factory=list)
    categories: AllowBlock = Field(default_factory=AllowBlock)
    sites: AllowBlock = Field(default_factory=AllowBlock)


class RoomEntry(_Strict):
    id: Slug
    name: str
    default_group: str
    networks: list[str] = Field(default_factory=list)


class DeviceEntry(_Strict):
    id: Slug
    ip: str | None = None
    mac: str | None = None
    room: str | None = None
    seat: str | None = None
    group: str | None = None

    @field_validator("seat", mode="before")
    @classmethod
    def _seat_number(cls, value: Any) -> Any:
        # `seat: 5` is how a person writes it; YAML reads a number.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class PolicyDocument(_Strict):
    kalkan_policy: Literal[1] = FORMAT_VERSION
    school: SchoolSection = Field(default_factory=SchoolSection)
    categories: list[CategoryEntry] = Field(default_factory=list)
    groups: list[GroupEntry] = Field(default_factory=list)
    rooms: list[RoomEntry] = Field(default_factory=list)
    devices: list[DeviceEntry] = Field(default_factory=list)
    sites: AllowBlock = Field(default_factory=AllowBlock)
    category_sites: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("category_sites", mode="before")
    @classmethod
    def _empty_category_list(cls, value: Any) -> Any:
        if isinstance(value, dict):  # `education:` with its last entry deleted: none
            return {cid: [] if sites is None else sites for cid, sites in value.items()}
        return value


# Per model, its fields that hold a list or mapping of entries (where null means "none").
_ENTRY_FIELDS = {
    model.__name__: frozenset(name for name, field in model.model_fields.items()
                              if getattr(field.annotation, "__origin__", None) in (list, dict))
    for model in (SchoolSection, CategoryEntry, AllowBlock, ScheduleEntry, GroupEntry, RoomEntry,
                  DeviceEntry, PolicyDocument)
}


def parse_days(text: str) -> frozenset[int]:
    """``mon-fri`` → {0..4}; ``mon,wed,fri`` → {0,2,4}; ``sat`` → {5}. Monday is 0."""
    days: set[int] = set()
    for part in text.replace(" ", "").lower().split(","):
        first, _, last = part.partition("-")
        if first not in DAY_NAMES or (last and last not in DAY_NAMES):
            raise ValueError(f"{text!r} is not a list of days; write e.g. mon-fri or mon,wed,fri")
        a = DAY_NAMES.index(first)
        b = DAY_NAMES.index(last) if last else a
        if b < a:
            raise ValueError(f"{part!r} runs backwards; write the earlier day first")
        days.update(range(a, b + 1))
    return frozenset(days)


def parse_document(text: str, file: str = "<policy>") -> tuple[PolicyDocument, Located]:
    """Parse and type-check ``text``; semantic checks are in :mod:`policies.validation`."""
    located = load_located(text, file, error=PolicyError)
    data = located.data
    if data is None:  # an empty file applied would wipe the policy: surely a mistake
        raise PolicyError("the policy document is empty", file=file, line=1,
                          hint="`kalkan policy export` writes the current policy to start from")
    if not isinstance(data, dict):
        raise PolicyError("a policy document is a mapping with school, groups, rooms, …",
                          file=file, line=located.line_of(()))
    try:
        doc = PolicyDocument.model_validate(data)
    except ValidationError as exc:
        raise _policy_error(exc, located) from None
    return doc, located


def _policy_error(exc: ValidationError, located: Located) -> PolicyError:
    problems = []
    first_line = None
    for err in exc.errors():
        loc = tuple(err["loc"])
        line = located.line_of(loc)
        first_line = first_line or line
        where = ".".join(str(p) for p in loc) or "document"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {loc[-1]!r}"
        elif err["type"] == "missing":
            msg = f"{loc[-1]!r} is required here"
        elif err["type"] in ("bool_parsing", "bool_type"):
            msg = f"{err.get('input')!r} is neither yes nor no; write true or false"
        elif err["type"] == "string_type" and isinstance(err.get("input"), int | float):
            # YAML 1.1 reads 10:30 as 630 and 52:54:00:12:34:56 as a number: quotes keep text.
            msg = (f"expected text, but YAML read a number ({err['input']!r}); put the value "
                   'in quotes as you wrote it, e.g. "10:30"')
        problems.append(f"{located.file}:{line}: {where}: {msg}")
    first = problems[0].split(": ", 1)[1]
    hint = "fix the line named above; `kalkan policy export` shows a complete, valid document"
    if len(problems) > 1:
        first += "\n" + "\n".join(problems[1:])
    return PolicyError(first, file=located.file, line=first_line, hint=hint)


def normalise_sites(entries: list[str], path: tuple[str | int, ...], located: Located) -> list[str]:
    """Normalise each site entry, or raise with the line of the first bad one."""
    out = []
    for i, entry in enumerate(entries):
        try:
            domain, url_path = split_site(str(entry))
        except InvalidDomain as exc:
            raise PolicyError(str(exc), file=located.file, line=located.line_of((*path, i)),
                              hint="write a host name such as lib.kg or lib.kg/books") from None
        out.append(domain + (url_path or ""))
    return out


class _Dumper(yaml.SafeDumper):  # the pure-Python one: libyaml's cannot indent lists
    """Block style, keys in the order written, lists indented under their key."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> Any:
        return super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        return True  # never &id001 anchors: a person reads and edits this file


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Times always in quotes: unquoted, YAML 1.1 reads 17:00 as the number 1020.
    style = '"' if HHMM.match(value) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def render_document(data: dict[str, Any]) -> str:
    """The canonical text of a document given as plain data (see ``policies.store``)."""
    header = ("# kalkan policy: the council's decisions as one document.\n"
              "# Import with `kalkan policy import FILE --protocol N --date YYYY-MM-DD`.\n")
    return header + yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                              default_flow_style=False, width=100)
