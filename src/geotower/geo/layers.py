"""The 11 Geofabrik layers as OSM tag rules, so an ``.osm.pbf`` maps onto the same layers as the free shapefiles.

Geofabrik's free shapefiles ("layered GIS") sort OSM objects into layers by tags. Reading a ``.osm.pbf`` we rebuild
that selection: point layers take tagged nodes, line layers take ways built as lines, polygon layers take areas
(closed ways and multipolygon relations). Only *which* objects fall in a layer matters for the features, so the
rules keep the selection and drop Geofabrik's class codes. The table is documented in ``docs/osm.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from geotower.schema import LAYER_BY_NAME, LAYERS, Layer

# Which OSM element kind feeds each geometry kind of layer.
ELEMENT_BY_KIND = {"point": "node", "line": "way", "polygon": "area"}


@dataclass(frozen=True)
class TagRule:
    """One tag condition: ``key`` has one of ``values`` (any value when None, minus ``exclude``), plus ``also``.

    ``also`` holds extra ``(key, value)`` pairs that must all be present too (e.g. a stop position that is a bus
    stop only when ``bus=yes``).
    """

    key: str
    values: frozenset[str] | None = None
    exclude: frozenset[str] = frozenset()
    also: tuple[tuple[str, str], ...] = ()

    def matches(self, tags: Mapping[str, str]) -> bool:
        """Whether an object's tags satisfy this rule (``tags`` only needs ``get``)."""
        value = tags.get(self.key)
        if value is None or value in self.exclude:
            return False
        if self.values is not None and value not in self.values:
            return False
        return all(tags.get(k) == v for k, v in self.also)


def _rule(key: str, values: str | None = None, exclude: str = "", also: tuple[tuple[str, str], ...] = ()) -> TagRule:
    """Rule from space-separated value lists (keeps the tables below readable)."""
    vals = None if values is None else frozenset(values.split())
    return TagRule(key, vals, frozenset(exclude.split()), also)


_POIS = (
    _rule("amenity", "police fire_station post_box post_office telephone library townhall courthouse prison embassy "
          "community_centre nursing_home arts_centre grave_yard marketplace recycling university school kindergarten "
          "college public_building pharmacy hospital clinic doctors dentist veterinary theatre nightclub cinema "
          "swimming_pool restaurant fast_food cafe pub bar food_court biergarten shelter car_rental car_wash "
          "car_sharing bicycle_rental vending_machine bank atm toilets bench drinking_water fountain hunting_stand "
          "waste_basket emergency_phone"),
    _rule("shop", "supermarket bakery kiosk mall department_store general convenience clothes florist chemist books "
          "butcher shoes alcohol beverages optician jewelry gift sports stationery outdoor mobile_phone toys "
          "newsagent greengrocer beauty video car bicycle doityourself hardware furniture computer garden_centre "
          "hairdresser car_repair travel_agency laundry dry_cleaning"),
    _rule("tourism", "hotel motel bed_and_breakfast guest_house hostel chalet camp_site alpine_hut caravan_site "
          "information attraction museum artwork picnic_site viewpoint zoo theme_park"),
    _rule("leisure", "park playground dog_park sports_centre pitch swimming_pool golf_course stadium ice_rink"),
    _rule("historic", "monument memorial castle ruins archaeological_site wayside_cross wayside_shrine "
          "battlefield fort"),
    _rule("man_made", "surveillance tower water_tower windmill lighthouse wastewater_plant water_well watermill "
          "water_works"),
    _rule("emergency", "phone fire_hydrant"),
    _rule("highway", "emergency_access_point"),
    _rule("office", "diplomatic"),
)
_PLACES = (
    _rule("place", "city town village hamlet suburb island farm isolated_dwelling region county locality"),
)
# Linear barriers are ways in Geofabrik's data; as nodes they are not traffic points.
_LINEAR_BARRIERS = ("fence wall kerb hedge retaining_wall city_wall guard_rail handrail ditch hedge_bank "
                    "jersey_barrier cable_barrier line")
_TRAFFIC = (
    _rule("highway", "traffic_signals mini_roundabout stop crossing speed_camera motorway_junction turning_circle "
          "ford street_lamp services"),
    _rule("railway", "level_crossing crossing"),
    _rule("amenity", "fuel parking bicycle_parking"),
    _rule("leisure", "slipway marina"),
    _rule("man_made", "pier"),
    _rule("waterway", "dam waterfall lock_gate weir"),
    _rule("barrier", None, exclude=_LINEAR_BARRIERS + " no"),
)
_TRANSPORT = (
    _rule("railway", "station halt tram_stop"),
    _rule("public_transport", "stop_position", also=(("tram", "yes"),)),
    _rule("highway", "bus_stop"),
    _rule("public_transport", "stop_position", also=(("bus", "yes"),)),
    _rule("amenity", "bus_station taxi ferry_terminal"),
    _rule("aeroway", "aerodrome airfield helipad apron"),
    _rule("aerialway", "station"),
)
_ROADS = (
    _rule("highway", "motorway trunk primary secondary tertiary unclassified residential living_street pedestrian "
          "busway motorway_link trunk_link primary_link secondary_link tertiary_link service track bridleway "
          "cycleway footway path steps road"),
)
_RAILWAYS = (
    _rule("railway", "rail light_rail subway tram monorail narrow_gauge miniature funicular rack"),
    _rule("aerialway", "drag_lift chair_lift cable_car gondola goods platter t-bar j-bar magic_carpet zip_line "
          "rope_tow mixed_lift"),
)
_WATERWAYS = (_rule("waterway", "river stream canal drain"),)
_BUILDINGS = (_rule("building", None, exclude="no"),)
_LANDUSE = (
    _rule("landuse", "forest residential industrial cemetery allotments meadow commercial recreation_ground retail "
          "military quarry orchard vineyard grass farmland farmyard"),
    _rule("natural", "wood scrub heath"),
    _rule("leisure", "park common nature_reserve recreation_ground"),
    _rule("boundary", "national_park"),
    _rule("amenity", "grave_yard"),
)
_NATURAL = (
    _rule("natural", "spring glacier peak cliff volcano tree cave_entrance beach"),
    _rule("man_made", "adit mineshaft"),
    _rule("historic", "mine"),
)
_WATER = (
    _rule("natural", "water glacier wetland"),
    _rule("landuse", "reservoir"),
    _rule("waterway", "riverbank dock"),
)

TAG_RULES: dict[str, tuple[TagRule, ...]] = {
    "pois": _POIS, "places": _PLACES, "traffic": _TRAFFIC, "transport": _TRANSPORT,
    "roads": _ROADS, "railways": _RAILWAYS, "waterways": _WATERWAYS,
    "buildings": _BUILDINGS, "landuse": _LANDUSE, "natural": _NATURAL, "water": _WATER,
}


def select_layers(names: tuple[str, ...] | list[str] = ()) -> tuple[Layer, ...]:
    """Layers by name in the canonical order (the column order); empty means all 11.

    Raises:
        KeyError: an unknown layer name (config validation normally catches this first).
    """
    wanted = set(names)
    unknown = wanted - set(LAYER_BY_NAME)
    if unknown:
        raise KeyError(f"unknown layers {sorted(unknown)}; allowed: {', '.join(LAYER_BY_NAME)}")
    return tuple(layer for layer in LAYERS if not wanted or layer.name in wanted)


def element_of(layer: Layer) -> str:
    """OSM element kind a layer is built from: "node", "way" (as a line) or "area"."""
    return ELEMENT_BY_KIND[layer.kind]


def tag_keys(layers: tuple[Layer, ...]) -> tuple[str, ...]:
    """Every tag key any rule of ``layers`` tests first; a cheap pre-filter for the reader."""
    return tuple(sorted({rule.key for layer in layers for rule in TAG_RULES[layer.name]}))


def matching_layers(tags: Mapping[str, str], layers: tuple[Layer, ...]) -> list[str]:
    """Names of the ``layers`` whose rules an object with ``tags`` satisfies (an object may be in several)."""
    return [layer.name for layer in layers if any(rule.matches(tags) for rule in TAG_RULES[layer.name])]
