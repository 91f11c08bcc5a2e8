"""Option types, small parsers and the ``--json`` mechanism shared by the command modules.

``--json`` (every command): stdout carries exactly one JSON document, the command's result summary, and nothing
else. :func:`json_result` wraps a command that returns that summary as a dict: while the command runs, everything
written to stdout (``print``, rich consoles, click.echo, progress bars, uvicorn's access log and, when stdout is a
real file descriptor, output of C extensions and child processes) is sent to stderr; afterwards the summary is
printed on the real stdout. A command that blocks (``serve``) prints its document early with :func:`emit_json`.
On an error, stdout stays empty: the one-line ``error: ...`` goes to stderr and the exit code is 1.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import json
import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TextIO

import typer

from geotower.config import RunConfig, resolve
from geotower.errors import ConfigError

__all__ = ["ConfigOpt", "JsonOpt", "QuietOpt", "RunArg", "SetOpt", "emit_json", "json_result", "jsonable",
           "parse_bbox", "parse_ids", "run_config", "stdout_restored", "stdout_to_stderr"]

P = ParamSpec("P")

ConfigOpt = Annotated[Path | None, typer.Option("--config", help="TOML config file.")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", help="Override one config key, e.g. --set train.epochs=5 (repeatable).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="No progress bars.")]
RunArg = Annotated[Path, typer.Argument(help="Run folder written by 'geotower train'.")]
JsonOpt = Annotated[bool, typer.Option(
    "--json", help="Print only one JSON document (the result summary) on stdout; summaries, progress and logs go "
                   "to stderr.")]



@dataclasses.dataclass(frozen=True)
class _Redirect:
    """An active :func:`stdout_to_stderr`: the real stdout stream and, when it is a file descriptor, its copy."""

    real: TextIO
    fd: int = -1  # stdout's descriptor (pointed at stderr while redirected), -1 for an in-memory stream
    saved: int | None = None  # a duplicate of the real stdout descriptor

    def write(self, line: str) -> None:
        if self.saved is not None:
            os.write(self.saved, (line + "\n").encode())
        else:
            self.real.write(line + "\n")
            self.real.flush()


_ACTIVE: contextvars.ContextVar[_Redirect | None] = contextvars.ContextVar("geotower_stdout_redirect",
                                                                           default=None)


def jsonable(value: Any) -> Any:
    """``value`` with paths as strings, numpy scalars/arrays as Python values and NaN/inf as null (strict JSON)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy scalar or array
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _dumps(doc: Mapping[str, Any]) -> str:
    return json.dumps(jsonable(doc), allow_nan=False)


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send stdout to stderr inside the block (see :func:`emit_json` and :func:`stdout_restored` for the way out).

    ``sys.stdout`` is swapped for ``sys.stderr``; when stdout is a real file descriptor (a terminal, a pipe) that
    descriptor is also pointed at stderr, so writes that bypass Python (DuckDB's progress bar, child processes) move
    too.
    """
    real = sys.stdout
    try:
        fd, err_fd = real.fileno(), sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # a test runner's in-memory stream: swapping sys.stdout suffices
        fd = err_fd = -1
    saved = None
    if fd >= 0:
        real.flush()
        saved = os.dup(fd)
        os.dup2(err_fd, fd)
    token = _ACTIVE.set(_Redirect(real, fd, saved))
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        _ACTIVE.reset(token)
        sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, fd)
            os.close(saved)


@contextlib.contextmanager
def stdout_restored() -> Iterator[None]:
    """Undo an active :func:`stdout_to_stderr` inside the block (for a child process that prints the JSON)."""
    state = _ACTIVE.get()
    if state is None:
        yield
        return
    sys.stderr.flush()
    if state.saved is not None:
        os.dup2(state.saved, state.fd)
    try:
        with contextlib.redirect_stdout(state.real):
            yield
    finally:
        state.real.flush()
        if state.saved is not None:
            os.dup2(sys.stderr.fileno(), state.fd)


def emit_json(doc: Mapping[str, Any]) -> None:
    """Print ``doc`` as the command's one JSON line on the real stdout now (for a command that then blocks)."""
    state = _ACTIVE.get()
    if state is None:
        typer.echo(_dumps(doc))
    else:
        state.write(_dumps(doc))


def json_result(fn: Callable[P, Mapping[str, Any] | None]) -> Callable[P, None]:
    """Give a command ``--json``: ``fn`` (with an ``as_json: JsonOpt`` parameter) returns its result summary.

    Without ``--json`` the summary is dropped (the command printed its own human summary). With it, the command
    runs under :func:`stdout_to_stderr` and the summary (unless ``fn`` emitted one itself and returned None) is
    the one JSON line on stdout.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        if not kwargs.get("as_json"):
            fn(*args, **kwargs)
            return
        with stdout_to_stderr():
            doc = fn(*args, **kwargs)
        if doc is not None:  # stdout is restored here
            typer.echo(_dumps(doc))

    return wrapper


def run_config(config: Path | None, set_: list[str] | None) -> RunConfig:
    """The one precedence rule (``--set`` > ``--config`` > defaults), see :func:`geotower.config.resolve`."""
    return resolve(config, set_ or ())


def parse_bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """``minlon,minlat,maxlon,maxlat`` → floats; anything else is a ConfigError naming the flag."""
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or values[0] > values[2] or values[1] > values[3]:
        raise ConfigError(f"--bbox {text!r}: expected minlon,minlat,maxlon,maxlat with min <= max")
    return values[0], values[1], values[2], values[3]


def parse_ids(text: str | None) -> tuple[str, ...]:
    """``ID,ID,...`` → a tuple of the non-empty ids."""
    return tuple(s.strip() for s in text.split(",") if s.strip()) if text else ()
