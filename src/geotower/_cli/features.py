"""CLI command ``features osm``: OSM context features for items, to a table file or merged into a dataset folder."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from geotower import schema as S
from geotower.config import FeaturesConfig, replace, resolve
from geotower.errors import ConfigError

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


def register(app: typer.Typer) -> None:
    """Add the ``features`` group with its ``osm`` command to ``app``."""
    features = typer.Typer(help="Compute item features from external data.", no_args_is_help=True)
    app.add_typer(features, name="features")

    @features.command("osm", help="OSM context per item: counts and lengths/areas of 11 Geofabrik layers within "
                                  "each radius (columns <layer>_<r>m_count|len|area).")
    def osm_cmd(
        items: Annotated[Path, typer.Option(help="Items table (item_id, lat, lon; .parquet or .csv) or a dataset "
                                                 "folder holding items.parquet|csv.")],
        osm: Annotated[list[Path], typer.Option(help="Geofabrik *-latest-free.shp.zip as downloaded, a folder of "
                                                     "its gis_osm_* shapefiles/GeoPackages, or an .osm.pbf extract; "
                                                     "repeat for several regions (each place reads the first "
                                                     "extract that holds it).")],
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
    ) -> None:
        from geotower import artifacts
        from geotower.geo.context import add_osm_features_to_dataset, compute_osm_features, find_items_table

        cfg = resolve(config, set_ or ())
        cfg = replace(cfg, "features", **_feature_overrides(radii, mode, layers))
        if out is None and not merge:
            raise ConfigError("give --out FILE, or --merge with a dataset folder as --items")
        if merge and not items.is_dir():
            raise ConfigError(f"--merge needs a dataset folder as --items, got the file {items}")
        start = time.perf_counter()
        if merge:
            path = add_osm_features_to_dataset(items, osm, cfg.features, strict)
            table = artifacts.read_table(path)
            feats = table[[S.ITEM_ID, *[c for c in table.columns if c in _columns(cfg.features)]]]
            _console.print(f"merged {feats.shape[1] - 1} OSM columns into {path}")
        else:
            feats = compute_osm_features(artifacts.read_table(find_items_table(items)), osm, cfg.features, strict)
        if out is not None:
            artifacts.write_table(out, feats)
            _console.print(f"wrote {len(feats):,} items x {feats.shape[1] - 1} OSM columns to {out}")
        _console.print(f"{cfg.features.mode} mode, radii {list(cfg.features.radii)} m, "
                       f"{time.perf_counter() - start:.1f} s")


def _columns(features_cfg: FeaturesConfig) -> set[str]:
    from geotower.geo.layers import select_layers

    return set(S.geo_feature_columns(features_cfg.radii, select_layers(features_cfg.layers)))
