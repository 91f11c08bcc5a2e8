"""The example dataset specs in ``examples/`` load the real reference files through the dataset-folder contract.

Folders are assembled in ``tmp_path`` exactly as ``examples/README.md`` describes (the data is never copied into the
repository). Expected numbers are counts of the reference files themselves (see ``../shared/data/README.md``).
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pandas as pd
import pytest

from geotower import schema as S
from geotower.errors import GeotowerWarning
from geotower.ingest.dataset import load_dataset

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
EXAMPLES = REPO / "examples"

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="reference data ../shared/data not available")


def test_ml100k_spec_loads_ratings_items_and_users(tmp_path: Path) -> None:
    src = DATA / "ml-100k"
    shutil.copyfile(src / "ratings.csv", tmp_path / "interactions.csv")
    shutil.copyfile(src / "items.csv", tmp_path / "items.csv")
    shutil.copyfile(src / "users.csv", tmp_path / "users.csv")
    shutil.copyfile(EXAMPLES / "ml-100k" / "dataset.toml", tmp_path / "dataset.toml")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = load_dataset(tmp_path)
    # two items have the year "unkonwn"/"V": imputed with a warning that names the column
    assert any(issubclass(w.category, GeotowerWarning) and "release_year" in str(w.message) for w in caught)
    ratings = pd.read_csv(src / "ratings.csv")
    assert len(ds.interactions) == 80_003 == len(ratings)
    assert ds.has_timestamps and not ds.has_coordinates
    # positive = rating - 2 > 0: 3, 4 and 5 stars
    assert int(ds.interactions[S.POSITIVE].sum()) == int((ratings["rating"] >= 3).sum())
    assert ds.items["release_year"].dtype.kind == "f"
    assert ds.items.loc[ds.items[S.ITEM_ID] == "1", "genres"].item() == "Animation Children's Comedy"
    assert ds.users is not None and len(ds.users) == 943
    assert ds.spec.items.multi_label == {"genres": " "}
    assert ds.spec.users.categorical == ("gender", "occupation")


def test_foursquare_spec_loads_checkins_as_weighted_positives(tmp_path: Path) -> None:
    src = DATA / "foursquare-sg"
    checkins = pd.read_csv(src / "checkins.csv", dtype={"user_id": str, "poi_id": str})
    checkins.rename(columns={"poi_id": S.ITEM_ID}).to_csv(tmp_path / "interactions.csv", index=False)
    pois = pd.read_csv(src / "pois.csv", dtype={"poi_id": str})
    pois.rename(columns={"poi_id": S.ITEM_ID}).to_csv(tmp_path / "items.csv", index=False)
    shutil.copyfile(EXAMPLES / "foursquare-sg" / "dataset.toml", tmp_path / "dataset.toml")
    ds = load_dataset(tmp_path, strict=True)
    assert len(ds.interactions) == 69_159 and len(ds.items) == 5_596
    assert ds.interactions[S.USER_ID].nunique() == 2_318
    assert ds.has_coordinates and not ds.has_timestamps
    assert bool(ds.interactions[S.POSITIVE].all())  # no rating column: every visit is a positive
    # the visit count is the confidence weight, row for row
    assert ds.interactions[S.WEIGHT].tolist() == checkins["checkins"].astype("float32").tolist()
    assert ds.items[S.LAT].between(1.1, 1.5).all() and ds.items[S.LON].between(103.5, 104.1).all()
