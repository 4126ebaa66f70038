"""district: the schools of a district and the district baseline

``district_schools`` (school id → its PostgreSQL schema) and ``district_baselines`` (published
baseline revisions with the district decision they implement). Created only in the district's
own schema: on PostgreSQL that is ``public``; a school's schema (``school_…``, migrated with
its search_path) gets none. SQLite (one school, no district) gets both, empty.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 02:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def _district_home() -> bool:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return True
    return bind.execute(sa.text("SELECT current_schema()")).scalar() == "public"


def upgrade() -> None:
    if not _district_home():
        return
    op.create_table('district_schools',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('schema_name', sa.String(length=63), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_district_schools')),
    sa.UniqueConstraint('schema_name', name=op.f('uq_district_schools_schema_name'))
    )
    op.create_table('district_baselines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('author', sa.String(length=200), nullable=False),
    sa.Column('protocol', sa.String(length=64), nullable=False),
    sa.Column('decision_date', sa.Date(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('document', sa.Text(), nullable=False),
    sa.Column('diff', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_district_baselines'))
    )


def downgrade() -> None:
    if not _district_home():
        return
    op.drop_table('district_baselines')
    op.drop_table('district_schools')
