"""covering indexes for the dashboard overview's aggregates

The overview counts this week's calls by status, this week's bookings by call and the
upcoming appointments by status from range scans of (company, instant) indexes, then
read each row for the one column more it tests. Each index now ends with that column,
so the aggregates read the index alone; it replaces the index it extends, not adding to
the writes. The id comes before the added column: the lists and feeds that walk these
indexes in (instant, id) order (the calendar, the activity feed, the calls list) still
read them in order, without a sort.

Revision ID: 9b2e6c1d4f80
Revises: 3c1d9e4f7a20
Create Date: 2026-12-07 13:40:00.000000
"""
from alembic import op


revision = '9b2e6c1d4f80'
down_revision = '3c1d9e4f7a20'
branch_labels = None
depends_on = None

# (table, old index, its columns, new index, its columns)
EXTENDED = (
    ('calls', 'ix_calls_company_started', ['company_id', 'started_at', 'id'],
     'ix_calls_company_started_status', ['company_id', 'started_at', 'id', 'status']),
    ('appointments', 'ix_appointments_company_starts', ['company_id', 'starts_at'],
     'ix_appointments_company_starts_status', ['company_id', 'starts_at', 'id', 'status']),
    ('appointments', 'ix_appointments_company_created', ['company_id', 'created_at'],
     'ix_appointments_company_created_call', ['company_id', 'created_at', 'id', 'call_id']),
)


def upgrade():
    # the new index first: on MariaDB the company's foreign key keeps an index to use
    for table, old, _old_columns, new, new_columns in EXTENDED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(new, new_columns, unique=False)
            batch_op.drop_index(old)


def downgrade():
    for table, old, old_columns, new, _new_columns in EXTENDED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(old, old_columns, unique=False)
            batch_op.drop_index(new)
