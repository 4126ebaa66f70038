"""devices seen on the school network

devices_seen: every MAC the router's leases or neighbour table showed, its last IPv4 and
IPv6 addresses, the hostname from its lease, the room its network belongs to, and when it
was first and last seen (gateway/identity). Not policy: pins live in `devices`.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 02:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('devices_seen',
    sa.Column('mac', sa.String(length=17), nullable=False),
    sa.Column('ipv4', sa.String(length=15), nullable=True),
    sa.Column('ipv6', sa.String(length=45), nullable=True),
    sa.Column('hostname', sa.String(length=253), nullable=True),
    sa.Column('room_id', sa.String(length=64), nullable=True),
    sa.Column('first_seen', sa.DateTime(), nullable=False),
    sa.Column('last_seen', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('mac', name=op.f('pk_devices_seen'))
    )
    with op.batch_alter_table('devices_seen', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_devices_seen_last_seen'), ['last_seen'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('devices_seen', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_devices_seen_last_seen'))
    op.drop_table('devices_seen')
