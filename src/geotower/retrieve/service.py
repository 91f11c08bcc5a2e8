"""The HTTP service: ``create_app(run_dir)`` builds a FastAPI app over one trained run.

Everything is loaded once, when the app is created: the model bundle (its data fingerprint is checked when the
dataset folder is present), the catalog with added items, the saved index (checked against the embeddings it was
built from) and the static files of the map page (read into memory, so no request value ever reaches a file path).
Routes are thin: they turn validated request models into a :class:`Query` and the result into response models.
Library errors become HTTP codes here: unknown ids 404, other bad input 422 (NaN, infinity, lone surrogates
included: error bodies never echo the input, so they always encode). Every response carries the usual security
headers, and a request whose ``Host`` is not the bound host, a loopback name or ``serve.allowed_hosts`` gets a 400
(a DNS-rebinding page cannot read the API).
"""

from __future__ import annotations

import importlib.resources
import json
import mimetypes
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Request
from fastapi import Path as PathParam
from fastapi import Query as QueryParam
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from geotower.errors import DataError
from geotower.retrieve import api_models as M
from geotower.retrieve.catalog import BundleLike
from geotower.retrieve.index_store import read_index_meta
from geotower.retrieve.recommender import (
    Query,
    Recommendation,
    Recommender,
    UnknownIdError,
    open_recommender,
)
from geotower.retrieve.surroundings import add_surroundings_route

STATIC_DIR = Path(__file__).parent / "static"
# Swagger UI 5 (renders OpenAPI 3.1) as shipped by the fastapi-offline package, so /docs needs no CDN
_SWAGGER_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")
# the map page may load only what this service serves (Leaflet sets inline styles; its CSS uses data: images)
_PAGE_CSP = ("default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; "
             "frame-ancestors 'none'; base-uri 'none'")
# Swagger UI's page starts the bundle from one inline script, so /docs alone may run inline scripts
_DOCS_CSP = _PAGE_CSP.replace("default-src 'self';", "default-src 'self'; script-src 'self' 'unsafe-inline';")
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": M.ErrorResponse, "description": "unknown user or item"}}
_SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                     "X-Frame-Options": "DENY", "Cross-Origin-Resource-Policy": "same-origin"}
_API_CSP = "default-src 'none'; frame-ancestors 'none'"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def _load_bundle(run_dir: Path) -> BundleLike:
    from geotower.model.bundle import load_bundle

    return load_bundle(run_dir, verify_data=True)


def _read_static(folder: Path) -> dict[str, tuple[bytes, str]]:
    """Every file of the page, keyed by its relative path, with its media type, plus Swagger UI under swagger/."""
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        files[rel] = (path.read_bytes(), mimetypes.guess_type(path.name)[0] or "application/octet-stream")
    swagger = importlib.resources.files("fastapi_offline") / "static"
    for name in _SWAGGER_FILES:
        files[f"swagger/{name}"] = ((swagger / name).read_bytes(), mimetypes.guess_type(name)[0] or "text/plain")
    return files


def create_app(run_dir: str | Path, loader: Callable[[Path], BundleLike] | None = None,
               exact_max_items: int | None = None, allowed_hosts: Sequence[str] | None = None,
               osm: str | Path | None = None) -> FastAPI:
    """Build the service for ``run_dir``.

    Args:
        run_dir: a run written by ``geotower train`` (and optionally ``geotower index``).
        loader: how to load the bundle; default ``geotower.model.bundle.load_bundle(run_dir, verify_data=True)``.
        exact_max_items: catalog size up to which an in-memory index is exact (only used without a saved index).
        allowed_hosts: ``Host`` names answered (port ignored), default the loopback names; the run config's
            ``serve.allowed_hosts`` are always added; ``["*"]`` turns the check off.
        osm: an OSM extract to draw the map's surroundings from (written to ``RUN/surroundings.json``; without it
            an existing file is served).

    Raises:
        ArtifactError: missing or mismatching artifacts (data fingerprint, stale index).
    """
    run_dir = Path(run_dir).resolve()
    bundle = (loader or _load_bundle)(run_dir)
    if exact_max_items is None:
        cfg = getattr(bundle, "config", None)
        exact_max_items = cfg.serve.exact_max_items if cfg is not None else 50_000
    rec = open_recommender(bundle, run_dir, exact_max_items)
    meta = read_index_meta(run_dir) or {}
    app = FastAPI(title="geotower", version="1", description="Geo-aware two-tower place recommendations.",
                  docs_url=None, redoc_url=None)  # /docs is served below from packaged files, not a CDN
    app.state.recommender = rec
    cfg = getattr(bundle, "config", None)
    allowed_hosts = [*(LOOPBACK_HOSTS if allowed_hosts is None else allowed_hosts),
                     *(cfg.serve.allowed_hosts if cfg is not None else ())]
    _add_guards(app, allowed_hosts)
    _add_error_handlers(app)
    _add_api_routes(app, rec, meta)
    _add_page_routes(app, _read_static(STATIC_DIR))
    if osm is not None:
        from geotower.geo.basemap import write_run_surroundings

        write_run_surroundings(run_dir, osm)
    add_surroundings_route(app, run_dir)
    return app


def _safe_text(value: Any) -> str:
    """Text that always encodes as UTF-8 JSON (lone surrogates and control bytes escaped)."""
    return str(value).encode("utf-8", "backslashreplace").decode("utf-8")


def _unprocessable(loc: list[Any], msg: str, kind: str) -> JSONResponse:
    """A 422 in FastAPI's validation-error shape, so every 422 of the API matches its documented schema."""
    detail = [{"loc": [_safe_text(p) if isinstance(p, str) else p for p in loc], "msg": _safe_text(msg),
               "type": _safe_text(kind)}]
    return JSONResponse({"detail": detail}, status_code=422)


def host_name(header: str) -> str:
    """The host of a ``Host`` header without its port: ``[::1]:8000`` -> ``::1``, ``a.b:80`` -> ``a.b``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def _add_guards(app: FastAPI, allowed_hosts: Sequence[str]) -> None:
    """Host check (DNS rebinding) and security headers on every response, errors included."""
    allowed = {h.lower().strip("[]") for h in allowed_hosts}

    @app.middleware("http")
    async def _guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        host = host_name(request.headers.get("host", ""))
        if "*" not in allowed and host not in allowed:
            response: Response = JSONResponse({"detail": "Host not allowed; start serve with --allow-host "
                                               "or set serve.allowed_hosts"}, status_code=400)
        else:
            response = await call_next(request)
        for name, value in _SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers.setdefault("Content-Security-Policy", _API_CSP)
        return response


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's 422 without the echoed input (NaN or a lone surrogate there made the encoder fail: 500)."""
        detail = [{"loc": [_safe_text(p) if isinstance(p, str) else p for p in e.get("loc", ())],
                   "msg": _safe_text(e.get("msg", "invalid")), "type": _safe_text(e.get("type", "value_error"))}
                  for e in exc.errors()]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:  # FastAPI's "error parsing the body": malformed input is a 422 in this API
            return _unprocessable(["body"], f"malformed request: {exc.detail}", "json_invalid")
        if exc.status_code == 405:  # Starlette lists only the first matching route's methods; list them all
            methods = {m for r in app.router.routes if isinstance(r, Route) and r.methods
                       and r.matches(request.scope)[0] != Match.NONE for m in r.methods}
            return JSONResponse({"detail": exc.detail}, status_code=405, headers={"Allow": ", ".join(sorted(methods))})
        if isinstance(exc.detail, str):
            return JSONResponse({"detail": _safe_text(exc.detail)}, status_code=exc.status_code, headers=exc.headers)
        return await http_exception_handler(request, exc)

    @app.exception_handler(UnknownIdError)
    async def _unknown(_: Request, exc: UnknownIdError) -> JSONResponse:
        return JSONResponse({"detail": _safe_text(exc.message)}, status_code=404)

    @app.exception_handler(DataError)
    async def _bad_input(_: Request, exc: DataError) -> JSONResponse:
        return _unprocessable(["request"] + ([exc.column] if exc.column else []), str(exc), "value_error")


def _to_query(p: M.RecommendRequest) -> Query:
    near = (p.lat, p.lon) if p.lat is not None and p.lon is not None else None
    return Query(p.user_id, tuple(p.liked), p.k, near, p.radius_km, p.exclude_seen)


def _response(rec: Recommender, result: Recommendation, explain: bool = False) -> Response:
    """JSON of :class:`api_models.RecommendResponse`, written directly: the hot path skips building and
    re-validating pydantic objects for values the recommender already guarantees (about half the request cost)."""
    body = {"items": rec.records(result, explain), "mode": result.mode, "note": result.note}
    return Response(json.dumps(body, allow_nan=False), media_type="application/json")


def _check_user(rec: Recommender, user_id: str | None, liked: list[str]) -> None:
    """A named user must be known unless liked items are given (then it is a cold-start user)."""
    if user_id is not None and not liked and rec.user_row(user_id) is None:
        raise HTTPException(404, f"unknown user id {user_id!r}; pass liked item ids for a new user")


def _add_api_routes(app: FastAPI, rec: Recommender, meta: dict[str, Any]) -> None:
    health = M.Health(items=rec.n_items, users=len(rec.user_ids), index=rec.index.kind,
                      recall_at_10=meta.get("recall_at_10"))

    @app.get("/health", response_model=M.Health, tags=["service"])
    async def get_health() -> M.Health:
        return health

    @app.get("/recommend", response_model=M.RecommendResponse, responses=_NOT_FOUND, tags=["recommend"])
    async def get_recommend(user_id: M.QUserId = None, k: M.QK = 10, lat: M.QLat = None, lon: M.QLon = None,
                            radius_km: M.QRadius = None, exclude_seen: M.QExcludeSeen = True,
                            explain: M.QExplain = False) -> Response:
        """Places for a known user (or the most popular ones without ``user_id``), optionally within a radius."""
        error = M.point_rule_error(lat, lon, radius_km)
        if error is not None:
            raise RequestValidationError([{"loc": ["query"], "msg": error, "type": "value_error"}])
        _check_user(rec, user_id, [])
        near = (lat, lon) if lat is not None and lon is not None else None
        return _response(rec, rec.recommend(Query(user_id, (), k, near, radius_km, exclude_seen)), explain)

    @app.post("/recommend", response_model=M.RecommendResponse, responses=_NOT_FOUND, tags=["recommend"])
    async def post_recommend(body: M.RecommendRequest) -> Response:
        """Like GET, plus ``liked`` item ids: an unknown user with liked items gets a cold-start ranking."""
        _check_user(rec, body.user_id, body.liked)
        return _response(rec, rec.recommend(_to_query(body)), body.explain)

    @app.get("/items/{item_id:path}", response_model=M.ItemInfo, responses=_NOT_FOUND, tags=["catalog"])
    async def get_item(item_id: Annotated[str, PathParam(max_length=M.MAX_ID_LEN)]) -> M.ItemInfo:
        """One place by id (an id may contain ``/``: ``/items/a/b`` is the id ``a/b``)."""
        return M.ItemInfo(**rec.item_record(int(rec.item_rows([item_id])[0])))

    @app.get("/items", response_model=M.ItemsPage, tags=["catalog"])
    def list_items(limit: Annotated[int, QueryParam(ge=1, le=20_000)] = 1000,
                   offset: Annotated[int, QueryParam(ge=0, le=1_000_000_000)] = 0) -> M.ItemsPage:
        """A page of the catalog (for drawing every place on the map)."""
        rows = range(min(offset, rec.n_items), min(offset + limit, rec.n_items))
        return M.ItemsPage(items=[M.ItemInfo(**rec.item_record(r)) for r in rows], total=rec.n_items)

    @app.get("/users", response_model=M.UsersPage, tags=["catalog"])
    def list_users(limit: Annotated[int, QueryParam(ge=1, le=10_000)] = 100,
                   offset: Annotated[int, QueryParam(ge=0, le=1_000_000_000)] = 0) -> M.UsersPage:
        """A page of trained user ids (for the page's user list)."""
        return M.UsersPage(users=rec.user_ids[offset:offset + limit].tolist(), total=len(rec.user_ids))


def _add_page_routes(app: FastAPI, files: dict[str, tuple[bytes, str]]) -> None:
    @app.get("/", include_in_schema=False)
    def page() -> Response:
        body, media = files["index.html"]
        return Response(body, media_type=media, headers={"Content-Security-Policy": _PAGE_CSP})

    @app.get("/docs", include_in_schema=False)
    def docs() -> Response:
        page = get_swagger_ui_html(openapi_url="/openapi.json", title="geotower API",
                                   swagger_js_url="/static/swagger/swagger-ui-bundle.js",
                                   swagger_css_url="/static/swagger/swagger-ui.css",
                                   swagger_favicon_url="/static/swagger/favicon.png")
        page.headers["Content-Security-Policy"] = _DOCS_CSP
        return page

    @app.get("/static/{name:path}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in files:  # a dictionary lookup: the request never names a file on disk
            raise HTTPException(404, "no such static file")
        body, media = files[name]
        return Response(body, media_type=media, headers={"Cache-Control": "max-age=3600"})
