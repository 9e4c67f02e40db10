"""a book's author: a new column with a foreign key to author, and its index

Revision ID: 0f9e8d7c6b5a
Revises: a1b2c3d4e5f6
"""
from alembic import op
import sqlalchemy as sa

revision = "0f9e8d7c6b5a"
down_revision = "a1b2c3d4e5f6"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("book", sa.Column("author_id", sa.Integer(), nullable=True))
    op.create_foreign_key("book_author_id_fkey", "book", "author", ["author_id"], ["id"])
    op.create_index("ix_book_author_id", "book", ["author_id"])


def downgrade():
    op.drop_index("ix_book_author_id", table_name="book")
    op.drop_constraint("book_author_id_fkey", "book", type_="foreignkey")
    op.drop_column("book", "author_id")
