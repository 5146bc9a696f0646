"""The dialects layer: the registry of engines, and table metadata that serves every engine."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

import claystore
from claystore.datastore.jsontable import datastore_table
from claystore.dialects import Dialect, dialect_class, dialect_classes, dialect_for, normalise_url
from claystore.dialects.postgresql import PostgreSQLDialect
from claystore.dialects.sqlite import SQLiteDialect

SRC = Path(claystore.__file__).parent


def test_dialect_classes_are_found_by_url_and_by_sqlalchemy_name() -> None:
    """dialect_for(url) makes the engine's dialect; dialect_class(name) is its class, and
    dialect_classes() lists every engine (an unknown name gets the generic Dialect)."""
    assert isinstance(dialect_for(make_url("sqlite:///x.db")), SQLiteDialect)
    assert isinstance(dialect_for(make_url("postgresql+psycopg://u@h/d")), PostgreSQLDialect)
    assert dialect_class("sqlite") is SQLiteDialect
    assert dialect_class("postgresql") is PostgreSQLDialect
    assert dialect_class("mysql") is Dialect
    assert dialect_classes() == (SQLiteDialect, PostgreSQLDialect)


def test_postgresql_urls_are_pinned_to_psycopg_3_and_others_left_alone() -> None:
    """normalise_url pins postgresql://, postgres:// and psycopg2 URLs to psycopg 3."""
    for raw in ("postgresql://u@h/d", "postgres://u@h/d", "postgresql+psycopg2://u@h/d"):
        assert normalise_url(make_url(raw)).drivername == "postgresql+psycopg"
    assert str(normalise_url(make_url("sqlite:///x.db"))) == "sqlite:///x.db"


def test_the_json_table_keeps_its_column_types_on_each_engine() -> None:
    """The JSON-table datastore's table is TEXT COLLATE "C" and JSONB on PostgreSQL, TEXT on
    SQLite: its column types ask the engine's dialect."""
    table = datastore_table("t")
    pg = str(sa.schema.CreateTable(table).compile(dialect=postgresql.dialect()))
    assert 'key TEXT COLLATE "C" NOT NULL' in pg
    assert 'path TEXT COLLATE "C" NOT NULL' in pg
    assert "value JSONB NOT NULL" in pg
    lite = str(sa.schema.CreateTable(table).compile(dialect=sqlite.dialect()))
    assert '"key" TEXT NOT NULL' in lite
    assert "value TEXT NOT NULL" in lite
