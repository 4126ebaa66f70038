"""dashboard: hourly counts of recorded requests and of blocked sites

access_hours (per hour, action, category, noise) and blocked_site_hours (per hour, site,
category; real blocked attempts only), kept by the event writer in the same transaction as
the rows. Reviewed: the rows already stored are counted here, so the counts start exact.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-25 02:40:00
"""
from alembic import op
import sqlalchemy as sa

from gateway.events.rollup import backfill

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('access_hours',
    sa.Column('hour', sa.DateTime(), nullable=False),
    sa.Column('action', sa.String(length=8), nullable=False),
    sa.Column('category', sa.String(length=64), nullable=False),
    sa.Column('noise', sa.String(length=16), nullable=False),
    sa.Column('count', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('hour', 'action', 'category', 'noise', name=op.f('pk_access_hours'))
    )
    op.create_table('blocked_site_hours',
    sa.Column('hour', sa.DateTime(), nullable=False),
    sa.Column('host', sa.String(length=253), nullable=False),
    sa.Column('category', sa.String(length=64), nullable=False),
    sa.Column('count', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('hour', 'host', 'category', name=op.f('pk_blocked_site_hours'))
    )
    backfill(op.get_bind())


def downgrade() -> None:
    op.drop_table('blocked_site_hours')
    op.drop_table('access_hours')
