"""Mini-batches for the training loop, straight from sparse matrices or aligned arrays
(vectorised negative sampling)."""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
import torch

from recsys_utils.data.interactions import Interactions

#: largest users x items matrix for which negative sampling keeps a dense bitmap of positives
BITMAP_MAX_CELLS = 64_000_000


def sample_negatives(
    n: int | tuple[int, ...],
    n_items: int,
    strategy: str = "uniform",
    item_counts: np.ndarray | None = None,
    rng: np.random.Generator | int | None = None,
    alpha: float = 1.0,
) -> np.ndarray:
    """Draw item indices to serve as sampled non-clicks (negatives), vectorised.

    ``strategy="uniform"``: every item equally likely. ``"popularity"``: item ``i`` with
    probability proportional to ``item_counts[i] ** alpha`` (word2vec uses ``alpha=0.75``;
    popular non-clicked items are the informative "hard" negatives, Rendle & Freudenthaler 2014).
    The draws may hit the user's own positives; :class:`InteractionBatches` re-draws those.
    """
    if n_items < 1:
        raise ValueError(f"sample_negatives: n_items must be >= 1, got {n_items}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    if strategy == "uniform":
        return rng.integers(0, n_items, size=n, dtype=np.int64)
    if strategy == "popularity":
        if item_counts is None:
            raise ValueError("sample_negatives: strategy='popularity' needs item_counts")
        counts = np.asarray(item_counts, dtype=np.float64)
        if counts.shape != (n_items,):
            raise ValueError(f"sample_negatives: item_counts has shape {counts.shape}, expected ({n_items},)")
        if (counts < 0).any() or not np.isfinite(counts).all():
            raise ValueError("sample_negatives: item_counts must be finite and >= 0")
        weights = counts ** alpha
        total = weights.sum()
        if total <= 0:
            raise ValueError("sample_negatives: item_counts are all zero")
        cdf = np.cumsum(weights / total)
        draws = np.searchsorted(cdf, rng.random(size=n) * cdf[-1], side="right")
        return np.minimum(draws, n_items - 1).astype(np.int64)
    raise ValueError(f"sample_negatives: strategy must be 'uniform' or 'popularity', got {strategy!r}")


class InteractionBatches:
    """Mini-batches of a CSR user x item matrix, reshuffled every epoch (call it with the epoch).

    One epoch visits every stored cell once in a random order. Sampled negatives that are
    positives of the same user are re-drawn (a few vectorised rounds; what is left after
    ``max_redraws`` rounds stays, which only matters for users who clicked most of the catalogue).
    Batches are CPU tensors; :func:`fit_torch` moves them to the device.
    """

    KINDS = ("pointwise", "pairwise", "rating")

    def __init__(
        self,
        matrix: sp.spmatrix | Interactions,
        batch_size: int = 1024,
        kind: str = "pointwise",
        n_negatives: int = 1,
        strategy: str = "uniform",
        item_counts: np.ndarray | None = None,
        alpha: float = 1.0,
        seed: int = 0,
        exclude_positives: bool = True,
        max_redraws: int = 5,
        shuffle: bool = True,
    ) -> None:
        if isinstance(matrix, Interactions):
            matrix = matrix.matrix
        if not sp.issparse(matrix):
            raise TypeError(f"InteractionBatches: expected a scipy.sparse matrix, got {type(matrix).__name__}")
        if kind not in self.KINDS:
            raise ValueError(f"InteractionBatches: kind must be one of {self.KINDS}, got {kind!r}")
        if batch_size < 1:
            raise ValueError(f"InteractionBatches: batch_size must be >= 1, got {batch_size}")
        if kind != "rating" and n_negatives < 1:
            raise ValueError(f"InteractionBatches: kind={kind!r} needs n_negatives >= 1, got {n_negatives}")
        csr = sp.csr_matrix(matrix, copy=True)  # never modify the caller's matrix
        csr.sum_duplicates()
        csr.eliminate_zeros()
        csr.sort_indices()
        if csr.nnz == 0:
            raise ValueError("InteractionBatches: the matrix has no stored cells to train on")
        self.n_users, self.n_items = csr.shape
        self.users = np.repeat(np.arange(self.n_users, dtype=np.int64), np.diff(csr.indptr))
        self.items = csr.indices.astype(np.int64)
        self.values = csr.data.astype(np.float32)
        # sorted keys user * n_items + item: membership tests for re-drawing negatives; a dense
        # bitmap of the cells answers them in O(1) when the matrix is small enough (<= 64 MB)
        self._keys = np.sort(self.users * self.n_items + self.items)
        self._bitmap = None
        if self.n_users * self.n_items <= BITMAP_MAX_CELLS:
            self._bitmap = np.zeros(self.n_users * self.n_items, dtype=bool)
            self._bitmap[self._keys] = True
        self.batch_size = int(batch_size)
        self.kind = kind
        self.n_negatives = int(n_negatives)
        self.strategy = strategy
        if strategy == "popularity" and item_counts is None:
            item_counts = np.bincount(self.items, minlength=self.n_items)
        self.item_counts = item_counts
        self.alpha = alpha
        self.seed = int(seed)
        self.exclude_positives = exclude_positives
        self.max_redraws = int(max_redraws)
        self.shuffle = shuffle

    @property
    def nnz(self) -> int:
        return len(self.items)

    def __len__(self) -> int:
        return math.ceil(self.nnz / self.batch_size)

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Boolean array: is ``(users[j], items[j])`` a stored cell (same shape as ``items``)."""
        keys = np.asarray(users, dtype=np.int64) * self.n_items + np.asarray(items, dtype=np.int64)
        if self._bitmap is not None:
            return self._bitmap[keys]
        pos = np.searchsorted(self._keys, keys)
        pos = np.minimum(pos, len(self._keys) - 1)
        return self._keys[pos] == keys

    def negatives(self, users: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``(len(users), n_negatives)`` sampled items, re-drawn where they are the user's positives."""
        shape = (len(users), self.n_negatives)
        neg = sample_negatives(shape, self.n_items, self.strategy, self.item_counts, rng, self.alpha)
        if self.exclude_positives:
            owners = np.broadcast_to(users[:, None], shape).ravel()
            flat = neg.reshape(-1)
            todo = np.flatnonzero(self.is_positive(owners, flat))
            for _ in range(self.max_redraws):  # only re-drawn cells are checked again
                if todo.size == 0:
                    break
                flat[todo] = sample_negatives(todo.size, self.n_items, self.strategy, self.item_counts, rng,
                                              self.alpha)
                todo = todo[self.is_positive(owners[todo], flat[todo])]
            neg = flat.reshape(shape)
        return neg

    def __call__(self, epoch: int = 0):
        """The batches of one epoch (a generator); ``epoch`` selects the shuffle and the negatives."""
        rng = np.random.default_rng([self.seed, int(epoch)])
        order = rng.permutation(self.nnz) if self.shuffle else np.arange(self.nnz)
        for start in range(0, self.nnz, self.batch_size):
            idx = order[start:start + self.batch_size]
            users, items = self.users[idx], self.items[idx]
            if self.kind == "rating":
                yield (torch.from_numpy(users), torch.from_numpy(items), torch.from_numpy(self.values[idx]))
                continue
            neg = self.negatives(users, rng)
            if self.kind == "pairwise":
                neg_t = torch.from_numpy(neg[:, 0].copy() if self.n_negatives == 1 else neg)
                yield torch.from_numpy(users), torch.from_numpy(items), neg_t
                continue
            # pointwise: each positive followed by its negatives
            width = 1 + self.n_negatives
            all_users = np.repeat(users, width)
            all_items = np.concatenate([items[:, None], neg], axis=1).ravel()
            labels = np.zeros((len(users), width), dtype=np.float32)
            labels[:, 0] = 1.0
            yield torch.from_numpy(all_users), torch.from_numpy(all_items), torch.from_numpy(labels.ravel())


class UserBatches:
    """Mini-batches of whole user rows of a CSR matrix (for autoencoders), reshuffled per epoch.

    Yields ``(user_indices, rows)`` with ``rows`` a dense float32 ``(B, n_items)`` tensor; users
    without any stored cell are skipped (``skip_empty``).
    """

    def __init__(self, matrix: sp.spmatrix | Interactions, batch_size: int = 256, seed: int = 0,
                 binary: bool = True, skip_empty: bool = True, shuffle: bool = True) -> None:
        if isinstance(matrix, Interactions):
            matrix = matrix.matrix
        if not sp.issparse(matrix):
            raise TypeError(f"UserBatches: expected a scipy.sparse matrix, got {type(matrix).__name__}")
        csr = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
        if binary:
            csr.data[:] = 1.0
        self.matrix = csr
        users = np.arange(csr.shape[0], dtype=np.int64)
        self.users = users[np.diff(csr.indptr) > 0] if skip_empty else users
        if len(self.users) == 0:
            raise ValueError("UserBatches: the matrix has no user with a stored cell")
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle = shuffle

    def __len__(self) -> int:
        return math.ceil(len(self.users) / self.batch_size)

    def __call__(self, epoch: int = 0):
        rng = np.random.default_rng([self.seed, int(epoch)])
        order = rng.permutation(self.users) if self.shuffle else self.users
        for start in range(0, len(order), self.batch_size):
            users = order[start:start + self.batch_size]
            yield torch.from_numpy(users), torch.from_numpy(self.matrix[users].toarray())


class ArrayBatches:
    """Mini-batches of aligned arrays (features, labels, ...), reshuffled per epoch.

    ``ArrayBatches(x, y, batch_size=4096)(epoch)`` yields tuples ``(x[idx], y[idx])`` of CPU
    tensors; every array must have the same first dimension. For datasets that are already a
    table of rows (e.g. a click-through-rate frame encoded as integer fields).
    """

    def __init__(self, *arrays: np.ndarray | torch.Tensor, batch_size: int = 4096, seed: int = 0,
                 shuffle: bool = True) -> None:
        if not arrays:
            raise ValueError("ArrayBatches: give at least one array")
        tensors = [a if isinstance(a, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(a))
                   for a in arrays]
        lengths = {int(t.shape[0]) for t in tensors}
        if len(lengths) != 1:
            raise ValueError(f"ArrayBatches: arrays have different lengths {sorted(lengths)}")
        self.n = lengths.pop()
        if self.n == 0:
            raise ValueError("ArrayBatches: the arrays are empty")
        if batch_size < 1:
            raise ValueError(f"ArrayBatches: batch_size must be >= 1, got {batch_size}")
        self.tensors = tensors
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle = shuffle

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __call__(self, epoch: int = 0):
        rng = np.random.default_rng([self.seed, int(epoch)])
        order = torch.from_numpy(rng.permutation(self.n) if self.shuffle else np.arange(self.n))
        for start in range(0, self.n, self.batch_size):
            idx = order[start:start + self.batch_size]
            yield tuple(t[idx] for t in self.tensors)
