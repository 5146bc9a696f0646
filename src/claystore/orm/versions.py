"""Versions as rows: ``new_version`` / ``consolidate_version`` (to be built).

Owns :class:`VersionedObject`, the versioning part of the object API, mixed into
:class:`~claystore.orm.model.DataClayObject`.
"""

from __future__ import annotations


class VersionedObject:
    """Versioning methods of model objects."""
