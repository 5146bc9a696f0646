"""Model queries compiled to SQL (to be built).

Owns :class:`QueryableObject`, the query part of the object API, mixed into
:class:`~claystore.orm.model.DataClayObject`.
"""

from __future__ import annotations


class QueryableObject:
    """Query methods of model classes."""
