"""daily status: status samples, uplink outages, daily reports, report rows in the outbox

The health monitor's samples (one per interval), uplink outages as intervals, and the morning
and evening reports (issue 10). The notification outbox also carries report rows: alert_id
and recipient_id become nullable, report_id and address are added (a report to the district
has no staff recipient). Reviewed by hand.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25 02:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('status_samples',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('time', sa.DateTime(), nullable=False),
    sa.Column('seconds', sa.Float(), nullable=False),
    sa.Column('rx_bytes', sa.BigInteger(), nullable=True),
    sa.Column('tx_bytes', sa.BigInteger(), nullable=True),
    sa.Column('upstreams_up', sa.Integer(), nullable=True),
    sa.Column('upstreams_total', sa.Integer(), nullable=True),
    sa.Column('dns_rtt_ms', sa.Float(), nullable=True),
    sa.Column('dns_errors', sa.Integer(), nullable=True),
    sa.Column('speed_mbit', sa.Float(), nullable=True),
    sa.Column('uplink_up', sa.Boolean(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_status_samples'))
    )
    with op.batch_alter_table('status_samples', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_status_samples_time'), ['time'], unique=False)

    op.create_table('uplink_outages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('ended_at', sa.DateTime(), nullable=True),
    sa.Column('cause', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_uplink_outages'))
    )
    with op.batch_alter_table('uplink_outages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_uplink_outages_started_at'), ['started_at'],
                              unique=False)

    op.create_table('daily_reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('facts', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_daily_reports')),
    sa.UniqueConstraint('day', 'kind', name='uq_daily_reports_once')
    )

    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('report_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('address', sa.String(length=320), nullable=True))
        batch_op.alter_column('alert_id', existing_type=sa.Integer(), nullable=True)
        batch_op.alter_column('recipient_id', existing_type=sa.Integer(), nullable=True)
        batch_op.create_index(batch_op.f('ix_notifications_report_id'), ['report_id'],
                              unique=False)
        batch_op.create_unique_constraint('uq_notifications_report_once',
                                          ['report_id', 'channel', 'address'])
        batch_op.create_foreign_key(batch_op.f('fk_notifications_report_id_daily_reports'),
                                    'daily_reports', ['report_id'], ['id'], ondelete='CASCADE')


def downgrade() -> None:
    op.execute("DELETE FROM notifications WHERE report_id IS NOT NULL")
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_notifications_report_id_daily_reports'),
                                 type_='foreignkey')
        batch_op.drop_constraint('uq_notifications_report_once', type_='unique')
        batch_op.drop_index(batch_op.f('ix_notifications_report_id'))
        batch_op.alter_column('recipient_id', existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column('alert_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column('address')
        batch_op.drop_column('report_id')
    op.drop_table('daily_reports')
    with op.batch_alter_table('uplink_outages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_uplink_outages_started_at'))
    op.drop_table('uplink_outages')
    with op.batch_alter_table('status_samples', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_status_samples_time'))
    op.drop_table('status_samples')
