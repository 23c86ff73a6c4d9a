"""Item thumbnails of the marketplace: 32 x 32 RGB pictures drawn from each item's hidden style.

A product photo shows what the catalogue's columns cannot: colour, pattern, look. Here every item
gets a small rendered thumbnail whose colours and stripes are a function of its **style** -- the
within-leaf part of its taste vector (``latent.item_embedding`` minus the mean vector of its
category leaf), i.e. the part that drives users' choices and that category, brand and price do
not carry -- plus a category-specific silhouette and Gaussian noise:

- a palette of three colours (background, body, accent badge), each ``sigmoid(g_top * A s + b_leaf)``
  with ``s`` the standardised style, ``A`` a fixed random projection and ``b_leaf`` the leaf's hue;
- stripes across the body whose frequency, orientation and contrast are other projections of ``s``;
- a silhouette per top category (a superellipse: diamond, disc, square, ...) sized per leaf;
- pixel noise and a per-item lighting jitter.

``g_top`` is the visual strength of style in a top category: photos of fashion show taste
strongly, phones and groceries look much alike (:data:`VISUAL_STRENGTH`). Rendering is
vectorised over a pixel grid (items in chunks, no loop per item) and draws from its own generator
``np.random.default_rng([config.seed, 22])``, so the world's other tables are untouched.

The truth: :func:`style_r2` fits a ridge probe from 8 x 8 average-pooled pixels (192 features) to
the style on 70% of the items and reports R² on the other 30% (``image_style_r2``), next to the
same probe from attributes (one-hot leaf, brand, price band within the leaf: ``attributes_style_r2``)
and the image R² per top category. Rendering idea after the synthetic "dSprites"-style datasets
(Matthey et al. 2017); VBPR (He & McAuley 2016) for why visual style matters in recommendation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys_utils.data import taxonomy as tx

#: side of a thumbnail in pixels
SIZE = 32
#: the generator's stream key: ``np.random.default_rng([seed, STREAM])``
STREAM = 22
#: how strongly style shows in the photos of each top category (1 = fully, 0 = not at all)
VISUAL_STRENGTH = {"Electronics": 0.15, "Home & Kitchen": 0.7, "Fashion": 1.0, "Beauty": 0.8,
                   "Sports & Outdoors": 0.5, "Toys & Kids": 0.6, "Grocery": 0.2, "Books & Media": 0.3}
#: superellipse exponent of each top category's silhouette (1 diamond, 2 disc, large = square)
SHAPE_POWER = {"Electronics": 8.0, "Home & Kitchen": 3.0, "Fashion": 1.4, "Beauty": 2.0,
               "Sports & Outdoors": 2.0, "Toys & Kids": 1.0, "Grocery": 5.0, "Books & Media": 12.0}
NOISE_SD = 0.05
#: gain of the style in the colour logits, and the spread of the leaves' hue offsets
COLOUR_GAIN = 2.5
HUE_SD = 0.6
CHUNK = 4096


def style_vectors(latent) -> np.ndarray:
    """The hidden style of every item: its taste vector minus the mean vector of its category leaf."""
    emb = np.asarray(latent.item_embedding, dtype=np.float64)
    leaf = np.asarray(latent.item_leaf)
    n_leaves = int(leaf.max()) + 1
    sums = np.zeros((n_leaves, emb.shape[1]))
    np.add.at(sums, leaf, emb)
    counts = np.bincount(leaf, minlength=n_leaves)[:, None]
    return emb - (sums / np.maximum(counts, 1))[leaf]


def _leaf_parameters(rng: np.random.Generator, n_leaves: int) -> dict[str, np.ndarray]:
    """Per-leaf hue offsets of the three colours and the silhouette's half-width and half-height."""
    return {"offset": rng.normal(0.0, HUE_SD, (n_leaves, 9)),
            "half_w": rng.uniform(0.45, 0.7, n_leaves), "half_h": rng.uniform(0.45, 0.7, n_leaves)}


def _item_parameters(style: np.ndarray, leaf: np.ndarray, strength: np.ndarray, rng: np.random.Generator,
                     leaf_params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Colours (n, 9) in [0, 1] and stripe frequency / angle / contrast (n,) from the style."""
    n, d = style.shape
    s = style / np.maximum(style.std(axis=0, keepdims=True), 1e-12)
    colour_map = rng.normal(0.0, 1.0 / np.sqrt(d), (d, 9))
    stripe_map = rng.normal(0.0, 1.0 / np.sqrt(d), (d, 3))
    g = strength[:, None]
    colours = 1.0 / (1.0 + np.exp(-(COLOUR_GAIN * g * (s @ colour_map) + leaf_params["offset"][leaf])))
    z = g * (s @ stripe_map)
    return {"colours": colours, "freq": 1.5 + 3.0 / (1.0 + np.exp(-1.5 * z[:, 0])),
            "angle": np.pi / (1.0 + np.exp(-1.5 * z[:, 1])), "contrast": 0.5 / (1.0 + np.exp(-1.5 * z[:, 2])),
            "phase": rng.uniform(0.0, 2 * np.pi, n), "light": rng.normal(0.0, 0.04, n)}


def _render_chunk(p: dict[str, np.ndarray], power: np.ndarray, half_w: np.ndarray, half_h: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
    """Float images (m, SIZE, SIZE, 3) for one chunk of items, by broadcasting over the pixel grid."""
    axis = (np.arange(SIZE) + 0.5) / SIZE * 2.0 - 1.0  # pixel centres in [-1, 1]
    y, x = axis[None, :, None], axis[None, None, :]
    inside = (np.abs(x / half_w[:, None, None]) ** power[:, None, None]
              + np.abs(y / half_h[:, None, None]) ** power[:, None, None]) <= 1.0
    angle, freq = p["angle"][:, None, None], p["freq"][:, None, None]
    wave = np.sin(np.pi * freq * (x * np.cos(angle) + y * np.sin(angle)) + p["phase"][:, None, None])
    stripe = (p["contrast"][:, None, None] * (wave > 0))[..., None]  # (m, S, S, 1)
    background, body, accent = (p["colours"][:, None, None, 3 * k:3 * k + 3] for k in range(3))
    image = np.where(inside[..., None], (1.0 - stripe) * body + stripe * accent, background)
    badge = (x > 0.55) & (y > 0.55)  # a logo in the accent colour, bottom right, on every item
    image = np.where(badge[..., None], accent, image)
    image = image + p["light"][:, None, None, None] + rng.normal(0.0, NOISE_SD, image.shape)
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)


def render_thumbnails(latent, config) -> np.ndarray:
    """Thumbnails of every item: uint8 array ``(n_items, 32, 32, 3)``, deterministic for ``config.seed``."""
    rng = np.random.default_rng([config.seed, STREAM])
    leaf = np.asarray(latent.item_leaf)
    tops = tx.top_names()
    top = np.asarray(latent.leaf_top)[leaf]
    leaf_params = _leaf_parameters(rng, len(latent.leaf_top))
    strength = np.array([VISUAL_STRENGTH[t] for t in tops])[top]
    params = _item_parameters(style_vectors(latent), leaf, strength, rng, leaf_params)
    power = np.array([SHAPE_POWER[t] for t in tops])[top]
    out = np.empty((len(leaf), SIZE, SIZE, 3), dtype=np.uint8)
    for start in range(0, len(leaf), CHUNK):  # chunks bound the memory; each chunk is one broadcast
        part = slice(start, start + CHUNK)
        out[part] = _render_chunk({k: v[part] for k, v in params.items()}, power[part],
                                  leaf_params["half_w"][leaf[part]], leaf_params["half_h"][leaf[part]], rng)
    return out


def pooled_pixels(images: np.ndarray, cells: int = 8) -> np.ndarray:
    """Simple image features: the mean colour of each of ``cells x cells`` blocks, in [0, 1] (n, cells² * 3)."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1] % cells or images.shape[2] % cells:
        raise ValueError(f"pooled_pixels: images must be (n, H, W, C) with H and W divisible by {cells}, "
                         f"got {images.shape}")
    n, h, w, c = images.shape
    blocks = images.reshape(n, cells, h // cells, cells, w // cells, c).mean(axis=(2, 4)) / 255.0
    return blocks.reshape(n, -1)


def attribute_features(items: pd.DataFrame, n_bands: int = 5) -> np.ndarray:
    """Dense one-hot leaf category, brand and price band (price quantile within the leaf) of the items."""
    band = items.groupby("category")["price"].rank(pct=True).to_numpy()
    band = np.minimum((band * n_bands).astype(int), n_bands - 1)
    parts = [pd.get_dummies(items["category"]).to_numpy(float), pd.get_dummies(items["brand"]).to_numpy(float),
             np.eye(n_bands)[band]]
    return np.hstack(parts)


def _ridge_predict(features: np.ndarray, target: np.ndarray, train: np.ndarray, alpha: float) -> np.ndarray:
    """Predictions for every row of a ridge probe on standardised features, fitted on the ``train`` rows."""
    from sklearn.linear_model import Ridge
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(features[train])
    return Ridge(alpha=alpha).fit(scaler.transform(features[train]), target[train]).predict(scaler.transform(features))


def _r2(target: np.ndarray, prediction: np.ndarray) -> float:
    """R² pooled over the style's dimensions (sklearn's ``variance_weighted``)."""
    from sklearn.metrics import r2_score

    return float(r2_score(target, prediction, multioutput="variance_weighted"))


def style_r2(world, share_train: float = 0.7, alpha: float = 10.0, seed: int = 0) -> dict[str, object]:
    """How much of the hidden style a linear probe reads from thumbnails, and from the attributes.

    Features: :func:`pooled_pixels` (8 x 8 mean colours) for the images, :func:`attribute_features`
    (one-hot leaf, brand, price band) for the attributes; a ridge regression (``alpha``) on
    standardised features fitted on a random ``share_train`` of the items, R² on the rest. Returns
    ``image_style_r2``, ``attributes_style_r2`` and ``image_style_r2_by_top`` (a Series: the image
    R² on the held-out items of each top category, largest first).
    """
    if not 0.0 < share_train < 1.0:
        raise ValueError(f"style_r2: share_train must lie strictly between 0 and 1, got {share_train}")
    style = style_vectors(world.latent)
    train = np.random.default_rng(seed).random(len(style)) < share_train
    test = ~train
    from_image = _ridge_predict(pooled_pixels(world.thumbnails), style, train, alpha)
    from_attributes = _ridge_predict(attribute_features(world.items), style, train, alpha)
    top = world.items["top_category"].to_numpy()
    by_top = {name: _r2(style[test & (top == name)], from_image[test & (top == name)])
              for name in tx.top_names() if (test & (top == name)).sum() >= 2}
    return {"image_style_r2": _r2(style[test], from_image[test]),
            "attributes_style_r2": _r2(style[test], from_attributes[test]),
            "image_style_r2_by_top": pd.Series(by_top, name="image_style_r2").sort_values(ascending=False)}


__all__ = ["SIZE", "VISUAL_STRENGTH", "attribute_features", "pooled_pixels", "render_thumbnails", "style_r2",
           "style_vectors"]
