"""The alembic environment of a project's claystore model classes: everything its ``env.py``
does, so that the ``env.py`` ``claystore db init`` writes stays three lines.

Owns :func:`run_migrations` (connect, configure alembic with claystore's options from
:mod:`claystore.migrations.autogen`, run the migrations, online or as SQL), and what it reads
from alembic's configuration:

- :func:`model_modules` / :func:`target_metadata`: the modules named by the
  ``claystore_models`` option of alembic.ini, imported, and :data:`claystore.metadata`, which
  their classes filled;
- :func:`database_url`: the URL ``claystore db --url`` passed (``config.attributes``), else
  ``sqlalchemy.url`` in alembic.ini, else what ``Client()`` uses (``DC_URL``, ``DC_HOST``...,
  else ``sqlite:///claystore.db``: :func:`claystore.dialects.registry.configured_url`).

Engines whose ``ALTER TABLE`` is limited (SQLite) get alembic's batch mode
(:attr:`claystore.dialects.base.Dialect.needs_batch_migrations`).  Migrations hold the schema
lock claystore clients take at start where the engine has one (PostgreSQL), so a client never
starts half-way through an upgrade.

Called by the ``env.py`` of user projects (template: ``migrations/template/env.py``), run by
``claystore db ...`` (:mod:`claystore.cli`) or plain ``alembic``.
"""

from __future__ import annotations

import importlib
import os
import re
import traceback
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import context
from alembic.config import Config
from sqlalchemy.engine import URL, make_url

from claystore.dialects.registry import configured_url, dialect_class, dialect_for, normalise_url
from claystore.dialects.translate import translate_error
from claystore.errors import ConfigurationError, MigrationError
from claystore.migrations import autogen
from claystore.orm import mapping

__all__ = [
    "MODELS_OPTION",
    "URL_ATTRIBUTE",
    "database_url",
    "model_modules",
    "run_migrations",
    "target_metadata",
]

#: The alembic.ini option (section ``[alembic]``) that lists the model modules.
MODELS_OPTION = "claystore_models"
#: The key of ``Config.attributes`` under which ``claystore db --url`` passes the URL.
URL_ATTRIBUTE = "claystore_url"


def model_modules(config: Config) -> list[str]:
    """The model modules alembic.ini lists (``claystore_models``, comma- or space-separated);
    raises MigrationError when it lists none."""
    text = config.get_main_option(MODELS_OPTION) or ""
    names = [name for name in re.split(r"[\s,]+", text) if name]
    if not names:
        where = config.config_file_name or "the alembic configuration"
        msg = (
            f"{where} names no model modules: set {MODELS_OPTION} = your.models (the modules "
            "that define your model classes, comma-separated) in its [alembic] section"
        )
        raise MigrationError(msg)
    return names


def target_metadata(models: Sequence[str]) -> sa.MetaData:
    """Import the model modules and return the tables their classes define
    (:data:`claystore.metadata`); raises MigrationError naming a module that fails."""
    for name in models:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not (name == exc.name or name.startswith(f"{exc.name}.")):
                raise MigrationError(_import_failure(name, exc)) from exc
            msg = (
                f"model module {name!r} (listed in {MODELS_OPTION}) cannot be imported: {exc}; "
                "check the name, and that it is importable from the project directory "
                "(prepend_sys_path in alembic.ini)"
            )
            raise MigrationError(msg) from None
        except Exception as exc:
            raise MigrationError(_import_failure(name, exc)) from exc
    return mapping.metadata


def _import_failure(name: str, exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"importing model module {name!r} failed{where}: {type(exc).__name__}: {exc}"


def database_url(config: Config) -> URL:
    """The database to migrate: the URL ``claystore db --url`` passed, else ``sqlalchemy.url``
    of alembic.ini, else what ``Client()`` uses (the ``DC_*`` environment, else
    ``sqlite:///claystore.db``)."""
    given = config.attributes.get(URL_ATTRIBUTE)
    if isinstance(given, URL):
        return given
    text = given if isinstance(given, str) else config.get_main_option("sqlalchemy.url")
    if text:
        try:
            return normalise_url(make_url(text))
        except sa.exc.ArgumentError as exc:
            msg = f"sqlalchemy.url is not a database URL: {exc}"
            raise ConfigurationError(msg) from None
    return configured_url(os.environ)


def claystore_options(url: URL) -> dict[str, Any]:
    """The options of alembic's ``context.configure`` that make it migrate claystore tables
    on ``url``'s engine."""
    return {
        "include_name": autogen.include_name,
        "compare_type": autogen.compare_type,
        "render_item": autogen.render_item,
        "process_revision_directives": autogen.process_revision_directives,
        "render_as_batch": dialect_class(url.get_backend_name()).needs_batch_migrations,
    }


def run_migrations(config: Config | None = None, **options: Any) -> None:
    """Run alembic's migrations (or autogenerate) on the project's model tables: the whole of
    a claystore ``env.py``.

    ``options`` are keyword arguments of alembic's ``context.configure``; they replace
    claystore's (e.g. your own ``include_name`` to leave more tables out: keep
    :func:`claystore.migrations.autogen.include_name`'s test for ``dc_*`` tables in it).
    """
    config = config or context.config
    metadata = target_metadata(model_modules(config))
    url = database_url(config)
    settings = {"target_metadata": metadata, **claystore_options(url), **options}
    if context.is_offline_mode():
        context.configure(url=url, literal_binds=True, **settings)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        try:
            connection = engine.connect()
        except sa.exc.SQLAlchemyError as exc:
            raise translate_error(exc, url) from None
        with connection:
            context.configure(connection=connection, **settings)
            with context.begin_transaction():
                dialect_for(url).lock_schema(connection)
                context.run_migrations()
    finally:
        engine.dispose()
