"""``geotower serve RUN [--host H] [--port P]``: the HTTP service (FastAPI + uvicorn) and its map page."""

from __future__ import annotations

from typing import Annotated

import typer

from geotower._cli.index import ConfigOpt, SetOpt
from geotower._cli.options import RunArg, run_config

__all__ = ["HELP", "serve"]

HELP = "Serve the run over HTTP (FastAPI + uvicorn): /recommend, /items, /docs and a map page at /."


def serve(run: RunArg,
          host: Annotated[str | None, typer.Option(help="Bind address (default: serve.host, 127.0.0.1); keep "
                                                        "127.0.0.1 unless the service must be reachable from other "
                                                        "machines.")] = None,
          port: Annotated[int | None, typer.Option(help="TCP port (default: serve.port, 8000).")] = None,
          config: ConfigOpt = None, set_: SetOpt = None) -> None:
    import uvicorn

    from geotower.retrieve.service import create_app

    cfg = run_config(config, set_)
    host, port = host or cfg.serve.host, cfg.serve.port if port is None else port
    app_ = create_app(run)
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(f"warning: binding to {host}; the service has no authentication", err=True)
    uvicorn.run(app_, host=host, port=port, log_level="info")
