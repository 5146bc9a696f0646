"""Housekeeping of a store: integrity checks, storage sizes, locks, class statistics.

Owns what an operator reaches for after a crash, a bad deploy or a hand-edited row
(docs/operations.md): :mod:`.integrity` (the check, levels 1-4, one module per level:
:mod:`.classes`, :mod:`.registry`, :mod:`.references`, :mod:`.data`, sharing :mod:`.run`),
:mod:`.storage` (sizes per backend), :mod:`.locks` (sessions holding locks: list and clear),
:mod:`.stats` (the stored classes and their counts), and the values they return
(:mod:`.report`).  Engine differences (size functions, lock views) are dialect methods.

Called by :class:`claystore.client.Client` and the ``claystore`` command; reads through the
ORM's router and never writes objects.
"""
