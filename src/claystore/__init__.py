"""claystore: persistent Python objects in real SQL tables.

The public surface: dataClay's object model (:class:`DataClayObject`, :func:`activemethod`,
:class:`Client`), the field markers, the model tables' :data:`metadata`, and the
:mod:`claystore.errors` hierarchy.  The datastore API lives in :mod:`claystore.datastore`.
"""

from claystore import errors
from claystore.client import Client
from claystore.orm.active import activemethod
from claystore.orm.asyncsession import AsyncSession, a_retry_on_conflict
from claystore.orm.backends import BackendInfo
from claystore.orm.fields import Indexed, LocalOnly
from claystore.orm.mapping import metadata
from claystore.orm.model import DataClayObject, ObjectMetadata
from claystore.orm.session import retry_on_conflict
from claystore.orm.system import system_metadata

__version__ = "0.1.0"

__all__ = [
    "AsyncSession",
    "BackendInfo",
    "Client",
    "DataClayObject",
    "Indexed",
    "LocalOnly",
    "ObjectMetadata",
    "__version__",
    "a_retry_on_conflict",
    "activemethod",
    "errors",
    "metadata",
    "retry_on_conflict",
    "system_metadata",
]
