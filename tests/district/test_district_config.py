"""kalkan.yaml of a school of a district: its school id and the district database."""

from __future__ import annotations

import pytest

from gateway.config import parse_config
from policies.errors import ConfigError


def test_a_school_of_a_district_uses_its_schema_of_the_district_database():
    config = parse_config('school_id: osh-1\n'
                          'district:\n  url: "postgresql://kalkan@db.district.kg/district"\n')
    assert config.database_url == ("postgresql+psycopg://kalkan@db.district.kg/district"
                                   "?connect_timeout=3&options=-csearch_path%3Dschool_osh_1")


@pytest.mark.parametrize(("text", "says"), [
    ('district:\n  url: "sqlite:////tmp/x.db"\n', "is not a PostgreSQL database URL"),
    ('database:\n  url: "postgresql://a@b/c"\ndistrict:\n  url: "postgresql://a@b/d"\n',
     "both database.url and district.url are set"),
])
def test_bad_district_settings_are_refused_with_the_reason(text, says):
    with pytest.raises(ConfigError, match=says):
        parse_config(text)
