"""Command-line interface (Typer): the outermost layer; turns library errors into messages and exit codes.

Each stage registers its commands from its own module in ``geotower._cli`` (thin shells: options -> RunConfig ->
one pipeline call). This module wires them into one app, wraps every command so a :class:`GeotowerError` becomes a
one-line ``error: ...`` and exit code 1, and answers "not implemented yet" (exit code 2) for a command whose stage
is not installed.
"""

from __future__ import annotations

import functools
import importlib
import sys
import warnings
from collections.abc import Callable
from typing import Any

import typer

from geotower import __version__
from geotower.errors import GeotowerError, GeotowerWarning

COMMANDS = ("prepare", "features", "simulate", "train", "evaluate", "index", "recommend", "serve", "demo")
_MODULES = ("ingest", "checkins", "features", "train", "evaluate", "serve", "demo")

app = typer.Typer(help="geotower: geo-aware two-tower retrieval for places, from Yelp + OpenStreetMap to a service.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=True)


def _show_warning(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None,
                  line: str | None = None) -> None:
    """GeotowerWarnings are user-facing: print them as one line, without the source location."""
    if issubclass(category, GeotowerWarning):
        print(f"warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _print_version(value: bool) -> None:
    if value:
        print(__version__)
        raise typer.Exit(0)


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                 help="Print the version and exit."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log details (DEBUG) to stderr."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors on stderr (no warnings, no info)."),
) -> None:
    """geotower: geo-aware two-tower retrieval for places."""
    import logging

    level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.INFO
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s", force=True)
    if quiet:
        warnings.simplefilter("ignore", GeotowerWarning)
        return
    warnings.showwarning = _show_warning
    warnings.simplefilter("always", GeotowerWarning)


def _guard(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a GeotowerError raised by a command into ``error: <message>`` on stderr and exit code 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except GeotowerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(1) from None

    return wrapper


def _wrap_all(typer_app: typer.Typer) -> None:
    for command in typer_app.registered_commands:
        if command.callback is not None:
            command.callback = _guard(command.callback)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _wrap_all(group.typer_instance)


def _not_implemented(name: str) -> None:
    @app.command(name, help=f"({name}: not implemented yet)", context_settings={"ignore_unknown_options": True,
                                                                               "allow_extra_args": True})
    def stub(ctx: typer.Context) -> None:
        print(f"error: 'geotower {name}' is not implemented yet", file=sys.stderr)
        raise typer.Exit(2)


def _registered_names() -> set[str]:
    names = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    return names | {g.name or "" for g in app.registered_groups}


def _build() -> None:
    for module in _MODULES:
        try:
            mod = importlib.import_module(f"geotower._cli.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"geotower._cli.{module}":
                raise
            continue
        mod.register(app)
    for name in COMMANDS:
        if name not in _registered_names():
            _not_implemented(name)
    _wrap_all(app)


_build()
