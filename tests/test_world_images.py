"""Item thumbnails of the marketplace: deterministic, separate from the other tables, carrying the style."""

import hashlib

import numpy as np
import pandas as pd
import pytest

from recsys_utils.data import world_images as wi
from recsys_utils.data.world import generate

TABLES = ("users", "items", "interactions", "reviews", "cancelled")
#: sha256 of the users and items tables of generate(n_users=300, n_items=120, n_weeks=3, seed=3),
#: computed with the code before thumbnails existed (commit 54f54a3)
USERS_ITEMS_SHA = "330e40389b347816abf006f631c2b10208628a741c0343a13d612e2ceb8bafa8"


def _sha(world, names) -> str:
    digest = hashlib.sha256()
    for name in names:
        digest.update(pd.util.hash_pandas_object(getattr(world, name), index=True).to_numpy().tobytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def small():
    return generate(n_users=300, n_items=120, n_weeks=3, seed=3)


def test_thumbnails_are_deterministic_per_seed_and_differ_across_seeds(small):
    images = small.thumbnails
    assert images.shape == (120, wi.SIZE, wi.SIZE, 3) and images.dtype == np.uint8
    again = wi.render_thumbnails(generate(n_users=300, n_items=120, n_weeks=3, seed=3).latent, small.config)
    np.testing.assert_array_equal(images, again)
    other = generate(n_users=300, n_items=120, n_weeks=3, seed=4).thumbnails
    assert np.abs(images.astype(int) - other.astype(int)).mean() > 10
    assert images.std() > 20  # pictures, not a flat colour


def test_world_tables_are_unchanged_by_the_thumbnails(small):
    before = _sha(small, TABLES)
    _ = small.thumbnails
    assert _sha(small, TABLES) == before
    assert _sha(small, ("users", "items")) == USERS_ITEMS_SHA


def test_style_is_the_within_leaf_part_of_the_embedding(small):
    style = wi.style_vectors(small.latent)
    leaf = small.latent.item_leaf
    for value in np.unique(leaf)[:5]:
        np.testing.assert_allclose(style[leaf == value].mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(style[leaf == leaf[0]][0], small.latent.item_embedding[0]
                               - small.latent.item_embedding[leaf == leaf[0]].mean(axis=0))


def test_pooled_pixels_by_hand_and_bad_shape():
    images = np.zeros((1, 4, 4, 1), dtype=np.uint8)
    images[0, :2, :2, 0] = 255
    np.testing.assert_allclose(wi.pooled_pixels(images, cells=2), [[1.0, 0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="divisible"):
        wi.pooled_pixels(np.zeros((2, 30, 30, 3)), cells=8)


def test_images_carry_the_style_and_attributes_do_not():
    world = generate(n_users=200, n_items=800, n_weeks=2, seed=5)
    truth = wi.style_r2(world)
    assert truth["image_style_r2"] >= 0.3, truth
    assert truth["attributes_style_r2"] <= 0.1, truth
    assert truth["image_style_r2"] >= truth["attributes_style_r2"] + 0.25, truth
    by_top = truth["image_style_r2_by_top"]
    assert by_top["Fashion"] > by_top["Electronics"], by_top
    with pytest.raises(ValueError, match="share_train"):
        wi.style_r2(world, share_train=1.0)
