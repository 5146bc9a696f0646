"""The rules of claystore.errors, checked on every class it defines."""

from __future__ import annotations

import builtins
import inspect

import pytest

from claystore import errors

ERROR_CLASSES = sorted(
    (
        cls
        for cls in vars(errors).values()
        if inspect.isclass(cls)
        and issubclass(cls, BaseException)
        and cls.__module__ == errors.__name__
    ),
    key=lambda cls: cls.__name__,
)
BUILTIN_ERRORS = {
    cls
    for cls in vars(builtins).values()
    if inspect.isclass(cls) and issubclass(cls, BaseException)
}


def test_every_error_is_exported():
    """Every exception class of claystore.errors is in its __all__."""
    assert sorted(cls.__name__ for cls in ERROR_CLASSES) == sorted(errors.__all__)


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_every_error_derives_from_the_root(cls):
    """Every error derives from ClaystoreError."""
    assert issubclass(cls, errors.ClaystoreError)


@pytest.mark.parametrize(
    "cls",
    [cls for cls in ERROR_CLASSES if cls is not errors.ClaystoreError],
    ids=lambda cls: cls.__name__,
)
def test_every_error_mixes_in_a_builtin_a_caller_would_catch(cls):
    """Every error below the root mixes in a built-in exception other than Exception
    (KeyError, TypeError, RuntimeError ...), so ``except <builtin>`` in ported code catches it."""
    mixed_in = [
        base
        for base in cls.__mro__
        if base in BUILTIN_ERRORS and base not in (Exception, BaseException)
    ]
    assert mixed_in, f"{cls.__name__} mixes in no built-in exception besides Exception"
