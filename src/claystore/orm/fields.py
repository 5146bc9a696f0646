"""Annotation -> field record.

Owns the reading of a model class's annotations into :class:`Field` records: which annotations
are persisted, what kind of storage each needs (a column, a JSON document, a reference column,
a link table), whether it is nullable, its default, and how an assigned value is checked.

String annotations (quoted, or ``from __future__ import annotations``) are evaluated at class
definition in the module's namespace; names that are not defined yet become
:class:`PendingRef` placeholders, resolved later (:meth:`Field.targets`) when the referenced
class exists.  Anything that cannot be stored raises :class:`UnsupportedTypeError` at class
definition, naming class, field and annotation.

Called by :mod:`claystore.orm.mapping`.  Does no I/O.
"""

from __future__ import annotations

import builtins
import enum
import inspect
import sys
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal, Union

import attrs

from claystore.dialects.names import fit_identifier
from claystore.errors import FieldTypeError, UnsupportedTypeError
from claystore.orm import types as sqltypes

__all__ = [
    "NO_DEFAULT",
    "Field",
    "FieldKind",
    "Indexed",
    "LocalOnly",
    "PendingRef",
    "read_fields",
]


class _NoDefault:
    def __repr__(self) -> str:
        return "NO_DEFAULT"


NO_DEFAULT: Any = _NoDefault()


class LocalOnly:
    """Marker for ``Annotated[T, LocalOnly]``: the field stays a local attribute, never stored."""


@attrs.frozen
class Indexed:
    """Marker for ``Annotated[T, Indexed()]``: the column gets an index (``unique=True``: a
    unique index)."""

    unique: bool = False


class FieldKind(enum.Enum):
    """How a field is stored."""

    SCALAR = "scalar"  # one typed column
    JSON = "json"  # container of scalars -> one JSON/JSONB column
    REF = "ref"  # reference -> <field>_id column
    REF_LIST = "ref_list"  # ordered link table (list)
    REF_TUPLE = "ref_tuple"  # ordered link table, read back as a tuple
    REF_SET = "ref_set"  # unordered link table
    REF_DICT = "ref_dict"  # link table keyed by str

    @property
    def is_link(self) -> bool:
        """True when the field is stored in a link table."""
        return self in _LINK_KINDS


_LINK_KINDS = {FieldKind.REF_LIST, FieldKind.REF_TUPLE, FieldKind.REF_SET, FieldKind.REF_DICT}


class PendingRef(typing.ForwardRef, _root=True):  # type: ignore[misc,call-arg]
    """A name in an annotation that was not defined when the class was: a model class defined
    later (forward reference).  Supports ``X | None`` so string annotations evaluate."""

    def __or__(self, other: Any) -> Any:
        return Union[self, other]  # noqa: UP007 - PendingRef is not a type; only Union takes it

    def __ror__(self, other: Any) -> Any:
        return Union[other, self]  # noqa: UP007


def _is_model_class(obj: Any) -> bool:
    return isinstance(obj, type) and getattr(obj, "_dc_is_model", False)


# A reference target as written: a model class, or the name of one not yet defined.
Target = type | PendingRef


@attrs.define(eq=False)
class Field:
    """One persisted field of a model class.

    ``check`` converts an assigned value or raises :class:`FieldTypeError` naming the class and
    field; ``encode``/``decode`` convert JSON fields to and from their document form.
    """

    name: str
    owner_name: str
    annotation: str
    kind: FieldKind
    nullable: bool
    default: Any
    indexed: Indexed | None
    python_type: Any = None  # scalar type (SCALAR), or None
    literal_values: tuple[Any, ...] | None = None
    raw_targets: tuple[Target, ...] = ()
    check_json: Callable[[Any], Any] | None = None
    encode: Callable[[Any], Any] | None = None
    decode: Callable[[Any], Any] | None = None
    #: the container annotation of a JSON field (``dict[str, int]``), else None
    json_type: Any = None
    resolver: Callable[[str], Any] | None = None
    _targets: tuple[type, ...] | None = None

    @property
    def key(self) -> str:
        """The SQLAlchemy attribute key that holds the column value in the instance dict."""
        return f"_dc_f_{self.name}"

    @property
    def column_name(self) -> str:
        """The column name (``<field>_id`` for references; link fields have none), shortened
        to fit every engine when the field's name is long (:func:`fit_identifier`)."""
        return fit_identifier(f"{self.name}_id" if self.kind is FieldKind.REF else self.name)

    @property
    def label(self) -> str:
        """``Class.field`` for messages."""
        return f"{self.owner_name}.{self.name}"

    @property
    def has_default(self) -> bool:
        """True when the class gives a default value."""
        return self.default is not NO_DEFAULT

    def targets(self) -> tuple[type, ...]:
        """The model classes a reference field may point to (forward references resolved)."""
        if self._targets is None:
            resolved: list[type] = []
            for target in self.raw_targets:
                if isinstance(target, typing.ForwardRef):
                    name = target.__forward_arg__
                    found = self.resolver(name) if self.resolver else None
                    if not _is_model_class(found):
                        msg = (
                            f"{self.label}: annotation {self.annotation!r} names {name!r}, "
                            "which is not a DataClayObject subclass defined in this program"
                        )
                        raise UnsupportedTypeError(msg)
                    resolved.append(typing.cast(type, found))
                else:
                    resolved.append(target)
            self._targets = tuple(resolved)
        return self._targets

    def default_value(self) -> Any:
        """A fresh copy of the default (mutable defaults are never shared between objects)."""
        value = self.default
        if isinstance(value, list | dict | set):
            return type(value)(value)
        return value

    def check(self, value: Any) -> Any:
        """Return ``value`` as stored by this field, or raise :class:`FieldTypeError`."""
        try:
            return self._check(value)
        except (FieldTypeError, UnsupportedTypeError):
            raise
        except TypeError as exc:
            msg = f"{self.label} is {self.annotation}: {exc}"
            raise FieldTypeError(msg) from None

    def _check(self, value: Any) -> Any:
        kind = self.kind
        if value is None:
            if self.nullable or kind is FieldKind.REF:
                return None
            hint = f"annotate it `{self.annotation} | None` to allow None"
            msg = f"None is not allowed ({hint})"
            raise TypeError(msg)
        if kind is FieldKind.SCALAR:
            if self.literal_values is not None:
                if value not in self.literal_values or isinstance(value, bool) != isinstance(
                    self.literal_values[0], bool
                ):
                    msg = f"{value!r} is not one of {self.literal_values!r}"
                    raise TypeError(msg)
                return value
            return sqltypes.check_column(self.python_type, value)
        if kind is FieldKind.JSON:
            assert self.check_json is not None
            return self.check_json(value)
        if kind is FieldKind.REF:
            self._check_target(value)
            return value
        return self._check_link(value)

    def _check_target(self, value: Any) -> None:
        targets = self.targets()
        if not isinstance(value, targets):
            names = " | ".join(t.__name__ for t in targets)
            msg = f"expected {names}, got {type(value).__name__}"
            raise TypeError(msg)

    def _check_link(self, value: Any) -> Any:
        kind = self.kind
        if kind is FieldKind.REF_DICT:
            if not isinstance(value, Mapping):
                msg = f"expected a dict, got {type(value).__name__}"
                raise TypeError(msg)
            for key, item in value.items():
                if not isinstance(key, str):
                    msg = f"dict keys must be str, got {type(key).__name__} {key!r}"
                    raise TypeError(msg)
                sqltypes.check_scalar(str, key)  # stored as text: no NUL, no lone surrogate
                self._check_target(item)
            return dict(value)
        if kind is FieldKind.REF_SET:
            if not isinstance(value, set | frozenset):
                msg = f"expected a set, got {type(value).__name__}"
                raise TypeError(msg)
        elif kind is FieldKind.REF_TUPLE:
            if not isinstance(value, tuple | list):
                msg = f"expected a tuple, got {type(value).__name__}"
                raise TypeError(msg)
        elif not isinstance(value, list):
            msg = f"expected a list, got {type(value).__name__}"
            raise TypeError(msg)
        for item in value:
            self._check_target(item)
        if kind is FieldKind.REF_TUPLE:
            return tuple(value)
        if kind is FieldKind.REF_SET:
            return set(value)
        return list(value)


# -- evaluating annotations ------------------------------------------------------------------


class _Namespace(dict[str, Any]):
    """Locals for evaluating a string annotation: module globals, then the class namespace,
    builtins and model classes known by name; an unknown name becomes a PendingRef."""

    def __init__(
        self, cls: type, module_globals: Mapping[str, Any], by_name: Callable[[str], Any]
    ) -> None:
        super().__init__()
        self._cls = cls
        self._globals = module_globals
        self._by_name = by_name

    def __missing__(self, key: str) -> Any:
        if key == self._cls.__name__:
            return self._cls
        if key in self._globals:
            return self._globals[key]
        if key in self._cls.__dict__:
            return self._cls.__dict__[key]
        if hasattr(builtins, key):
            return getattr(builtins, key)
        found = self._by_name(key)
        if found is not None:
            return found
        return PendingRef(key)


def _evaluate(text: str, namespace: _Namespace, error: Callable[[str], Exception]) -> Any:
    try:
        return eval(text, {"__builtins__": builtins}, namespace)
    except Exception as exc:
        raise error(f"cannot evaluate it ({type(exc).__name__}: {exc})") from None


# -- classifying -----------------------------------------------------------------------------

_NONE_TYPE = type(None)
_LIST_ORIGINS: dict[Any, FieldKind] = {
    list: FieldKind.REF_LIST,
    tuple: FieldKind.REF_TUPLE,
    set: FieldKind.REF_SET,
    frozenset: FieldKind.REF_SET,
}


@attrs.define
class _Classifier:
    """Turns one evaluated annotation into a :class:`Field`."""

    cls: type
    name: str
    text: str
    namespace: _Namespace

    def error(self, reason: str) -> UnsupportedTypeError:
        return UnsupportedTypeError(
            f"{self.cls.__name__}.{self.name}: annotation {self.text!r} cannot be stored: {reason}"
        )

    def resolve_str(self, value: Any) -> Any:
        """Evaluate nested string arguments (``list["Employee"]``)."""
        if isinstance(value, str):
            return _evaluate(value, self.namespace, self.error)
        if isinstance(value, typing.ForwardRef) and not isinstance(value, PendingRef):
            return _evaluate(value.__forward_arg__, self.namespace, self.error)
        return value

    def ref_targets(self, value: Any) -> tuple[Target, ...] | None:
        """The targets if ``value`` is a reference (or a union of references), else None."""
        value = self.resolve_str(value)
        if _is_model_class(value) or isinstance(value, PendingRef):
            return (value,)
        if typing.get_origin(value) in (Union, types.UnionType):
            members = [self.resolve_str(a) for a in typing.get_args(value)]
            refs = [m for m in members if m is not _NONE_TYPE]
            if refs and all(_is_model_class(m) or isinstance(m, PendingRef) for m in refs):
                return tuple(refs)
        return None

    def classify(self, value: Any) -> Field | None:  # noqa: PLR0911, PLR0912
        value = self.resolve_str(value)
        indexed: Indexed | None = None
        if typing.get_origin(value) is typing.Annotated:
            metadata = value.__metadata__
            if any(m is LocalOnly or isinstance(m, LocalOnly) for m in metadata):
                return None
            indexed = next((m for m in metadata if isinstance(m, Indexed)), None)
            value = self.resolve_str(value.__origin__)
        if value is ClassVar or typing.get_origin(value) is ClassVar:
            return None
        if value is typing.Any or value is object:
            raise self.error("Any/object has no column type; use a concrete type or list/dict")
        nullable = False
        origin = typing.get_origin(value)
        if origin in (Union, types.UnionType):
            targets = self.ref_targets(value)
            if targets is not None:
                return self.make(FieldKind.REF, True, indexed, raw_targets=targets)
            members = [self.resolve_str(a) for a in typing.get_args(value)]
            rest = [m for m in members if m is not _NONE_TYPE]
            if len(rest) != 1 or len(rest) == len(members):
                raise self.error("only `X | None` unions, or unions of model classes, are stored")
            nullable = True
            value = rest[0]
            origin = typing.get_origin(value)
        targets = self.ref_targets(value)
        if targets is not None:
            return self.make(FieldKind.REF, True, indexed, raw_targets=targets)
        if sqltypes.is_scalar_type(value):
            return self.make(FieldKind.SCALAR, nullable, indexed, python_type=value)
        if origin is Literal:
            return self.literal(value, nullable, indexed)
        container = origin if origin is not None else value
        if container in (list, tuple, set, frozenset, dict):
            args = [self.resolve_str(a) for a in typing.get_args(value)]
            link = self.link_kind(container, args)
            if link is not None:
                if nullable:
                    hint = f"use {container.__name__}[...] (an empty container stands for none)"
                    raise self.error(f"a container of references cannot be None; {hint}")
                kind, raw_targets = link
                return self.make(kind, False, indexed, raw_targets=raw_targets)
            check, encode, decode = self.json_codec(value)
            return self.make(
                FieldKind.JSON,
                nullable,
                indexed,
                check_json=check,
                encode=encode,
                decode=decode,
                json_type=value,
            )
        if isinstance(value, type):
            raise self.error(f"{value.__name__} is neither a supported scalar nor a DataClayObject")
        raise self.error("unsupported annotation")

    def link_kind(
        self, container: Any, args: list[Any]
    ) -> tuple[FieldKind, tuple[Target, ...]] | None:
        if container is dict:
            if len(args) == 2:
                targets = self.ref_targets(args[1])
                if targets is not None:
                    if args[0] is not str:
                        raise self.error("a dict of references needs str keys")
                    return FieldKind.REF_DICT, targets
            return None
        if container is tuple and len(args) == 2 and args[1] is Ellipsis:
            args = args[:1]
        if len(args) == 1:
            targets = self.ref_targets(args[0])
            if targets is not None:
                return _LIST_ORIGINS[container], targets
        if any(self.contains_ref(a) for a in args):
            raise self.error(
                "references may sit only directly inside list/tuple/set/dict[str, ...]"
            )
        return None

    def contains_ref(self, value: Any) -> bool:
        value = self.resolve_str(value)
        if typing.get_origin(value) is Literal:  # its strings are values, not class names
            return False
        if self.ref_targets(value) is not None:
            return True
        return any(self.contains_ref(a) for a in typing.get_args(value) if a is not Ellipsis)

    def literal(self, value: Any, nullable: bool, indexed: Indexed | None) -> Field:
        choices = typing.get_args(value)
        kinds = {bool if isinstance(c, bool) else type(c) for c in choices}
        if len(kinds) != 1 or next(iter(kinds)) not in (str, int, bool):
            raise self.error("Literal values must all be str, all int or all bool")
        return self.make(
            FieldKind.SCALAR,
            nullable,
            indexed,
            python_type=next(iter(kinds)),
            literal_values=tuple(choices),
        )

    def json_codec(
        self, value: Any
    ) -> tuple[Callable[[Any], Any], Callable[[Any], Any], Callable[[Any], Any]]:
        from claystore.orm.jsoncodec import build_codec  # noqa: PLC0415 - keeps the codec apart

        try:
            return build_codec(value, self.resolve_str)
        except TypeError as exc:
            raise self.error(str(exc)) from None

    def make(self, kind: FieldKind, nullable: bool, indexed: Indexed | None, **kw: Any) -> Field:
        default = self.cls.__dict__.get(self.name, NO_DEFAULT)
        field = Field(
            name=self.name,
            owner_name=self.cls.__name__,
            annotation=self.text,
            kind=kind,
            nullable=nullable,
            default=default,
            indexed=indexed,
            resolver=self.namespace.__getitem__,
            **kw,
        )
        if field.has_default:
            if kind.is_link and default not in ([], (), set(), {}):
                raise self.error("a container of references can only default to empty")
            if kind is FieldKind.REF and default is not None:
                raise self.error("a reference can only default to None")
            if kind is not FieldKind.REF:
                try:
                    field.check(default)
                except FieldTypeError as exc:
                    raise self.error(f"its default does not fit: {exc}") from None
        return field


def _annotation_text(annotation: Any) -> str:
    if isinstance(annotation, str):
        return annotation
    if isinstance(annotation, type):
        return annotation.__name__
    return repr(annotation).replace("typing.", "")


def read_fields(cls: type, by_name: Callable[[str], Any]) -> list[Field]:
    """Read the persisted fields declared by ``cls`` itself (not inherited ones), in order.

    ``by_name`` finds an already defined model class by its class name (for classes defined
    inside functions, whose names are not module globals).
    """
    raw: dict[str, Any] = inspect.get_annotations(cls)
    module = sys.modules.get(cls.__module__)
    namespace = _Namespace(cls, vars(module) if module else {}, by_name)
    fields: list[Field] = []
    for name, annotation in raw.items():
        classifier = _Classifier(cls, name, _annotation_text(annotation), namespace)
        value = (
            _evaluate(annotation, namespace, classifier.error)
            if isinstance(annotation, str)
            else annotation
        )
        field = classifier.classify(value)
        if field is not None:
            fields.append(field)
    return fields
