"""``claystore check | size | locks | stats | aliases``: looking after a store (placeholder)."""
