"""The one exception hierarchy of claystore.

Every error claystore raises derives from :class:`ClaystoreError`.  Each subclass also mixes in
the built-in exception a caller would naturally catch (``KeyError``, ``TypeError``,
``ConnectionError`` ...), so ``except TypeError`` keeps working in ported code.

dataClay's exception names and messages are kept because users match on them
(``AliasAlreadyExistError``: "Alias <dataset>/<name> already exists", ...).

Driver errors never reach users untranslated: :func:`claystore.dialects.translate.translate_error`
turns them into :class:`DatabaseError` subclasses that keep the driver error as ``.orig``.
Everything in the package raises from here; nothing here imports the rest of the package.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

__all__ = [
    "AliasAlreadyExistError",
    "AliasDoesNotExistError",
    "AlreadyExistError",
    "BackendAlreadyExistsError",
    "BackendDoesNotExistError",
    "BackendInUseError",
    "ClaystoreError",
    "ClientClosedError",
    "ClientNotStartedError",
    "ConfigurationError",
    "ConnectionLostError",
    "CrossBackendTransactionError",
    "CursorError",
    "DatabaseConnectionError",
    "DatabaseError",
    "DatastoreError",
    "DatastoreNotImplementedError",
    "DatastoreTypeError",
    "DoesNotExistError",
    "FederationError",
    "FieldTypeError",
    "IntegrityError",
    "InvalidKeyError",
    "LockTimeoutError",
    "MappingError",
    "MigrationError",
    "MissingFieldError",
    "MoveError",
    "ObjectDoesNotExistError",
    "ObjectHasVersionsError",
    "ObjectInUseError",
    "ObjectIsNotVersionError",
    "ObjectMovedError",
    "ObjectNotRegisteredError",
    "QueryError",
    "ReadOnlyDatabaseError",
    "ReferenceNotPersistentError",
    "SchemaDriftError",
    "SchemaMismatchError",
    "SchemaVersionError",
    "SessionStateError",
    "SymlinkCycleError",
    "UnsupportedTypeError",
    "VersionConflictError",
]


class ClaystoreError(Exception):
    """Root of every error claystore raises."""


# -- configuration and model definition ------------------------------------------------------


class ConfigurationError(ClaystoreError, ValueError):
    """The client (or a backend) was configured with values that cannot work."""


class UnsupportedTypeError(ClaystoreError, TypeError):
    """A model field's annotation names a type claystore cannot store.

    Raised when the class is defined (or, for a forward reference, when it is first resolved),
    never at flush time.  The message names the class, the field and the annotation.
    """


class MappingError(ClaystoreError, TypeError):
    """A model class cannot be mapped to a table (reserved name, table already taken, ...)."""


class FieldTypeError(ClaystoreError, TypeError):
    """A value of the wrong type was assigned to a persisted field; nothing was written."""


class MissingFieldError(ClaystoreError, ValueError):
    """A NOT NULL field has no value and the class gives no default; nothing was written."""


class ReferenceNotPersistentError(ClaystoreError, ValueError):
    """A non-recursive make_persistent found a reference to an object that is not persistent."""


# -- dataClay's object errors (names and messages kept) --------------------------------------


class AlreadyExistError(ClaystoreError, ValueError):
    """Something that must be unique already exists."""


class AliasAlreadyExistError(AlreadyExistError):
    """An alias is already taken in its dataset."""

    def __init__(self, alias: str, dataset: str) -> None:
        self.alias = alias
        self.dataset = dataset
        super().__init__(f"Alias {dataset}/{alias} already exists")


class DoesNotExistError(ClaystoreError, LookupError):
    """Something that was asked for does not exist."""


class AliasDoesNotExistError(DoesNotExistError, KeyError):
    """No object carries this alias in this dataset."""

    def __init__(self, alias: str, dataset: str) -> None:
        self.alias = alias
        self.dataset = dataset
        super().__init__(f"Alias {dataset}/{alias} does not exist")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ObjectDoesNotExistError(DoesNotExistError, KeyError):
    """No stored object has this id (it was never stored, or it was deleted)."""

    def __init__(self, object_id: UUID | str, detail: str = "") -> None:
        self.object_id = object_id
        message = f"Object {object_id} does not exist"
        super().__init__(f"{message}: {detail}" if detail else message)

    def __str__(self) -> str:
        return str(self.args[0])


class BackendDoesNotExistError(DoesNotExistError, KeyError):
    """No backend is registered under this id or name."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        super().__init__(f"Backend {backend} does not exist")

    def __str__(self) -> str:
        return str(self.args[0])


class BackendAlreadyExistsError(AlreadyExistError):
    """The database (or the backend name) is registered already."""


class BackendInUseError(ClaystoreError, RuntimeError):
    """The backend cannot be removed: objects live on it (move them first)."""


class MoveError(ClaystoreError, RuntimeError):
    """An object cannot be moved as asked (a version, an object with versions...)."""


class CrossBackendTransactionError(ClaystoreError, RuntimeError):
    """A unit of work would write objects to two backends, and one of them (or the metadata
    database, which records the decision) cannot take part in a two-phase commit: nothing of
    that write was sent.  ``backends`` names them (name and engine)."""

    def __init__(self, message: str, backends: tuple[str, ...] = ()) -> None:
        self.backends = backends
        super().__init__(message)


class ObjectNotRegisteredError(ClaystoreError, RuntimeError):
    """The operation needs a persistent object, and this one is not registered."""

    def __init__(self, object_ref: Any) -> None:
        self.object_ref = object_ref
        super().__init__(f"Object {object_ref} is not registered!")


class ObjectIsNotVersionError(ClaystoreError, RuntimeError):
    """consolidate_version() was called on an object that is not a version."""

    def __init__(self, object_id: UUID | str) -> None:
        self.object_id = object_id
        super().__init__(f"Object {object_id} is not a version!")


class ObjectHasVersionsError(ClaystoreError, RuntimeError):
    """The object has live versions; consolidate or delete them first."""


class VersionConflictError(ClaystoreError, RuntimeError):
    """An ancestor changed after the version was taken; consolidation wrote nothing."""


class ObjectMovedError(VersionConflictError):
    """The object moved to another backend while this transaction wrote it (another process
    ran ``move``): nothing was written; run the transaction again (it is retryable, like any
    :class:`VersionConflictError`: ``retry_on_conflict`` does it)."""


class SessionStateError(ClaystoreError, RuntimeError):
    """A session was used outside its ``with`` block, or from another thread."""


class ObjectInUseError(ClaystoreError, RuntimeError):
    """The object belongs to a unit of work that another thread has open."""


# -- client and database ---------------------------------------------------------------------


class ClientNotStartedError(ClaystoreError, RuntimeError):
    """An operation needs a started client and none is active in this context."""


class ClientClosedError(ClientNotStartedError):
    """The client an object belongs to has been stopped."""


class SchemaMismatchError(ClaystoreError, RuntimeError):
    """The database's tables do not match what this program expects."""


class SchemaDriftError(SchemaMismatchError):
    """The database's tables differ from the model classes (raised at start, before anything is
    read or written).  ``differences`` lists them as
    :class:`claystore.orm.schema.Difference` values; the message names each one and the two
    ways out (``Client(..., schema="evolve")`` or a migration)."""

    def __init__(self, message: str, differences: tuple[Any, ...] = ()) -> None:
        super().__init__(message)
        self.differences = differences


class SchemaVersionError(SchemaMismatchError):
    """The database's system tables (``dc_*``) are at a schema version this release does not
    know (written by a newer claystore); nothing was written."""


class MigrationError(ClaystoreError, RuntimeError):
    """A migration cannot run as written or configured: a model module that does not import,
    a table or field to rename or drop that does not exist, a name already taken."""


class FederationError(ClaystoreError, RuntimeError):
    """SQL reporting across backends (``client.federate()``) cannot be set up as asked: the
    metadata database is not PostgreSQL, ``postgres_fdw`` cannot be created, a backend cannot
    be reached from the metadata database's server, or a backend's tables lag behind the
    model classes.  ``orig`` holds the driver's exception, if one caused it."""

    def __init__(self, message: str, orig: BaseException | None = None) -> None:
        super().__init__(message)
        self.orig = orig


class DatabaseError(ClaystoreError, OSError):
    """A database operation failed; ``orig`` holds the driver's exception.  An ``OSError``, like
    the connection and lock-timeout errors below it (and ``dbm.error``)."""

    def __init__(self, message: str, orig: BaseException | None = None) -> None:
        super().__init__(message)
        self.orig = orig


class DatabaseConnectionError(DatabaseError, ConnectionError):
    """The database cannot be reached (wrong host/port, server down, bad credentials)."""


class IntegrityError(DatabaseError):
    """The database refused a write that breaks a constraint."""


class LockTimeoutError(DatabaseError, TimeoutError):
    """A lock could not be taken in time (the object or database is held by another writer)."""


class ConnectionLostError(DatabaseConnectionError):
    """An open connection to the database was lost (the server restarted, or ended the
    connection); the operation's transaction did not complete.  Running the operation again
    uses a new connection."""


class ReadOnlyDatabaseError(DatabaseError, PermissionError):
    """The database cannot be written (a read-only SQLite file or directory, a read-only
    PostgreSQL server); nothing was written."""


# -- queries and the datastore API -----------------------------------------------------------


class QueryError(ClaystoreError, ValueError):
    """A query cannot be evaluated (unknown field, unsupported operator or value)."""


class DatastoreError(ClaystoreError, RuntimeError):
    """A datastore operation failed (a ``RuntimeError``, as datastore 0.3.6 raised for a file
    where a folder should be)."""


class SymlinkCycleError(DatastoreError, RecursionError):
    """Following datastore symlinks led back to a key already visited."""


class DatastoreTypeError(DatastoreError, TypeError):
    """A datastore was given a value of a type it refuses (bytes as a key, a non-str file value)."""


class InvalidKeyError(DatastoreError, ValueError):
    """A key's text cannot be used here (a '/' in an instance name, '..' as a file name)."""


class CursorError(DatastoreError, RuntimeError):
    """A query cursor was iterated twice, or changed after its iteration began."""


class DatastoreNotImplementedError(DatastoreError, NotImplementedError):
    """A datastore does not offer this operation (a subclass that did not override ``query``,
    a get/put/delete service that cannot enumerate keys), as ``NotImplementedError`` in
    datastore 0.3.6."""
