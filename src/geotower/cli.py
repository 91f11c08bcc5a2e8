"""Command-line interface (Typer): options -> RunConfig -> one pipeline call; errors become messages + exit codes.

Library code raises :class:`GeotowerError`; only this module turns it into a one-line message and exit code 1.
Commands not built yet answer "not implemented yet" with exit code 2.
"""

from __future__ import annotations

import typer

app = typer.Typer(help="geotower: geo-aware two-tower retrieval for places.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
