"""Models written with postponed annotations (every annotation is a string)."""

from __future__ import annotations

from claystore import DataClayObject


class Author(DataClayObject):
    name: str
    books: list[Book]
    best: Book | None = None
    mentor: Author | None = None


class Book(DataClayObject):
    title: str
    pages: int | None = None
