"""District mode: many schools in one PostgreSQL, a district baseline, gateways that work offline.

A package of its own (not under gateway/) because it spans every layer: the schema of each
school (policies), the baseline that the engine merges (policies), the gateways' offline cache
(gateway) and the district commands. See docs/district.md.
"""
