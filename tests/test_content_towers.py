"""Content towers (TextCNN, ImageCNN) and the content-to-factor cold-start recommender."""

import numpy as np
import pandas as pd
import pytest
import torch

from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.evaluation.protocol import evaluate
from recsys_utils.models import registry
from recsys_utils.models.als import ALS
from recsys_utils.models.content_towers import (
    AttributeTower,
    ImageCNN,
    TextCNN,
    conv_output_size,
    encode_titles,
    valid_windows,
)
from recsys_utils.models.hybrid import restrict_items, restrict_matrix
from recsys_utils.models.multimodal import ContentToFactors, weighted_factor_loss


def test_text_cnn_shape_and_padding_never_changes_the_output():
    torch.manual_seed(0)
    net = TextCNN(vocab_size=20, out_dim=5, embed_dim=4, n_filters=3).eval()
    tokens = torch.tensor([[3, 4, 5, 0, 0], [7, 0, 0, 0, 0], [1, 2, 3, 4, 5]])
    out = net(tokens)
    assert out.shape == (3, 5)
    padded = torch.nn.functional.pad(tokens, (0, 6))  # more padding on the right
    torch.testing.assert_close(net(padded), out)
    # the mask itself: windows inside the title, and a too-short title keeps its first window
    mask = valid_windows(tokens, 2)
    assert mask.tolist() == [[True, True, False, False], [True, False, False, False], [True] * 4]


def test_text_cnn_max_pool_matches_a_brute_force_loop():
    torch.manual_seed(1)
    net = TextCNN(vocab_size=10, out_dim=2, embed_dim=3, n_filters=2, widths=(2,)).eval()
    tokens = torch.tensor([[1, 2, 3, 0]])
    emb = net.embedding(tokens)[0]  # (L, d)
    conv = net.convs[0]
    windows = [torch.relu((conv.weight * emb[t:t + 2].T[None]).sum(dim=(1, 2)) + conv.bias) for t in range(2)]
    expected = torch.stack(windows).max(dim=0).values
    torch.testing.assert_close(net.features(tokens)[0], expected)


def test_image_cnn_and_attribute_tower_shapes():
    net = ImageCNN(out_dim=7, channels=(4, 8))
    uint8 = torch.randint(0, 255, (5, 32, 32, 3), dtype=torch.uint8)
    assert net(uint8).shape == (5, 7)
    assert net(torch.rand(5, 3, 32, 32)).shape == (5, 7)
    with pytest.raises(ValueError, match="expected"):
        net(torch.rand(5, 32, 32))
    tower = AttributeTower([4, 3], out_dim=6)
    assert tower(torch.tensor([[0, 1], [3, 2]])).shape == (2, 6)
    assert conv_output_size(32, 3, padding=1) == 32 and conv_output_size(32, 2, stride=2) == 16


def test_encode_titles_pads_with_zero():
    items = pd.DataFrame({"item_id": [1, 2, 3], "title": ["Red wool coat", "Red coat", "Blue lamp"]})
    tokens, vocab_size = encode_titles(items, IdIndex(np.array([1, 2, 3]), "item_id"), max_tokens=4, min_count=1)
    assert tokens.shape == (3, 4) and vocab_size == 6  # red wool coat blue lamp + padding
    assert (tokens[1, 2:] == 0).all() and (tokens[0, :3] > 0).all()


def test_weighted_factor_loss_by_hand():
    predicted = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    target = torch.tensor([[0.0, 0.0], [0.0, 2.0]])
    assert weighted_factor_loss(predicted, target, torch.tensor([1.0, 3.0])).item() == pytest.approx((1 + 3 * 4) / 4)


def _world(seed: int = 0, n_users: int = 120, n_items: int = 60):
    """Items in two colour groups (visible in the image and the title); users like one group."""
    rng = np.random.default_rng(seed)
    group = np.arange(n_items) % 2
    images = np.zeros((n_items, 32, 32, 3), dtype=np.uint8)
    images[group == 0, :, :, 0] = 220
    images[group == 1, :, :, 2] = 220
    images = np.clip(images + rng.integers(0, 30, images.shape), 0, 255).astype(np.uint8)
    items = pd.DataFrame({"item_id": np.arange(n_items) + 1,
                          "title": np.where(group == 0, "red scarf", "blue scarf"),
                          "category": "Scarves", "top_category": "Fashion", "brand": rng.choice(["a", "b"], n_items),
                          "price": rng.uniform(10, 20, n_items)})
    likes = (np.arange(n_users)[:, None] % 2) == group[None, :]
    clicks = likes & (rng.random(likes.shape) < 0.4)
    cold = np.arange(n_items) >= n_items - 10
    user, item = np.nonzero(clicks)
    frame = pd.DataFrame({"user_id": user, "item_id": item + 1})
    index = IdIndex(np.arange(n_users), "user_id"), IdIndex(items.item_id.to_numpy(), "item_id")
    train = Interactions.from_frame(frame[~cold[item]], *index)
    test = Interactions.from_frame(frame[cold[item]], *index)
    return items, images, train, test, cold


@pytest.mark.parametrize("modalities", [("image",), ("text", "image", "attributes")])
def test_cold_start_model_beats_an_attribute_free_baseline(modalities):
    items, images, train, test, cold = _world()
    model = ContentToFactors(ALS(dim=4, l2=0.1, epochs=8, device="cpu"), items, images, modalities=modalities,
                             tower_dim=8, image_channels=(4, 8), epochs=30, lr=1e-2, val_share=0.0, seed=0,
                             device="cpu")  # 50 warm items: too few to hold some out for early stopping
    model.fit(train)
    assert model.cold_items_.tolist() == np.flatnonzero(cold).tolist()
    assert model.item_factors_.shape == (len(items), 4) and model.score(np.array([0, 1])).shape == (2, len(items))
    restricted = restrict_items(model, cold)
    ours = evaluate(restricted, train, restrict_matrix(test, cold), k=5)["ndcg@5"]
    baseline = evaluate(restrict_items(registry.create("random", seed=0).fit(train), cold), train,
                        restrict_matrix(test, cold), k=5)["ndcg@5"]
    assert ours >= baseline + 0.2, (ours, baseline)


def test_bad_inputs_are_named():
    items, images, train, _, _ = _world()
    with pytest.raises(ValueError, match="modalities"):
        ContentToFactors(ALS(dim=2), items, images, modalities=("audio",))
    with pytest.raises(ValueError, match="needs images"):
        ContentToFactors(ALS(dim=2), items, None, modalities=("image",))
    with pytest.raises(ValueError, match="images for"):
        ContentToFactors(ALS(dim=2), items, images[:3])
    with pytest.raises(KeyError, match="not in the item table"):
        ContentToFactors(ALS(dim=2, epochs=1), items.iloc[:5], images[:5], epochs=1).fit(train)
