"""The email app's tables, as dashcache reads them (SQLAlchemy 2.0 typed models)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

BigIntPK = BigInteger().with_variant(Integer, "sqlite")
"""BIGINT on PostgreSQL; INTEGER on SQLite, whose rowid alias must be spelled INTEGER."""


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamptz that only ever holds and returns timezone-aware UTC datetimes.

    SQLite has no timestamp type; normalising to UTC keeps its text comparisons correct.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of the email app's tables."""


class Category(Base):
    """One shared taxonomy of labels."""

    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True, nullable=False)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Email(Base):
    """One email; only the counted fields matter to dashcache."""

    __tablename__ = "emails"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    message_id: Mapped[str] = mapped_column(Text, unique=True, nullable=False)
    account_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    category_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("categories.id", ondelete="SET NULL")
    )
    is_unread: Mapped[bool] = mapped_column(Boolean, nullable=False)
    is_auto_labeled: Mapped[bool] = mapped_column(Boolean, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)

    __table_args__ = (
        # Serves the per-account pass; on PostgreSQL it covers every counted column, so an
        # account's stats can come from an index-only scan.
        Index(
            "ix_emails_account_category",
            "account_id",
            "category_id",
            postgresql_include=["is_unread", "is_auto_labeled", "created_at"],
        ),
        Index("ix_emails_category_id", "category_id"),
        # Serves a recount's window crossings: emails created around both window starts.
        Index("ix_emails_created_at", "created_at"),
    )
