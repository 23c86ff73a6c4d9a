"""Next-item recommenders that read a history in order: Markov chain, GRU4Rec, Caser and SASRec.

Every model here speaks one small protocol (the sequential counterpart of
:class:`~recsys_utils.models.base.Recommender`):

- ``fit(sequences, validation=None) -> self`` -- learn from a
  :class:`~recsys_utils.data.sequences.Sequences` (right-aligned item-index histories, ``-1`` =
  padding); the neural models early-stop on a validation
  :class:`~recsys_utils.data.sequences.NextItemTask` (NDCG@10) when one is given;
- ``score_next(histories) -> (n, n_items)`` -- a score for every catalogue item being the next one;
- ``recommend_next(histories, k)`` -- the top ``k`` item indices, best first.

:func:`evaluate_next_item` ranks the **full catalogue** and scores the lists with
:func:`recsys_utils.core.metrics.ranking_metrics` (one relevant item per row: HR@k, NDCG@k,
MRR@k). Items already in the history are **not** excluded by default: people look at items again
(on the marketplace about a quarter of the held-out next views are items already in the history),
so removing them would make those targets unreachable. ``exclude_history=True`` removes them (the
target then counts as a miss when it was in the history).

The three neural models share one training recipe: item ids are embedded (``padding_idx=0``; the
arrays' ``-1`` padding becomes 0), a network turns the history into one vector per position, and
the logits of *every* catalogue item are the dot products with the (tied) item embeddings. The
loss is the **full softmax cross-entropy** of the true next item at every position of every
training sequence. With a catalogue of a few thousand items this is cheap (one matrix product) and
stronger than the sampled losses of the original papers (BPR / TOP1 in GRU4Rec, binary
cross-entropy with one sampled negative in SASRec); see Klenitskiy & Vasilev (2023) for SASRec
trained with cross-entropy. Training uses :func:`recsys_utils.models.train.loop.fit_torch` (batching, early
stopping on validation NDCG@10, gradient clipping, device choice, seeding).

Every network is causal (the state at position ``t`` depends on items ``<= t`` only) and
padding-invariant (a history scores the same whatever the left padding in its batch); both are
tested in ``tests/test_sequential.py``. :meth:`SASRec.attention_maps` returns one history's
attention weights for plots.

References: Rendle, Freudenthaler & Schmidt-Thieme (2010) "Factorizing personalized Markov chains";
Hidasi et al. (2016) "Session-based recommendations with recurrent neural networks" (GRU4Rec);
Tang & Wang (2018) "Personalized top-N sequential recommendation via convolutional sequence
embedding" (Caser); Kang & McAuley (2018) "Self-attentive sequential recommendation" (SASRec);
Klenitskiy & Vasilev (2023) "Turning dross into gold loss: is BERT4Rec really better than SASRec?".
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from recsys_utils.core.metrics import ranking_metrics
from recsys_utils.core.topk import top_k
from recsys_utils.data.sequences import PAD, NextItemTask, Sequences

# --------------------------------------------------------------------------------------------
# protocol and evaluation
# --------------------------------------------------------------------------------------------


def _check_histories(histories: np.ndarray, n_items: int, where: str) -> np.ndarray:
    histories = np.asarray(histories)
    if histories.ndim != 2:
        raise ValueError(f"{where}: histories must be 2-D (rows x positions), got shape {histories.shape}")
    if histories.size and not np.issubdtype(histories.dtype, np.integer):
        raise ValueError(f"{where}: histories must hold integer item indices, got {histories.dtype}")
    histories = histories.astype(np.int64, copy=False)
    if histories.size and (histories.min() < PAD or histories.max() >= n_items):
        raise ValueError(f"{where}: item indices must lie in [0, {n_items}) with {PAD} as padding; "
                         f"found {histories.min()}..{histories.max()}")
    return histories


def history_matrix(histories: np.ndarray, n_items: int) -> sp.csr_matrix:
    """Binary ``(n, n_items)`` matrix of the items present in each history row."""
    rows, cols = np.nonzero(histories != PAD)
    data = np.ones(len(rows), dtype=np.float32)
    matrix = sp.csr_matrix((data, (rows, histories[rows, cols])), shape=(histories.shape[0], n_items))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


class SequentialRecommender(ABC):
    """Base class of next-item models: implement :meth:`_fit` and :meth:`score_next`."""

    name: str = "sequential"

    def __init__(self) -> None:
        self.n_items_: int | None = None
        self.fit_seconds_: float | None = None

    def fit(self, sequences: Sequences, validation: NextItemTask | None = None) -> SequentialRecommender:
        """Learn from training ``sequences`` (and early-stop on ``validation`` where the model can)."""
        if not isinstance(sequences, Sequences):
            raise TypeError(f"{type(self).__name__}.fit expects Sequences, got {type(sequences).__name__}")
        if validation is not None and not isinstance(validation, NextItemTask):
            raise TypeError(f"{type(self).__name__}.fit: validation must be a NextItemTask, "
                            f"got {type(validation).__name__}")
        started = time.perf_counter()
        self.n_items_ = sequences.n_items
        self._fit(sequences, validation)
        self.fit_seconds_ = time.perf_counter() - started
        return self

    @abstractmethod
    def _fit(self, sequences: Sequences, validation: NextItemTask | None) -> None:
        """Model-specific training."""

    @abstractmethod
    def score_next(self, histories: np.ndarray) -> np.ndarray:
        """Scores ``(n, n_items)`` of every item being the next one after each history row."""

    def _check_fitted(self) -> int:
        if self.n_items_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(sequences) first")
        return self.n_items_

    def recommend_next(self, histories: np.ndarray, k: int = 10, exclude_history: bool = False,
                       batch_size: int = 2048) -> np.ndarray:
        """Top-``k`` next-item indices per history row, best first (``-1`` pads short lists)."""
        n_items = self._check_fitted()
        histories = _check_histories(histories, n_items, f"{type(self).__name__}.recommend_next")
        out = np.empty((histories.shape[0], min(k, n_items)), dtype=np.int64)
        for start in range(0, histories.shape[0], batch_size):
            block = histories[start:start + batch_size]
            exclude = history_matrix(block, n_items) if exclude_history else None
            out[start:start + len(block)] = top_k(self.score_next(block), k, exclude)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@dataclass
class NextItemEvaluation:
    """Mean metrics (``summary``) and one row per evaluated history (``per_user``)."""

    model: str
    summary: dict[str, float]
    per_user: pd.DataFrame
    top_items: np.ndarray

    def __getitem__(self, key: str) -> float:
        return self.summary[key]


def evaluate_next_item(model: SequentialRecommender, task: NextItemTask, k: int | tuple[int, ...] = 10,
                       exclude_history: bool = False, metrics: tuple[str, ...] = ("hr", "ndcg", "mrr"),
                       name: str | None = None) -> NextItemEvaluation:
    """Full-catalogue next-item metrics of a fitted model on a :class:`NextItemTask`.

    The relevant matrix has one cell per row (the target); the top ``max(k)`` lists come from
    :meth:`SequentialRecommender.recommend_next` and are scored with
    :func:`~recsys_utils.core.metrics.ranking_metrics`. ``per_user`` holds the metrics,
    the row's ``key`` (user or session id) and its ``history_length`` (before truncation).
    """
    ks = (k,) if np.isscalar(k) else tuple(k)
    n_items = model._check_fitted()
    started = time.perf_counter()
    top = model.recommend_next(task.histories, max(ks), exclude_history=exclude_history)
    seconds = time.perf_counter() - started
    n = len(task)
    relevant = sp.csr_matrix((np.ones(n, dtype=np.float32), (np.arange(n), task.targets)), shape=(n, n_items))
    per_user = pd.DataFrame({"key": task.keys, "history_length": task.full_lengths})
    summary: dict[str, float] = {}
    for cut in ks:
        result = ranking_metrics(top, relevant, cut, metrics)
        for column in result.per_user:
            per_user[column] = result.per_user[column].to_numpy()
        summary.update({key: value for key, value in result.mean.items() if key != "users"})
    summary["users"] = n
    summary["score_seconds"] = seconds
    return NextItemEvaluation(name or getattr(model, "name", type(model).__name__), summary, per_user, top)


def compare_next_item(models: dict[str, SequentialRecommender], task: NextItemTask, k=10,
                      exclude_history: bool = False) -> pd.DataFrame:
    """One row per (fitted) model: the metrics of :func:`evaluate_next_item` plus ``fit_seconds``."""
    rows = {}
    for label, model in models.items():
        result = evaluate_next_item(model, task, k=k, exclude_history=exclude_history, name=label)
        rows[label] = {**result.summary, "fit_seconds": model.fit_seconds_}
    return pd.DataFrame.from_dict(rows, orient="index")


# --------------------------------------------------------------------------------------------
# count-based baselines
# --------------------------------------------------------------------------------------------


class MostPopularNext(SequentialRecommender):
    """Scores every item by how often it occurs in the training sequences (the same list for all)."""

    name = "popularity"

    def _fit(self, sequences: Sequences, validation: NextItemTask | None) -> None:
        counts = sequences.item_counts().astype(np.float32)
        self.item_scores_ = counts / max(1.0, float(counts.sum()))

    def score_next(self, histories: np.ndarray) -> np.ndarray:
        n_items = self._check_fitted()
        histories = _check_histories(histories, n_items, "MostPopularNext.score_next")
        return np.broadcast_to(self.item_scores_, (histories.shape[0], n_items)).copy()


class MarkovChain(SequentialRecommender):
    """First-order Markov chain: ``P(next = j | last = i)`` estimated by counting transitions.

    ``score(j) = sum_{m < window} decay^m P(j | x_{t-m}) + popularity_weight * P(j)``: with
    ``window=1`` this is the classic first-order chain (the "MC" part of FPMC, Rendle et al. 2010);
    a larger window adds the transitions out of earlier items with geometric decay (an item-to-item
    co-occurrence model over the recent history). The small popularity term breaks ties and
    backs off for items never seen as a predecessor.
    """

    name = "markov"

    def __init__(self, window: int = 1, decay: float = 0.5, popularity_weight: float = 1e-3) -> None:
        super().__init__()
        if window < 1:
            raise ValueError(f"MarkovChain: window must be >= 1, got {window}")
        if not 0 < decay <= 1:
            raise ValueError(f"MarkovChain: decay must be in (0, 1], got {decay}")
        self.window = int(window)
        self.decay = float(decay)
        self.popularity_weight = float(popularity_weight)

    def _fit(self, sequences: Sequences, validation: NextItemTask | None) -> None:
        n = sequences.n_items
        prev, nxt = sequences.transitions()
        counts = sp.csr_matrix((np.ones(len(prev), dtype=np.float32), (prev, nxt)), shape=(n, n))
        counts.sum_duplicates()
        out_degree = np.asarray(counts.sum(axis=1)).ravel()
        scale = np.divide(1.0, out_degree, out=np.zeros_like(out_degree), where=out_degree > 0)
        self.transition_ = sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ counts)
        popularity = sequences.item_counts().astype(np.float32)
        self.popularity_ = popularity / max(1.0, float(popularity.sum()))

    def score_next(self, histories: np.ndarray) -> np.ndarray:
        n_items = self._check_fitted()
        histories = _check_histories(histories, n_items, "MarkovChain.score_next")
        recent = histories[:, -self.window:]
        weights = self.decay ** np.arange(recent.shape[1] - 1, -1, -1, dtype=np.float64)
        rows, cols = np.nonzero(recent != PAD)
        mix = sp.csr_matrix((weights[cols].astype(np.float32), (rows, recent[rows, cols])),
                            shape=(histories.shape[0], n_items))
        scores = np.asarray((mix @ self.transition_).todense(), dtype=np.float32)
        scores += self.popularity_weight * self.popularity_[None, :]
        return scores

    def __repr__(self) -> str:
        return f"MarkovChain(window={self.window}, decay={self.decay})"


# --------------------------------------------------------------------------------------------
# neural models: the shared recipe
# --------------------------------------------------------------------------------------------


class SequenceNet(nn.Module):
    """Base network: ``encode(x) -> (B, T, dim)`` for ids ``x`` (0 = padding, item i is i + 1)."""

    def __init__(self, n_items: int, dim: int) -> None:
        super().__init__()
        self.n_items = n_items
        self.dim = dim
        self.item_embedding = nn.Embedding(n_items + 1, dim, padding_idx=0)
        nn.init.normal_(self.item_embedding.weight, std=dim ** -0.5)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()
        self.output_bias = nn.Parameter(torch.zeros(n_items))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores of every item for hidden vectors ``(..., dim)``: tied embeddings plus a bias."""
        return hidden @ self.item_embedding.weight[1:].T + self.output_bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the next item after the last position of each row: ``(B, n_items)``."""
        return self.logits(self.encode(x)[:, -1])


def next_item_loss(module: SequenceNet, batch: torch.Tensor) -> torch.Tensor:
    """Full softmax cross-entropy of the next item at every real position of a ``(B, T)`` id batch."""
    inputs, targets = batch[:, :-1], batch[:, 1:]
    hidden = module.encode(inputs)
    mask = (targets > 0) & (inputs > 0)
    return F.cross_entropy(module.logits(hidden[mask]), targets[mask] - 1)


class SequenceBatches:
    """Mini-batches of training sequences as ``(B, T)`` id tensors (0 = padding).

    Rows are grouped by length (shuffled within equal lengths) so that each batch can drop the
    columns that are padding in all of its rows; the order of the batches is shuffled every epoch.
    Rows with fewer than two items carry no transition and are left out.
    """

    def __init__(self, sequences: Sequences, batch_size: int = 128, seed: int = 0) -> None:
        lengths = sequences.lengths
        keep = lengths >= 2
        if not keep.any():
            raise ValueError("SequenceBatches: no training sequence has two or more items")
        self.ids = torch.from_numpy(sequences.items[keep] + 1)
        self.lengths = lengths[keep]
        self.batch_size = int(batch_size)
        self.seed = int(seed)

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)

    def __call__(self, epoch: int = 0):
        rng = np.random.default_rng((self.seed, epoch))
        order = np.lexsort((rng.random(len(self.lengths)), self.lengths))
        chunks = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        for chunk in (chunks[j] for j in rng.permutation(len(chunks))):
            width = int(self.lengths[chunk].max())
            yield self.ids[torch.from_numpy(chunk), -width:]


class TorchSequentialRecommender(SequentialRecommender):
    """Shared fit/score code of the neural next-item models (see the module docstring).

    Subclasses implement :meth:`_build` (the :class:`SequenceNet`). ``fit`` trains with
    :func:`recsys_utils.models.train.loop.fit_torch`: Adam, full softmax cross-entropy, gradient norm
    clipped to ``clip_norm``, early stopping on validation NDCG@10 with ``patience`` (the best
    epoch's weights are restored). ``max_len`` bounds what the network reads: training uses the
    last ``max_len + 1`` items of each sequence (``max_len`` inputs, each predicting the next) and
    scoring the last ``max_len`` items of each history. For a benchmark, :meth:`init` builds the
    network and :meth:`train_epoch` runs one epoch.
    """

    def __init__(self, dim: int = 64, epochs: int = 20, batch_size: int = 128, lr: float = 2e-3,
                 weight_decay: float = 0.0, dropout: float = 0.2, max_len: int = 50,
                 patience: int = 2, clip_norm: float | None = 5.0, device: str | None = None,
                 seed: int = 42, progress: bool = False) -> None:
        super().__init__()
        self.dim = int(dim)
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.dropout = float(dropout)
        self.max_len = int(max_len)
        self.patience = patience
        self.clip_norm = clip_norm
        self.device = device
        self.seed = int(seed)
        self.progress = progress
        self.module_: SequenceNet | None = None
        self.history_ = None

    @abstractmethod
    def _build(self, n_items: int) -> SequenceNet:
        """The network for a catalogue of ``n_items`` items."""

    def init(self, n_items: int) -> TorchSequentialRecommender:
        """Build a fresh network and optimizer for ``n_items`` items (seeded)."""
        from recsys_utils.core.device import resolve_device
        from recsys_utils.core.seed import seed_everything

        seed_everything(self.seed)
        self.n_items_ = int(n_items)
        self.device_ = resolve_device(self.device)
        self.module_ = self._build(self.n_items_).to(self.device_)
        self.optimizer_ = torch.optim.Adam(self.module_.parameters(), lr=self.lr,
                                           weight_decay=self.weight_decay)
        self._epochs_done = 0
        return self

    def _train(self, sequences: Sequences, epochs: int, validation: NextItemTask | None,
               patience: int | None):
        from recsys_utils.models.train.loop import fit_torch

        if self.module_ is None:
            self.init(sequences.n_items)
        if sequences.n_items != self.n_items_:
            raise ValueError(f"{type(self).__name__}: sequences have {sequences.n_items} items, "
                             f"the network was built for {self.n_items_}")
        if sequences.max_len > self.max_len + 1:  # inputs of at most max_len items, plus the last target
            sequences = Sequences(sequences.items[:, -(self.max_len + 1):], sequences.keys, sequences.item_index)
        batches = SequenceBatches(sequences, self.batch_size, seed=self.seed + self._epochs_done)

        def validate() -> float:
            return evaluate_next_item(self, validation, k=10)["ndcg@10"]

        history = fit_torch(self.module_, batches, next_item_loss, self.optimizer_, epochs,
                            validate=validate if validation is not None else None,
                            patience=patience, clip_norm=self.clip_norm, device=self.device_,
                            progress=self.progress, desc=self.name)
        self._epochs_done += len(history.epoch)
        return history

    def train_epoch(self, sequences: Sequences) -> float:
        """One epoch over ``sequences`` (building the network first if needed); the mean loss."""
        history = self._train(sequences, 1, None, None)
        return history.train_loss[-1]

    def _fit(self, sequences: Sequences, validation: NextItemTask | None) -> None:
        self.init(sequences.n_items)
        self.history_ = self._train(sequences, self.epochs, validation, self.patience)

    def score_next(self, histories: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        n_items = self._check_fitted()
        if self.module_ is None:
            raise RuntimeError(f"{type(self).__name__} has no network: call fit(sequences) first")
        histories = _check_histories(histories, n_items, f"{type(self).__name__}.score_next")
        histories = histories[:, -self.max_len:]
        out = np.empty((histories.shape[0], n_items), dtype=np.float32)
        was_training = self.module_.training
        self.module_.eval()
        with torch.no_grad():
            for start in range(0, histories.shape[0], batch_size):
                block = histories[start:start + batch_size]
                width = max(1, int((block != PAD).sum(axis=1).max(initial=1)))
                ids = torch.from_numpy(block[:, -width:] + 1).to(self.device_)
                out[start:start + len(block)] = self.module_(ids).float().cpu().numpy()
        self.module_.train(was_training)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim}, epochs={self.epochs}, lr={self.lr})"


# --------------------------------------------------------------------------------------------
# GRU4Rec
# --------------------------------------------------------------------------------------------


class GRU4RecNet(SequenceNet):
    """Embedding -> GRU -> projection to the embedding space (Hidasi et al. 2016)."""

    def __init__(self, n_items: int, dim: int = 64, hidden: int | None = None, layers: int = 1,
                 dropout: float = 0.2) -> None:
        super().__init__(n_items, dim)
        hidden = hidden or dim
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(dim, hidden, num_layers=layers, batch_first=True,
                          dropout=dropout if layers > 1 else 0.0)
        self.project = nn.Linear(hidden, dim) if hidden != dim else nn.Identity()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden state after every position; padding steps are skipped (packed sequences).

        Histories are right-aligned, so each row is rotated to the left, packed with its length,
        run through the GRU and rotated back: a row's states do not depend on how much padding
        precedes it (the same history scores the same in any batch).
        """
        steps = x.shape[1]
        lengths = (x > 0).sum(dim=1)
        pad = steps - lengths
        if not bool(pad.any()):  # no padding in this batch: the plain GRU is the same and ~2x faster
            states, _ = self.gru(self.dropout(self.item_embedding(x)))
            return self.project(self.dropout(states))
        columns = torch.arange(steps, device=x.device).unsqueeze(0)
        left = x.gather(1, (columns + pad.unsqueeze(1)) % steps)  # real items first
        packed = nn.utils.rnn.pack_padded_sequence(
            self.dropout(self.item_embedding(left)), lengths.clamp(min=1).cpu(), batch_first=True,
            enforce_sorted=False)
        states, _ = self.gru(packed)
        states, _ = nn.utils.rnn.pad_packed_sequence(states, batch_first=True, total_length=steps)
        back = ((columns - pad.unsqueeze(1)) % steps).unsqueeze(-1).expand(-1, -1, states.shape[-1])
        states = states.gather(1, back)  # right-aligned again; padding positions hold zeros
        return self.project(self.dropout(states))


class GRU4Rec(TorchSequentialRecommender):
    """GRU4Rec-style recurrent next-item model trained with full softmax cross-entropy.

    Each user's history is one sequence (not session-parallel mini-batches as in the paper, which
    predicts within anonymous sessions); the hidden state after each item is mapped into the item
    embedding space and scored against every item. Example (also the benchmark's entry point)::

        model = GRU4Rec(dim=64).init(n_items)
        loss = model.train_epoch(Sequences.from_array(items, n_items))
    """

    name = "gru4rec"

    def __init__(self, dim: int = 64, hidden: int | None = None, layers: int = 1, **kwargs) -> None:
        super().__init__(dim=dim, **kwargs)
        self.hidden = hidden
        self.layers = int(layers)

    def _build(self, n_items: int) -> SequenceNet:
        return GRU4RecNet(n_items, self.dim, self.hidden, self.layers, self.dropout)


# --------------------------------------------------------------------------------------------
# Caser
# --------------------------------------------------------------------------------------------


class CaserNet(SequenceNet):
    """Horizontal and vertical convolutions over the last ``window`` items (Tang & Wang 2018).

    For every position ``t`` the "image" is the ``window x dim`` matrix of the embeddings of items
    ``t - window + 1 .. t``. Horizontal filters of heights ``1..window`` slide over it and are
    max-pooled (union-level and point-level sequential patterns); vertical filters are learned
    weighted sums of the rows. Both are computed for all positions at once: a causal
    ``conv1d`` over the whole sequence followed by a sliding max (horizontal) and a depthwise
    causal ``conv1d`` (vertical). The paper's user embedding is replaced by the running mean of
    the history's item embeddings, so that the model also scores histories of unseen users.
    """

    def __init__(self, n_items: int, dim: int = 64, window: int = 5, n_horizontal: int = 16,
                 n_vertical: int = 4, dropout: float = 0.2) -> None:
        super().__init__(n_items, dim)
        self.window = int(window)
        self.horizontal = nn.ModuleList(nn.Conv1d(dim, n_horizontal, kernel_size=h)
                                        for h in range(1, self.window + 1))
        self.vertical = nn.Conv1d(1, n_vertical, kernel_size=self.window, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.hidden = nn.Linear(n_horizontal * self.window + n_vertical * dim, dim)
        self.output = nn.Linear(2 * dim, dim)
        self.n_vertical = int(n_vertical)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        batch, steps = x.shape
        emb = self.item_embedding(x)  # (B, T, d)
        channels = emb.transpose(1, 2)  # (B, d, T)
        real = (x > 0).unsqueeze(1)  # (B, 1, T)
        pooled = []
        for height, conv in enumerate(self.horizontal, start=1):
            # causal convolution; activations at padding positions are zeroed so that the max
            # over the window sees the same values whatever the amount of left padding
            activation = F.relu(conv(F.pad(channels, (height - 1, 0)))) * real  # (B, n_h, T)
            span = self.window - height + 1  # positions of this filter inside the window
            pooled.append(F.max_pool1d(F.pad(activation, (span - 1, 0)), span, stride=1))
        horizontal = torch.cat(pooled, dim=1).transpose(1, 2)  # (B, T, n_h * window)
        flat = F.pad(channels.reshape(batch * self.dim, 1, steps), (self.window - 1, 0))
        vertical = self.vertical(flat).reshape(batch, self.dim, self.n_vertical, steps)
        vertical = vertical.permute(0, 3, 2, 1).reshape(batch, steps, self.n_vertical * self.dim)
        short = F.relu(self.hidden(self.dropout(torch.cat([horizontal, vertical], dim=2))))
        counts = (x > 0).cumsum(dim=1).clamp(min=1).unsqueeze(-1)
        long = emb.cumsum(dim=1) / counts  # running mean of the history (stands in for P_u)
        return self.output(self.dropout(torch.cat([short, long], dim=2)))


class Caser(TorchSequentialRecommender):
    """Caser-style convolutional next-item model trained with full softmax cross-entropy."""

    name = "caser"

    def __init__(self, dim: int = 64, window: int = 5, n_horizontal: int = 16, n_vertical: int = 4,
                 **kwargs) -> None:
        super().__init__(dim=dim, **kwargs)
        self.window = int(window)
        self.n_horizontal = int(n_horizontal)
        self.n_vertical = int(n_vertical)

    def _build(self, n_items: int) -> SequenceNet:
        return CaserNet(n_items, self.dim, self.window, self.n_horizontal, self.n_vertical, self.dropout)


# --------------------------------------------------------------------------------------------
# SASRec
# --------------------------------------------------------------------------------------------


class CausalSelfAttentionBlock(nn.Module):
    """Pre-norm causal self-attention and a position-wise feed-forward layer, with residuals."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"SASRec: dim ({dim}) must be divisible by heads ({heads})")
        self.heads = heads
        self.norm_attention = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm_ffn = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(dim, dim))
        self.dropout = nn.Dropout(dropout)
        self.p = dropout

    def _qkv(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, steps, dim = h.shape
        q, k, v = self.qkv(self.norm_attention(h)).chunk(3, dim=-1)
        return tuple(t.reshape(batch, steps, self.heads, dim // self.heads).transpose(1, 2) for t in (q, k, v))

    def attention_weights(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The attention weights ``softmax(QK^T / sqrt(d_head))`` under ``mask``: ``(B, heads, T, T)``.

        Row ``t`` says how much position ``t`` reads from each earlier position (the same weights
        :meth:`forward` uses, computed explicitly for plots and tests).
        """
        q, k, _ = self._qkv(h)
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        return scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, steps, dim = h.shape
        q, k, v = self._qkv(h)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                                  dropout_p=self.p if self.training else 0.0)
        h = h + self.dropout(self.out(attended.transpose(1, 2).reshape(batch, steps, dim)))
        return h + self.dropout(self.ffn(self.norm_ffn(h)))


class SASRecNet(SequenceNet):
    """Item + learned position embeddings -> causal self-attention blocks (Kang & McAuley 2018).

    Positions are counted from the end of the history (histories are right-aligned), so the most
    recent item always has the same position embedding. Each position attends to itself and the
    real items before it (padding is masked out).
    """

    def __init__(self, n_items: int, dim: int = 64, max_len: int = 50, blocks: int = 2, heads: int = 1,
                 dropout: float = 0.2) -> None:
        super().__init__(n_items, dim)
        self.max_len = int(max_len)
        self.position_embedding = nn.Embedding(self.max_len, dim)
        nn.init.normal_(self.position_embedding.weight, std=dim ** -0.5)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(CausalSelfAttentionBlock(dim, heads, dropout) for _ in range(blocks))
        self.norm = nn.LayerNorm(dim)

    def _inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Embedded inputs ``(B, T, d)``, the real-item mask ``(B, T, 1)`` and the attention mask."""
        steps = x.shape[1]
        if steps > self.max_len:
            raise ValueError(f"SASRecNet: {steps} positions but only {self.max_len} position embeddings "
                             "(keep the last max_len items)")
        positions = torch.arange(self.max_len - steps, self.max_len, device=x.device)
        h = self.item_embedding(x) * math.sqrt(self.dim) + self.position_embedding(positions)
        real = (x > 0).unsqueeze(-1)
        causal = torch.ones(steps, steps, dtype=torch.bool, device=x.device).tril()
        eye = torch.eye(steps, dtype=torch.bool, device=x.device)
        # (B, 1, T, T), True = may attend: itself and the real items at or before the position
        mask = (causal & (x > 0).unsqueeze(1).unsqueeze(2)) | eye
        return self.dropout(h) * real, real, mask

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        h, real, mask = self._inputs(x)
        for block in self.blocks:
            h = block(h, mask) * real
        return self.norm(h)

    def attention_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Attention weights of every block: ``(B, blocks, heads, T, T)`` (no dropout in eval mode)."""
        h, real, mask = self._inputs(x)
        maps = []
        for block in self.blocks:
            maps.append(block.attention_weights(h, mask))
            h = block(h, mask) * real
        return torch.stack(maps, dim=1)


class SASRec(TorchSequentialRecommender):
    """SASRec-style self-attentive next-item model trained with full softmax cross-entropy."""

    name = "sasrec"

    def __init__(self, dim: int = 64, blocks: int = 2, heads: int = 1, **kwargs) -> None:
        super().__init__(dim=dim, **kwargs)
        self.blocks = int(blocks)
        self.heads = int(heads)

    def _build(self, n_items: int) -> SequenceNet:
        return SASRecNet(n_items, self.dim, self.max_len, self.blocks, self.heads, self.dropout)

    def attention_maps(self, history: np.ndarray) -> np.ndarray:
        """Attention weights for one history (1-D, ``-1`` = padding): ``(blocks, heads, L, L)``.

        Only the ``L`` real items (the most recent ``max_len``) are kept, oldest first; entry
        ``[b, h, t, s]`` is how much position ``t`` attends to position ``s <= t`` in block ``b``.
        """
        n_items = self._check_fitted()
        if self.module_ is None:
            raise RuntimeError("SASRec has no network: call fit(sequences) first")
        history = _check_histories(np.asarray(history).reshape(1, -1), n_items, "SASRec.attention_maps")
        items = history[history != PAD][-self.max_len:]
        if len(items) == 0:
            raise ValueError("SASRec.attention_maps: the history has no item")
        was_training = self.module_.training
        self.module_.eval()
        with torch.no_grad():
            ids = torch.from_numpy(items[None, :] + 1).to(self.device_)
            maps = self.module_.attention_maps(ids)[0].float().cpu().numpy()
        self.module_.train(was_training)
        return maps


__all__ = [
    "Caser",
    "CaserNet",
    "GRU4Rec",
    "GRU4RecNet",
    "MarkovChain",
    "MostPopularNext",
    "NextItemEvaluation",
    "SASRec",
    "SASRecNet",
    "SequenceBatches",
    "SequenceNet",
    "SequentialRecommender",
    "TorchSequentialRecommender",
    "compare_next_item",
    "evaluate_next_item",
    "history_matrix",
    "next_item_loss",
]
