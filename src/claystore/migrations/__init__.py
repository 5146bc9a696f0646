"""Schema migrations: claystore's own system tables and users' model tables.

- :mod:`claystore.migrations.system`: the ``dc_*`` system tables' schema version, and the
  upgrade of a database made by an earlier claystore release (run at every start).
- :mod:`claystore.migrations.environment`: the alembic environment of a project's model
  tables (what its ``env.py`` runs: model modules, database URL, claystore's options).
- :mod:`claystore.migrations.autogen`: autogenerate read as claystore reads tables (types as
  claystore maps them, ``dc_*`` tables left out) and written engine-independently.
- :mod:`claystore.migrations.ops`: registry-aware operations for migration scripts
  (``rename_model``, ``drop_model``, ``rename_field``, ``add_field``).
- :mod:`claystore.migrations.project`: a project's alembic files, written by
  ``claystore db init`` and read by every ``claystore db`` command.
- ``template/``: the files ``claystore db init`` writes (``env.py``, ``script.py.mako``,
  ``README``, ``alembic.ini``).

Above :mod:`claystore.orm`, below :mod:`claystore.client` and the command line.
"""
