"""Reading OSM sources: Geofabrik zip, folders of shapefiles/GeoPackages, .osm.pbf; and the errors they raise."""

from __future__ import annotations

import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import shapely

from geotower.errors import DataError
from geotower.geo import osm
from geotower.geo.osm import OsmSource
from geotower.schema import LAYER_BY_NAME, LAYERS

# feature counts per layer in tests/fixtures/make_osm_fixtures.py
TINY_COUNTS = {"pois": 5, "places": 1, "traffic": 2, "transport": 1, "roads": 3, "railways": 1, "waterways": 1,
               "buildings": 2, "landuse": 1, "water": 1}


def _counts(src: OsmSource, **kwargs: object) -> Counter[str]:
    counts: Counter[str] = Counter()
    for layer, geoms in src.chunks(LAYERS, **kwargs):  # type: ignore[arg-type]
        counts[layer.name] += len(geoms)
    return counts


def test_zip_and_pbf_hold_the_same_objects(tiny_zip: Path, tiny_pbf: Path) -> None:
    assert OsmSource(tiny_zip).kind == "zip"
    assert OsmSource(tiny_pbf).kind == "pbf"
    assert _counts(OsmSource(tiny_zip)) == TINY_COUNTS
    assert _counts(OsmSource(tiny_pbf)) == TINY_COUNTS


def test_folder_of_shapefiles_and_of_geopackages(tiny_zip: Path, tmp_path: Path) -> None:
    import geopandas as gpd

    shp = tmp_path / "shp"
    with zipfile.ZipFile(tiny_zip) as zf:
        zf.extractall(shp)
    gpkg = tmp_path / "gpkg"
    gpkg.mkdir()
    for path in shp.glob("*.shp"):
        gpd.read_file(path).to_file(gpkg / f"{path.stem}.gpkg", engine="pyogrio")
    for folder in (shp, gpkg):
        src = OsmSource(folder)
        assert src.kind == "folder" and src.missing_layers(LAYERS) == []
        assert _counts(src) == TINY_COUNTS


def test_chunks_respect_chunk_size(tiny_zip: Path, tiny_pbf: Path) -> None:
    for path in (tiny_zip, tiny_pbf):
        sizes = [len(g) for layer, g in OsmSource(path).chunks(LAYERS, chunk_size=2) if layer.name == "pois"]
        assert sizes == [2, 2, 1]


def test_bbox_filters_file_layers(tiny_zip: Path) -> None:
    src = OsmSource(tiny_zip)
    pois = np.concatenate([g for la, g in src.chunks((LAYER_BY_NAME["pois"],))])
    lon, lat = shapely.get_x(pois), shapely.get_y(pois)
    box = (lon.min() - 1e-6, lat.min() - 1e-6, np.sort(lon)[1] + 1e-6, lat.max() + 1e-6)
    assert 0 < _counts(src, bbox=box)["pois"] < 5


def test_missing_layer_and_extent(tiny_zip: Path, tmp_path: Path, tiny_pbf: Path) -> None:
    with zipfile.ZipFile(tiny_zip) as zf:
        zf.extractall(tmp_path)
    for path in tmp_path.glob("gis_osm_roads_free_1.*"):
        path.unlink()
    src = OsmSource(tmp_path)
    assert [la.name for la in src.missing_layers(LAYERS)] == ["roads"]
    lon0, lat0, lon1, lat1 = src.extent()  # type: ignore[misc]
    assert lon0 < 24.93 < lon1 and lat0 < 60.16 < lat1
    assert OsmSource(tiny_pbf).missing_layers(LAYERS) == []


@pytest.mark.parametrize(("name", "content", "match"), [
    ("nothing.zip", None, "does not exist"),
    ("bad.zip", b"not a zip", "not a readable zip"),
    ("table.csv", b"a,b\n1,2\n", "unrecognised OSM source"),
])
def test_bad_sources_are_named(tmp_path: Path, name: str, content: bytes | None, match: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=match) as info:
        OsmSource(path)
    assert name in str(info.value)


def test_corrupt_pbf_and_shapefile_are_named(tmp_path: Path) -> None:
    pbf = tmp_path / "broken.osm.pbf"
    pbf.write_bytes(b"\x00\x00\x00\x0dthis is not a pbf at all")
    with pytest.raises(DataError, match="broken.osm.pbf"):
        list(OsmSource(pbf).chunks(LAYERS))
    folder = tmp_path / "shp"
    folder.mkdir()
    (folder / "gis_osm_pois_free_1.shp").write_bytes(b"garbage")
    with pytest.raises(DataError, match="gis_osm_pois_free_1"):
        list(OsmSource(folder).chunks((LAYER_BY_NAME["pois"],)))


def test_pbf_way_cut_by_extract_keeps_its_nodes_inside(tmp_path: Path) -> None:
    import osmium
    from osmium.osm.mutable import Node, Way

    path = tmp_path / "cut.osm.pbf"
    with osmium.SimpleWriter(str(path)) as writer:
        writer.add_node(Node(id=1, location=(24.90, 60.10), version=1))
        writer.add_node(Node(id=2, location=(24.91, 60.10), version=1))
        writer.add_way(Way(id=1, nodes=[1, 2, 99], tags={"highway": "residential"}, version=1))  # node 99 absent
        writer.add_way(Way(id=2, nodes=[98, 99], tags={"highway": "residential"}, version=1))  # nothing left
    src = OsmSource(path)
    roads = [g for la, g in src.chunks((LAYER_BY_NAME["roads"],))]
    assert len(roads) == 1 and len(roads[0]) == 1
    assert shapely.get_num_points(roads[0][0]) == 2
    assert src.stats.unbuildable == {"roads": 1}


def test_pbf_area_yes_is_not_a_line(tmp_path: Path) -> None:
    import osmium
    from osmium.osm.mutable import Node, Way

    path = tmp_path / "area.osm.pbf"
    with osmium.SimpleWriter(str(path)) as writer:
        for i, (x, y) in enumerate([(24.90, 60.10), (24.91, 60.10), (24.91, 60.11)], start=1):
            writer.add_node(Node(id=i, location=(x, y), version=1))
        writer.add_way(Way(id=1, nodes=[1, 2, 3, 1], tags={"highway": "pedestrian", "area": "yes"}, version=1))
        writer.add_way(Way(id=2, nodes=[1, 2, 3, 1], tags={"highway": "pedestrian"}, version=1))
    assert _counts(OsmSource(path)) == {"roads": 1}


def test_chunk_size_default_is_read_at_call_time(tiny_pbf: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(osm, "CHUNK_SIZE", 1)
    assert max(len(g) for _, g in OsmSource(tiny_pbf).chunks(LAYERS)) == 1


def test_pbf_index_file_and_reader_queues_last_only_while_reading(tiny_pbf: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import tempfile

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.delenv("OSMIUM_MAX_INPUT_QUEUE_SIZE", raising=False)
    monkeypatch.setenv("OSMIUM_MAX_OSMDATA_QUEUE_SIZE", "7")  # the user's value wins
    during = [([p.name for p in tmp.glob("geotower-osm-*/*")], os.environ.get("OSMIUM_MAX_INPUT_QUEUE_SIZE"),
               os.environ["OSMIUM_MAX_OSMDATA_QUEUE_SIZE"]) for _ in OsmSource(tiny_pbf).chunks(LAYERS, chunk_size=1)]
    assert during and all(d == (["locations.idx"], "4", "7") for d in during)
    assert list(tmp.iterdir()) == []
    assert "OSMIUM_MAX_INPUT_QUEUE_SIZE" not in os.environ and os.environ["OSMIUM_MAX_OSMDATA_QUEUE_SIZE"] == "7"


def test_pbf_relation_without_layer_tags_leaves_its_closed_way(tmp_path: Path) -> None:
    import osmium
    from osmium.osm.mutable import Node, Relation, Way

    path = tmp_path / "rel.osm.pbf"
    with osmium.SimpleWriter(str(path)) as writer:
        for i, (x, y) in enumerate([(24.90, 60.10), (24.91, 60.10), (24.91, 60.11)], start=1):
            writer.add_node(Node(id=i, location=(x, y), version=1))
        writer.add_way(Way(id=1, nodes=[1, 2, 3, 1], tags={"building": "yes"}, version=1))
        writer.add_relation(Relation(id=1, members=[("w", 1, "outer")], tags={"type": "multipolygon", "name": "x"},
                                     version=1))
    assert _counts(OsmSource(path)) == {"buildings": 1}
