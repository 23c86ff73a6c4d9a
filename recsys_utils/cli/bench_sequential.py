"""The bench command's next-item protocols: leave-one-out with full or sampled ranking.

Every user's interactions in time order (for ``--dataset sequences``, the file's line order) are
split as in SASRec (Kang & McAuley 2018) and the papers after it: the **last** item is the test
target, the **second-last** the validation target, the rest trains. Users with fewer than three
items have no validation and test item; they are kept for training only, as SASRec's own
``data_partition`` does. Models fit on the training sequences and early-stop (the neural ones) on
the validation item; the test input sequence **includes the validation item**.

The test target is ranked against

``leave-one-out-full``
    every catalogue item the user never interacted with (the full ranking of the recent papers:
    Krichene & Rendle 2020 show sampled metrics can reorder models);
``leave-one-out-sampled``
    ``--negatives N`` of those items, drawn without replacement uniformly or, with
    ``--negative-sampling popularity``, in proportion to their number of interactions in the whole
    file (BERT4Rec's scheme). A user's own items are never drawn.

Ties count against the target (a candidate scoring the same as the target ranks above it), so a
model that scores everything alike gets no credit. HR@10 is ``rank < 10``, NDCG@10 is
``1 / log2(rank + 2)`` for those hits (one relevant item). Each model's JSON entry carries
``hr@10``, ``ndcg@10``, the protocol, the number of candidates, the sampling scheme and
``fit_seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_utils.core.seed import seed_everything
from recsys_utils.core.vocabulary import ITEM, USER
from recsys_utils.data.interactions import IdIndex
from recsys_utils.data.sequences import NextItemTask, Sequences, build_sequences, leave_last_out_sequences
from recsys_utils.models.sequential import Caser, GRU4Rec, MarkovChain, MostPopularNext, SASRec
from recsys_utils.models.sequential.base import SequentialRecommender

SEQUENTIAL_PROTOCOLS = ("leave-one-out-full", "leave-one-out-sampled")
SAMPLING = ("uniform", "popularity")
K = 10

#: name -> class of the next-item models the bench command runs (defaults: benchmarks/settings)
SEQUENTIAL_MODELS: dict[str, type[SequentialRecommender]] = {
    "popularity": MostPopularNext,
    "markov": MarkovChain,
    "gru4rec": GRU4Rec,
    "caser": Caser,
    "sasrec": SASRec,
}


@dataclass
class SequentialSplit:
    """Training sequences (short users included), validation and test tasks, and each test row's items."""

    train: Sequences
    validation: NextItemTask
    test: NextItemTask
    user_items: sp.csr_matrix  # test rows x items: every item of the user, targets included
    item_counts: np.ndarray  # interactions per item in the whole data (popularity sampling)
    short_users: int


def split_sequences(frame: pd.DataFrame, max_len: int = 200) -> SequentialSplit:
    """Leave-one-out split of an interactions frame (see the module docstring)."""
    items = IdIndex(np.sort(frame[ITEM].unique()), ITEM)
    split = leave_last_out_sequences(frame, max_len=max_len, dedupe=False, items=items, min_length=3)
    counts = frame[USER].value_counts()
    short = counts.index[counts.to_numpy() < 3]
    train = split.train
    if len(short):
        extra = build_sequences(frame[frame[USER].isin(short).to_numpy()], max_len=max_len, dedupe=False,
                                items=items)
        train = Sequences(np.vstack([train.items, extra.items]), np.concatenate([train.keys, extra.keys]), items)
    rows = pd.Index(split.test.keys).get_indexer(frame[USER].to_numpy())
    keep = rows >= 0
    user_items = sp.csr_matrix((np.ones(int(keep.sum()), dtype=np.float32),
                                (rows[keep], items.to_index(frame[ITEM].to_numpy()[keep]))),
                               shape=(len(split.test), len(items)))
    user_items.sum_duplicates()
    user_items.data[:] = 1.0
    item_counts = np.bincount(items.to_index(frame[ITEM].to_numpy()), minlength=len(items)).astype(np.float64)
    return SequentialSplit(train, split.validation, split.test, user_items, item_counts, len(short))


def _rows_per_block(block: int, n_items: int, cells: int = 8_000_000) -> int:
    """At most ``block`` rows, and at most ``cells`` dense cells per block (64 MB of float64)."""
    return max(1, min(block, cells // max(n_items, 1)))


def sample_negatives(user_items: sp.csr_matrix, n_negatives: int, scheme: str = "uniform",
                     item_counts: np.ndarray | None = None, seed: int = 0, block: int = 1024) -> np.ndarray:
    """``(n_rows, n_negatives)`` item indices never in the row's ``user_items``, without replacement.

    Uniform, or in proportion to ``item_counts`` (``scheme="popularity"``), by the Gumbel-top-k
    trick (Kool et al. 2019): the ``n_negatives`` largest ``log p_j + Gumbel noise`` over the
    allowed items are a draw without replacement. Rows with fewer allowed items get ``-1`` in the
    missing places.
    """
    if scheme not in SAMPLING:
        raise ValueError(f"--negative-sampling: unknown {scheme!r}; choose one of {', '.join(SAMPLING)}")
    if n_negatives < 1:
        raise ValueError(f"--negatives must be >= 1, got {n_negatives}")
    n_rows, n_items = user_items.shape
    width = min(n_negatives, n_items)
    if scheme == "popularity":
        if item_counts is None or len(item_counts) != n_items:
            raise ValueError("sample_negatives: popularity sampling needs one count per item")
        with np.errstate(divide="ignore"):
            log_p = np.log(np.asarray(item_counts, dtype=np.float64))
    else:
        log_p = np.zeros(n_items)
    rng = np.random.default_rng(seed)
    out = np.full((n_rows, n_negatives), -1, dtype=np.int64)
    block = _rows_per_block(block, n_items)
    for start in range(0, n_rows, block):
        stop = min(start + block, n_rows)
        keys = log_p[None, :] + rng.gumbel(size=(stop - start, n_items))
        keys[user_items[start:stop].toarray() > 0] = -np.inf
        top = np.argpartition(-keys, width - 1, axis=1)[:, :width] if width < n_items else \
            np.tile(np.arange(n_items), (stop - start, 1))
        valid = np.isfinite(np.take_along_axis(keys, top, axis=1))
        out[start:stop, :width] = np.where(valid, top, -1)
    return out


def _metrics(ranks: np.ndarray, k: int = K) -> dict[str, float]:
    hit = ranks < k
    gains = np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0)
    return {f"hr@{k}": float(hit.mean()), f"ndcg@{k}": float(gains.mean())}


def rank_targets(score_fn: Callable[[np.ndarray], np.ndarray], histories: np.ndarray, targets: np.ndarray,
                 user_items: sp.csr_matrix, negatives: np.ndarray | None = None,
                 block: int = 1024) -> np.ndarray:
    """0-based rank of each target among its candidates (ties count against the target).

    ``negatives=None``: the candidates are every item not in ``user_items`` (full ranking);
    otherwise the given negatives (``-1`` = none).
    """
    ranks = np.empty(len(targets), dtype=np.int64)
    block = _rows_per_block(block, user_items.shape[1])
    for start in range(0, len(targets), block):
        stop = min(start + block, len(targets))
        scores = np.asarray(score_fn(histories[start:stop]), dtype=np.float64)
        rows = np.arange(stop - start)
        target_score = scores[rows, targets[start:stop]][:, None]
        if negatives is None:
            ahead = scores >= target_score
            ahead[user_items[start:stop].toarray() > 0] = False
            ahead[rows, targets[start:stop]] = False
        else:
            chosen = negatives[start:stop]
            ahead = (np.take_along_axis(scores, np.maximum(chosen, 0), axis=1) >= target_score) & (chosen >= 0)
        ranks[start:stop] = ahead.sum(axis=1)
    return ranks


def _candidate_sets(split: SequentialSplit, n_negatives: int, sampling: str, seed: int) -> dict[str, tuple]:
    """Per protocol: the negatives (``None`` = full ranking), candidates per user and a description."""
    negatives = sample_negatives(split.user_items, n_negatives, sampling, split.item_counts, seed)
    scheme = (f"{n_negatives} items drawn without replacement, {sampling}"
              f"{' (by interaction count)' if sampling == 'popularity' else ''}, "
              "among the items the user never interacted with")
    full = 1 + split.user_items.shape[1] - split.user_items.getnnz(axis=1)
    return {"leave-one-out-full": (None, full, "none: every item the user never interacted with"),
            "leave-one-out-sampled": (negatives, 1 + (negatives >= 0).sum(axis=1), scheme)}


def _scores(ranks: np.ndarray, candidates: np.ndarray, scheme: str) -> dict:
    return {**_metrics(ranks), "candidates_mean": float(candidates.mean()), "candidates_min": int(candidates.min()),
            "negative_sampling": scheme}


def run_sequential(frame: pd.DataFrame, protocol: str, models: list[str], settings: dict[str, dict],
                   n_negatives: int = 100, sampling: str = "uniform", seed: int = 42,
                   log: Callable[[str], None] | None = print) -> dict[str, dict]:
    """Fit and score each next-item model under ``protocol``; ``{model: {metric: value, ...}}``.

    The same fitted model is also scored under the other leave-one-out protocol (same split), under
    the key ``"also": {protocol: {metric: value, ...}}``.
    """
    if protocol not in SEQUENTIAL_PROTOCOLS:
        raise ValueError(f"--protocol: unknown {protocol!r}; choose one of {', '.join(SEQUENTIAL_PROTOCOLS)}")
    unknown = [m for m in models if m not in SEQUENTIAL_MODELS]
    if unknown:
        raise ValueError(f"--models: {', '.join(unknown)} not available under {protocol}; choose from "
                         f"{', '.join(SEQUENTIAL_MODELS)}")
    max_len = max([int(settings.get(m, {}).get("max_len", 50)) for m in models] + [1])
    split = split_sequences(frame, max_len=max_len)
    candidate_sets = _candidate_sets(split, n_negatives, sampling, seed)
    if log:
        log(f"bench: {protocol} | {len(split.train):,} training sequences ({split.short_users} users with < 3 "
            f"items train only) | {len(split.test):,} test users x {split.user_items.shape[1]:,} items")
    results: dict[str, dict] = {}
    for name in models:
        seed_everything(seed)
        kwargs = {key: value for key, value in settings.get(name, {}).items() if key != "about"}
        if name not in ("popularity", "markov"):
            kwargs.setdefault("seed", seed)
        model = SEQUENTIAL_MODELS[name](**kwargs)
        started = time.perf_counter()
        model.fit(split.train, validation=split.validation)
        fit_seconds = time.perf_counter() - started
        scored = {other: _scores(rank_targets(model.score_next, split.test.histories, split.test.targets,
                                              split.user_items, negatives), candidates, scheme)
                  for other, (negatives, candidates, scheme) in candidate_sets.items()}
        results[name] = {**scored.pop(protocol), "protocol": protocol, "users": len(split.test),
                         "fit_seconds": round(fit_seconds, 3),
                         "settings": {k: v for k, v in kwargs.items() if k != "seed"}, "also": scored}
        if log:
            log(f"  {name:<11} hr@{K}={results[name][f'hr@{K}']:.4f}, ndcg@{K}={results[name][f'ndcg@{K}']:.4f}, "
                f"fit {fit_seconds:.1f} s")
    return results
