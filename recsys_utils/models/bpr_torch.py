"""BPR matrix factorisation in torch (Rendle et al. 2009, "BPR: Bayesian Personalized Ranking from
Implicit Feedback", UAI), trained with the course loop :func:`recsys_utils.models.train.loop.fit_torch`.

    x̂_ui = p_u · q_i + b_i,   loss = -mean log σ(x̂_ui - x̂_uj) + λ (‖p_u‖² + ‖q_i‖² + ‖q_j‖²)

for a clicked item ``i`` and a sampled non-clicked item ``j``. The fast BPR of the collaborative
filtering lesson (hand-written SGD updates, no autograd) is :class:`recsys_utils.models.bpr.BPR`;
this one runs on the course's autograd loop with Adam, to compare against the neural models on the
same footing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recsys_utils.data.interactions import Interactions
from recsys_utils.models.torch_base import TorchRecommender
from recsys_utils.models.train.batches import InteractionBatches


class MFNet(nn.Module):
    """User and item embeddings plus an item bias: ``score(u, i) = p_u · q_i + b_i``."""

    def __init__(self, n_users: int, n_items: int, dim: int = 64) -> None:
        super().__init__()
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        self.item_bias = nn.Embedding(n_items, 1)
        nn.init.normal_(self.user.weight, std=0.1)
        nn.init.normal_(self.item.weight, std=0.1)
        nn.init.zeros_(self.item_bias.weight)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (self.user(users) * self.item(items)).sum(-1) + self.item_bias(items).squeeze(-1)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        return self.user(users) @ self.item.weight.T + self.item_bias.weight.T


class TorchBPR(TorchRecommender):
    """BPR-MF with Adam on (user, clicked, sampled) triples; ``l2`` penalises the used rows."""

    name = "bpr-torch"

    def __init__(self, dim: int = 64, l2: float = 1e-4, n_negatives: int = 1, epochs: int = 20,
                 batch_size: int = 4096, lr: float = 5e-3, **kwargs) -> None:
        super().__init__(epochs=epochs, batch_size=batch_size, lr=lr, **kwargs)
        self.dim = dim
        self.l2 = l2
        self.n_negatives = n_negatives

    def _build(self, train: Interactions) -> nn.Module:
        return MFNet(train.n_users, train.n_items, self.dim)

    def _batches(self, train: Interactions):
        return InteractionBatches(train.matrix, self.batch_size, kind="pairwise",
                                  n_negatives=self.n_negatives, seed=self.seed)

    def _loss(self, module: MFNet, batch) -> torch.Tensor:
        users, pos, neg = batch
        p = module.user(users)
        q_pos, q_neg = module.item(pos), module.item(neg)
        if neg.dim() == 2:  # several negatives per positive
            diff = ((p * q_pos).sum(-1) + module.item_bias(pos).squeeze(-1))[:, None] - (
                (p[:, None, :] * q_neg).sum(-1) + module.item_bias(neg).squeeze(-1))
        else:
            diff = module(users, pos) - module(users, neg)
        reg = p.pow(2).sum(-1).mean() + q_pos.pow(2).sum(-1).mean() + q_neg.pow(2).sum(-1).mean()
        return -F.logsigmoid(diff).mean() + self.l2 * reg

    def _score_users(self, module: MFNet, users: torch.Tensor) -> torch.Tensor:
        return module.score_all(users)

    def embeddings(self) -> tuple:
        """User and item embedding matrices as numpy arrays."""
        module = self._check_module()
        return (module.user.weight.detach().cpu().numpy(), module.item.weight.detach().cpu().numpy())
