"""Command-line interface (Typer): the outermost layer; turns library errors into messages and exit codes.

Each command group has its module in ``geotower._cli``, named after its command (thin shells: options ->
RunConfig -> one pipeline call). This module registers them explicitly on one app and wraps every command so a
:class:`GeotowerError` becomes a one-line ``error: ...`` and exit code 1.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

import typer

from geotower import __version__
from geotower._cli import checkins, demo, evaluate, features, index, prepare, recommend, serve, simulate, train
from geotower.errors import GeotowerError, GeotowerWarning

__all__ = ["COMMANDS", "app"]

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
        except RuntimeError as exc:
            if not _peer_rank():
                raise
            # a rank > 0 of `train --nproc N` whose collective broke because another rank stopped (rank 0 prints
            # the reason): one line, not a gloo/NCCL traceback
            print(f"error: rank {os.environ['RANK']} stopped: another training process failed "
                  f"({str(exc).splitlines()[0][:200]})", file=sys.stderr)
            raise typer.Exit(1) from None

    return wrapper


def _peer_rank() -> bool:
    """Is this process a rank > 0 of a torch.distributed job (launched by torchrun)?"""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and os.environ.get("RANK", "0") != "0"


def _command(typer_app: typer.Typer, name: str, fn: Callable[..., Any], help_text: str) -> None:
    typer_app.command(name, help=help_text)(_guard(fn))


def _group(name: str, help_text: str) -> typer.Typer:
    group = typer.Typer(help=help_text, no_args_is_help=True)
    app.add_typer(group, name=name)
    return group


_prepare = _group("prepare", prepare.HELP)
_command(_prepare, "yelp", prepare.yelp, prepare.YELP_HELP)
_command(_prepare, "checkins", checkins.checkins, checkins.CHECKINS_HELP)
_command(_group("features", features.HELP), "osm", features.osm, features.OSM_HELP)
_command(app, "simulate", simulate.simulate, simulate.HELP)
_command(app, "train", train.train, train.HELP)
_command(app, "evaluate", evaluate.evaluate, evaluate.HELP)
_command(app, "index", index.index, index.HELP)
_command(app, "recommend", recommend.recommend, recommend.HELP)
_command(app, "serve", serve.serve, serve.HELP)
_command(app, "demo", demo.demo, demo.HELP)

COMMANDS = tuple(c.name for c in app.registered_commands if c.name) + tuple(
    g.name for g in app.registered_groups if g.name)
