"""The object model: model classes, their mapping to tables, and how objects are stored.

Four layers, each importing only from itself and the ones before it (``tests/test_layers.py``
checks it; ``docs/internals.md`` is the map): model definition without I/O (``system``,
``types``, ``jsoncodec``, ``fields``, ``state``, ``attributes``, ``mapping``, ``graph``,
``identity``, ``ownership``); SQL on one connection or one per backend (``aliases``,
``backends``, ``schema``, ``database``, ``rows``, ``loading``, ``rowstream``, ``moveplan``,
``moving``, ``liveness``, ``twophase``, ``routing``, ``persistence``, ``unitofwork``,
``modelcompiler``, ``federation``); transactions (``transaction``, ``sessionwork``,
``context``); the object API (``model``, ``active``, ``versions``, ``querymerge``,
``modelquery``, ``session``, ``objectstore``, ``asynctwin``).
Used by :mod:`claystore.client` and re-exported by :mod:`claystore`.
"""
