"""authors and books

Revision ID: a1b2c3d4e5f6
Revises:
"""
from alembic import op
import sqlalchemy as sa

revision = "a1b2c3d4e5f6"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("author", sa.Column("id", sa.Integer(), primary_key=True),
                    sa.Column("name", sa.String(100), nullable=False))
    op.create_table("book", sa.Column("id", sa.Integer(), primary_key=True),
                    sa.Column("title", sa.String(200), nullable=False),
                    sa.Column("copies", sa.Integer(), nullable=False, server_default="0"))


def downgrade():
    op.drop_table("book")
    op.drop_table("author")
