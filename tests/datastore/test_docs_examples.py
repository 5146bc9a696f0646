"""The examples of the original datastore 0.3 documentation, run with their documented output.

Each example is the documentation's doctest, ported to Python 3 (``print()``, and
``print(x)`` where the original showed a bare ``None``) and to claystore's import path.
Examples that need external services (pymongo, pylibmc) use in-process stand-ins.  Where
the output differs from the original, a comment in the example says why.  The user guide
``docs/datastore.md`` is run the same way.
"""

from __future__ import annotations

import doctest
from pathlib import Path
from typing import Any

import pytest

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "datastore.md"


class FakeMemcache:
    """Stand-in for a pylibmc client: get, set (returns True) and delete."""

    def __init__(self, servers: list[str]) -> None:
        self.servers = servers
        self.data: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def set(self, key: str, value: Any) -> bool:
        self.data[key] = value
        return True

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


HELLO = """
>>> ds.put(hello, 'world')
>>> ds.contains(hello)
True
>>> ds.get(hello)
'world'
>>> ds.delete(hello)
>>> print(ds.get(hello))
None
"""

EXAMPLES: dict[str, str] = {
    "hello_dict": """
>>> import claystore.datastore as datastore
>>>
>>> ds = datastore.DictDatastore()
>>>
>>> hello = datastore.Key('hello')
"""
    + HELLO,
    "hello_filesystem": """
>>> import claystore.datastore as datastore
>>>
>>> ds = datastore.filesystem.FileSystemDatastore(root)  # root: a temporary folder
>>>
>>> hello = datastore.Key('hello')
"""
    + HELLO,
    "hello_serialization": """
>>> import claystore.datastore as datastore
>>> import json
>>>
>>> ds_child = datastore.DictDatastore()
>>> ds = datastore.serialize.shim(ds_child, json)
>>>
>>> hello = datastore.Key('hello')
"""
    + HELLO,
    "hello_tiered": """
>>> import claystore.datastore as datastore
>>> from claystore.datastore.filesystem import FileSystemDatastore
>>>
>>> mongo = datastore.serialize.shim(datastore.DictDatastore())  # stand-in for MongoDB
>>> cache = datastore.DictDatastore()                            # stand-in for an LRU cache
>>> fs = FileSystemDatastore(root)
>>>
>>> ds = datastore.TieredDatastore([cache, mongo, fs])
>>>
>>> hello = datastore.Key('hello')
"""
    + HELLO,
    "hello_sharding": """
>>> import claystore.datastore as datastore
>>>
>>> shards = [datastore.DictDatastore() for i in range(0, 10)]
>>>
>>> ds = datastore.ShardedDatastore(shards)
>>>
>>> hello = datastore.Key('hello')
"""
    + HELLO,
    "dict_datastore": """
>>> import pprint
>>> from claystore.datastore import DictDatastore, Key, Query
>>> ds = DictDatastore()
>>> for i in range(0, 3):
...     key = Key('/%d' % i)
...     ds.put(key.child('A'), '%d a value' % i)
...     ds.put(key.child('B'), '%d b value' % i)
...
>>> pprint.pprint(ds._items)
{'/0': {Key('/0/A'): '0 a value', Key('/0/B'): '0 b value'},
 '/1': {Key('/1/A'): '1 a value', Key('/1/B'): '1 b value'},
 '/2': {Key('/2/A'): '2 a value', Key('/2/B'): '2 b value'}}
>>> ds.get(Key('/1/A'))
'1 a value'
>>> # The original printed Python 2 dict order (b, a); results now come in key order.
>>> for item in ds.query(Query(Key('/2'))):
...     print(item)
...
2 a value
2 b value
""",
    "interface_mapping_datastore": """
>>> from claystore.datastore import InterfaceMappingDatastore, Key
>>> mc = FakeMemcache(['127.0.0.1'])  # stand-in for pylibmc.Client
>>> mc_ds = InterfaceMappingDatastore(mc, put='set', key=str)
>>> mc_ds.put(Key('Hello'), 'World')
>>> mc_ds.get(Key('Hello'))
'World'
>>> mc.get('/Hello')
'World'
>>> mc.set('/Hello', 'Goodbye!')
True
>>> mc_ds.get(Key('/Hello'))
'Goodbye!'
""",
    "shim_override": """
>>> import json
>>> from claystore.datastore import DictDatastore, Key, ShimDatastore
>>> class JsonShim(ShimDatastore):
...     def get(self, key):
...         value = self.child_datastore.get(key)
...         return json.loads(value)
...     def put(self, key, value):
...         value = json.dumps(value)
...         self.child_datastore.put(key, value)
...
>>> child = DictDatastore()
>>> ds = JsonShim(child)
>>> ds.put(Key('/a'), {'x': 1})
>>> child.get(Key('/a'))
'{"x": 1}'
>>> ds.get(Key('/a'))
{'x': 1}
""",
    "key_transform_datastore": """
>>> import claystore.datastore as datastore
>>> def transform(key):
...     return key.reverse
...
>>> ds = datastore.DictDatastore()
>>> kt = datastore.KeyTransformDatastore(ds, keytransform=transform)
>>> ds.put(datastore.Key('/a/b/c'), 'abc')
>>> ds.get(datastore.Key('/a/b/c'))
'abc'
>>> print(kt.get(datastore.Key('/a/b/c')))
None
>>> kt.get(datastore.Key('/c/b/a'))
'abc'
>>> print(ds.get(datastore.Key('/c/b/a')))
None
""",
    "lowercase_key_datastore": """
>>> import claystore.datastore as datastore
>>> ds = datastore.DictDatastore()
>>> ds.put(datastore.Key('hello'), 'world')
>>> ds.put(datastore.Key('HELLO'), 'WORLD')
>>> ds.get(datastore.Key('hello'))
'world'
>>> ds.get(datastore.Key('HELLO'))
'WORLD'
>>> print(ds.get(datastore.Key('HeLLO')))
None
>>> lds = datastore.LowercaseKeyDatastore(ds)
>>> lds.get(datastore.Key('HeLLO'))
'world'
>>> lds.get(datastore.Key('HeLLO'))
'world'
>>> lds.get(datastore.Key('HeLLO'))
'world'
""",
    "namespace_datastore": """
>>> import claystore.datastore as datastore
>>>
>>> ds = datastore.DictDatastore()
>>> ds.put(datastore.Key('/a/b'), 'ab')
>>> ds.put(datastore.Key('/c/d'), 'cd')
>>> ds.put(datastore.Key('/a/b/c/d'), 'abcd')
>>>
>>> nd = datastore.NamespaceDatastore('/a/b', ds)
>>> print(nd.get(datastore.Key('/a/b')))
None
>>> nd.get(datastore.Key('/c/d'))
'abcd'
>>> print(nd.get(datastore.Key('/a/b/c/d')))
None
>>> nd.put(datastore.Key('/c/d'), 'cd')
>>> ds.get(datastore.Key('/a/b/c/d'))
'cd'
""",
    "nested_path_datastore": """
>>> import claystore.datastore as datastore
>>>
>>> ds = datastore.DictDatastore()
>>> np = datastore.NestedPathDatastore(ds, depth=3, length=2)
>>>
>>> np.put(datastore.Key('/abcdefghijkl'), 1)
>>> np.get(datastore.Key('/abcdefghijkl'))
1
>>> print(ds.get(datastore.Key('/abcdefghijkl')))
None
>>> ds.get(datastore.Key('/ab/cd/ef/abcdefghijkl'))
1
>>> np.put(datastore.Key('abc'), 2)
>>> np.get(datastore.Key('abc'))
2
>>> ds.get(datastore.Key('/ab/ca/bc/abc'))
2
""",
    "nested_path": """
>>> from claystore.datastore import NestedPathDatastore
>>> NestedPathDatastore.nested_path('abcdefghijkl', 3, 2)
'ab/cd/ef'
>>> NestedPathDatastore.nested_path('abcdefghijkl', 4, 2)
'ab/cd/ef/gh'
>>> # The original documentation shows 'abcd/efgh/ijk' (a typo: pieces are 4 long).
>>> NestedPathDatastore.nested_path('abcdefghijkl', 3, 4)
'abcd/efgh/ijkl'
>>> NestedPathDatastore.nested_path('abcdefghijkl', 1, 4)
'abcd'
>>> # The original documentation shows the garbled 'abcdefg hij/k'.
>>> NestedPathDatastore.nested_path('abcdefghijkl', 3, 10)
'abcdefghij/kl'
""",
    "symlink_datastore": """
>>> import claystore.datastore as datastore
>>>
>>> dds = datastore.DictDatastore()
>>> sds = datastore.SymlinkDatastore(dds)
>>>
>>> a = datastore.Key('/A')
>>> b = datastore.Key('/B')
>>>
>>> sds.put(a, 1)
>>> sds.get(a)
1
>>> sds.link(a, b)
>>> sds.get(b)
1
>>> sds.put(b, 2)
>>> sds.get(b)
2
>>> sds.get(a)
2
>>> sds.delete(a)
>>> print(sds.get(a))
None
>>> print(sds.get(b))
None
>>> sds.put(a, 3)
>>> sds.get(a)
3
>>> sds.get(b)
3
>>> sds.delete(b)
>>> print(sds.get(b))
None
>>> sds.get(a)
3
""",
    "directory_tree_datastore": """
>>> import claystore.datastore as datastore
>>>
>>> dds = datastore.DictDatastore()
>>> rds = datastore.DirectoryTreeDatastore(dds)  # 0.3.0's automatic DirectoryDatastore
>>>
>>> a = datastore.Key('/A')
>>> b = datastore.Key('/A/B')
>>> c = datastore.Key('/A/C')
>>>
>>> # The original read the directory of /A with rds.get(a); the code of 0.3.6 keeps it at
>>> # /A:directory (so /A can hold a value of its own), and directory(a) reads it.
>>> rds.directory(a)
[]
>>> rds.put(b, 1)
>>> rds.get(b)
1
>>> rds.directory(a)
['/A/B']
>>> rds.put(c, 1)
>>> rds.get(c)
1
>>> rds.directory(a)
['/A/B', '/A/C']
>>> rds.delete(b)
>>> rds.directory(a)
['/A/C']
>>> rds.delete(c)
>>> rds.directory(a)
[]
""",
    "directory_datastore": """
>>> from claystore.datastore import DictDatastore, DirectoryDatastore, Key, Query
>>> ds = DirectoryDatastore(DictDatastore())
>>>
>>> # initialize directory at /foo
>>> ds.directory(Key('/foo'))
>>>
>>> # adding directory entries
>>> ds.directoryAdd(Key('/foo'), Key('/foo/bar'))
>>> ds.directoryAdd(Key('/foo'), Key('/foo/baz'))
>>>
>>> # value is a generator returning all the keys in this dir
>>> for key in ds.directoryRead(Key('/foo')):
...     print(repr(key))
Key('/foo/bar')
Key('/foo/baz')
>>>
>>> # querying for a collection works
>>> ds.put(Key('/foo/bar'), 'bar')
>>> ds.put(Key('/foo/baz'), 'baz')
>>> for item in ds.query(Query(Key('/foo'))):
...     print(repr(item))
'bar'
'baz'
""",
    "key": """
>>> from claystore.datastore import Key
>>> Key('/Comedy/MontyPython').child('Actor:JohnCleese')
Key('/Comedy/MontyPython/Actor:JohnCleese')
>>> john = Key('/Comedy/MontyPython/Actor:JohnCleese')
>>> Key('/Comedy').isAncestorOf(john)
True
>>> Key('/Comedy/MontyPython').isDescendantOf(Key('/Comedy'))
True
>>> Key('/Comedy/MontyPython/Actor:JohnCleese').parent
Key('/Comedy/MontyPython')
>>> Key('/Comedy/MontyPython/Actor:JohnCleese').reverse
Key('/Actor:JohnCleese/MontyPython/Comedy')
>>> from claystore.datastore import Namespace
>>> Namespace('Song:PhilosopherSong').field, Namespace('Song:PhilosopherSong').value
('Song', 'PhilosopherSong')
""",
    "filters_orders_queries": """
>>> from claystore.datastore import Filter, Key, Order, Query
>>> Filter('name', '=', 'John Cleese')
Filter('name', '=', 'John Cleese')
>>> Filter('age', '>=', 18).valuePasses(21)
True
>>> Order('+name').isAscending(), Order('-age').isDescending(), Order('score').isAscending()
(True, True, True)
>>> query = Query(Key('/Person'))
>>> query.filter('age', '>', 18).filter('sex', '=', 'Female') is query
True
>>> query.order('+age').order('-home') is query
True
>>> [str(o) for o in query.orders]
['+age', '-home']
""",
    "object_getattr": """
>>> from types import SimpleNamespace
>>> from claystore.datastore import Key, Query
>>> def _object_getattr(version, field):
...     if field in ['key', 'committed', 'created', 'hash']:
...         return getattr(version, field)
...     else:
...         return version.attributes[field]['value']
...
>>> versions = [SimpleNamespace(key=k, attributes={'age': {'value': v}})
...             for k, v in [('a', 40), ('b', 12), ('c', 25)]]
>>> query = Query(Key('/v'), object_getattr=_object_getattr).filter('age', '>', 18)
>>> [v.key for v in query(versions)]
['a', 'c']
""",
    "filesystem_layout": """
>>> import os
>>> from claystore.datastore import Key, Query
>>> from claystore.datastore.filesystem import FileSystemDatastore
>>> ds = FileSystemDatastore(root)
>>> for key in ['/Comedy:MontyPython/Actor:JohnCleese',
...             '/Comedy:MontyPython/Sketch:ArgumentClinic',
...             '/Comedy:MontyPython/Sketch:CheeseShop',
...             '/Comedy:MontyPython/Sketch:CheeseShop/Character:Mousebender']:
...     ds.put(Key(key), key)
>>> for folder, _, names in sorted(os.walk(root)):
...     for name in sorted(names):
...         print(os.path.relpath(os.path.join(folder, name), root))
Comedy/MontyPython/Actor/JohnCleese.obj
Comedy/MontyPython/Sketch/ArgumentClinic.obj
Comedy/MontyPython/Sketch/CheeseShop.obj
Comedy/MontyPython/Sketch/CheeseShop/Character/Mousebender.obj
>>> list(ds.query(Query(Key('/Comedy:MontyPython/Sketch:CheeseShop/Character'))))
['/Comedy:MontyPython/Sketch:CheeseShop/Character:Mousebender']
""",
    "serialize_shim": """
>>> import json
>>> import claystore.datastore as datastore
>>> my_store = datastore.DictDatastore()
>>> my_store = datastore.serialize.shim(my_store, json)
>>> my_store.put(datastore.Key('/a'), [1, 2])
>>> my_store.child_datastore.get(datastore.Key('/a'))
'[1, 2]'
>>> my_store.get(datastore.Key('/a'))
[1, 2]
""",
}


def run_examples(text: str, name: str, globs: dict[str, Any], filename: str | None = None) -> None:
    """Run the doctest examples in ``text`` and fail with doctest's report on a mismatch."""
    parser = doctest.DocTestParser()
    test = parser.get_doctest(text, globs, name, filename, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    result = runner.run(test, out=report.append, clear_globs=False)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0, "".join(report)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_documented_example(name, tmp_path):
    """The original documentation's example runs and prints the documented output."""
    globs = {"FakeMemcache": FakeMemcache, "root": str(tmp_path)}
    run_examples(EXAMPLES[name], name, globs)


def test_user_guide_examples(tmp_path, monkeypatch):
    """Every example in docs/datastore.md runs and prints what the guide shows."""
    monkeypatch.chdir(tmp_path)
    run_examples(GUIDE.read_text(encoding="utf-8"), "docs/datastore.md", {}, str(GUIDE))
