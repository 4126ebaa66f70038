"""The policy document: policy as code that round-trips exactly and refuses bad input clearly."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from policies.database import migrate, open_engine, read_version, session_factory
from policies.decision import CouncilDecision
from policies.demo import seed_demo
from policies.errors import (
    MandatoryCategoryAllowed,
    OverlappingNetworks,
    PolicyError,
    UnknownReference,
)
from policies.revisions import check_document, export_policy, import_policy, latest_revision

DECISION = CouncilDecision("12", "2026-10-15")


def apply(sessions: sessionmaker[Session], text: str, file: str = "policy.yaml"):
    with sessions() as db:
        return import_policy(db, text, file=file, decision=DECISION, author="council")


def export(sessions: sessionmaker[Session]) -> str:
    with sessions() as db:
        return export_policy(db)


# --- round trips ------------------------------------------------------------------------------

def migrated(url: str) -> sessionmaker[Session]:
    engine = open_engine(url)
    migrate(engine)
    return session_factory(engine)


def test_export_import_export_is_byte_identical(any_db_url):
    sessions = migrated(any_db_url)
    with sessions() as db:
        seed_demo(db)
    first = export(sessions)
    result = apply(sessions, first)
    assert result.changed is False
    assert export(sessions).encode() == first.encode()


# A council member's hand-written file: keys in their own order, flow lists, odd spacing,
# a Cyrillic (IDN) domain, capitals, trailing dots, scheme prefixes and repeated entries.
HAND_WRITTEN = """\
# Policy of school No 7, as typed by the council's secretary
rooms:
  - name: "Lab"
    networks: [ "10.7.1.7/24" ]
    id: lab
    default_group: pupils
kalkan_policy: 1
school: {name: School No 7, id: school-7, timezone: Asia/Almaty, language: kk}
sites:
    block: [ "CASINO.example.", casino.example ]
    allow: ["мектеп.kg", "https://Lib.KG/books/", Lib.kg]
categories:
  - {id: adult, mandatory: true, names: {ru: Порнография, en: Pornography}}
  - id: education
groups:
  - name: Pupils
    id: pupils
    session_required: yes
    categories: {block: [adult], allow: [education]}
    schedule:
      - {from: "08:00", to: "14:30", days: "mon-fri"}
    sites:
      allow: [ "BilimLand.KZ.", bilimland.kz ]
  - {id: staff, kind: staff, name: Staff, safe_search: no}
category_sites:
  education: [ "Daryn.Online.", "DARYN.online", "МЕКТЕП.kg" ]
"""

CANONICAL = """\
# kalkan policy: the council's decisions as one document.
# Import with `kalkan policy import FILE --protocol N --date YYYY-MM-DD`.
kalkan_policy: 1
school:
  id: school-7
  name: School No 7
  language: kk
  timezone: Asia/Almaty
categories:
  - id: adult
    mandatory: true
    names:
      ru: Порнография
      en: Pornography
  - id: education
    mandatory: false
    names: {}
groups:
  - id: pupils
    name: Pupils
    kind: student
    mode: blocklist
    safe_search: true
    youtube: 'off'
    session_required: true
    downloads: false
    schedule:
      - days: mon-fri
        from: "08:00"
        to: "14:30"
    categories:
      allow:
        - education
      block:
        - adult
    sites:
      allow:
        - bilimland.kz
      block: []
  - id: staff
    name: Staff
    kind: staff
    mode: blocklist
    safe_search: false
    youtube: 'off'
    session_required: false
    downloads: false
    schedule: []
    categories:
      allow: []
      block: []
    sites:
      allow: []
      block: []
rooms:
  - id: lab
    name: Lab
    default_group: pupils
    networks:
      - 10.7.1.0/24
devices: []
sites:
  allow:
    - xn--e1aaogsq.kg
    - lib.kg/books/
    - lib.kg
  block:
    - casino.example
category_sites:
  education:
    - daryn.online
    - xn--e1aaogsq.kg
"""


def test_a_hand_written_document_is_stored_and_exported_in_canonical_form(any_db_url):
    sessions = migrated(any_db_url)
    apply(sessions, HAND_WRITTEN, "school7.yaml")
    assert export(sessions) == CANONICAL
    result = apply(sessions, CANONICAL)
    assert result.changed is False
    assert export(sessions) == CANONICAL


def test_the_canonical_form_is_reached_without_a_database():
    doc = check_document(HAND_WRITTEN, "school7.yaml")
    assert doc.sites.allow == ["xn--e1aaogsq.kg", "lib.kg/books/", "lib.kg"]
    assert doc.category_sites == {"education": ["daryn.online", "xn--e1aaogsq.kg"]}
    assert doc == check_document(CANONICAL)


# --- bad input --------------------------------------------------------------------------------

# A small valid policy; each bad case changes one line and marks it with `#!`, the line the
# error must name.
GOOD = """\
kalkan_policy: 1
school:
  id: test-school
  name: Test school
  timezone: Asia/Bishkek
categories:
  - id: adult
    mandatory: true
  - id: violence
    mandatory: true
  - id: education
  - id: games
groups:
  - id: pupils
    name: Pupils
    session_required: true
    schedule:
      - days: mon-fri
        from: "08:00"
        to: "17:00"
    categories:
      allow: [education]
      block: [adult, games]
    sites:
      allow: [lib.kg]
      block: [roblox.com]
  - id: staff
    name: Staff
    kind: staff
rooms:
  - id: lab1
    name: Lab 1
    default_group: pupils
    networks: [10.10.1.0/24]
  - id: lab2
    name: Lab 2
    default_group: pupils
    networks: [10.10.2.0/24]
devices:
  - id: pc1
    ip: 10.10.1.101
    room: lab1
sites:
  allow: [school.edu.kg]
  block: [1xbet.com]
"""


def bad(old: str, new: str) -> str:
    assert GOOD.count(old) == 1, old
    return GOOD.replace(old, new)


def marked_line(text: str) -> int:
    lines = [n for n, line in enumerate(text.splitlines(), 1) if "#!" in line]
    assert len(lines) == 1
    return lines[0]


BAD_CASES = [
    # (name, document, error class, words the message or hint must hold)
    ("malformed YAML", bad("    name: Pupils\n", "    name: Pupils\n   kind: [staff  #!\n"),
     PolicyError, "not valid YAML"),
    ("duplicate key", bad("  timezone: Asia/Bishkek\n",
                          "  timezone: Asia/Bishkek\n  name: Other school  #!\n"),
     PolicyError, "keep one of them"),
    ("unknown top-level key", GOOD + "colour: blue  #!\n", PolicyError, "unknown key 'colour'"),
    ("unknown key in a group", bad("    kind: staff\n", "    kind: staff\n    colour: red  #!\n"),
     PolicyError, "unknown key 'colour'"),
    ("wrong type", bad("    session_required: true\n", "    session_required: maybe  #!\n"),
     PolicyError, "session_required: 'maybe' is neither yes nor no; write true or false"),
    ("unknown category", bad("      allow: [education]\n", "      allow: [education, chess]  #!\n"),
     UnknownReference, "add it under `categories:`"),
    ("student group allowing adult",
     bad("      allow: [education]\n      block: [adult, games]\n",
         "      allow: [education, adult]  #!\n      block: [games]\n"),
     MandatoryCategoryAllowed, "regulation 3.3"),
    ("mandatory category made optional",
     bad("  - id: violence\n    mandatory: true\n", "  - id: violence\n    mandatory: false  #!\n"),
     PolicyError, "set `mandatory: true`"),
    ("overlapping networks", bad("    networks: [10.10.2.0/24]\n",
                                 "    networks: [10.10.1.128/25]  #!\n"),
     OverlappingNetworks, "'lab2' overlaps 10.10.1.0/24 of room 'lab1'"),
    ("unknown default group", bad("    name: Lab 2\n    default_group: pupils\n",
                                  "    name: Lab 2\n    default_group: seniors  #!\n"),
     UnknownReference, "use one of: pupils, staff"),
    ("device in an unknown room", bad("    room: lab1\n", "    room: lab9  #!\n"),
     UnknownReference, "use one of: lab1, lab2"),
    ("schedule ending before it starts", bad("      - days: mon-fri\n        from: \"08:00\"\n"
                                             "        to: \"17:00\"\n",
                                             "      - days: mon-fri  #!\n        from: \"08:00\"\n"
                                             "        to: \"07:00\"\n"),
     PolicyError, "ends before it starts"),
    ("bad time", bad('        from: "08:00"\n', "        from: 8am  #!\n"),
     PolicyError, 'write it as "08:30"'),
    ("bad days", bad("      - days: mon-fri\n", "      - days: monday-friday  #!\n"),
     PolicyError, "write e.g. mon-fri"),
    ("invalid domain", bad("  block: [1xbet.com]\n", "  block: [1xbet.com, bad..domain]  #!\n"),
     PolicyError, "write a host name such as lib.kg"),
    ("category both allowed and blocked",
     bad("      block: [adult, games]\n",
         "      block:\n        - adult\n        - education  #!\n        - games\n"),
     PolicyError, "group 'pupils' both allows and blocks category 'education'"),
    ("student group allowing a category the policy made mandatory",
     bad("  - id: games\n", "  - id: games\n    mandatory: true\n")
     .replace("      allow: [education]\n      block: [adult, games]\n",
              "      allow: [education, games]  #!\n      block: [adult]\n"),
     MandatoryCategoryAllowed, "this policy marks it `mandatory: true`"),
    ("site both allowed and blocked", bad("      block: [roblox.com]\n",
                                          "      block: [roblox.com, LIB.KG.]  #!\n"),
     PolicyError, "keep it in one of the two lists"),
    ("duplicate group id", bad("  - id: staff\n", "  - id: pupils  #!\n"),
     PolicyError, "ids must be unique"),
    ("unknown time zone", bad("  timezone: Asia/Bishkek\n", "  timezone: Mars/Olympus  #!\n"),
     PolicyError, "use a name like Asia/Bishkek"),
    ("empty document", "# nothing yet  #!\n", PolicyError, "kalkan policy export"),
    ("unquoted time", bad('        from: "08:00"\n', "        from: 10:30  #!\n"),
     PolicyError, 'put the value in quotes'),
    ("unquoted MAC", bad("    room: lab1\n", "    room: lab1\n    mac: 52:54:00:00:00:01  #!\n"),
     PolicyError, 'put the value in quotes'),
    ("two devices with one MAC",
     bad("    room: lab1\n", "    room: lab1\n    mac: '52:54:00:00:00:01'\n  - id: pc2\n"
                            "    mac: '52-54-00-00-00-01'  #!\n"),
     PolicyError, "same MAC as 'pc1'"),
    ("two devices with one IP",
     bad("    room: lab1\n", "    room: lab1\n  - id: pc2\n    ip: 10.10.1.101  #!\n"),
     PolicyError, "same IP as 'pc1'"),
    ("site both allowed and blocked after a repeated entry",
     bad("      block: [roblox.com]\n",
         "      block:\n        - roblox.com\n        - roblox.com\n        - lib.kg  #!\n"),
     PolicyError, "'lib.kg' is both allowed and blocked"),
]


def test_the_good_document_is_valid():
    doc = check_document(GOOD)
    assert [g.id for g in doc.groups] == ["pupils", "staff"]


@pytest.mark.parametrize(("text", "error", "words"), [c[1:] for c in BAD_CASES],
                         ids=[c[0] for c in BAD_CASES])
def test_bad_input_is_refused_with_its_line_and_the_running_policy_stays(
        demo, text, error, words):
    with demo() as db:
        before, revision, version = export_policy(db), latest_revision(db).id, read_version(db)

    with pytest.raises(error) as validated:
        check_document(text, "policy.yaml")
    with demo() as db, pytest.raises(error) as imported:
        import_policy(db, text, file="policy.yaml", decision=DECISION, author="council")

    for exc in (validated.value, imported.value):
        assert type(exc) is error
        assert exc.file == "policy.yaml"
        assert exc.line == marked_line(text), str(exc)
        assert str(exc).startswith(f"policy.yaml:{exc.line}: ")
        assert words in str(exc)
        assert exc.hint
    with demo() as db:
        assert export_policy(db) == before
        assert latest_revision(db).id == revision
        assert read_version(db) == version


def test_a_mandatory_category_allowed_for_students_names_the_regulation():
    text = bad("      allow: [education]\n      block: [adult, games]\n",
               "      allow: [education, adult]\n      block: [games]\n")
    with pytest.raises(MandatoryCategoryAllowed) as caught:
        check_document(text)
    assert ("student group 'pupils' may not allow the mandatory category 'adult'"
            in caught.value.message)
    assert "regulation 3.3" in caught.value.message
    assert "remove it from `allow:`" in caught.value.hint


def test_a_staff_group_may_allow_adult_content(sessions):
    """Regulation 3.3 speaks of students; the council decides for its staff."""
    text = GOOD.replace("    kind: staff\n", "    kind: staff\n    categories: {allow: [adult]}\n")
    assert check_document(text).groups[1].categories.allow == ["adult"]
    apply(sessions, text)
    assert "      allow:\n        - adult\n" in export(sessions)


def test_repeated_entries_are_stored_once(sessions):
    text = (GOOD.replace("      block: [adult, games]\n", "      block: [adult, games, games]\n")
            .replace("    networks: [10.10.1.0/24]\n",
                     "    networks: [10.10.1.0/24, 10.10.1.9/24]\n")
            .replace("      - days: mon-fri\n", "      - days: Mon - Fri\n")
            .replace("    room: lab1\n", "    room: lab1\n    seat: 5\n"))
    apply(sessions, text)
    out = export(sessions)
    assert "      block:\n        - adult\n        - games\n    sites:" in out
    assert "    networks:\n      - 10.10.1.0/24\n  - id: lab2" in out
    assert "      - days: mon-fri\n" in out
    assert "    seat: '5'\n" in out
    assert apply(sessions, out).changed is False


def test_networks_of_one_room_may_nest(sessions):
    text = GOOD.replace("    networks: [10.10.1.0/24]\n",
                        "    networks: [10.10.1.0/24, 10.10.1.128/25]\n")
    apply(sessions, text)
    assert "      - 10.10.1.0/24\n      - 10.10.1.128/25\n" in export(sessions)


def test_a_list_whose_last_entry_was_deleted_has_no_entries(sessions):
    text = (GOOD.replace("  block: [1xbet.com]\n", "  block:\n")
            .replace("    networks: [10.10.2.0/24]\n", "    networks:\n")
            + "category_sites:\n  games:\n")
    apply(sessions, text)
    out = export(sessions)
    assert "\nsites:\n  allow:\n    - school.edu.kg\n  block: []\n" in out
    assert "    default_group: pupils\n    networks: []\n" in out
    assert out.endswith("category_sites: {}\n")
