"""``GET /surroundings``: the map page's background layers (roads, water, land use, buildings) as GeoJSON.

The layers are built by :mod:`geotower.geo.basemap` from the OSM extract the features came from and saved in
``RUN/surroundings.json``; the service reads that file once at start-up and serves the bytes (gzip-compressed
when the browser accepts it), so no request ever touches the disk or a tile server.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import Response

SURROUNDINGS_JSON = "surroundings.json"  # same name as geotower.geo.basemap.SURROUNDINGS_JSON


def add_surroundings_route(app: FastAPI, run_dir: Path) -> None:
    """Serve ``RUN/surroundings.json`` (read now, once); a 404 that says how to make one when it is missing."""
    path = run_dir / SURROUNDINGS_JSON
    body = path.read_bytes() if path.exists() else None
    packed = gzip.compress(body, 6) if body is not None else None

    @app.get("/surroundings", tags=["map"], responses={404: {"description": "the run has no surroundings"}})
    def surroundings(request: Request) -> Any:
        """GeoJSON layers drawn under the map's markers (from ``geotower serve RUN --osm EXTRACT``)."""
        if body is None or packed is None:
            raise HTTPException(404, "no surroundings for this run: serve it with --osm EXTRACT (the OSM source "
                                     "the features came from)")
        headers = {"Cache-Control": "max-age=3600"}
        if "gzip" in request.headers.get("accept-encoding", ""):
            return Response(packed, media_type="application/json", headers={**headers, "Content-Encoding": "gzip"})
        return Response(body, media_type="application/json", headers=headers)
