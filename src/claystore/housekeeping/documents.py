"""How the data check (level 4) judges the JSON document of a JSON field.

Owns :class:`DocumentReader`: JSON text -> None when it holds a document of the field's type,
else the problem kind and why.  The judge is the field's own codec
(:mod:`claystore.orm.jsoncodec`): the document must decode to a value that the field's check
accepts and that encodes back to a document of the same shape (:func:`same_shape`: a list
decoded as a ``list[str]`` from a string, or a float read from ``"1.5"``, do not).  Most
documents hold only what JSON holds natively (``list[float]``, ``dict[str, int]``...), and for
those a quick test (:func:`quick_test`) that needs no decoding tells a sound document apart
first; only the others, and any document the quick test doubts, go through the codec.

Called by :mod:`.data`.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable
from typing import Any, Union

from claystore.housekeeping.report import ProblemKind
from claystore.orm import types as sqltypes
from claystore.orm.fields import Field

__all__ = ["DocumentReader", "quick_test", "same_shape"]

_DECODER = json.JSONDecoder()

#: A test of a parsed document: True when it certainly is of the type (False: not known).
Test = Callable[[Any], bool]


class DocumentReader:
    """Judges the JSON text of one JSON field (see the module docstring)."""

    def __init__(self, field: Field) -> None:
        assert field.check_json is not None
        assert field.encode is not None
        assert field.decode is not None
        self._check: Callable[[Any], Any] = field.check_json
        self._encode: Callable[[Any], Any] = field.encode
        self._decode: Callable[[Any], Any] = field.decode
        self._annotation = field.annotation
        self._quick = quick_test(field.json_type)
        self._quick_plain = quick_test(field.json_type, plain=True)
        self._scan = _DECODER.raw_decode

    def __call__(self, text: Any) -> tuple[ProblemKind, str] | None:  # noqa: PLR0911 - per outcome
        """None when ``text`` holds a document of the field's type (or is NULL), else what is
        wrong."""
        if type(text) is not str:  # NULL, or in SQLite's typeless column a number, a blob
            if isinstance(text, bytes | memoryview):
                return ProblemKind.UNDECODABLE_VALUE, "bytes, not JSON text"
            if text is None:
                return None
            text = str(text)
        try:
            document, end = self._scan(text)  # json.loads without its whitespace handling
            if end != len(text):
                document = json.loads(text)
        except (ValueError, RecursionError):
            try:
                document = json.loads(text)  # a document with whitespace around it, or none
            except (ValueError, RecursionError) as exc:
                return ProblemKind.UNDECODABLE_VALUE, f"not JSON ({exc}): {text!r:.80}"
        # text without an escaped code point holds no NUL and no lone surrogate
        quick = self._quick if "\\u" in text else self._quick_plain
        if quick(document):
            return None
        try:
            encoded = self._encode(self._check(self._decode(document)))
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            return ProblemKind.WRONG_TYPE, f"{text!r:.80} is no {self._annotation} ({reason})"
        if encoded != document and not same_shape(encoded, document):
            return ProblemKind.WRONG_TYPE, f"{text!r:.80} is no {self._annotation}"
        return None


def same_shape(written: Any, stored: Any) -> bool:
    """Whether ``stored`` has the shape of ``written`` (the document claystore writes for the
    value ``stored`` decodes to): the same containers, lengths and keys, and scalars of the
    same JSON type -- the values may differ (a set written in another order, a duration
    written as seconds by an older release)."""
    if isinstance(written, dict):
        return (
            isinstance(stored, dict)
            and written.keys() == stored.keys()
            and all(same_shape(item, stored[key]) for key, item in written.items())
        )
    if isinstance(written, list):
        return (
            isinstance(stored, list)
            and len(written) == len(stored)
            and all(map(same_shape, written, stored))
        )
    return _json_type(written) == _json_type(stored)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


# -- the quick test ------------------------------------------------------------------------


def _never(document: Any) -> bool:
    return False


def _is_str(value: Any) -> bool:
    return type(value) is str and value.isascii() and "\x00" not in value


def _is_int(value: Any) -> bool:
    return type(value) is int and sqltypes.INT64_MIN <= value <= sqltypes.INT64_MAX


def _is_float(value: Any) -> bool:
    # finite (inf - inf is NaN), and not -0.0, which a float field refuses
    return (type(value) is float and value - value == 0 and value != 0) or _is_int(value)


def _is_bool(value: Any) -> bool:
    return type(value) is bool


def _is_plain_str(value: Any) -> bool:
    return type(value) is str


_LEAVES: dict[Any, Test] = {str: _is_str, int: _is_int, float: _is_float, bool: _is_bool}


def quick_test(annotation: Any, *, plain: bool = False) -> Test:  # noqa: PLR0911 - per kind
    """A test that a parsed document certainly is of ``annotation`` (a JSON field's container
    type) as JSON holds it natively: lists (and ``tuple[X, ...]``) and ``dict[str, ...]`` of
    str, int, float, bool and ``X | None``.  For any other annotation (sets, dates, enums...)
    it says "not known" and the codec judges.  ``plain``: for a document whose text has no
    escape of a code point (backslash u), so that its strings (keys too) hold no NUL and no
    lone surrogate."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return quick_test(args[0], plain=plain)
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            return _never
        inner = quick_test(rest[0], plain=plain)
        return lambda value: value is None or inner(value)
    leaf = _is_plain_str if plain and annotation is str else _LEAVES.get(annotation)
    if leaf is not None:
        return leaf
    if origin is list or (origin is tuple and len(args) == 2 and args[1] is Ellipsis):
        item = quick_test(args[0], plain=plain)
        if item is _never:
            return _never
        return lambda value: type(value) is list and all(map(item, value))
    if origin is dict and len(args) == 2 and args[0] is str:
        member = quick_test(args[1], plain=plain)
        if member is _never:
            return _never
        if plain:  # the keys of a JSON object are strings
            return lambda value: type(value) is dict and all(map(member, value.values()))
        return lambda value: (
            type(value) is dict and all(map(_is_str, value)) and all(map(member, value.values()))
        )
    return _never
