"""The neural next-item models (GRU4Rec, Caser, SASRec): one training recipe on the course loop.

Item ids are embedded (``padding_idx=0``; the arrays' ``-1`` padding becomes 0), a network
(:mod:`recsys_utils.models.sequential.nets`) turns the history into one vector per position, and
the loss is the full softmax cross-entropy of the true next item at every position (or, with
``loss=``, a sampled softmax, gBCE or one-negative BCE: :mod:`.losses`), trained by
:func:`~recsys_utils.models.train.loop.fit_torch` (batching, early stopping on validation NDCG@10,
gradient clipping, device choice).
"""

from __future__ import annotations

import math
from abc import abstractmethod

import numpy as np
import torch

from recsys_utils.core.device import resolve_device
from recsys_utils.core.seed import seed_everything
from recsys_utils.data.sequences import PAD, NextItemTask, Sequences
from recsys_utils.models.sequential.base import SequentialRecommender, _check_histories, evaluate_next_item
from recsys_utils.models.sequential.losses import make_loss
from recsys_utils.models.sequential.nets import CaserNet, GRU4RecNet, SASRecNet, SequenceNet
from recsys_utils.models.train.history import History
from recsys_utils.models.train.loop import fit_torch


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

    Subclasses implement :meth:`_build` (the :class:`SequenceNet`). ``fit`` trains with the course
    loop :func:`~recsys_utils.models.train.loop.fit_torch`: Adam, full softmax cross-entropy, gradient norm
    clipped to ``clip_norm``, early stopping on validation NDCG@10 with ``patience`` (the best
    epoch's weights are restored). ``max_len`` bounds what the network reads: training uses the
    last ``max_len + 1`` items of each sequence (``max_len`` inputs, each predicting the next) and
    scoring the last ``max_len`` items of each history. For a benchmark, :meth:`init` builds the
    network and :meth:`train_epoch` runs one epoch.

    ``loss`` picks the training loss (:mod:`recsys_utils.models.sequential.losses`): ``"ce"`` full
    softmax (default), ``"sampled-ce"`` or ``"gbce"`` with ``n_negatives`` uniform negatives
    (gSASRec's ``gbce_t``), or ``"bce"``, SASRec's original one-negative binary cross-entropy.
    """

    def __init__(self, dim: int = 64, epochs: int = 20, batch_size: int = 128, lr: float = 2e-3,
                 weight_decay: float = 0.0, dropout: float = 0.2, max_len: int = 50,
                 patience: int = 2, clip_norm: float | None = 5.0, device: str | None = None,
                 seed: int = 42, progress: bool = False, loss: str = "ce", n_negatives: int = 256,
                 gbce_t: float = 0.75) -> None:
        super().__init__()
        make_loss(loss, n_negatives, gbce_t)  # validates the three knobs
        self.loss = loss
        self.n_negatives = int(n_negatives)
        self.gbce_t = float(gbce_t)
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
        self.history_: History | None = None

    @abstractmethod
    def _build(self, n_items: int) -> SequenceNet:
        """The network for a catalogue of ``n_items`` items."""

    def init(self, n_items: int) -> TorchSequentialRecommender:
        """Build a fresh network and optimizer for ``n_items`` items (seeded)."""
        seed_everything(self.seed)
        self.n_items_ = int(n_items)
        self.device_ = resolve_device(self.device)
        self.module_ = self._build(self.n_items_).to(self.device_)
        self.optimizer_ = torch.optim.Adam(self.module_.parameters(), lr=self.lr,
                                           weight_decay=self.weight_decay)
        self._epochs_done = 0
        return self

    def _train(self, sequences: Sequences, epochs: int, validation: NextItemTask | None,
               patience: int | None) -> History:
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

        loss_fn = make_loss(self.loss, self.n_negatives, self.gbce_t)
        history = fit_torch(self.module_, batches, loss_fn, self.optimizer_, epochs,
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
        n_items = self._n_items()
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
        loss = "" if self.loss == "ce" else f", loss={self.loss!r}"
        return f"{type(self).__name__}(dim={self.dim}, epochs={self.epochs}, lr={self.lr}{loss})"


class GRU4Rec(TorchSequentialRecommender):
    """GRU4Rec-style recurrent next-item model trained with full softmax cross-entropy (``loss=``).

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


class Caser(TorchSequentialRecommender):
    """Caser-style convolutional next-item model trained with full softmax cross-entropy (``loss=``)."""

    name = "caser"

    def __init__(self, dim: int = 64, window: int = 5, n_horizontal: int = 16, n_vertical: int = 4,
                 **kwargs) -> None:
        super().__init__(dim=dim, **kwargs)
        self.window = int(window)
        self.n_horizontal = int(n_horizontal)
        self.n_vertical = int(n_vertical)

    def _build(self, n_items: int) -> SequenceNet:
        return CaserNet(n_items, self.dim, self.window, self.n_horizontal, self.n_vertical, self.dropout)


class SASRec(TorchSequentialRecommender):
    """SASRec-style self-attentive next-item model; full softmax cross-entropy by default, ``loss="bce"``
    for the paper's one-negative BCE, ``loss="gbce"`` for gSASRec (Petrov & Macdonald 2023)."""

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
        n_items = self._n_items()
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
