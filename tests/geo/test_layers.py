"""Tag rules that map .osm.pbf objects onto Geofabrik's layers."""

from __future__ import annotations

import pytest

from geotower.geo.layers import TAG_RULES, element_of, matching_layers, select_layers, tag_keys
from geotower.schema import LAYER_BY_NAME, LAYERS


def test_every_layer_has_rules_and_an_element() -> None:
    assert set(TAG_RULES) == set(LAYER_BY_NAME)
    assert [element_of(la) for la in LAYERS] == ["node"] * 4 + ["way"] * 3 + ["area"] * 4


@pytest.mark.parametrize(("tags", "layers"), [
    ({"amenity": "restaurant"}, ["pois"]),
    ({"amenity": "parking"}, ["traffic"]),  # parking is a traffic point, not a poi (as in Geofabrik's files)
    ({"shop": "yes"}, []),  # unlisted value
    ({"barrier": "bollard"}, ["traffic"]),
    ({"barrier": "fence"}, []),  # linear barrier
    ({"public_transport": "stop_position", "bus": "yes"}, ["transport"]),
    ({"public_transport": "stop_position"}, []),  # needs bus=yes or tram=yes
    ({"highway": "bus_stop", "amenity": "bench"}, ["pois", "transport"]),  # one object, two layers
    ({"place": "neighbourhood"}, []),
])
def test_point_rules(tags: dict[str, str], layers: list[str]) -> None:
    assert matching_layers(tags, LAYERS[:4]) == layers


@pytest.mark.parametrize(("tags", "layers"), [
    ({"building": "yes"}, ["buildings"]),
    ({"building": "no", "landuse": "grass"}, ["landuse"]),
    ({"natural": "wood"}, ["landuse"]),  # wood is landuse in Geofabrik's layers, not natural
    ({"natural": "water"}, ["water"]),
    ({"natural": "beach"}, ["natural"]),
    ({"highway": "footway"}, []),  # ways become areas only through polygon rules
])
def test_area_rules(tags: dict[str, str], layers: list[str]) -> None:
    assert matching_layers(tags, LAYERS[7:]) == layers


def test_line_rules() -> None:
    lines = LAYERS[4:7]
    assert matching_layers({"highway": "residential"}, lines) == ["roads"]
    assert matching_layers({"highway": "platform"}, lines) == []
    assert matching_layers({"railway": "tram"}, lines) == ["railways"]
    assert matching_layers({"aerialway": "chair_lift"}, lines) == ["railways"]
    assert matching_layers({"waterway": "riverbank"}, lines) == []


def test_select_layers_keeps_canonical_order() -> None:
    assert [la.name for la in select_layers(("water", "roads"))] == ["roads", "water"]
    assert select_layers(()) == LAYERS
    with pytest.raises(KeyError, match="bogus"):
        select_layers(("bogus",))


def test_tag_keys_cover_rules() -> None:
    keys = tag_keys(select_layers(("roads", "buildings")))
    assert keys == ("building", "highway")
