"""The ``claystore`` command's root group.

Owns :func:`main`, the click group every subcommand module attaches to (:mod:`.db`,
:mod:`.backends`, :mod:`.housekeeping`).  Called by :mod:`claystore.cli` (the package), which
imports those modules so that their commands exist.
"""

from __future__ import annotations

import click

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="claystore", prog_name="claystore")
def main() -> None:
    """claystore: persistent Python objects in real SQL tables."""
