"""Reading a saved serving pipeline defensively: every failure is a :class:`PipelineFormatError`
naming the file and what is wrong, checked when the file is loaded rather than at ``recommend()``.

The file is a ``numpy.savez`` archive (``allow_pickle=False``) with a JSON ``manifest`` (see
:meth:`recsys_utils.pipeline.serving.ServingPipeline.save`). A truncated or empty file, a bad
manifest, a version that is not this one, object arrays, arrays of the wrong shape or with NaN or
infinite values are all refused here.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

FORMAT = "recsys_utils.pipeline.serving"
FORMAT_VERSION = 1
CHANNEL_ARRAYS = {"factors": ("user_factors", "item_factors"), "item_item": ("weights",),
                  "popularity": ("scores",)}


class PipelineFormatError(ValueError):
    """A saved pipeline file that this version cannot load (the message says why)."""


def read_pipeline_file(path: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The manifest and every array of a saved pipeline, validated (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise PipelineFormatError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise PipelineFormatError(f"{path}: the file is empty; not a saved pipeline")
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as error:
        reason = "it holds object arrays, which are never unpickled" if "allow_pickle" in str(error) else error
        raise PipelineFormatError(f"{path}: not a readable saved pipeline (truncated or corrupt: {reason})") from None
    if "manifest" not in arrays:
        raise PipelineFormatError(f"{path}: no manifest; not written by ServingPipeline.save")
    manifest = _manifest(path, arrays.pop("manifest"))
    _check_arrays(path, manifest, arrays)
    return manifest, arrays


def _manifest(path: Path, raw: np.ndarray) -> dict:
    try:
        manifest = json.loads(bytes(np.asarray(raw, dtype=np.uint8)).decode("utf-8"))
    except (ValueError, TypeError) as error:
        raise PipelineFormatError(f"{path}: the manifest is not valid JSON ({error})") from None
    if not isinstance(manifest, dict):
        raise PipelineFormatError(f"{path}: the manifest must be a JSON object, got {type(manifest).__name__}")
    if manifest.get("format") != FORMAT:
        raise PipelineFormatError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    version = manifest.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise PipelineFormatError(f"{path}: format_version must be the integer {FORMAT_VERSION}, got {version!r} "
                                  f"({type(version).__name__})")
    if version != FORMAT_VERSION:
        raise PipelineFormatError(f"{path}: saved with pipeline format version {version}, this recsys_utils "
                                  f"reads version {FORMAT_VERSION}; re-export the pipeline with this version")
    _require(path, manifest, "n_recall", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
             "a positive integer")
    _require(path, manifest, "history_shape", lambda v: isinstance(v, list) and len(v) == 2 and all(
        isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in v), "[n_users, n_items], both >= 1")
    _require(path, manifest, "item_features", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
             "a list of names")
    _require(path, manifest, "meta", lambda v: isinstance(v, dict), "a JSON object")
    _require(path, manifest, "channels", lambda v: isinstance(v, list) and v and all(
        isinstance(c, dict) and isinstance(c.get("name"), str) and c.get("kind") in CHANNEL_ARRAYS
        and isinstance(c.get("arrays"), list) for c in v),
        f"a non-empty list of channels of kinds {list(CHANNEL_ARRAYS)}")
    return manifest


def _require(path: Path, manifest: dict, key: str, valid, what: str) -> None:
    if key not in manifest or not valid(manifest[key]):
        raise PipelineFormatError(f"{path}: manifest {key!r} must be {what}, got {manifest.get(key)!r}")


def _check_arrays(path: Path, manifest: dict, arrays: dict[str, np.ndarray]) -> None:
    """Every array the manifest names is present, numeric, finite and of the right shape."""
    n_users, n_items = manifest["history_shape"]
    expected: dict[str, tuple] = {"history_indptr": (n_users + 1,), "item_category": (n_items,)}
    for number, channel in enumerate(manifest["channels"]):
        for key in CHANNEL_ARRAYS[channel["kind"]]:
            if key not in channel["arrays"]:
                raise PipelineFormatError(f"{path}: channel {channel['name']!r} ({channel['kind']}) lacks {key!r}")
        shapes = {"user_factors": (n_users, None), "item_factors": (n_items, None), "weights": (n_items, n_items),
                  "scores": (n_items,)}
        expected.update({f"channel{number}__{key}": shapes[key] for key in channel["arrays"] if key in shapes})
        expected.update({f"channel{number}__{key}": None for key in channel["arrays"] if key not in shapes})
    expected.update({f"item_feature__{name}": (n_items,) for name in manifest["item_features"]})
    expected.update({"history_data": None, "history_indices": None})
    for key, shape in expected.items():
        if key not in arrays:
            raise PipelineFormatError(f"{path}: array {key!r} is missing")
        value = arrays[key]
        if value.dtype.kind not in "biuf":
            raise PipelineFormatError(f"{path}: array {key!r} has dtype {value.dtype}, expected numbers")
        if shape is not None and (value.ndim != len(shape) or any(s is not None and s != d
                                                                   for s, d in zip(shape, value.shape, strict=True))):
            raise PipelineFormatError(f"{path}: array {key!r} has shape {value.shape}, expected "
                                      f"{tuple('any' if s is None else s for s in shape)}")
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise PipelineFormatError(f"{path}: array {key!r} holds NaN or infinite values")
    _check_history(path, arrays, n_users, n_items)


def _check_history(path: Path, arrays: dict[str, np.ndarray], n_users: int, n_items: int) -> None:
    indptr, indices, data = arrays["history_indptr"], arrays["history_indices"], arrays["history_data"]
    if indptr[0] != 0 or (np.diff(indptr) < 0).any() or indptr[-1] != len(indices) or len(indices) != len(data):
        raise PipelineFormatError(f"{path}: the history matrix is inconsistent (indptr, indices and data disagree)")
    if len(indices) and (indices.min() < 0 or indices.max() >= n_items):
        raise PipelineFormatError(f"{path}: the history refers to item indices outside 0..{n_items - 1}")
