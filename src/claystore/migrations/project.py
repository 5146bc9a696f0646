"""A user project's alembic files: written once (``claystore db init``), read by every command.

Owns :func:`init_project`, which writes the migration environment (``env.py``,
``script.py.mako``, ``README`` and ``versions/``, copied from ``migrations/template/``) and an
``alembic.ini`` that points at it and lists the model modules, and :func:`load_config`, which
reads that ``alembic.ini`` into alembic's ``Config`` with the database URL a command was given.

Called by :mod:`claystore.cli`.
"""

from __future__ import annotations

import os
import string
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from alembic.config import Config
from sqlalchemy.engine import URL

from claystore.errors import MigrationError
from claystore.migrations.environment import URL_ATTRIBUTE

__all__ = ["ENVIRONMENT_FILES", "init_project", "load_config"]

#: The files of the migration environment, copied as they are from the template.
ENVIRONMENT_FILES = ("env.py", "script.py.mako", "README")
_INI_TEMPLATE = "alembic.ini.tmpl"


def _template(name: str) -> str:
    template = resources.files("claystore.migrations").joinpath("template")
    return template.joinpath(name).read_text("utf-8")


def init_project(directory: Path, ini: Path, models: Sequence[str]) -> list[Path]:
    """Write the migration environment into ``directory`` and the configuration ``ini``
    naming ``models``; returns the paths written.  Refuses to overwrite anything."""
    names = [name.strip() for name in models if name.strip()]
    if not names:
        msg = "give the modules that define your model classes: --models app.models[,...]"
        raise MigrationError(msg)
    if ini.exists():
        msg = f"{ini} exists already; remove it or write another one with --ini PATH"
        raise MigrationError(msg)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        msg = f"{directory} exists and is not an empty directory; choose another directory"
        raise MigrationError(msg)
    location = Path(os.path.relpath(directory.resolve(), ini.resolve().parent)).as_posix()
    written = []
    (directory / "versions").mkdir(parents=True, exist_ok=True)
    written.append(directory / "versions")
    for name in ENVIRONMENT_FILES:
        path = directory / name
        path.write_text(_template(name), encoding="utf-8")
        written.append(path)
    text = string.Template(_template(_INI_TEMPLATE)).substitute(
        script_location=location, models=", ".join(names)
    )
    ini.parent.mkdir(parents=True, exist_ok=True)
    ini.write_text(text, encoding="utf-8")
    written.append(ini)
    return written


def load_config(ini: Path, url: URL | None = None) -> Config:
    """The alembic configuration in ``ini``, with ``url`` (when given) as the database;
    raises MigrationError when the file does not exist."""
    if not ini.is_file():
        msg = (
            f"no alembic configuration at {ini}: run `claystore db init DIR --models "
            "MODULE` in your project first, or pass --config PATH"
        )
        raise MigrationError(msg)
    config = Config(str(ini))
    if url is not None:
        config.attributes[URL_ATTRIBUTE] = url
    return config
