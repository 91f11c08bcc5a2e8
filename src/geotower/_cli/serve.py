"""``geotower serve RUN [--host H] [--port P]``: the HTTP service (FastAPI + uvicorn) and its map page.

It blocks, so ``--json`` prints its document (url, run, index, host, port) as one line when the app is loaded,
before uvicorn starts; uvicorn's own log, access log included, goes to stderr.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from geotower._cli.index import ConfigOpt, SetOpt
from geotower._cli.options import JsonOpt, RunArg, emit_json, json_result, run_config

__all__ = ["HELP", "serve"]

HELP = "Serve the run over HTTP (FastAPI + uvicorn): /recommend, /items, /docs and a map page at /."


@json_result
def serve(run: RunArg,
          host: Annotated[str | None, typer.Option(help="Bind address (default: serve.host, 127.0.0.1); keep "
                                                        "127.0.0.1 unless the service must be reachable from other "
                                                        "machines.")] = None,
          port: Annotated[int | None, typer.Option(help="TCP port (default: serve.port, 8000).")] = None,
          allow_host: Annotated[list[str] | None, typer.Option(
              "--allow-host", help="Also answer requests for this Host name (repeatable), e.g. the machine's DNS "
                                   "name when binding 0.0.0.0; others get 400.")] = None,
          osm: Annotated[Path | None, typer.Option(help="OSM extract (the features' source) to draw the map's "
                                                        "roads, water, land use and buildings from.")] = None,
          config: ConfigOpt = None, set_: SetOpt = None, as_json: JsonOpt = False) -> None:
    import uvicorn

    from geotower.config import check_port
    from geotower.retrieve.service import LOOPBACK_HOSTS, create_app

    cfg = run_config(config, set_)
    host, port = host or cfg.serve.host, check_port(cfg.serve.port if port is None else port)
    wildcard = host in ("0.0.0.0", "::", "")
    hosts = [*LOOPBACK_HOSTS, *([] if wildcard else [host]), *cfg.serve.allowed_hosts, *(allow_host or [])]
    app_ = create_app(run, allowed_hosts=hosts, osm=osm)
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(f"warning: binding to {host}; the service has no authentication", err=True)
    if as_json:
        rec = app_.state.recommender
        saved = run / "index.json"
        emit_json({"url": f"http://{'127.0.0.1' if wildcard else host}:{port}/", "run": run, "host": host,
                   "port": port, "index": rec.index.kind, "index_file": saved if saved.exists() else None,
                   "items": rec.n_items})
    uvicorn.run(app_, host=host, port=port, log_level="info")

