"""What differs per database engine, one module per engine behind :func:`dialect_for`."""

from claystore.dialects.base import EngineSupport, dialect_for, translate_error

__all__ = ["EngineSupport", "dialect_for", "translate_error"]
