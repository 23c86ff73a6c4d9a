"""Autoencoders (自编码器) for implicit feedback: Mult-VAE and Mult-DAE.

Liang, Krishnan, Hoffman & Jebara (2018), "Variational Autoencoders for Collaborative Filtering",
WWW. A user is their whole click row ``x_u`` (binary, one entry per item). The encoder maps the
L2-normalised, dropout-corrupted row to a Gaussian ``q(z | x_u) = N(μ, diag σ²)``; the decoder
maps ``z`` to a softmax over the catalogue, ``π(z)``, and the row is scored by the multinomial
log-likelihood ``Σ_i x_ui log π_i(z)``. Training maximises the annealed ELBO

    L = E_q[ Σ_i x_ui log π_i(z) ] - β · KL(q(z | x_u) ‖ N(0, I)),

with ``β`` rising linearly from 0 to ``beta_cap`` over ``anneal_steps`` mini-batches (the paper's
KL annealing; β = 0 gives the denoising autoencoder Mult-DAE, ``variational=False``). At
prediction time the mean ``μ`` is decoded: a user's scores come from their training row, so new
clicks are folded in without retraining (like EASE, unlike embedding models).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from recsys_utils.data.interactions import Interactions
from recsys_utils.models.torch_base import TorchRecommender
from recsys_utils.models.train.batches import UserBatches

__all__ = ["MultDAE", "MultVAE", "MultVAENet"]


class MultVAENet(nn.Module):
    """Encoder ``[n_items → hidden… → 2·latent]`` (tanh), decoder ``[latent → hidden… → n_items]``."""

    def __init__(self, n_items: int, hidden: Sequence[int] = (200,), latent: int = 64, dropout: float = 0.5,
                 variational: bool = True) -> None:
        super().__init__()
        if latent < 1 or any(h < 1 for h in hidden):
            raise ValueError(f"MultVAENet: layer widths must be >= 1, got hidden={hidden}, latent={latent}")
        self.variational = variational
        self.latent = latent
        enc_dims = [n_items, *hidden]
        self.encoder = nn.ModuleList(nn.Linear(a, b) for a, b in zip(enc_dims[:-1], enc_dims[1:], strict=True))
        self.to_latent = nn.Linear(enc_dims[-1], 2 * latent if variational else latent)
        dec_dims = [latent, *reversed(hidden), n_items]
        self.decoder = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dec_dims[:-1], dec_dims[1:], strict=True))
        self.dropout = dropout
        for layer in [*self.encoder, self.to_latent, *self.decoder]:
            nn.init.xavier_uniform_(layer.weight)
            nn.init.normal_(layer.bias, std=0.001)

    def encode(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(μ, log σ²)`` of ``q(z | x)`` (``log σ²`` is ``None`` for the DAE)."""
        h = F.normalize(rows, dim=1)
        h = F.dropout(h, self.dropout, self.training)
        for layer in self.encoder:
            h = torch.tanh(layer(h))
        out = self.to_latent(h)
        if not self.variational:
            return out, None
        return out[:, :self.latent], out[:, self.latent:]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        for index, layer in enumerate(self.decoder):
            z = layer(z)
            if index < len(self.decoder) - 1:
                z = torch.tanh(z)
        return z

    def forward(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits over the catalogue, KL per user)``; samples ``z`` only in training mode."""
        mu, logvar = self.encode(rows)
        if logvar is None:
            return self.decode(mu), torch.zeros(len(rows), device=rows.device)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        kl = 0.5 * (torch.exp(logvar) + mu.pow(2) - 1.0 - logvar).sum(dim=1)
        return self.decode(z), kl


class MultVAE(TorchRecommender):
    """Mult-VAE (Liang et al. 2018) with KL annealing; ``variational=False`` is Mult-DAE.

    ``hidden`` widths of the encoder (mirrored in the decoder), ``latent`` size of ``z``,
    ``dropout`` on the input row, ``beta_cap`` the largest KL weight, reached after
    ``anneal_steps`` mini-batches (default: over the whole run). ``batch_size`` counts users.
    """

    name = "mult-vae"

    def __init__(self, hidden: Sequence[int] = (200,), latent: int = 64, dropout: float = 0.5,
                 beta_cap: float = 0.2, anneal_steps: int | None = None, variational: bool = True,
                 epochs: int = 50, batch_size: int = 256, lr: float = 1e-3, **kwargs) -> None:
        super().__init__(epochs=epochs, batch_size=batch_size, lr=lr, **kwargs)
        if beta_cap < 0:
            raise ValueError(f"MultVAE: beta_cap must be >= 0, got {beta_cap}")
        self.hidden = tuple(hidden)
        self.latent = latent
        self.dropout = dropout
        self.beta_cap = beta_cap
        self.anneal_steps = anneal_steps
        self.variational = variational

    def _build(self, train: Interactions) -> nn.Module:
        self._x = train.binary().astype("float32")
        self.step_ = 0
        active = int((train.user_counts() > 0).sum())
        per_epoch = max(1, -(-active // self.batch_size))
        self.anneal_steps_ = self.anneal_steps or per_epoch * self.epochs
        return MultVAENet(train.n_items, self.hidden, self.latent, self.dropout, self.variational)

    def _batches(self, train: Interactions):
        return UserBatches(train.matrix, self.batch_size, seed=self.seed)

    @property
    def beta(self) -> float:
        """The KL weight of the next training step."""
        if not self.variational:
            return 0.0
        return self.beta_cap * min(1.0, self.step_ / max(1, self.anneal_steps_))

    def _loss(self, module: nn.Module, batch) -> torch.Tensor:
        _, rows = batch
        logits, kl = module(rows)
        nll = -(F.log_softmax(logits, dim=1) * rows).sum(dim=1)
        loss = (nll + self.beta * kl).mean()
        self.step_ += 1
        return loss

    def _score_users(self, module: nn.Module, users: torch.Tensor) -> torch.Tensor:
        rows = torch.from_numpy(self._x[users.cpu().numpy()].toarray()).to(users.device)
        logits, _ = module(rows)
        return logits

    def _score_batch_size(self) -> int:
        return 512


class MultDAE(MultVAE):
    """Mult-DAE (Liang et al. 2018): the same network without the KL term and the sampling."""

    name = "mult-dae"

    def __init__(self, **kwargs) -> None:
        kwargs["variational"] = False
        super().__init__(**kwargs)
