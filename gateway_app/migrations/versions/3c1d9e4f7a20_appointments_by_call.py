"""appointments by call: an index for a call's appointments in time order

Revision ID: 3c1d9e4f7a20
Revises: 7ee47869b77d
Create Date: 2026-12-07 11:50:00.000000
"""
from alembic import op


revision = '3c1d9e4f7a20'
down_revision = '7ee47869b77d'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.create_index('ix_appointments_company_call', ['company_id', 'call_id', 'starts_at'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.drop_index('ix_appointments_company_call')
