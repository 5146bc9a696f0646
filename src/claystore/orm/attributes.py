"""The descriptors that stand for persisted fields on model classes.

Owns what ``obj.field`` and ``obj.field = value`` do.  On a transient object a field is a
checked local attribute.  On a stored object, a field its owning transaction has loaded is
served from memory and an assignment is recorded by that transaction (``state.owner``, a
:class:`~claystore.orm.state.Holder`); anything else goes to the object's jar
(``state.context``), which reads committed state or writes through: the object calls its jar,
the jar does the I/O.

Where values live in the instance ``__dict__``:

- scalar and JSON fields: under ``field.key`` (``_dc_f_<name>``), the SQLAlchemy column
  attribute, so plain SQLAlchemy sessions see the same values;
- references: the Python object under the field name, its id under ``field.key``;
- containers of references: the container under the field name.

An assigned container is kept, not copied (:func:`~claystore.orm.state.adopt`): after
``obj.tags = t``, ``obj.tags is t`` wherever the field's value lives in memory (a transient
object, an object its transaction owns), so ``t.append(x)`` changes the field, and the owning
transaction finds the change when it flushes (it compares with the container's baseline).

The descriptors are installed as SQLAlchemy synonyms (``synonym(key, descriptor=...)``), so
``Employee.salary > 1000`` is a SQL expression at class level.

Installed by :mod:`claystore.orm.mapping`; calls only the state's owner and jar.  No I/O here.
"""

from __future__ import annotations

from threading import get_ident
from typing import Any

from claystore.orm.fields import Field, FieldKind
from claystore.orm.state import STATE_ATTR, adopt, is_here


class FieldAttribute:
    """Descriptor for one persisted field."""

    __slots__ = ("field", "is_ref_like", "is_scalar", "key", "name", "storage_key")

    def __init__(self, field: Field) -> None:
        self.field = field
        self.name = field.name
        self.key = field.key
        self.is_ref_like = field.kind is FieldKind.REF or field.kind.is_link
        self.is_scalar = field.kind is FieldKind.SCALAR
        # where the Python-level value of a transient object is kept
        self.storage_key = field.name if self.is_ref_like else field.key

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        d = obj.__dict__
        state = d.get(STATE_ATTR)
        if state is None:
            return self.read_local(obj)
        holder = state.owner
        if (
            self.is_scalar
            and holder is not None
            and self.name in state.fresh
            and (holder.thread_id == get_ident() or is_here(holder.thread_id))
            and holder.is_active
        ):  # fast path: a scalar this thread's open transaction has loaded
            try:
                return d[self.key]
            except KeyError:  # a new object's field never assigned: the transaction's default
                pass
        return state.context.read_field(obj, state, self.field)

    def __set__(self, obj: Any, value: Any) -> None:
        checked = self.field.check(value)
        if checked is not value and not self.is_scalar:
            checked = adopt(value, checked)
        value = checked
        d = obj.__dict__
        state = d.get(STATE_ATTR)
        if state is None:
            if "_dc_id" in d:  # loaded by a plain SQLAlchemy session: let it track the change
                self.set_through_sqlalchemy(obj, value)
                return
            d[self.storage_key] = value
            if self.field.kind is FieldKind.REF:
                d.pop(self.field.key, None)
        else:
            holder = state.owner
            if (
                holder is not None
                and holder.is_active
                and (holder.thread_id == get_ident() or is_here(holder.thread_id))
            ):
                holder.write(obj, state, self.field, value)  # this thread's transaction holds it
                return
            state.context.write_field(obj, state, self.field, value)

    def __delete__(self, obj: Any) -> None:
        msg = f"{self.field.label} is a persisted field and cannot be deleted; assign a value"
        raise AttributeError(msg)

    def set_through_sqlalchemy(self, obj: Any, value: Any) -> None:
        """Assign on an object a plain SQLAlchemy session loaded (its instrumentation tracks
        the change and flushes it)."""
        field = self.field
        if field.kind.is_link:
            msg = f"{field.label} can only be changed on objects loaded through claystore"
            raise AttributeError(msg)
        if field.kind is FieldKind.REF:
            target_id = None if value is None else value.__dict__.get("_dc_id")
            if value is not None and target_id is None:
                msg = f"{field.label}: the referenced {type(value).__name__} is not stored yet"
                raise AttributeError(msg)
            obj.__dict__[field.name] = value
            setattr(obj, field.key, target_id)
            return
        setattr(obj, field.key, value)

    def read_local(self, obj: Any) -> Any:
        """The value of a transient object (or of one loaded by plain SQLAlchemy)."""
        d = obj.__dict__
        key = self.storage_key
        if key in d:
            return d[key]
        field = self.field
        if "_dc_id" in d and not self.is_ref_like:
            return getattr(obj, key)  # SQLAlchemy loads deferred/expired columns
        if field.kind is FieldKind.REF and field.key in d:
            msg = (
                f"{field.label} of an object loaded outside claystore holds only the id "
                f"{d[field.key]}; load it with claystore (get_by_id) to follow references"
            )
            raise AttributeError(msg)
        if field.has_default:
            value = field.default_value()
            d[key] = value
            return value
        msg = f"{type(obj).__name__!r} object has no value for field {field.name!r} yet"
        raise AttributeError(msg)
