"""Tests for claystore.datastore.serialize: serializers and SerializerShimDatastore."""

from __future__ import annotations

import json
import pickle

from claystore.datastore import DictDatastore, Key, Query, SerializerShimDatastore, serialize
from claystore.datastore.serialize import (
    NonSerializer,
    Serializer,
    Stack,
    deserialized_gen,
    map_serializer,
    prettyjson,
    serialized_gen,
)


def test_serializer_protocol_is_abstract():
    """The base Serializer only defines the protocol."""
    for method in (Serializer.dumps, Serializer.loads):
        try:
            method(1)
        except NotImplementedError:
            continue
        raise AssertionError("Serializer methods must be overridden")


def test_non_serializer_returns_values_unchanged():
    """NonSerializer passes values through both ways."""
    value = {"a": [1, 2]}
    assert NonSerializer.dumps(value) is value
    assert NonSerializer.loads(value) is value


def test_prettyjson_is_readable_and_round_trips():
    """prettyjson writes sorted, indented, ASCII-only JSON and reads it back."""
    text = prettyjson.dumps({"b": 1, "a": [1, 2], "é": "✓"})
    assert text.index('"a"') < text.index('"b"')
    assert "\n" in text
    assert "\\u2713" in text
    assert text.isascii()
    assert prettyjson.loads(text) == {"b": 1, "a": [1, 2], "é": "✓"}


def test_map_serializer_wraps_non_mappings():
    """Non-mapping values are wrapped under '@wrapped' and unwrapped on load."""
    assert map_serializer.sentinel == "@wrapped"
    assert map_serializer.dumps(5) == {"@wrapped": 5}
    assert map_serializer.dumps({"a": 1}) == {"a": 1}
    assert map_serializer.loads({"@wrapped": [1]}) == [1]
    assert map_serializer.loads({"a": 1}) == {"a": 1}


def test_stack_applies_serializers_in_sequence():
    """A Stack dumps first to last and loads last to first."""
    stack = Stack([map_serializer, json])
    text = stack.dumps("hi")
    assert json.loads(text) == {"@wrapped": "hi"}
    assert stack.loads(text) == "hi"
    assert Stack([]).dumps(3) == 3


def test_serialized_and_deserialized_generators():
    """The generators (de)serialize lazily, item by item."""
    dumped = serialized_gen(json, [1, "a", None])
    assert not isinstance(dumped, list)
    texts = list(dumped)
    assert texts == ["1", '"a"', "null"]
    assert list(deserialized_gen(json, texts)) == [1, "a", None]


def test_shim_uses_json_by_default():
    """shim() wraps a datastore with json serialization unless told otherwise."""
    child = DictDatastore()
    ds = serialize.shim(child)
    assert isinstance(ds, SerializerShimDatastore)
    ds.put(Key("/a"), {"x": [1, 2]})
    assert child.get(Key("/a")) == '{"x": [1, 2]}'
    assert ds.get(Key("/a")) == {"x": [1, 2]}
    assert ds.get(Key("/missing")) is None


def test_shim_with_another_serializer():
    """Any object with dumps/loads works, for example pickle."""
    child = DictDatastore()
    ds = serialize.shim(child, pickle)
    ds.put(Key("/a"), {1, 2})
    assert isinstance(child.get(Key("/a")), bytes)
    assert ds.get(Key("/a")) == {1, 2}


def test_serialized_and_deserialized_value_keep_none():
    """serializedValue and deserializedValue leave None alone."""
    ds = SerializerShimDatastore(DictDatastore())
    assert ds.serializedValue(None) is None
    assert ds.deserializedValue(None) is None
    assert ds.serializedValue([1]) == "[1]"
    assert ds.deserializedValue("[1]") == [1]


def test_shim_query_filters_deserialized_values():
    """Queries filter and order on deserialized fields, not on the stored text."""
    ds = serialize.shim(DictDatastore())
    for name, score in [("a", 3), ("b", 10), ("c", 7), ("d", None)]:
        ds.put(Key(f"/s/{name}"), {"name": name, "score": score})
    query = Query(Key("/s"), limit=2).filter("score", ">", 2).order("-score")
    assert [r["name"] for r in ds.query(query)] == ["b", "c"]
    assert [r["name"] for r in ds.query(Query(Key("/s")))] == ["a", "b", "c", "d"]


def test_shim_deserializes_lazily():
    """Query results are deserialized as they are iterated."""
    calls = []

    class Counting(Serializer):
        @classmethod
        def dumps(cls, value):
            return json.dumps(value)

        @classmethod
        def loads(cls, value):
            calls.append(value)
            return json.loads(value)

    ds = serialize.shim(DictDatastore(), Counting)
    for n in range(5):
        ds.put(Key(f"/n/{n}"), n)
    calls.clear()  # the round trip tried at construction
    cursor = ds.query(Query(Key("/n"), limit=2))
    assert calls == []
    assert list(cursor) == [0, 1]
    assert len(calls) <= 3
