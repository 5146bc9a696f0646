"""The object model: model classes, their mapping to tables, and how objects are stored."""
