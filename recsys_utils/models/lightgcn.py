"""LightGCN (He et al. 2020, "LightGCN: Simplifying and powering graph convolution network for
recommendation", SIGIR): embeddings smoothed over the user-item graph, trained with BPR.

The users and items are the nodes of one bipartite graph with adjacency ``A = [[0, R], [Rᵀ, 0]]``
(``R`` the binary user x item matrix). With degrees ``D`` the symmetric normalisation is
``Â = D^{-1/2} A D^{-1/2}``; one propagation layer is ``E^{(k+1)} = Â E^{(k)}`` (no weight
matrix, no non-linearity: the two parts of a GCN layer that do not help collaborative filtering),
and the final embedding is the mean of the layers ``E = (E^{(0)} + ... + E^{(K)}) / (K + 1)``. The
score is ``e_u · e_i``; only ``E^{(0)}`` is learnt, with the BPR loss (Rendle et al. 2009) plus L2
on the batch's layer-0 rows. Training goes through the course loop; each step propagates the
whole graph with a sparse matrix product.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from recsys_utils.data.interactions import Interactions
from recsys_utils.models.torch_base import TorchRecommender
from recsys_utils.models.train.batches import InteractionBatches


def normalized_adjacency(matrix: sp.spmatrix) -> sp.csr_matrix:
    """``D^{-1/2} A D^{-1/2}`` of the bipartite graph of a user x item matrix (users first, then items).

    Stored cells are edges (weight 1); isolated nodes keep an all-zero row.
    """
    r = sp.csr_matrix(matrix, dtype=np.float32)
    r.data[:] = 1.0
    r.eliminate_zeros()
    adjacency = sp.bmat([[None, r], [r.T, None]], format="csr", dtype=np.float32)
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    inv_sqrt = np.zeros_like(degree)
    inv_sqrt[degree > 0] = degree[degree > 0] ** -0.5
    scale = sp.diags(inv_sqrt)
    return sp.csr_matrix(scale @ adjacency @ scale, dtype=np.float32)


def to_torch_sparse(matrix: sp.spmatrix) -> torch.Tensor:
    """A scipy matrix as a coalesced torch sparse COO tensor (float32)."""
    coo = sp.coo_matrix(matrix, dtype=np.float32)
    indices = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    return torch.sparse_coo_tensor(indices, torch.from_numpy(coo.data), coo.shape,
                                   check_invariants=True).coalesce()


def propagate(adjacency: torch.Tensor, embeddings: torch.Tensor, n_layers: int) -> torch.Tensor:
    """The LightGCN output ``mean_k Â^k E`` for ``k = 0..n_layers`` (``adjacency`` sparse or dense)."""
    if n_layers < 0:
        raise ValueError(f"propagate: n_layers must be >= 0, got {n_layers}")
    layer, total = embeddings, embeddings
    for _ in range(n_layers):
        layer = torch.sparse.mm(adjacency, layer) if adjacency.is_sparse else adjacency @ layer
        total = total + layer
    return total / (n_layers + 1)


class LightGCNNet(nn.Module):
    """Layer-0 embeddings of users and items and the fixed normalised adjacency (a buffer)."""

    def __init__(self, adjacency: torch.Tensor, n_users: int, n_items: int, dim: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        self.n_users, self.n_items, self.n_layers = n_users, n_items, n_layers
        self.embedding = nn.Embedding(n_users + n_items, dim)
        nn.init.normal_(self.embedding.weight, std=0.1)
        self.register_buffer("adjacency", adjacency, persistent=False)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Propagated ``(user embeddings, item embeddings)``."""
        out = propagate(self.adjacency, self.embedding.weight, self.n_layers)
        return out[:self.n_users], out[self.n_users:]


class LightGCN(TorchRecommender):
    """LightGCN with ``n_layers`` propagation layers, trained with BPR on (user, clicked, sampled) triples.

    ``l2`` penalises the layer-0 rows of the batch (as in the paper); same knobs as
    :class:`~recsys_utils.models.bpr_torch.TorchBPR` so the two compare at equal size and budget.
    """

    name = "lightgcn"

    def __init__(self, dim: int = 64, n_layers: int = 3, l2: float = 1e-4, epochs: int = 20,
                 batch_size: int = 4096, lr: float = 5e-3, **kwargs) -> None:
        super().__init__(epochs=epochs, batch_size=batch_size, lr=lr, **kwargs)
        if n_layers < 0:
            raise ValueError(f"LightGCN: n_layers must be >= 0, got {n_layers}")
        self.dim, self.n_layers, self.l2 = dim, n_layers, l2

    def _build(self, train: Interactions) -> nn.Module:
        adjacency = to_torch_sparse(normalized_adjacency(train.matrix))
        return LightGCNNet(adjacency, train.n_users, train.n_items, self.dim, self.n_layers)

    def _batches(self, train: Interactions):
        return InteractionBatches(train.matrix, self.batch_size, kind="pairwise", seed=self.seed)

    def _loss(self, module: LightGCNNet, batch) -> torch.Tensor:
        users, pos, neg = batch
        user_emb, item_emb = module()
        u = user_emb[users]
        diff = (u * item_emb[pos]).sum(-1) - (u * item_emb[neg]).sum(-1)
        ego = module.embedding.weight
        reg = (ego[users].pow(2).sum(-1) + ego[module.n_users + pos].pow(2).sum(-1)
               + ego[module.n_users + neg].pow(2).sum(-1)).mean()
        return -F.logsigmoid(diff).mean() + self.l2 * reg

    def _score_users(self, module: LightGCNNet, users: torch.Tensor) -> torch.Tensor:
        user_emb, item_emb = module()
        return user_emb[users] @ item_emb.T

    def embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """Propagated user and item embeddings as numpy arrays."""
        module = self._check_module()
        with torch.no_grad():
            user_emb, item_emb = module()
        return user_emb.cpu().numpy(), item_emb.cpu().numpy()
