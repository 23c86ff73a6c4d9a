"""Deep belief nets (深度信念网络): stacked RBMs trained greedily, sampled top-down, and used to pre-train
an autoencoder recommender.

Hinton, Osindero & Teh (2006), "A Fast Learning Algorithm for Deep Belief Nets", Neural Computation;
Hinton & Salakhutdinov (2006), "Reducing the Dimensionality of Data with Neural Networks", Science.
Layer ``l`` is an RBM on the hidden probabilities of layer ``l - 1`` (the data for ``l = 1``),
each trained by CD-k through the one training loop (:func:`~recsys_utils.models.rbm.fit_rbm`).
Generation runs a Gibbs chain in the top RBM, then passes the sample down through ``p(h_{l-1} | h_l)``.
As pre-training, the RBMs' weights initialise an autoencoder (encoder ``W_l``, decoder ``W_lᵀ``) that
is then fine-tuned with the multinomial loss of Mult-DAE; ``pretrained=False`` is the same network
from a random initialisation, for an honest comparison.
"""

from __future__ import annotations

from collections.abc import Sequence

import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from recsys_utils.data.interactions import Interactions
from recsys_utils.models.rbm import RBMNet, fit_rbm, visible_bias_init
from recsys_utils.models.torch_base import TorchRecommender
from recsys_utils.models.train.batches import UserBatches
from recsys_utils.models.train.history import History

__all__ = ["DBN", "DBNAutoencoder", "DeepAutoencoderNet"]


class DBN:
    """A stack of :class:`RBMNet` s of widths ``(n_visible, *hidden)``, trained greedily by :meth:`fit`."""

    def __init__(self, n_visible: int, hidden: Sequence[int] = (64, 32), k: int = 1, epochs: int = 5,
                 batch_size: int = 256, lr: float = 1e-2, seed: int = 0, device=None,
                 progress: bool = False) -> None:
        if not hidden or any(h < 1 for h in hidden):
            raise ValueError(f"DBN: hidden must be a non-empty list of widths >= 1, got {hidden}")
        widths = [n_visible, *hidden]
        self.rbms = [RBMNet(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)]
        self.k, self.epochs, self.batch_size, self.lr = k, epochs, batch_size, lr
        self.seed, self.device, self.progress = seed, device, progress
        self.histories_: list[History] = []

    def fit(self, x: sp.spmatrix) -> DBN:
        """Greedy layer-wise CD-k: RBM ``l`` learns the hidden probabilities of RBM ``l - 1`` on ``x``."""
        data = sp.csr_matrix(x, dtype="float32")
        with torch.no_grad():
            self.rbms[0].b.copy_(visible_bias_init(data))
        self.histories_ = []
        for index, rbm in enumerate(self.rbms):
            torch.manual_seed(self.seed + index)
            batches = UserBatches(data, self.batch_size, seed=self.seed + index, binary=index == 0)
            self.histories_.append(fit_rbm(rbm, batches, self.epochs, self.lr, self.k, device=self.device,
                                           progress=self.progress, desc=f"dbn layer {index + 1}"))
            with torch.no_grad():
                dense = torch.from_numpy(data.toarray()).to(rbm.W.device)
                data = sp.csr_matrix(rbm.p_h(dense).cpu().numpy())
        return self

    def sample(self, n: int, steps: int = 200, seed: int = 0) -> torch.Tensor:
        """``n`` visible vectors: a Gibbs chain in the top RBM, then top-down ``p(h_{l-1} | h_l)`` samples."""
        top = self.rbms[-1]
        h = top.sample(n, steps, seed)
        generator = torch.Generator(device=top.W.device).manual_seed(seed + 1)
        with torch.no_grad():
            for rbm in reversed(self.rbms[:-1]):
                h = torch.bernoulli(rbm.p_v(h), generator=generator)
        return h


class DeepAutoencoderNet(nn.Module):
    """Encoder ``n_items → hidden…`` and mirrored decoder, sigmoid hidden units, item logits out."""

    def __init__(self, n_items: int, hidden: Sequence[int] = (64, 32), dropout: float = 0.5) -> None:
        super().__init__()
        widths = [n_items, *hidden]
        self.encoder = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.decoder = nn.ModuleList(nn.Linear(b, a) for a, b in reversed(list(zip(widths[:-1], widths[1:],
                                                                                     strict=True))))
        self.dropout = dropout

    def load_rbms(self, rbms: Sequence[RBMNet]) -> None:
        """Encoder layer ``l`` = ``(W_lᵀ, c_l)``, the mirrored decoder layer = ``(W_l, b_l)``."""
        if len(rbms) != len(self.encoder):
            raise ValueError(f"DeepAutoencoderNet: {len(rbms)} RBMs for {len(self.encoder)} layers")
        with torch.no_grad():
            for enc, dec, rbm in zip(self.encoder, reversed(self.decoder), rbms, strict=True):
                enc.weight.copy_(rbm.W.T)
                enc.bias.copy_(rbm.c)
                dec.weight.copy_(rbm.W)
                dec.bias.copy_(rbm.b)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        h = F.dropout(rows, self.dropout, self.training)
        for layer in self.encoder:
            h = torch.sigmoid(layer(h))
        for index, layer in enumerate(self.decoder):
            h = layer(h)
            if index < len(self.decoder) - 1:
                h = torch.sigmoid(h)
        return h


class DBNAutoencoder(TorchRecommender):
    """An autoencoder recommender pre-trained as a DBN (``pretrained=True``) or from random weights.

    ``hidden`` widths, ``pretrain_epochs`` CD epochs per RBM, ``k`` Gibbs steps, ``dropout`` on the
    input row; fine-tuning minimises Mult-DAE's loss ``-Σ_i x_ui log softmax(logits)_i``.
    """

    name = "dbn-autoencoder"

    def __init__(self, hidden: Sequence[int] = (64, 32), pretrained: bool = True, pretrain_epochs: int = 5,
                 k: int = 1, dropout: float = 0.5, epochs: int = 20, batch_size: int = 256, lr: float = 1e-3,
                 **kwargs) -> None:
        super().__init__(epochs=epochs, batch_size=batch_size, lr=lr, **kwargs)
        self.hidden = tuple(hidden)
        self.pretrained = pretrained
        self.pretrain_epochs = pretrain_epochs
        self.k = k
        self.dropout = dropout
        self.dbn_: DBN | None = None

    def _build(self, train: Interactions) -> nn.Module:
        self._x = train.binary().astype("float32")
        return DeepAutoencoderNet(train.n_items, self.hidden, self.dropout)

    def _init_module(self, module: nn.Module, train: Interactions) -> None:
        if not self.pretrained:
            return
        self.dbn_ = DBN(train.n_items, self.hidden, self.k, self.pretrain_epochs, self.batch_size,
                        lr=1e-2, seed=self.seed, device=self.device, progress=self.progress).fit(self._x)
        module.load_rbms([rbm.cpu() for rbm in self.dbn_.rbms])

    def _batches(self, train: Interactions):
        return UserBatches(train.matrix, self.batch_size, seed=self.seed)

    def _loss(self, module: nn.Module, batch) -> torch.Tensor:
        _, rows = batch
        return -(F.log_softmax(module(rows), dim=1) * rows).sum(dim=1).mean()

    def _score_users(self, module: nn.Module, users: torch.Tensor) -> torch.Tensor:
        rows = torch.from_numpy(self._x[users.cpu().numpy()].toarray()).to(users.device)
        return module(rows)

    def _score_batch_size(self) -> int:
        return 512
