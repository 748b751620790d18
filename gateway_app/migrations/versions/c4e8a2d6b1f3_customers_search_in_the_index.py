"""customers search in the index: name, e-mail and phone at the end of the updated index

A customers search walks (company, updated_at, id) newest first, testing each customer's
name, e-mail and phone, until it has a page; a text few customers hold walks them all.
Each test read the customer's row. The index now ends with those columns, so the search
tests them in the index and reads only the rows it answers with. Its order is the
list's, newest first, so that it is walked forwards: MariaDB tests a condition in the
index (index condition pushdown) only on a forward walk, and reads every row on a
backward one. It replaces the index it extends: the list keeps its order without a
sort, and writes keep one index.

Revision ID: c4e8a2d6b1f3
Revises: 9b2e6c1d4f80
Create Date: 2026-12-08 01:00:00.000000
"""
import sqlalchemy as sa
from alembic import op


revision = 'c4e8a2d6b1f3'
down_revision = '9b2e6c1d4f80'
branch_labels = None
depends_on = None

OLD, OLD_COLUMNS = 'ix_customers_company_updated', ['company_id', 'updated_at']
NEW = 'ix_customers_company_updated_text'
NEW_COLUMNS = ['company_id', sa.desc(sa.column('updated_at')), sa.desc(sa.column('id')), 'name', 'email', 'phone']


def upgrade():
    # the new index first: on MariaDB the company's foreign key keeps an index to use
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.create_index(NEW, NEW_COLUMNS, unique=False)
        batch_op.drop_index(OLD)


def downgrade():
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.create_index(OLD, OLD_COLUMNS, unique=False)
        batch_op.drop_index(NEW)
