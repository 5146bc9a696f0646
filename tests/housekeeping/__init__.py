"""Tests of claystore.housekeeping: integrity checks, sizes, locks, stats."""
