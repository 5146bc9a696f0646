"""The alembic environment of this project's claystore model classes.

Written by ``claystore db init``; run by ``claystore db ...`` and by plain ``alembic``.  The
model modules: the ``claystore_models`` option of alembic.ini.  The database: ``claystore db
--url``, else ``sqlalchemy.url`` in alembic.ini, else what ``Client()`` uses (``DC_URL``,
``DC_HOST``..., else ``sqlite:///claystore.db``).  ``run_migrations`` accepts keyword
arguments of alembic's ``context.configure``, which replace claystore's.
"""

from logging.config import fileConfig

from alembic import context

from claystore.migrations.environment import run_migrations

if context.config.config_file_name and context.config.file_config.has_section("loggers"):
    fileConfig(context.config.config_file_name, disable_existing_loggers=False)

run_migrations(context.config)
