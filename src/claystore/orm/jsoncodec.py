"""Codecs for JSON fields: containers of scalars stored in one JSON (JSONB) column.

Owns turning a container annotation (``list[float]``, ``dict[str, set[date]]``,
``tuple[int, str]``, bare ``list``/``dict``) into three functions: *check* (validate and
normalise an assigned value, raising ``TypeError`` with the reason), *encode* (to a JSON
document) and *decode* (back to the annotated Python types: tuples stay tuples, sets stay sets,
dates stay dates).

Called by :mod:`claystore.orm.fields` when a field is read.  Does no I/O.
"""

from __future__ import annotations

import enum
import math
import types
import typing
from collections.abc import Callable
from typing import Any, Literal, Union

from claystore.orm import types as sqltypes

Codec = tuple[Callable[[Any], Any], Callable[[Any], Any], Callable[[Any], Any]]

_NONE_TYPE = type(None)
_JSON_NATIVE = (str, int, float, bool)


def _identity(value: Any) -> Any:
    return value


#: The deepest nesting of lists and dicts an untyped JSON document may have (deeper ones
#: exhaust Python's recursion limit in the JSON encoder or decoder, depending on the stack).
MAX_JSON_DEPTH = 200
#: The largest int an untyped JSON document holds: Python writes at most 4300 digits of an
#: int as text (``sys.get_int_max_str_digits``).
MAX_JSON_INT = 10**4000


def _check_json_scalar(value: Any) -> Any:
    """Refuse what a JSON document (JSONB) cannot hold or gives back changed: NaN, infinities,
    ``-0.0``, NUL characters, lone surrogates, ints of more than 4000 digits."""
    if isinstance(value, float):
        if not math.isfinite(value):
            msg = f"JSON cannot hold {value!r}; use None or a number"
            raise TypeError(msg)
        sqltypes.refuse_negative_zero(value)
    elif isinstance(value, str):
        sqltypes.check_scalar(str, value)
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= MAX_JSON_INT:
        msg = f"an int of {value.bit_length()} bits is too large for JSON text; store str(value)"
        raise TypeError(msg)
    return value


def _check_native(value: Any, depth: int = 1) -> Any:
    """Accept what JSON holds natively (for bare ``list``/``dict`` and ``Any`` elements)."""
    if value is None or isinstance(value, _JSON_NATIVE):
        return _check_json_scalar(value)
    if isinstance(value, list | tuple | dict) and depth > MAX_JSON_DEPTH:
        msg = (
            f"the document nests lists and dicts more than {MAX_JSON_DEPTH} levels deep; "
            "store deeper structures as model objects, or as JSON text in a str field"
        )
        raise TypeError(msg)
    if isinstance(value, list | tuple):
        return [_check_native(v, depth + 1) for v in value]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                msg = f"JSON object keys must be str, got {type(key).__name__} {key!r}"
                raise TypeError(msg)
            out[_check_json_scalar(key)] = _check_native(item, depth + 1)
        return out
    kinds = "str, int, float, bool, None, list, dict"
    msg = f"{type(value).__name__} {value!r:.60} is not JSON ({kinds})"
    raise TypeError(msg)


def _check_native_item(value: Any) -> Any:
    """:func:`_check_native` for an item of a container (one level down already)."""
    return _check_native(value, 2)


_NATIVE_ITEM: Codec = (_check_native_item, _identity, _identity)


def _sorted_for_set(items: list[Any]) -> list[Any]:
    try:
        return sorted(items)
    except TypeError:
        return sorted(items, key=repr)


def build_codec(annotation: Any, resolve: Callable[[Any], Any]) -> Codec:  # noqa: PLR0911
    """Return (check, encode, decode) for a JSON-stored annotation, or raise ``TypeError``."""
    annotation = resolve(annotation)
    if annotation is typing.Any or annotation is object:  # an item of a container
        return _NATIVE_ITEM
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return build_codec(annotation.__origin__, resolve)
    if origin in (Union, types.UnionType):
        members = [resolve(a) for a in typing.get_args(annotation)]
        rest = [m for m in members if m is not _NONE_TYPE]
        if len(rest) != 1 or len(rest) == len(members):
            msg = f"only `X | None` unions can sit inside a container, not {annotation!r}"
            raise TypeError(msg)
        return _optional(build_codec(rest[0], resolve))
    if sqltypes.is_scalar_type(annotation):
        return _scalar(annotation)
    if origin is Literal:
        choices = typing.get_args(annotation)

        def check_literal(value: Any) -> Any:
            if value not in choices:
                msg = f"{value!r} is not one of {choices!r}"
                raise TypeError(msg)
            return value

        return check_literal, _identity, _identity
    container = origin if origin is not None else annotation
    args = [resolve(a) for a in typing.get_args(annotation)]
    if container in (list, set, frozenset):
        item = build_codec(args[0], resolve) if args else _NATIVE_ITEM
        return _sequence(container, item)
    if container is tuple:
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            item = build_codec(args[0], resolve) if args else _NATIVE_ITEM
            return _sequence(tuple, item)
        return _fixed_tuple([build_codec(a, resolve) for a in args])
    if container is dict:
        key_type = args[0] if args else str
        if not (sqltypes.is_scalar_type(key_type) and key_type not in (bytes, float)):
            msg = f"dict keys must be a scalar such as str, int, UUID or an Enum, not {key_type!r}"
            raise TypeError(msg)
        value = build_codec(args[1], resolve) if args else _NATIVE_ITEM
        return _mapping(key_type, value)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):  # pragma: no cover
        return _scalar(annotation)
    name = getattr(annotation, "__name__", repr(annotation))
    msg = f"{name} cannot be stored inside a container"
    raise TypeError(msg)


def _scalar(python_type: Any) -> Codec:
    check = _scalar_check(python_type)
    if python_type in (str, int, bool):
        return check, _identity, _identity

    def encode(value: Any) -> Any:
        return sqltypes.encode_json_scalar(python_type, value)

    def decode(value: Any) -> Any:
        return sqltypes.decode_json_scalar(python_type, value)

    return check, encode, decode


def _scalar_check(python_type: Any) -> Callable[[Any], Any]:
    """The check of one scalar inside a container: a fast path for the values of JSON's own
    types that are stored as they are (most of them), else :func:`check_scalar`'s rules."""

    def check(value: Any) -> Any:
        if value is None:
            msg = "None is not allowed here (annotate the element `X | None`)"
            raise TypeError(msg)
        checked = sqltypes.check_scalar(python_type, value)
        return _check_json_scalar(checked) if python_type is float else checked  # infinities

    if python_type is str:

        def check_str(value: Any) -> Any:
            if type(value) is str and value.isascii() and "\x00" not in value:
                return value
            return check(value)

        return check_str
    if python_type is int:

        def check_int(value: Any) -> Any:
            if type(value) is int and sqltypes.INT64_MIN <= value <= sqltypes.INT64_MAX:
                return value
            return check(value)

        return check_int
    if python_type is float:

        def check_float(value: Any) -> Any:
            if type(value) is float and value != 0 and value - value == 0:  # finite, not ±0
                return value
            return check(value)

        return check_float
    return check


def _optional(inner: Codec) -> Codec:
    check_inner, encode_inner, decode_inner = inner

    def check(value: Any) -> Any:
        return None if value is None else check_inner(value)

    def encode(value: Any) -> Any:
        return None if value is None else encode_inner(value)

    def decode(value: Any) -> Any:
        return None if value is None else decode_inner(value)

    return check, encode, decode


def _sequence(container: Any, item: Codec) -> Codec:
    check_item, encode_item, decode_item = item
    accepted: tuple[type, ...] = {  # what an assignment may give for each container
        list: (list,),
        tuple: (tuple, list),
        set: (set, frozenset),
        frozenset: (set, frozenset),
    }[container]
    is_set = container in (set, frozenset)

    def check(value: Any) -> Any:
        if not isinstance(value, accepted):
            msg = f"expected a {container.__name__}, got {type(value).__name__}"
            raise TypeError(msg)
        checked = [check_item(v) for v in typing.cast("list[Any]", value)]
        return checked if container is list else container(checked)

    def encode(value: Any) -> Any:
        encoded = [encode_item(v) for v in value]
        return _sorted_for_set(encoded) if is_set else encoded

    def decode(value: Any) -> Any:
        return container(decode_item(v) for v in value)

    return check, encode, decode


def _fixed_tuple(items: list[Codec]) -> Codec:
    def check(value: Any) -> Any:
        if not isinstance(value, tuple | list) or len(value) != len(items):
            msg = f"expected a tuple of {len(items)} items, got {value!r:.60}"
            raise TypeError(msg)
        return tuple(codec[0](v) for codec, v in zip(items, value, strict=True))

    def encode(value: Any) -> Any:
        return [codec[1](v) for codec, v in zip(items, value, strict=True)]

    def decode(value: Any) -> Any:
        return tuple(codec[2](v) for codec, v in zip(items, value, strict=True))

    return check, encode, decode


def _mapping(key_type: Any, value: Codec) -> Codec:
    check_value, encode_value, decode_value = value
    check_key = _scalar_check(key_type)

    def check(mapping: Any) -> Any:
        if not isinstance(mapping, dict):
            msg = f"expected a dict, got {type(mapping).__name__}"
            raise TypeError(msg)
        out = {}
        for key, item in mapping.items():
            if key is None:
                msg = "dict keys cannot be None"
                raise TypeError(msg)
            out[check_key(key)] = check_value(item)
        return out

    def encode(mapping: Any) -> Any:
        return {sqltypes.encode_json_key(key_type, k): encode_value(v) for k, v in mapping.items()}

    def decode(document: Any) -> Any:
        return {sqltypes.decode_json_key(key_type, k): decode_value(v) for k, v in document.items()}

    return check, encode, decode
