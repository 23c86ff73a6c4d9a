"""TransE knowledge-graph embeddings (Bordes et al. 2013) and a recommender built on them.

Bordes, Usunier, Garcia-Durán, Weston & Yakhnenko (2013), *Translating embeddings for modeling
multi-relational data*, NeurIPS: a relation is a translation, so a true triple (h, r, t) has
:math:`e_h + e_r \\approx e_t`. The distance :math:`d(h, r, t) = \\lVert e_h + e_r - e_t \\rVert_p`
is trained with the margin ranking loss over corrupted triples (the head or the tail replaced by a
random entity),

.. math:: L = \\frac{1}{|B|} \\sum_{(h,r,t) \\in B} \\big[\\gamma + d(h, r, t) - d(h', r, t')\\big]_+ ,

with entity vectors renormalised to unit length before each batch (the paper's constraint).
:class:`TransERecommender` adds the users to the catalogue graph of
:func:`~recsys_utils.features.knowledge_graph.build_knowledge_graph` with a relation
``interacted`` (user -> item) and ranks items by :math:`-d(u, \\text{interacted}, i)`; an item
nobody has touched (a cold item) still has a vector, placed by its category, brand and price band.
:meth:`TransERecommender.related_items` ranks follow-ups along ``complements``. Training runs in
the course's one loop, :func:`~recsys_utils.models.train.loop.fit_torch`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recsys_utils.core.topk import top_k
from recsys_utils.data.interactions import Interactions
from recsys_utils.features.knowledge_graph import KnowledgeGraph
from recsys_utils.models.torch_base import TorchRecommender

INTERACTED = "interacted"


class TransE(nn.Module):
    """Entity and relation embeddings; ``forward(triples)`` is the distance ``||e_h + e_r - e_t||_p``."""

    def __init__(self, n_entities: int, n_relations: int, dim: int = 32, p: int = 2) -> None:
        super().__init__()
        if p not in (1, 2):
            raise ValueError(f"TransE: p must be 1 or 2, got {p}")
        self.p = p
        self.entity = nn.Embedding(n_entities, dim)
        self.relation = nn.Embedding(n_relations, dim)
        bound = 6.0 / dim**0.5  # the paper's uniform initialisation
        nn.init.uniform_(self.entity.weight, -bound, bound)
        nn.init.uniform_(self.relation.weight, -bound, bound)
        with torch.no_grad():
            self.relation.weight.copy_(F.normalize(self.relation.weight, dim=-1))
            self.normalise_entities()

    @torch.no_grad()
    def normalise_entities(self) -> None:
        """Project every entity vector onto the unit sphere (done before each batch)."""
        self.entity.weight.copy_(F.normalize(self.entity.weight, dim=-1))

    def forward(self, triples: torch.Tensor) -> torch.Tensor:
        head, relation, tail = triples.unbind(-1)
        return torch.linalg.vector_norm(self.entity(head) + self.relation(relation) - self.entity(tail),
                                        ord=self.p, dim=-1)

    def distances_to_all(self, heads: torch.Tensor, relation: int, candidates: torch.Tensor) -> torch.Tensor:
        """``d(h, r, c)`` for every head (rows) and candidate tail entity (columns)."""
        query = self.entity(heads) + self.relation.weight[relation]
        return torch.cdist(query, self.entity(candidates), p=float(self.p))


def margin_loss(positive: torch.Tensor, negative: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Margin ranking loss ``mean(max(0, margin + d_pos - d_neg))``."""
    return F.relu(margin + positive - negative).mean()


def corrupt(triples: np.ndarray, n_entities: int, rng: np.random.Generator) -> np.ndarray:
    """Corrupted copies of triples: the head or (with probability 1/2) the tail replaced by a random entity."""
    triples = np.asarray(triples, dtype=np.int64)
    out = triples.copy()
    replace_tail = rng.random(len(out)) < 0.5
    random_entities = rng.integers(0, n_entities, len(out))
    out[replace_tail, 2] = random_entities[replace_tail]
    out[~replace_tail, 0] = random_entities[~replace_tail]
    return out


class TripleBatches:
    """Shuffled mini-batches of (positive, corrupted) triples, a fresh seeded draw per epoch."""

    def __init__(self, triples: np.ndarray, n_entities: int, batch_size: int = 4096, seed: int = 0) -> None:
        self.triples = np.asarray(triples, dtype=np.int64)
        self.n_entities = n_entities
        self.batch_size = batch_size
        self.seed = seed

    def __len__(self) -> int:
        return -(-len(self.triples) // self.batch_size)

    def __call__(self, epoch: int = 0):
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.triples))
        for start in range(0, len(order), self.batch_size):
            positive = self.triples[order[start:start + self.batch_size]]
            yield torch.from_numpy(positive), torch.from_numpy(corrupt(positive, self.n_entities, rng))


class TransERecommender(TorchRecommender):
    """Users, items and the catalogue graph in one TransE space: ``score(u, i) = -d(u, interacted, i)``.

    Each epoch holds the user -> item triples once and the catalogue graph's triples repeated to
    make about ``graph_share`` of it.
    """

    name = "transe"

    def __init__(self, graph: KnowledgeGraph, dim: int = 32, margin: float = 1.0, p: int = 2, graph_share: float = 0.5,
                 epochs: int = 20, batch_size: int = 4096, lr: float = 1e-2, **kwargs) -> None:
        kwargs.setdefault("patience", None)
        kwargs.setdefault("clip_norm", None)
        super().__init__(epochs=epochs, batch_size=batch_size, lr=lr, **kwargs)
        if not isinstance(graph, KnowledgeGraph):
            raise TypeError(f"TransERecommender: graph must be a KnowledgeGraph, got {type(graph).__name__}")
        self.graph = graph
        self.dim = dim
        self.margin = margin
        self.p = p
        if not 0.0 <= graph_share < 1.0:
            raise ValueError(f"TransERecommender: graph_share must be in [0, 1), got {graph_share}")
        self.graph_share = graph_share

    def _build(self, train: Interactions) -> nn.Module:
        self.item_entities_ = self.graph.entity("item", train.items.ids)  # raises on items outside the graph
        rows, cols = train.binary().nonzero()
        users = np.unique(rows)
        offset = self.graph.n_entities
        user_entity = np.full(train.n_users, -1, dtype=np.int64)
        user_entity[users] = offset + np.arange(len(users))
        self.user_entities_ = user_entity
        self.graph_ = self.graph.extend("user", train.users.ids[users], INTERACTED, user_entity[rows],
                                        self.item_entities_[cols])
        return TransE(self.graph_.n_entities, self.graph_.n_relations, self.dim, self.p)

    def _batches(self, train: Interactions):
        """The catalogue graph's triples repeated to make about ``graph_share`` of each epoch (else the many
        user triples swamp the few attribute triples that place the cold items), then the user triples."""
        n_graph = len(self.graph.triples)
        n_users = len(self.graph_.triples) - n_graph
        repeats = max(1, round(self.graph_share / (1.0 - self.graph_share) * n_users / max(n_graph, 1)))
        triples = np.vstack([np.tile(self.graph.triples, (repeats, 1)), self.graph_.triples[n_graph:]])
        return TripleBatches(triples, self.graph_.n_entities, self.batch_size, self.seed)

    def _loss(self, module: TransE, batch) -> torch.Tensor:
        positive, negative = batch
        module.normalise_entities()
        return margin_loss(module(positive), module(negative), self.margin)

    def _score_users(self, module: TransE, users: torch.Tensor) -> torch.Tensor:
        entity = torch.as_tensor(self.user_entities_, device=users.device)[users]
        known = entity >= 0
        items = torch.as_tensor(self.item_entities_, device=users.device)
        scores = torch.zeros(len(users), len(items), device=users.device)
        if known.any():
            scores[known] = -module.distances_to_all(entity[known], self.graph_.relation(INTERACTED), items)
        return scores

    def related_items(self, item_indices, relation: str = "complements", k: int = 10,
                      exclude_same_category: bool = False) -> np.ndarray:
        """Top-``k`` item indices ``j`` by ``-d(i, relation, j)`` for each item index ``i`` (itself excluded)."""
        module = self._check_module()
        item_indices = np.asarray(item_indices, dtype=np.int64)
        heads = torch.as_tensor(self.item_entities_[item_indices], device=self.device_)
        items = torch.as_tensor(self.item_entities_, device=self.device_)
        with torch.no_grad():
            scores = -module.distances_to_all(heads, self.graph_.relation(relation), items).cpu().numpy()
        scores[np.arange(len(item_indices)), item_indices] = -np.inf
        if exclude_same_category:
            category = self._item_categories()
            scores[category[item_indices][:, None] == category[None, :]] = -np.inf
        return top_k(scores, k)

    def _item_categories(self) -> np.ndarray:
        """Category entity of each item index (from the graph's ``in_category`` triples)."""
        triples = self.graph_.triples[self.graph_.triples[:, 1] == self.graph_.relation("in_category")]
        category = np.full(self.graph_.n_entities, -1, dtype=np.int64)
        category[triples[:, 0]] = triples[:, 2]
        return category[self.item_entities_]


__all__ = ["INTERACTED", "TransE", "TransERecommender", "TripleBatches", "corrupt", "margin_loss"]
