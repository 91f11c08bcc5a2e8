"""Request and response models of the HTTP API, kept apart from the internal ``Query``/``Recommendation`` types.

Every range the service accepts is declared here, so FastAPI answers malformed or out-of-range input with a 422 that
names the field, the OpenAPI schema documents the limits, and the handlers only ever see valid values.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

MAX_K = 1000
MAX_ID_LEN = 256
MAX_LIKED = 1000

def _valid_text(value: str) -> str:
    """Refuse text that is not valid Unicode (a lone surrogate from a JSON ``\\udc80`` escape): a 422, not a 500."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogate)") from None
    return value


Text = Annotated[str, AfterValidator(_valid_text)]
ItemId = Annotated[Text, Field(min_length=1, max_length=MAX_ID_LEN)]
Lat = Annotated[float, Field(ge=-90.0, le=90.0, allow_inf_nan=False, description="latitude in degrees")]
Lon = Annotated[float, Field(ge=-180.0, le=180.0, allow_inf_nan=False, description="longitude in degrees")]
Radius = Annotated[float, Field(gt=0.0, allow_inf_nan=False, description="radius in km around (lat, lon)")]


def point_rule_error(lat: float | None, lon: float | None, radius_km: float | None) -> str | None:
    """The cross-field rule of both endpoints (None when satisfied): lat and lon together; a radius needs a point."""
    if (lat is None) != (lon is None):
        return "lat and lon must be given together"
    if radius_km is not None and lat is None:
        return "radius_km needs lat and lon"
    return None


# GET /recommend takes plain query parameters (FastAPI parses them several times faster than a query model)
QUserId = Annotated[str | None, Query(max_length=MAX_ID_LEN, description="a trained user's id; none: popular")]
QK = Annotated[int, Query(ge=1, le=MAX_K, description="how many places to return")]
QLat = Annotated[float | None, Query(ge=-90.0, le=90.0, allow_inf_nan=False, description="latitude in degrees")]
QLon = Annotated[float | None, Query(ge=-180.0, le=180.0, allow_inf_nan=False, description="longitude in degrees")]
QRadius = Annotated[float | None, Query(gt=0.0, allow_inf_nan=False, description="radius in km around (lat, lon)")]
QExcludeSeen = Annotated[bool, Query(description="leave out places the user interacted with in training")]
QExplain = Annotated[bool, Query(description="add `reasons` to every place: liked places, distance, surroundings")]


class RecommendRequest(BaseModel):
    """Body of ``POST /recommend``: the GET parameters plus ``liked`` item ids for a cold-start user."""

    model_config = ConfigDict(extra="forbid")

    user_id: Annotated[Text | None, Field(max_length=MAX_ID_LEN, description="a trained user's id")] = None
    liked: Annotated[list[ItemId], Field(max_length=MAX_LIKED, description="item ids the user likes")] = []
    k: Annotated[int, Field(ge=1, le=MAX_K, description="how many places to return")] = 10
    lat: Lat | None = None
    lon: Lon | None = None
    radius_km: Radius | None = None
    exclude_seen: Annotated[bool, Field(description="leave out places the user interacted with in training")] = True
    explain: Annotated[bool, Field(description="add `reasons` to every place (liked places that contributed most, "
                                               "distance, surroundings features)")] = False

    @model_validator(mode="after")
    def _point_rules(self) -> RecommendRequest:
        error = point_rule_error(self.lat, self.lon, self.radius_km)
        if error is not None:
            raise ValueError(error)
        return self


class RecommendedItem(BaseModel):
    item_id: str
    score: float
    name: str | None = None
    lat: float | None = None
    lon: float | None = None
    distance_km: float | None = None
    reasons: dict[str, Any] | None = None  # with explain=true: see geotower.retrieve.explain


class RecommendResponse(BaseModel):
    items: list[RecommendedItem]
    mode: Literal["user", "cold_start", "popularity"]
    note: str | None = None


class ItemInfo(BaseModel):
    item_id: str
    name: str | None = None
    lat: float | None = None
    lon: float | None = None
    popularity: float = 0.0
    trained: bool = True


class ItemsPage(BaseModel):
    items: list[ItemInfo]
    total: int


class UsersPage(BaseModel):
    users: list[str]
    total: int


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    items: int
    users: int
    index: str
    recall_at_10: float | None = None


class ErrorResponse(BaseModel):
    detail: str
