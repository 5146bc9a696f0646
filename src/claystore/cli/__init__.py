"""The ``claystore`` command line.

``claystore db ...`` migrates a project's model tables (:mod:`.db`); ``claystore backends ...``
manages a store's backends (:mod:`.backends`); ``check``, ``size``, ``locks``, ``stats`` and
``aliases`` look after a store (:mod:`.housekeeping`).  Every command has ``--help`` with an
example.

A mistake a user can fix (no alembic.ini, a model module that does not import, a database that
cannot be reached, an unknown revision or backend, a backend still in use) prints one line on
stderr and exits 1; a wrong command line exits 2 (click).  No tracebacks for those.

Entry point of the ``claystore`` console script (``claystore.cli:main``) and of
``python -m claystore.cli``.  Calls the client, :mod:`claystore.housekeeping` and
:mod:`claystore.migrations`; nothing imports this package.
"""

from __future__ import annotations

from claystore.cli import backends, db, housekeeping
from claystore.cli.app import main

__all__ = ["backends", "db", "housekeeping", "main"]
