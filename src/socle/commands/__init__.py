"""Typer sub-apps of the `socle` command line, one module per domain, mounted in `socle.cli`."""
