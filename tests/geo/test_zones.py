"""Places in different UTM zones and several extracts: each place measured in its own zone, as geopandas would."""

from __future__ import annotations

import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from geo_expected import SHARED
from sjoin_reference import reference_features

from geotower.config import FeaturesConfig
from geotower.geo.context import compute_osm_features, utm_zones
from geotower.schema import LAYER_BY_NAME

HELSINKI = SHARED / "helsinki"
LAYERS = tuple(LAYER_BY_NAME[n] for n in ("pois", "roads", "buildings", "landuse"))
SHIFT = 36.0  # degrees east: Helsinki (zone 35) -> zone 41; the pair's centre (zone 38) is 18 degrees from both


def _copy(frames: dict[str, gpd.GeoDataFrame], items: pd.DataFrame, dlon: float, tag: str
          ) -> tuple[dict[str, gpd.GeoDataFrame], pd.DataFrame]:
    moved = {k: f.set_geometry(shapely.transform(np.asarray(f.geometry.array), lambda c: c + (dlon, 0.0)))
             for k, f in frames.items()}
    return moved, items.assign(item_id=items["item_id"] + tag, lon=items["lon"] + dlon)


def _write(folder: Path, frames: dict[str, gpd.GeoDataFrame]) -> Path:
    folder.mkdir(parents=True)
    for name, frame in frames.items():
        frame[["geometry"]].to_file(folder / f"{LAYER_BY_NAME[name].stem}.shp", engine="pyogrio")
    return folder


@pytest.fixture(scope="module")
def two_cities(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    if not HELSINKI.exists():
        pytest.skip(f"shared data not found at {HELSINKI}")
    zip_path = f"/vsizip/{(HELSINKI / 'helsinki-free.shp.zip').resolve()}"
    frames = {la.name: gpd.read_file(f"{zip_path}/{la.stem}.shp")[["geometry"]] for la in LAYERS}
    items = pd.read_csv(HELSINKI / "restaurants.csv").rename(columns={"business_id": "item_id"}).iloc[::20]
    west, west_items = _copy(frames, items, 0.0, "-w")
    east, east_items = _copy(frames, items, SHIFT, "-e")
    both = {k: pd.concat([west[k], east[k]], ignore_index=True) for k in frames}
    root = tmp_path_factory.mktemp("zones")
    return {"west": (west, west_items, _write(root / "west", west)),
            "east": (east, east_items, _write(root / "east", east)),
            "both": _write(root / "both", both),
            # interleaved rows: the output must keep the input's order across zone groups
            "items": pd.concat([west_items, east_items]).sort_values("name", kind="stable").reset_index(drop=True)}


def _reference_in_own_zones(two_cities: dict[str, object], mode: str) -> pd.DataFrame:
    parts = [reference_features(it, fr, (100, 200, 500), LAYERS, mode)
             for fr, it, _ in (two_cities["west"], two_cities["east"])]  # type: ignore[misc]
    ref = pd.concat(parts).set_index("item_id")
    return ref.loc[two_cities["items"]["item_id"]].reset_index()  # type: ignore[index]


def _features(items: pd.DataFrame, source: object, mode: str) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compute_osm_features(items, source, FeaturesConfig(mode=mode, layers=tuple(la.name for la in LAYERS)))


def _assert_same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got["item_id"]) == list(want["item_id"])
    counts = [c for c in got.columns if c.endswith("_count")]
    measures = [c for c in got.columns if c != "item_id" and c not in counts]
    np.testing.assert_array_equal(got[counts].to_numpy(), want[counts].to_numpy())
    np.testing.assert_allclose(got[measures].to_numpy(float), want[measures].to_numpy(float), rtol=1e-6, atol=1e-6)


def test_zone_of_each_place() -> None:
    lon = np.array([24.94, 60.94, -75.16, 5.3, 15.0, 151.2])
    lat = np.array([60.17, 60.17, 39.95, 60.39, 78.2, -33.87])
    assert utm_zones(lon, lat).tolist() == [32635, 32641, 32618, 32632, 32633, 32756]


@pytest.mark.parametrize("mode", ["clipped", "whole"])
def test_places_in_two_zones_match_geopandas_in_each_own_zone(two_cities: dict[str, object], mode: str) -> None:
    items = two_cities["items"]
    got = _features(items, two_cities["both"], mode)  # type: ignore[arg-type]
    want = _reference_in_own_zones(two_cities, mode)
    _assert_same(got, want)
    # the test can fail: one zone for the whole catalogue (the old way) gives other numbers
    both_frames = {k: pd.concat([two_cities["west"][0][k], two_cities["east"][0][k]], ignore_index=True)  # type: ignore[index]
                   for k in two_cities["west"][0]}  # type: ignore[index]
    one_zone = reference_features(items, both_frames, (100, 200, 500), LAYERS, mode)  # type: ignore[arg-type]
    assert not np.allclose(one_zone.iloc[:, 1:].to_numpy(float), want.iloc[:, 1:].to_numpy(float), rtol=1e-3)


def test_several_extracts_equal_one_extract_holding_both(two_cities: dict[str, object]) -> None:
    items = two_cities["items"]
    together = _features(items, two_cities["both"], "clipped")  # type: ignore[arg-type]
    apart = _features(items, [two_cities["east"][2], two_cities["west"][2]], "clipped")  # type: ignore[index]
    pd.testing.assert_frame_equal(together, apart)
    assert together["roads_500m_count"].min() > 0


def test_local_projection_round_trips() -> None:
    from geotower.schema import local_latlon, local_xy_km

    lat, lon = np.array([60.17, 60.3]), np.array([24.94, 25.1])
    xy = local_xy_km(lat, lon, (60.2, 25.0))
    np.testing.assert_allclose(np.column_stack(local_latlon(xy, (60.2, 25.0))), np.column_stack([lat, lon]))
    np.testing.assert_allclose(xy[1], [0.1 * 111.32 * np.cos(np.radians(60.2)), 0.1 * 111.32])
