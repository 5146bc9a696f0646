"""Tests for claystore.datastore.key: Key and Namespace."""

from __future__ import annotations

import pickle

import pytest

from claystore.datastore import Key, Namespace
from claystore.errors import DatastoreTypeError, InvalidKeyError


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("", "/"),
        ("/", "/"),
        ("//", "/"),
        ("a", "/a"),
        ("/a/", "/a"),
        ("a//b///c/", "/a/b/c"),
        ("/./..", "/./.."),
        ("/a b/ c", "/a b/ c"),
        ("/Comedy:MontyPython", "/Comedy:MontyPython"),
    ],
)
def test_key_normalises_slashes(raw, normal):
    """A key gets one leading slash, loses duplicate and trailing slashes, keeps . and ..."""
    assert str(Key(raw)) == normal


def test_key_from_list_and_from_key():
    """A key can be built from a list of namespaces or from another key."""
    assert Key(["Comedy", "MontyPython"]) == Key("/Comedy/MontyPython")
    assert Key(Key("/a/b")) == Key("/a/b")
    assert Key([]) == Key("/")


@pytest.mark.parametrize("raw", [b"/a", bytearray(b"/a"), [b"a"]])
def test_key_refuses_bytes(raw):
    """Bytes are refused with a TypeError, never stringified as "b'x'"."""
    with pytest.raises(DatastoreTypeError, match="decode"):
        Key(raw)
    with pytest.raises(TypeError):
        Key("/a").child(raw if isinstance(raw, bytes) else b"x")


def test_key_refuses_other_types():
    """A key is not built from arbitrary objects like floats or None."""
    with pytest.raises(DatastoreTypeError):
        Key(1.5)  # type: ignore[arg-type]
    with pytest.raises(DatastoreTypeError):
        Key(None)  # type: ignore[arg-type]


def test_str_and_repr():
    """str is the normalised path and repr is Key('...')."""
    key = Key("a/b")
    assert str(key) == "/a/b"
    assert repr(key) == "Key('/a/b')"


def test_equality_and_hash():
    """Keys equal by normalised string, hash alike, and never equal a plain str."""
    assert Key("/a/b") == Key("a//b/")
    assert hash(Key("/a/b")) == hash(Key("a//b/"))
    assert Key("/a") != Key("/b")
    assert Key("/a") != "/a"
    assert len({Key("/a"), Key("a"), Key("/a/")}) == 1


def test_ordering_is_by_string():
    """Keys sort by their string form (the order used to break query ties)."""
    keys = [Key("/b"), Key("/a/b"), Key("/a-b"), Key("/a")]
    assert sorted(keys) == [Key("/a"), Key("/a-b"), Key("/a/b"), Key("/b")]
    assert Key("/a") < Key("/b") <= Key("/b")
    assert Key("/c") > Key("/b") >= Key("/b")
    with pytest.raises(TypeError):
        _ = Key("/a") < "/b"  # type: ignore[operator]


def test_list_and_namespaces():
    """list gives the namespace strings, namespaces gives Namespace objects."""
    key = Key("/Comedy/MontyPython/Actor:JohnCleese")
    assert key.list == ["Comedy", "MontyPython", "Actor:JohnCleese"]
    assert key.namespaces == ["Comedy", "MontyPython", "Actor:JohnCleese"]
    assert all(isinstance(ns, Namespace) for ns in key.namespaces)
    assert Key("/").list == []


def test_name_type_path():
    """name and type come from the last namespace; path is parent plus type."""
    key = Key("/Comedy/MontyPython/Actor:JohnCleese")
    assert key.name == "JohnCleese"
    assert key.type == "Actor"
    assert key.path == Key("/Comedy/MontyPython/Actor")
    plain = Key("/0/A")
    assert (plain.name, plain.type, plain.path) == ("A", "", Key("/0"))
    assert (Key("/").name, Key("/").type, Key("/").path) == ("", "", Key("/"))


def test_parent_and_root():
    """parent drops the last namespace and the root key is its own parent."""
    assert Key("/Comedy/MontyPython/Actor:JohnCleese").parent == Key("/Comedy/MontyPython")
    assert Key("/a").parent == Key("/")
    assert Key("/").parent == Key("/")


def test_child_and_instance():
    """child appends a namespace and instance appends ':name' to the last one."""
    assert Key("/Comedy/MontyPython").child("Actor:JohnCleese") == Key(
        "/Comedy/MontyPython/Actor:JohnCleese"
    )
    assert Key("/a").child(Key("/b/c")) == Key("/a/b/c")
    assert Key("/a").child(3) == Key("/a/3")
    assert Key("/Comedy/Actor").instance("JohnCleese") == Key("/Comedy/Actor:JohnCleese")


def test_instance_refuses_slash():
    """instance refuses a name with '/', which child would treat as nesting."""
    with pytest.raises(InvalidKeyError, match="child"):
        Key("/a").instance("b/c")
    with pytest.raises(ValueError, match="cannot contain '/'"):
        Key("/a").instance("/b")


def test_reverse():
    """reverse reverses the namespace order."""
    key = Key("/Comedy/MontyPython/Actor:JohnCleese")
    assert key.reverse == Key("/Actor:JohnCleese/MontyPython/Comedy")
    assert Key("/").reverse == Key("/")


def test_ancestry():
    """isAncestorOf and isDescendantOf are proper, namespace-wise relations."""
    john = Key("/Comedy/MontyPython/Actor:JohnCleese")
    assert Key("/Comedy").isAncestorOf(john)
    assert Key("/").isAncestorOf(john)
    assert not john.isAncestorOf(john)
    assert not Key("/Com").isAncestorOf(john)
    assert Key("/Comedy/MontyPython").isDescendantOf(Key("/Comedy"))
    assert not Key("/Comedy").isDescendantOf(Key("/Comedy"))
    assert not Key("/").isDescendantOf(Key("/"))
    with pytest.raises(TypeError):
        Key("/a").isAncestorOf("/a/b")  # type: ignore[arg-type]


def test_is_top_level():
    """Only keys with exactly one namespace are top level."""
    assert Key("/Comedy").isTopLevel()
    assert not Key("/Comedy/MontyPython").isTopLevel()
    assert not Key("/").isTopLevel()


def test_random_key():
    """randomKey returns distinct top-level keys of 32 hex digits."""
    first, second = Key.randomKey(), Key.randomKey()
    assert first != second
    assert first.isTopLevel()
    assert len(first.name) == 32
    int(first.name, 16)


def test_remove_duplicate_slashes():
    """removeDuplicateSlashes normalises a path string."""
    assert Key.removeDuplicateSlashes("a//b/") == "/a/b"
    assert Key.removeDuplicateSlashes("") == "/"


def test_namespace_field_and_value():
    """A namespace's field is before the first ':' and its value after the last."""
    assert Namespace("Bruces").field == ""
    assert Namespace("Bruces").value == "Bruces"
    song = Namespace("Song:PhilosopherSong")
    assert (song.field, song.value) == ("Song", "PhilosopherSong")
    assert Namespace.namespace_delimiter == ":"
    assert isinstance(song, str)


def test_key_is_immutable_and_picklable():
    """Keys refuse attribute assignment and survive pickling."""
    key = Key("/a/b")
    with pytest.raises(AttributeError):
        key._string = "/c"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(key)) == key
