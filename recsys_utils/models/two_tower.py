"""Two-tower retrieval (双塔召回): a user tower and an item tower meeting in one dot product.

    u = UserTower(pooled recent history, member fields),   v_i = ItemTower(id, attributes, title)
    score(u, i) = u · v_i / τ        (both vectors L2-normalised: a cosine with temperature τ)

The item tower embeds the item id plus its attributes (category, top category, brand, price
band, title words); an item never seen in training has its id embedding zeroed, so a new item
gets a vector from its attributes alone (during training the id is dropped at random with
probability ``id_dropout`` so that the attribute path learns to stand alone). The user tower
pools the item-tower vectors of the user's recent items (weighted mean; the training target is
left out of its own history) and adds member fields (gender, age band, city tier, level).
Training is the in-batch sampled softmax with log-Q correction and optional uniform extra
negatives drawn from the training vocabulary (items with a training positive: an item launched
after the cut-off does not exist at training time, so it is never a negative;
:mod:`recsys_utils.models.retrieval_losses`; Yi et al. 2019, Yang et al. 2020), through the
course loop. Because scoring is one dot product, the item vectors can be put in an approximate
nearest-neighbour index (:mod:`recsys_utils.pipeline.ann`): the YouTube recipe of Covington et
al. (2016), "Deep neural networks for YouTube recommendations", RecSys.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from recsys_utils.data.interactions import Interactions
from recsys_utils.models.retrieval_losses import in_batch_softmax_loss, item_log_q, mixed_log_q
from recsys_utils.models.torch_base import TorchRecommender
from recsys_utils.models.train.batches import ArrayBatches
from recsys_utils.models.two_tower_inputs import item_fields, title_tokens, top_history, user_fields


class ItemTower(nn.Module):
    """``v = normalize(MLP([id · keep, field embeddings..., mean title-word embedding]))``."""

    def __init__(self, n_items: int, field_sizes: list[int], n_tokens: int, dim: int = 32) -> None:
        super().__init__()
        self.id = nn.Embedding(n_items, dim)
        self.fields = nn.ModuleList(nn.Embedding(size, dim) for size in field_sizes)
        self.title = nn.EmbeddingBag(n_tokens, dim, mode="mean", padding_idx=0)
        self.mlp = nn.Sequential(nn.Linear((2 + len(field_sizes)) * dim, dim), nn.ReLU(), nn.Linear(dim, dim))
        nn.init.normal_(self.id.weight, std=0.1)

    def forward(self, ids: torch.Tensor, fields: torch.Tensor, title: torch.Tensor,
                keep_id: torch.Tensor) -> torch.Tensor:
        """``ids`` (n,), ``fields`` (n, F) codes, ``title`` (n, T) word ids (0 pads), ``keep_id`` (n,) 0/1."""
        parts = [self.id(ids) * keep_id[:, None]]
        parts += [embedding(fields[:, f]) for f, embedding in enumerate(self.fields)]
        parts.append(self.title(title))
        return F.normalize(self.mlp(torch.cat(parts, dim=-1)), dim=-1)


class UserTower(nn.Module):
    """``u = normalize(pooled + MLP([pooled, member field embeddings...]))``."""

    def __init__(self, field_sizes: list[int], dim: int = 32) -> None:
        super().__init__()
        self.fields = nn.ModuleList(nn.Embedding(size, dim) for size in field_sizes)
        self.mlp = nn.Sequential(nn.Linear((1 + len(field_sizes)) * dim, dim), nn.ReLU(), nn.Linear(dim, dim))

    def forward(self, pooled: torch.Tensor, fields: torch.Tensor) -> torch.Tensor:
        parts = [pooled] + [embedding(fields[:, f]) for f, embedding in enumerate(self.fields)]
        return F.normalize(pooled + self.mlp(torch.cat(parts, dim=-1)), dim=-1)


class TwoTowerNet(nn.Module):
    """Both towers plus the fixed inputs as buffers (attribute codes, histories, log q)."""

    def __init__(self, item_codes: np.ndarray, item_sizes: list[int], title: np.ndarray, n_tokens: int,
                 keep_id: np.ndarray, user_codes: np.ndarray, user_sizes: list[int], history: np.ndarray,
                 history_weights: np.ndarray, log_q: np.ndarray, dim: int = 32) -> None:
        super().__init__()
        self.item_tower = ItemTower(len(item_codes), item_sizes, n_tokens, dim)
        self.user_tower = UserTower(user_sizes, dim)
        for name, value in (("item_codes", item_codes), ("title", title), ("keep_id", keep_id.astype(np.float32)),
                            ("user_codes", user_codes), ("history", history),
                            ("history_weights", history_weights), ("log_q", log_q.astype(np.float32))):
            self.register_buffer(name, torch.as_tensor(value), persistent=False)
        self.register_buffer("vocabulary", torch.as_tensor(np.flatnonzero(keep_id)), persistent=False)

    def item_vectors(self, items: torch.Tensor, id_dropout: float = 0.0) -> torch.Tensor:
        keep = self.keep_id[items]
        if self.training and id_dropout > 0:
            keep = keep * (torch.rand_like(keep) >= id_dropout)
        return self.item_tower(items, self.item_codes[items], self.title[items], keep)

    def user_vectors(self, users: torch.Tensor, exclude: torch.Tensor | None = None,
                     id_dropout: float = 0.0, table: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled history (minus ``exclude[i]`` in row ``i``) through the user tower; ``table`` holds
        precomputed vectors of every item (else the history's distinct items go through the item tower)."""
        history, weights = self.history[users], self.history_weights[users]
        if exclude is not None:
            weights = weights * (history != exclude[:, None])
        if table is None:
            unique, inverse = torch.unique(history.clamp_min(0), return_inverse=True)
            vectors = self.item_vectors(unique, id_dropout)[inverse]
        else:
            vectors = table[history.clamp_min(0)]
        pooled = (weights[..., None] * vectors).sum(1) / weights.sum(1, keepdim=True).clamp_min(1e-9)
        return self.user_tower(pooled, self.user_codes[users])

    def all_item_vectors(self) -> torch.Tensor:
        return self.item_vectors(torch.arange(len(self.keep_id), device=self.keep_id.device))


class TwoTower(TorchRecommender):
    """Two-tower retrieval trained with the log-Q corrected in-batch softmax (see the module docstring).

    ``items`` / ``users``: the item and member tables (``None``: ids / history only); ``recent``:
    the interactions the user tower pools (same index as ``train``; e.g. the last weeks with
    recency weights; default ``train``), its ``history_len`` heaviest items per user.
    ``temperature`` τ, ``log_q`` on/off, ``n_uniform`` extra uniform negatives per batch,
    ``id_dropout`` the probability of hiding an item's id embedding in training.
    """

    name = "two-tower"

    def __init__(self, items: pd.DataFrame | None = None, users: pd.DataFrame | None = None,
                 recent: Interactions | None = None, dim: int = 32, temperature: float = 0.1,
                 log_q: bool = True, n_uniform: int = 0, id_dropout: float = 0.2, history_len: int = 50,
                 max_title_tokens: int = 8, epochs: int = 10, batch_size: int = 1024, lr: float = 3e-3,
                 **kwargs) -> None:
        super().__init__(epochs=epochs, batch_size=batch_size, lr=lr, **kwargs)
        if temperature <= 0:
            raise ValueError(f"TwoTower: temperature must be > 0, got {temperature}")
        if not 0 <= id_dropout < 1:
            raise ValueError(f"TwoTower: id_dropout must be in [0, 1), got {id_dropout}")
        if n_uniform < 0:
            raise ValueError(f"TwoTower: n_uniform must be >= 0, got {n_uniform}")
        self.items, self.users, self.recent = items, users, recent
        self.dim, self.temperature, self.log_q = dim, temperature, log_q
        self.n_uniform, self.id_dropout, self.history_len = n_uniform, id_dropout, history_len
        self.max_title_tokens = max_title_tokens

    def _build(self, train: Interactions) -> nn.Module:
        history = train if self.recent is None else self.recent
        if history.matrix.shape != train.matrix.shape:
            raise ValueError(f"TwoTower: recent {history.matrix.shape} and train {train.matrix.shape} "
                             "do not share an index")
        item = item_fields(self.items, train.items)
        title, n_tokens = title_tokens(self.items, train.items, self.max_title_tokens)
        user = user_fields(self.users, train.users)
        hist_items, hist_weights = top_history(history.matrix, self.history_len)
        counts = np.asarray((train.matrix > 0).sum(axis=0)).ravel()
        self.pairs_ = train.matrix.tocoo()
        return TwoTowerNet(item.codes, item.sizes, title, n_tokens, counts > 0, user.codes, user.sizes,
                           hist_items, hist_weights, item_log_q(counts), self.dim)

    def _batches(self, train: Interactions):
        pairs = self.pairs_
        return ArrayBatches(pairs.row.astype(np.int64), pairs.col.astype(np.int64), batch_size=self.batch_size,
                            seed=self.seed)

    def _loss(self, module: TwoTowerNet, batch) -> torch.Tensor:
        users, items = batch
        n_items = len(module.keep_id)
        log_q = extra = extra_v = extra_q = table = None
        if n_items <= 2 * len(items):  # a small catalogue: one tower pass over every item, then gathers
            table = module.item_vectors(torch.arange(n_items, device=items.device), self.id_dropout)
        u = module.user_vectors(users, exclude=items, id_dropout=self.id_dropout, table=table)
        v = module.item_vectors(items, self.id_dropout) if table is None else table[items]
        vocabulary = module.vocabulary  # items with training positives: an item launched later is never a negative
        if self.n_uniform:
            extra = vocabulary[torch.randint(0, len(vocabulary), (self.n_uniform,), device=items.device)]
            extra_v = module.item_vectors(extra, self.id_dropout) if table is None else table[extra]
        if self.log_q:
            log_q = mixed_log_q(module.log_q[items], len(items), self.n_uniform, len(vocabulary))
            if extra is not None:
                extra_q = mixed_log_q(module.log_q[extra], len(items), self.n_uniform, len(vocabulary))
        return in_batch_softmax_loss(u, v, log_q, self.temperature, item_ids=items, extra_vecs=extra_v,
                                     extra_log_q=extra_q, extra_ids=extra)

    def _score_users(self, module: TwoTowerNet, users: torch.Tensor) -> torch.Tensor:
        table = module.all_item_vectors()
        return module.user_vectors(users, table=table) @ table.T / self.temperature

    def user_vectors(self, user_indices) -> np.ndarray:
        """User-tower vectors ``(n, dim)`` (L2-normalised) of the given user indices."""
        module = self._check_module()
        users = torch.as_tensor(np.asarray(user_indices, dtype=np.int64), device=self.device_)
        module.eval()
        with torch.no_grad():
            return module.user_vectors(users).cpu().numpy()

    def item_vectors(self) -> np.ndarray:
        """Item-tower vectors ``(n_items, dim)`` of the whole catalogue (new items from attributes)."""
        module = self._check_module()
        module.eval()
        with torch.no_grad():
            return module.all_item_vectors().cpu().numpy()
