"""notifications about block-page requests

notifications.request_id: a review, a report or a lesson request from the block page, told to
the council and the responsible person (reviews, reports) or to the session's teacher (lesson
requests) by email and Telegram, as their notification settings allow.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-25 03:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_notifications_request_id'), ['request_id'],
                              unique=False)
        batch_op.create_unique_constraint('uq_notifications_request_once',
                                          ['request_id', 'recipient_id', 'channel'])
        batch_op.create_foreign_key(batch_op.f('fk_notifications_request_id_site_requests'),
                                    'site_requests', ['request_id'], ['id'], ondelete='CASCADE')


def downgrade() -> None:
    op.execute("DELETE FROM notifications WHERE request_id IS NOT NULL")
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_notifications_request_id_site_requests'),
                                 type_='foreignkey')
        batch_op.drop_constraint('uq_notifications_request_once', type_='unique')
        batch_op.drop_index(batch_op.f('ix_notifications_request_id'))
        batch_op.drop_column('request_id')
