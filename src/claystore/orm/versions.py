"""Versions as rows: ``new_version`` / ``consolidate_version`` (to be built).

Owns :class:`VersionedObject`, the versioning part of the object API, mixed into
:class:`~claystore.orm.model.DataClayObject`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from claystore.orm.state import ObjectState


class VersionedObject:
    """Versioning methods of model objects."""

    def _dc_check_delete(self, conn: Connection, state: ObjectState) -> None:
        """Called by ``dc_delete`` inside its transaction, before anything is deleted: raise to
        refuse the delete (e.g. an original that still has live versions)."""
