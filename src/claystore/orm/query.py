"""Model queries compiled to SQL (to be built).

Owns :class:`QueryableObject`, the query part of the object API, mixed into
:class:`~claystore.orm.model.DataClayObject`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from claystore.orm.context import ObjectContext


class QueryableObject:
    """Query methods of model classes."""


def query_objects(context: ObjectContext, query: Any) -> Any:
    """Run a datastore ``Query`` whose key names a model class (``Key("/Employee")``) as SQL;
    backs ``Client.query``."""
    raise NotImplementedError("model queries are not built yet")
