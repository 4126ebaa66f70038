"""The council's edits as pure changes to the policy data, and diffs put in words."""

from __future__ import annotations

import pytest

from admin_ui.policy_changes import (
    Change,
    describe_changes,
    parse_schedule_lines,
    parse_site_lines,
    set_category_actions,
)
from policies.demo import demo_policy_data
from policies.errors import PolicyError


def group(data, gid):
    return next(g for g in data["groups"] if g["id"] == gid)


@pytest.mark.parametrize(("cells", "allow", "block"), [
    ({("senior", "video"): "block"}, ["education", "government", "reference"],
     ["adult", "violence", "terrorism", "extremism", "hatred", "drugs", "gambling", "hacking",
      "phishing", "malware", "proxy_vpn", "doh", "dating", "warez", "games", "paid_services",
      "video"]),
    ({("senior", "games"): ""}, ["education", "government", "reference", "video"],
     ["adult", "violence", "terrorism", "extremism", "hatred", "drugs", "gambling", "hacking",
      "phishing", "malware", "proxy_vpn", "doh", "dating", "warez", "paid_services"]),
    ({("senior", "adult"): "block", ("senior", "social"): "allow"},
     ["education", "government", "reference", "video", "social"], None),
])
def test_cells_change_only_what_they_name_and_keep_the_order(cells, allow, block):
    data = demo_policy_data()
    before = group(data, "senior")["categories"]["block"]
    new = set_category_actions(data, cells)
    assert group(new, "senior")["categories"]["allow"] == allow
    assert group(new, "senior")["categories"]["block"] == (block or before)
    assert group(data, "senior")["categories"]["block"] == before  # the input is not changed


@pytest.mark.parametrize("value", ["allow", ""])
def test_a_locked_cell_cannot_be_opened(value):
    with pytest.raises(PolicyError, match=r"regulation 3\.3"):
        set_category_actions(demo_policy_data(), {("primary", "violence"): value})


def test_a_locked_cell_left_empty_where_it_is_empty_is_no_change():
    data = demo_policy_data()
    group(data, "guests")["categories"]["block"].remove("hatred")
    assert set_category_actions(data, {("guests", "hatred"): ""}) == data


@pytest.mark.parametrize(("text", "windows"), [
    ("mon-fri 08:00-17:00", [{"days": "mon-fri", "from": "08:00", "to": "17:00"}]),
    ("Mon - Fri 8:00 – 17:00\n\n# Saturday\nsat 09:00-13:00",
     [{"days": "mon-fri", "from": "08:00", "to": "17:00"},
      {"days": "sat", "from": "09:00", "to": "13:00"}]),
    ("", []),
])
def test_schedule_lines(text, windows):
    assert parse_schedule_lines(text) == windows


def test_a_bad_schedule_line_is_named():
    with pytest.raises(PolicyError, match="line 2"):
        parse_schedule_lines("mon-fri 08:00-17:00\n08:00 to 17:00")


def test_site_lines_split_on_spaces_and_commas_and_drop_notes():
    assert parse_site_lines("lib.kg, kitep.kg\n\nvk.com/edu  # for 10A\nlib.kg") == [
        "lib.kg", "kitep.kg", "vk.com/edu"]


def test_changes_in_words():
    before = demo_policy_data()
    after = set_category_actions(before, {("senior", "video"): "block"})
    group(after, "middle")["sites"]["block"].append("tiktok.com")
    group(after, "middle")["schedule"] = []
    after["sites"]["allow"].remove("school1.edu.kg")
    after["category_sites"]["games"].append("chess.com")
    group(after, "teachers")["downloads"] = False
    assert describe_changes(before, after) == [
        Change("site", "middle", "tiktok.com", "", "block"),
        Change("schedule", "middle", "", "mon-fri 08:00–17:00; sat 08:00–13:00", ""),
        Change("category", "senior", "video", "allow", "block"),
        Change("setting", "teachers", "downloads", "yes", "no"),
        Change("site", "", "school1.edu.kg", "allow", ""),
        Change("category_list", "games", "chess.com", "", "added"),
    ]
    assert describe_changes("", "") == []
