"""``python -m claystore.cli``: the ``claystore`` command."""

from claystore.cli import main

main(prog_name="claystore")
