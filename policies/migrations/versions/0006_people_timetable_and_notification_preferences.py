"""people pages: timetable lessons, notification preferences, who recorded a consent

Weekly lessons that open their session on their own (``lessons``), each staff user's choice
of notifications and channels (``notification_preferences``; no row = everything), and
``students.consent_recorded_by``: who wrote the consent down (regulation 2.15).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 02:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('lessons',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('weekday', sa.Integer(), nullable=False),
    sa.Column('start', sa.String(length=5), nullable=False),
    sa.Column('end', sa.String(length=5), nullable=False),
    sa.Column('class_id', sa.String(length=16), nullable=False),
    sa.Column('room_id', sa.String(length=64), nullable=False),
    sa.Column('teacher_id', sa.Integer(), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('focus_sites', sa.JSON(), nullable=False),
    sa.Column('last_opened_on', sa.Date(), nullable=True),
    sa.ForeignKeyConstraint(['class_id'], ['school_classes.id'], name=op.f('fk_lessons_class_id_school_classes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['room_id'], ['rooms.id'], name=op.f('fk_lessons_room_id_rooms'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['teacher_id'], ['staff_users.id'], name=op.f('fk_lessons_teacher_id_staff_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lessons'))
    )
    with op.batch_alter_table('lessons', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lessons_weekday'), ['weekday'], unique=False)

    op.create_table('notification_preferences',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('by_email', sa.Boolean(), nullable=False),
    sa.Column('by_telegram', sa.Boolean(), nullable=False),
    sa.Column('alerts', sa.Boolean(), nullable=False),
    sa.Column('daily_status', sa.Boolean(), nullable=False),
    sa.Column('requests', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['staff_users.id'], name=op.f('fk_notification_preferences_user_id_staff_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_notification_preferences'))
    )
    with op.batch_alter_table('students', schema=None) as batch_op:
        batch_op.add_column(sa.Column('consent_recorded_by', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('students', schema=None) as batch_op:
        batch_op.drop_column('consent_recorded_by')
    op.drop_table('notification_preferences')
    with op.batch_alter_table('lessons', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lessons_weekday'))
    op.drop_table('lessons')
