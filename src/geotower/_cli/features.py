"""The ``geotower features`` group: ``features osm`` writes OSM context columns to a table or a dataset folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from geotower import schema as S
from geotower._cli.options import JsonOpt, json_result, run_config
from geotower.config import replace
from geotower.errors import ConfigError

__all__ = ["HELP", "OSM_HELP", "osm"]

HELP = "Compute item features from external data."
OSM_HELP = ("OSM context per item: counts and lengths/areas of 11 Geofabrik layers within each radius (columns "
            "<layer>_<r>m_count|len|area).")
_console = Console(soft_wrap=True, stderr=True)


def _feature_overrides(radii: str | None, mode: str | None, layers: str | None) -> dict[str, object]:
    """Flags -> FeaturesConfig changes (flags win over --config/--set); bad values raise ConfigError."""
    changes: dict[str, object] = {}
    if radii is not None:
        try:
            changes["radii"] = tuple(int(v) for v in radii.split(",") if v.strip())
        except ValueError:
            raise ConfigError(f"--radii {radii!r}: expected comma-separated whole meters, e.g. 100,200,500") from None
    if mode is not None:
        changes["mode"] = mode
    if layers is not None:
        changes["layers"] = tuple(v.strip() for v in layers.split(",") if v.strip())
    return changes


@json_result
def osm(
    items: Annotated[Path, typer.Option(help="Items table (item_id, lat, lon; .parquet or .csv) or a dataset "
                                             "folder holding items.parquet|csv.")],
    osm: Annotated[list[Path], typer.Option(help="Geofabrik *-latest-free.shp.zip as downloaded, a folder of its "
                                                 "gis_osm_* shapefiles/GeoPackages, or an .osm.pbf extract; repeat "
                                                 "for several regions (each place reads the first extract that "
                                                 "holds it).")],
    out: Annotated[Path | None, typer.Option(help="Feature table to write (.parquet or .csv by extension). "
                                                  "Optional with --merge.")] = None,
    merge: Annotated[bool, typer.Option(help="Merge the columns into the dataset folder's items table "
                                             "(replacing same-named columns) so training uses them.")] = False,
    radii: Annotated[str | None, typer.Option(help="Buffer radii in meters, e.g. 100,200,500.")] = None,
    mode: Annotated[str | None, typer.Option(help="clipped (default): length/area inside the buffer; whole: "
                                                  "full length/area of every touching feature (original).")
                    ] = None,
    layers: Annotated[str | None, typer.Option(help="Comma-separated subset of: " + ", ".join(S.LAYER_BY_NAME)
                                               )] = None,
    strict: Annotated[bool, typer.Option(help="A layer missing from the source is an error, not a warning.")
                      ] = False,
    config: Annotated[Path | None, typer.Option(help="TOML config; its [features] section is used.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a config key: section.key=value.")
                    ] = None,
    as_json: JsonOpt = False,
) -> dict[str, Any]:
    from geotower.pipeline.features import osm_features

    cfg = replace(run_config(config, set_), "features", **_feature_overrides(radii, mode, layers))
    result = osm_features(items, osm, cfg.features, out=out, merge=merge, strict=strict)
    feats = result.features
    if result.merged_into is not None:
        _console.print(f"merged {feats.shape[1] - 1} OSM columns into {result.merged_into}")
    if out is not None:
        _console.print(f"wrote {len(feats):,} items x {feats.shape[1] - 1} OSM columns to {out}")
    _console.print(f"{cfg.features.mode} mode, radii {list(cfg.features.radii)} m, {result.seconds:.1f} s")
    return {"items": len(feats), "columns": [c for c in feats.columns if c != S.ITEM_ID], "out": result.written_to,
            "merged_into": result.merged_into, "mode": cfg.features.mode, "radii": list(cfg.features.radii),
            "seconds": round(result.seconds, 2)}
