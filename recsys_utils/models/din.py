"""Deep Interest Network (DIN): target attention over the user's behaviour sequence in a CTR model.

Zhou, Zhu, Song, Fan, Zhu, Ma, Yan, Jin, Li & Gai (2018), "Deep Interest Network for Click-Through Rate
Prediction", KDD. A pooled history (the average of the items a user looked at) is the same vector
whatever item is being scored; DIN instead weighs every behaviour ``b_l`` by its relevance to the
*candidate* item ``t`` with a small network, the **local activation unit**

    a_l = MLP([e_{b_l}; e_t; e_{b_l} - e_t; e_{b_l} ⊙ e_t]),      v_U(t) = Σ_l a_l · e_{b_l},

over the non-padded positions only (padding gets weight 0, so what is stored there never matters).
As in the paper the weights are not normalised by a softmax (the sum keeps the *intensity* of the
interest); ``softmax=True`` normalises them instead. The user-interest vector joins the field
embeddings of the row (user profile, context, item, position: the fields of
:class:`~recsys_utils.models.ctr.CTRFeatures`) and an MLP gives the click logit. A behaviour and the
candidate are each embedded as [item-id embedding; category embedding], sharing the tables of the
item-id and category fields. The paper's Dice activation and mini-batch aware regularisation are left
out (PReLU and weight decay play their parts). ``fm=True`` adds DeepFM's wide and FM parts (Guo et al.
2017) with the interest vector as two more fields, so that a comparison with DeepFM isolates the attention.

Training: :func:`fit_rows` runs the one training loop (``fit_torch``) on aligned arrays with early
stopping on a validation AUC; :func:`predict_rows` scores in batches. Both serve DeepFM and the
multi-task models of :mod:`recsys_utils.models.multitask` on the same impression rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recsys_utils.models.train.batches import ArrayBatches
from recsys_utils.models.train.history import History
from recsys_utils.models.train.loop import fit_torch

__all__ = ["AttentionPooling", "DINNet", "fit_rows", "mlp", "predict_rows"]


def mlp(widths: Sequence[int], activation: type[nn.Module] = nn.ReLU, dropout: float = 0.0) -> nn.Sequential:
    """Linear layers ``widths[0] -> widths[1] -> ...`` with ``activation`` (and dropout) after each."""
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(a, b), activation()] + ([nn.Dropout(dropout)] if dropout else [])
    return nn.Sequential(*layers)


class AttentionPooling(nn.Module):
    """DIN's local activation unit and weighted sum pooling over a masked behaviour sequence.

    ``forward(keys (N, L, d), query (N, d), mask (N, L) bool) -> (pooled (N, d), weights (N, L))``;
    the weight of a masked (padding) position is exactly 0.
    """

    def __init__(self, dim: int, hidden: Sequence[int] = (36,), softmax: bool = False) -> None:
        super().__init__()
        self.unit = nn.Sequential(mlp([4 * dim, *hidden], nn.PReLU), nn.Linear(([4 * dim, *hidden])[-1], 1))
        self.softmax = softmax

    def forward(self, keys: torch.Tensor, query: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = query.unsqueeze(1).expand_as(keys)
        scores = self.unit(torch.cat([keys, q, keys - q, keys * q], dim=-1)).squeeze(-1)
        if self.softmax:
            weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=1)
            weights = torch.nan_to_num(weights, nan=0.0)  # a user without any behaviour
        else:
            weights = scores
        weights = weights * mask  # padding contributes nothing, whatever it stores
        return torch.einsum("nl,nld->nd", weights, keys), weights


class DINNet(nn.Module):
    """DIN on ``len(sizes)`` categorical fields plus a behaviour sequence of (item-id, category) codes.

    ``item_field`` / ``category_field``: the positions of the candidate's item-id and category fields in
    a row of codes; the sequence's codes live in the same vocabularies. ``forward(codes (N, F),
    sequence (N, L, 2)) -> logits (N,)``; :meth:`attention` returns the weights of the behaviours.
    """

    def __init__(self, sizes: Sequence[int], item_field: int, category_field: int, dim: int = 8,
                 attention_hidden: Sequence[int] = (36,), hidden: Sequence[int] = (64, 32),
                 dropout: float = 0.0, softmax: bool = False, fm: bool = False) -> None:
        super().__init__()
        n = len(sizes)
        if not (0 <= item_field < n and 0 <= category_field < n and item_field != category_field):
            raise ValueError(f"DINNet: item_field and category_field must be two different fields in [0, {n}), "
                             f"got {item_field} and {category_field}")
        self.register_buffer("offsets", torch.tensor(np.concatenate([[0], np.cumsum(sizes)[:-1]]), dtype=torch.long))
        self.n_fields, self.item_field, self.category_field = n, item_field, category_field
        self.embedding = nn.Embedding(int(sum(sizes)), dim)
        nn.init.normal_(self.embedding.weight, std=0.05)
        self.pool = AttentionPooling(2 * dim, attention_hidden, softmax)
        self.tower = mlp([n * dim + 2 * dim, *hidden], nn.PReLU, dropout)
        self.out = nn.Linear(([n * dim + 2 * dim, *hidden])[-1], 1)
        self.fm, self.dim = fm, dim
        if fm:
            self.linear = nn.Embedding(int(sum(sizes)), 1)
            nn.init.zeros_(self.linear.weight)
            self.bias = nn.Parameter(torch.zeros(()))

    def behaviours(self, sequence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings ``(N, L, 2·dim)`` of the behaviour sequence and its mask (code 0 = padding)."""
        if sequence.ndim != 3 or sequence.shape[-1] != 2:
            raise ValueError(f"DINNet: sequence must have shape (N, L, 2), got {tuple(sequence.shape)}")
        mask = sequence[..., 0] > 0
        items = self.embedding(sequence[..., 0] + self.offsets[self.item_field])
        categories = self.embedding(sequence[..., 1] + self.offsets[self.category_field])
        return torch.cat([items, categories], dim=-1), mask

    def _parts(self, codes: torch.Tensor, sequence: torch.Tensor):
        if codes.ndim != 2 or codes.shape[1] != self.n_fields:
            raise ValueError(f"DINNet: codes must have shape (N, {self.n_fields}), got {tuple(codes.shape)}")
        fields = self.embedding(codes + self.offsets)
        target = torch.cat([fields[:, self.item_field], fields[:, self.category_field]], dim=-1)
        keys, mask = self.behaviours(sequence)
        interest, weights = self.pool(keys, target, mask)
        return fields, interest, weights

    def forward(self, codes: torch.Tensor, sequence: torch.Tensor) -> torch.Tensor:
        fields, interest, _ = self._parts(codes, sequence)
        logit = self.out(self.tower(torch.cat([fields.flatten(1), interest], dim=-1))).squeeze(-1)
        if self.fm:  # DeepFM's wide and FM parts, with the interest vector as two more fields
            e = torch.cat([fields, interest.view(len(interest), 2, self.dim)], dim=1)
            logit = logit + self.bias + self.linear(codes + self.offsets).squeeze(-1).sum(1) \
                + 0.5 * (e.sum(1).pow(2) - e.pow(2).sum(1)).sum(-1)
        return logit

    def attention(self, codes: torch.Tensor, sequence: torch.Tensor) -> torch.Tensor:
        """The activation weights ``(N, L)`` of each row's behaviours for its candidate item (0 on padding)."""
        return self._parts(codes, sequence)[2]


# --------------------------------------------------------------------------------------------
# training on aligned arrays
# --------------------------------------------------------------------------------------------

LossFn = Callable[[nn.Module, tuple], torch.Tensor]


def fit_rows(net: nn.Module, arrays: Sequence[np.ndarray], loss_fn: LossFn, epochs: int = 5,
             batch_size: int = 1024, lr: float = 2e-3, weight_decay: float = 0.0,
             validate: Callable[[], float] | None = None, patience: int | None = 2, seed: int = 0,
             device=None, progress: bool = True, desc: str | None = None) -> History:
    """Train ``net`` on aligned arrays (inputs then labels, one row per impression) with the one
    training loop: Adam, ``loss_fn(net, batch)``, early stopping on ``validate()`` (higher is better,
    e.g. a validation AUC) restoring the best epoch, progress bar, CUDA when present."""
    batches = ArrayBatches(*arrays, batch_size=batch_size, seed=seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    return fit_torch(net, batches, loss_fn, optimizer, epochs=epochs, validate=validate, patience=patience,
                     device=device, seed=seed, progress=progress, metric_name="val_auc", desc=desc)


def predict_rows(net: nn.Module, arrays: Sequence[np.ndarray], fn: Callable | None = None,
                 batch_size: int = 8192) -> np.ndarray:
    """``fn(net, *batch)`` (default: ``sigmoid(net(*batch))``) over aligned input arrays, in batches,
    on the network's device, without gradients; returns a numpy array."""
    fn = fn or (lambda module, *xs: torch.sigmoid(module(*xs)))
    device = next(net.parameters()).device
    tensors = [torch.as_tensor(np.ascontiguousarray(a)) for a in arrays]
    n = len(tensors[0])
    was_training = net.training
    net.eval()
    out = []
    with torch.no_grad():
        for start in range(0, n, batch_size):
            out.append(fn(net, *(t[start:start + batch_size].to(device) for t in tensors)).float().cpu())
    net.train(was_training)
    return torch.cat(out).numpy() if out else np.empty(0, dtype=np.float32)


def bce_rows(net: nn.Module, batch: tuple) -> torch.Tensor:
    """Binary cross-entropy of ``net(*inputs)`` logits against the batch's last array (0/1 labels)."""
    *inputs, labels = batch
    return F.binary_cross_entropy_with_logits(net(*inputs), labels.float())


__all__ += ["bce_rows"]
