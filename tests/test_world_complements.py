"""The marketplace's complementary follow-ups: old world unchanged, relation visible in purchases, config checks."""

import hashlib

import numpy as np
import pandas as pd
import pytest

from recsys_utils.data import taxonomy as tx
from recsys_utils.data.world import generate, load_marketplace
from recsys_utils.data.world_complements import (
    COMPLEMENT_TABLE,
    complement_frame,
    complement_matrix,
    is_complementary,
)
from recsys_utils.data.world_latent import WorldConfig

SMALL = dict(n_users=400, n_items=200, n_weeks=3, seed=7)
#: sha256 (first 16 hex) of each table of the SMALL world and of the default world, computed with the
#: code before the follow-ups were added (issue 23): the old world must not move
SMALL_HASHES = {"users": "f382b71fa4409a1c", "items": "9a95c5355d0bad03", "interactions": "ade6e089fe2e5e3b",
                "reviews": "db678082a44cd115", "cancelled": "ed335d25c2aff671"}
DEFAULT_HASHES = {"users": "857db219cde13c7d", "items": "55110ee9a3e34f75", "interactions": "d6acddb5c843031c",
                  "reviews": "26a9de682fcefcf9", "cancelled": "eb596c61d6b53067"}


def _hash(frame: pd.DataFrame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes()).hexdigest()[:16]


def _old_world_kept(kwargs: dict, hashes: dict) -> None:
    old = generate(complement_rate=0.0, **kwargs)
    assert {name: _hash(getattr(old, name)) for name in hashes} == hashes
    new = generate(**kwargs)
    for name in ("users", "items", "reviews", "cancelled"):
        assert _hash(getattr(new, name)) == hashes[name], name
    last_old_session = old.interactions["session_id"].max()
    kept = new.interactions[new.interactions["session_id"] <= last_old_session].reset_index(drop=True)
    assert _hash(kept) == hashes["interactions"]  # the world minus the follow-ups is the old world
    added = new.interactions[new.interactions["session_id"] > last_old_session]
    assert len(added) > 0
    # each follow-up session is one view, one add-to-cart and one purchase, in that order
    per_session = added.groupby("session_id")["event"].agg(list)
    assert (per_session.map(tuple) == ("view", "add_to_cart", "purchase")).all()
    assert new.interactions["timestamp"].is_monotonic_increasing
    assert added["timestamp"].max() < new.end


def test_small_world_minus_followups_is_the_old_world():
    _old_world_kept(SMALL, SMALL_HASHES)


def test_default_world_minus_followups_is_the_old_world():
    _old_world_kept({}, DEFAULT_HASHES)


def _purchase_lift(world, source: str, target: str, days: float = 7.0) -> float:
    """P(buy in target within `days` after a source purchase) / P(same after any purchase), by brute force."""
    buys = world.interactions[world.interactions["event"] == "purchase"][["user_id", "item_id", "timestamp"]]
    buys = buys.merge(world.items[["item_id", "category"]], on="item_id")
    pairs = buys.merge(buys, on="user_id", suffixes=("", "_next"))
    gap = pairs["timestamp_next"] - pairs["timestamp"]
    pairs = pairs[(gap > pd.Timedelta(0)) & (gap <= pd.Timedelta(days=days))]
    hit = pairs[pairs["category_next"] == target].drop_duplicates(["user_id", "timestamp", "item_id"])
    hit_keys = set(zip(hit["user_id"], hit["timestamp"], hit["item_id"], strict=True))
    flag = np.array([k in hit_keys for k in zip(buys["user_id"], buys["timestamp"], buys["item_id"],
                                                  strict=True)])
    is_source = (buys["category"] == source).to_numpy()
    return float(flag[is_source].mean() / flag.mean())


def test_the_relation_shows_up_in_the_purchases():
    world = load_marketplace()
    for source, target in [("Electronics > Phones", "Electronics > Audio"),
                           ("Home & Kitchen > Cookware", "Grocery > Pantry"),
                           ("Toys & Kids > Baby Care", "Toys & Kids > Kids Clothing")]:
        assert _purchase_lift(world, source, target) > 2.5, (source, target)
    # not pairs (nor the reverse direction of a pair): about 1 (a shared top category's taste lifts a
    # little), never the strong lift of a pair
    for source, target in [("Electronics > Audio", "Electronics > Phones"),
                           ("Grocery > Pantry", "Home & Kitchen > Cookware"),
                           ("Fashion > Bags", "Beauty > Skincare")]:
        assert _purchase_lift(world, source, target) < 2.0, (source, target)


def test_truth_helpers_and_table():
    leaves = tx.leaf_names()
    assert 15 <= len(COMPLEMENT_TABLE) <= 25
    assert all(s in leaves and t in leaves and s != t and 0 < w <= 1 for s, t, w in COMPLEMENT_TABLE)
    frame = complement_frame()
    assert list(frame.columns) == ["source_category", "target_category", "strength"]
    assert len(frame) == len(COMPLEMENT_TABLE)
    assert complement_matrix(0.0).sum() == 0 and complement_matrix(10.0).max() == 1.0
    world = generate(**SMALL)
    assert world.complements.equals(frame)
    items = world.items.set_index("category")["item_id"]
    phone, audio = items["Electronics > Phones"].iloc[0], items["Electronics > Audio"].iloc[0]
    assert is_complementary(world, [phone], [audio]).tolist() == [True]
    assert is_complementary(world, [audio], [phone]).tolist() == [False]  # directional
    assert is_complementary(world, phone, [audio, phone]).tolist() == [True, False]
    with pytest.raises(KeyError, match="unknown item"):
        is_complementary(world, [1], [audio])


@pytest.mark.parametrize("bad", [-0.1, 5.5, float("nan")])
def test_complement_rate_is_range_checked(bad):
    with pytest.raises(ValueError, match="complement_rate"):
        WorldConfig(complement_rate=bad)
    with pytest.raises(TypeError, match="complement_rate"):
        WorldConfig(complement_rate="high")
