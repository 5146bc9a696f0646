"""Tests for claystore.datastore.filesystem: FileSystemDatastore."""

from __future__ import annotations

import os

import pytest

from claystore.datastore import FileSystemDatastore, Key, Query, serialize
from claystore.datastore.filesystem import ensure_directory_exists
from claystore.errors import DatastoreError, DatastoreTypeError, InvalidKeyError


def files_under(root):
    """Return every file path under root, relative and sorted."""
    found = []
    for folder, _dirs, names in os.walk(root):
        found.extend(os.path.relpath(os.path.join(folder, n), root) for n in names)
    return sorted(found)


def test_layout_follows_the_documentation(tmp_path):
    """':' and '/' both become folders and each object gets a .obj file."""
    ds = FileSystemDatastore(tmp_path)
    for key in [
        "/Comedy:MontyPython/Actor:JohnCleese",
        "/Comedy:MontyPython/Sketch:ArgumentClinic",
        "/Comedy:MontyPython/Sketch:CheeseShop",
        "/Comedy:MontyPython/Sketch:CheeseShop/Character:Mousebender",
    ]:
        ds.put(Key(key), key)
    assert files_under(tmp_path) == [
        "Comedy/MontyPython/Actor/JohnCleese.obj",
        "Comedy/MontyPython/Sketch/ArgumentClinic.obj",
        "Comedy/MontyPython/Sketch/CheeseShop.obj",
        "Comedy/MontyPython/Sketch/CheeseShop/Character/Mousebender.obj",
    ]


def test_paths(tmp_path):
    """path, object_path and their relative forms name the folder and the file of a key."""
    ds = FileSystemDatastore(tmp_path)
    key = Key("/Comedy:MontyPython/Actor:JohnCleese")
    assert ds.relative_path(key) == "Comedy/MontyPython/Actor/JohnCleese"
    assert ds.relative_object_path(key) == "Comedy/MontyPython/Actor/JohnCleese.obj"
    assert ds.path(key) == os.path.join(
        str(tmp_path), "Comedy", "MontyPython", "Actor", "JohnCleese"
    )
    assert ds.object_path(key) == ds.path(key) + ".obj"
    assert FileSystemDatastore.object_extension == ".obj"


def test_get_put_delete_contains(tmp_path):
    """Text values round-trip exactly; missing objects read as None."""
    ds = FileSystemDatastore(tmp_path)
    key = Key("/notes/one")
    assert ds.get(key) is None
    assert not ds.contains(key)
    text = "line 1\r\nline 2\nunicode: é ✓\n"
    ds.put(key, text)
    assert ds.contains(key)
    assert ds.get(key) == text
    ds.put(key, "short")
    assert ds.get(key) == "short"
    ds.delete(key)
    assert ds.get(key) is None
    ds.delete(key)


def test_object_and_folder_of_the_same_name_coexist(tmp_path):
    """/a (a.obj) and /a/b (a/b.obj) do not collide."""
    ds = FileSystemDatastore(tmp_path)
    ds.put(Key("/a"), "A")
    ds.put(Key("/a/b"), "B")
    assert (ds.get(Key("/a")), ds.get(Key("/a/b"))) == ("A", "B")


def test_case_insensitive_option(tmp_path):
    """With case_sensitive=False, keys differing in case name one lowercase file."""
    ds = FileSystemDatastore(tmp_path, case_sensitive=False)
    ds.put(Key("/Hello/World"), "x")
    assert ds.get(Key("/hello/WORLD")) == "x"
    assert files_under(tmp_path) == ["hello/world.obj"]
    sensitive = FileSystemDatastore(tmp_path / "s")
    sensitive.put(Key("/Hello"), "x")
    assert files_under(tmp_path / "s") == ["Hello.obj"]


def test_refuses_non_text_values(tmp_path):
    """Only str values are stored; others point to the serializer shim."""
    ds = FileSystemDatastore(tmp_path)
    with pytest.raises(DatastoreTypeError, match=r"serialize\.shim"):
        ds.put(Key("/a"), {"x": 1})
    with pytest.raises(TypeError):
        ds.put(Key("/a"), b"bytes")


@pytest.mark.parametrize("key", ["/..", "/a/../b", "/./x", "/a:", "/a::b", "/"])
def test_refuses_keys_that_are_not_file_names(tmp_path, key):
    """'.', '..', empty namespaces and the root key never become paths."""
    ds = FileSystemDatastore(tmp_path / "root")
    with pytest.raises(InvalidKeyError):
        ds.put(Key(key), "x")
    assert files_under(tmp_path) == []


def test_query_lists_objects_of_one_folder(tmp_path):
    """A query returns the objects directly in the folder of its key, in key order."""
    ds = FileSystemDatastore(tmp_path)
    ds.put(Key("/Comedy:MontyPython/Sketch:CheeseShop"), "cheese")
    ds.put(Key("/Comedy:MontyPython/Sketch:ArgumentClinic"), "argument")
    ds.put(Key("/Comedy:MontyPython/Sketch:CheeseShop/Character:Mousebender"), "mouse")
    ds.put(Key("/Comedy:MontyPython/Actor:JohnCleese"), "john")
    sketches = ds.query(Query(Key("/Comedy:MontyPython/Sketch")))
    assert list(sketches) == ["argument", "cheese"]
    characters = Query(Key("/Comedy:MontyPython/Sketch:CheeseShop/Character"))
    assert list(ds.query(characters)) == ["mouse"]
    assert list(ds.query(Query(Key("/Nothing")))) == []


def test_query_key_order_matches_key_strings(tmp_path):
    """Results without orders follow str(key) order, not file-name order."""
    ds = FileSystemDatastore(tmp_path)
    for name in ["a.x", "a-b", "a", "B"]:
        ds.put(Key(f"/c/{name}"), name)
    cursor = ds.query(Query(Key("/c")))
    keys = [str(key) for key, _value in cursor.items()]
    assert keys == sorted(keys)
    assert keys == ["/c/B", "/c/a", "/c/a-b", "/c/a.x"]


def test_query_with_serializer_filters_on_fields(tmp_path):
    """Under the json shim, queries filter and order on the stored objects' fields."""
    ds = serialize.shim(FileSystemDatastore(tmp_path))
    for name, age in [("ann", 31), ("bob", 17), ("cy", 45), ("dee", None)]:
        ds.put(Key(f"/person/{name}"), {"name": name, "age": age})
    query = Query(Key("/person")).filter("age", ">=", 18).order("-age")
    assert [p["name"] for p in ds.query(query)] == ["cy", "ann"]


def test_failed_write_keeps_the_old_object(tmp_path, monkeypatch):
    """A write that fails before the rename leaves the old file whole and no temp file."""
    ds = FileSystemDatastore(tmp_path)
    key = Key("/doc")
    ds.put(key, "old contents")

    def crash(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(DatastoreError, match="disk full"):
        ds.put(key, "new contents " * 1000)
    monkeypatch.undo()
    assert ds.get(key) == "old contents"
    assert files_under(tmp_path) == ["doc.obj"]


def test_interrupted_write_keeps_the_old_object(tmp_path, monkeypatch):
    """An interrupt before the rename re-raises and leaves the old file and no temp file."""
    ds = FileSystemDatastore(tmp_path)
    key = Key("/doc")
    ds.put(key, "old")

    def interrupt(*_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupt)
    with pytest.raises(KeyboardInterrupt):
        ds.put(key, "new")
    monkeypatch.undo()
    assert ds.get(key) == "old"
    assert files_under(tmp_path) == ["doc.obj"]


def test_leftover_temp_files_are_not_objects(tmp_path):
    """A temp file left by a crash is ignored by queries."""
    ds = FileSystemDatastore(tmp_path)
    ds.put(Key("/c/a"), "a")
    (tmp_path / "c" / ".claystore-tmp-123").write_text("half")
    (tmp_path / "c" / ".obj").write_text("no name")
    assert list(ds.query(Query(Key("/c")))) == ["a"]


def test_ensure_directory_exists(tmp_path):
    """ensure_directory_exists makes nested folders and refuses a file in the way."""
    target = tmp_path / "a" / "b"
    ensure_directory_exists(target)
    ensure_directory_exists(target)
    assert target.is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatastoreError, match="is a file"):
        ensure_directory_exists(tmp_path / "file")
    with pytest.raises(DatastoreError):
        FileSystemDatastore(tmp_path / "file")


def test_close_and_context_manager(tmp_path):
    """A filesystem datastore works as a context manager."""
    with FileSystemDatastore(tmp_path) as ds:
        ds.put(Key("/a"), "1")
    assert FileSystemDatastore(tmp_path).get(Key("/a")) == "1"
