"""sessions: the teacher's switch that allows downloads for the class

internet_sessions.allow_downloads: regulation 3.3 refuses programs and media downloads to
students "unless their session allows it"; the proxy's download rule reads this switch.
Existing sessions get false (server default), as they were opened without it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25 02:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('internet_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('allow_downloads', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('internet_sessions', schema=None) as batch_op:
        batch_op.drop_column('allow_downloads')
