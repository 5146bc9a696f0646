"""Schema migrations: claystore's own system tables and users' model tables.

- :mod:`claystore.migrations.system`: the ``dc_*`` system tables' schema version, and the
  upgrade of a database made by an earlier claystore release (run at every start).

Above :mod:`claystore.orm`, below :mod:`claystore.client` and the command line.
"""
