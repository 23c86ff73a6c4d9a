"""A Wasserstein GAN with gradient penalty over binary user vectors, trained by the course loop.

:class:`InteractionGAN` (Gulrajani et al. 2017): the generator maps noise and a target activity to
item probabilities and emits a *binary* vector through a straight-through Bernoulli estimator
(Bengio et al. 2013), so the critic sees the same kind of data as the real vectors. The
generator's output bias starts at the items' log-popularity. Unconditional by design: unlike
CFGAN (Chae et al. 2018), which generates a purchase vector *for a given real user*, it never sees
a real user's vector when sampling. Training runs in
:func:`~recsys_utils.models.train.loop.fit_torch` with a ``step_fn`` (:class:`WGANStep`: the
critic updates and the generator update of one iteration) and a :class:`GANMonitor` callback.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.decomposition import TruncatedSVD
from torch import nn

from recsys_utils.core.device import resolve_device
from recsys_utils.models.generative.base import Generator, binary_csr
from recsys_utils.models.train.callbacks import Callback, ProgressBar, TrainState
from recsys_utils.models.train.history import History
from recsys_utils.models.train.loop import fit_torch


class GeneratorNet(nn.Module):
    """Noise and log activity -> a hidden taste ``h`` -> item logits ``bias + h E^T`` (E: item factors)."""

    def __init__(self, noise_dim: int, hidden: int, item_factors: np.ndarray, log_popularity: np.ndarray) -> None:
        super().__init__()
        d = item_factors.shape[1]
        self.body = nn.Sequential(nn.Linear(noise_dim + 1, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, d))
        self.items = nn.Parameter(torch.as_tensor(item_factors, dtype=torch.float32).clone())
        self.bias = nn.Parameter(torch.as_tensor(log_popularity, dtype=torch.float32).clone())

    def probabilities(self, noise: torch.Tensor, activity: torch.Tensor) -> torch.Tensor:
        """P(item in the vector): ``1 - exp(-n softmax(logits))``, the chance that ``n`` draws with
        replacement hit the item; the expected row sum is close to ``n``."""
        h = self.body(torch.cat([noise, torch.log(activity)[:, None] / 3.0], dim=1))
        logits = self.bias + h @ self.items.T
        return -torch.expm1(-activity[:, None] * torch.softmax(logits, dim=1))

    def forward(self, noise: torch.Tensor, activity: torch.Tensor) -> torch.Tensor:
        """A binary vector with a straight-through gradient: forward = Bernoulli draw, backward = d p."""
        p = self.probabilities(noise, activity)
        hard = torch.bernoulli(p.detach())
        return hard + p - p.detach()


class CriticNet(nn.Module):
    """Sees a vector through fixed SVD item factors (which items go together, scaled by activity),
    a small learned projection of the raw vector (marginals) and the log activity."""

    def __init__(self, item_factors: np.ndarray, hidden: int, raw_dim: int = 16) -> None:
        super().__init__()
        self.register_buffer("factors", torch.as_tensor(item_factors, dtype=torch.float32))
        n_items, d = item_factors.shape
        self.raw = nn.Linear(n_items, raw_dim)
        self.net = nn.Sequential(nn.Linear(d + raw_dim + 1, hidden), nn.LeakyReLU(0.2),
                                 nn.Linear(hidden, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.sum(dim=1, keepdim=True)
        z = (x @ self.factors) / torch.sqrt(size + 1.0)
        return self.net(torch.cat([z, self.raw(x), torch.log1p(size) / 3.0], dim=1)).squeeze(1)


@dataclass
class GANHistory:
    """Per-logged-step critic loss, Wasserstein estimate and generator loss (and optional extras)."""

    step: list[int] = field(default_factory=list)
    critic_loss: list[float] = field(default_factory=list)
    wasserstein: list[float] = field(default_factory=list)
    generator_loss: list[float] = field(default_factory=list)
    extra: dict[str, list[float]] = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame({"step": self.step, "critic_loss": self.critic_loss,
                              "wasserstein": self.wasserstein, "generator_loss": self.generator_loss})
        for key, values in self.extra.items():
            frame[key] = values
        return frame


class WGANStep:
    """One WGAN-GP iteration as a ``step_fn`` of :func:`fit_torch`: ``critic_steps`` critic updates on
    real and generated batches with the gradient penalty, then one generator update.

    Real rows and activities come from a numpy ``rng``, noise and Bernoulli draws from torch's
    global generator (seeded by :meth:`InteractionGAN.fit`), in a fixed order.
    """

    def __init__(self, gan: InteractionGAN, dense: torch.Tensor, rng: np.random.Generator,
                 opt_c: torch.optim.Optimizer, opt_g: torch.optim.Optimizer) -> None:
        self.gan, self.dense, self.rng, self.opt_c, self.opt_g = gan, dense, rng, opt_c, opt_g

    def real_batch(self) -> torch.Tensor:
        rows = self.rng.integers(0, self.dense.shape[0], self.gan.batch_size)
        return self.dense[torch.as_tensor(rows, device=self.dense.device)]

    def fake_batch(self, generator: GeneratorNet) -> torch.Tensor:
        gan, device = self.gan, self.dense.device
        noise = torch.randn(gan.batch_size, gan.noise_dim, device=device)
        act = torch.as_tensor(self.rng.choice(gan.activity_, gan.batch_size), device=device)
        return generator(noise, act)

    def critic_step(self, generator: GeneratorNet, critic: CriticNet) -> tuple[torch.Tensor, torch.Tensor]:
        real = self.real_batch()
        with torch.no_grad():
            fake = self.fake_batch(generator)
        w_dist = critic(real).mean() - critic(fake).mean()
        alpha = torch.rand(self.gan.batch_size, 1, device=real.device)
        mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        grad = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)[0]
        penalty = ((grad.norm(dim=1) - 1.0) ** 2).mean()
        loss_c = -w_dist + self.gan.gp * penalty
        self.opt_c.zero_grad()
        loss_c.backward()
        self.opt_c.step()
        return loss_c, w_dist

    def __call__(self, pair: nn.ModuleDict, step: int) -> dict[str, torch.Tensor]:
        generator, critic = pair["generator"], pair["critic"]
        for _ in range(self.gan.critic_steps):
            loss_c, w_dist = self.critic_step(generator, critic)
        fake = self.fake_batch(generator)
        if self.gan.detach_bug:
            fake = fake.detach()  # the bug: the loss no longer depends on the generator's weights
        loss_g = -critic(fake).mean()
        self.opt_g.zero_grad()
        if loss_g.requires_grad:
            loss_g.backward()
        self.opt_g.step()
        return {"critic_loss": loss_c.detach(), "wasserstein": w_dist.detach(), "generator_loss": loss_g.detach()}


class GANMonitor(Callback):
    """After every block of ``log_every`` steps (an "epoch" of the loop): the last step's losses and
    ``monitor(gan, step) -> dict`` (e.g. item coverage of a sample) go to ``gan.history_``."""

    def __init__(self, gan: InteractionGAN, monitor: Callable[[InteractionGAN, int], dict] | None = None) -> None:
        self.gan, self.monitor, self.last = gan, monitor, (0, {})

    def on_batch_end(self, state: TrainState) -> None:
        self.last = (int(state.batch), state.logs)

    def on_epoch_end(self, state: TrainState) -> None:
        step, logs = self.last
        h = self.gan.history_
        h.step.append(step)
        h.critic_loss.append(float(logs["critic_loss"]))
        h.wasserstein.append(float(logs["wasserstein"]))
        h.generator_loss.append(float(logs["generator_loss"]))
        if self.monitor is not None:
            for key, value in self.monitor(self.gan, step).items():
                h.extra.setdefault(key, []).append(float(value))


class InteractionGAN(Generator):
    """WGAN-GP over binary user vectors with a straight-through Bernoulli generator output.

    ``steps`` generator updates, ``critic_steps`` critic updates before each, batch ``batch_size``,
    Adam(``lr``, betas (0.5, 0.9)), gradient penalty ``gp`` (Gulrajani et al. 2017). Activity
    (items per user) is drawn from the training users and given to the generator, which learns
    *which* items go together. ``detach_bug=True`` reproduces a bug of public CFGAN ports: the
    generator's loss is computed on detached fake vectors, so no gradient reaches the generator
    and it never moves from its initialisation. ``monitor(gan, step) -> dict`` is called every
    ``log_every`` steps (e.g. to track item coverage, showing mode collapse). The generator's item
    bias (initialised at the log-popularity) learns at ``bias_lr_scale`` times the learning rate.

    After :meth:`fit`: ``history_`` (:class:`GANHistory`, one row per ``log_every`` steps) and
    ``train_history_`` (the loop's :class:`~recsys_utils.models.train.history.History`: one
    "epoch" per block of ``log_every`` steps, with the blocks' mean losses in ``logs``).
    """

    name = "GAN (WGAN-GP)"

    def __init__(self, noise_dim: int = 32, hidden: int = 128, critic_hidden: int = 128, factors: int = 48,
                 steps: int = 800,
                 critic_steps: int = 3, batch_size: int = 256, lr: float = 2e-4, gp: float = 10.0,
                 seed: int = 42, device: str | None = None, detach_bug: bool = False, log_every: int = 50,
                 bias_lr_scale: float = 0.1, progress: bool = True) -> None:
        if steps < 1 or critic_steps < 1 or batch_size < 2 or log_every < 1:
            raise ValueError("InteractionGAN: steps, critic_steps and log_every must be >= 1, batch_size >= 2")
        self.noise_dim, self.hidden, self.critic_hidden, self.factors = noise_dim, hidden, critic_hidden, factors
        self.steps, self.critic_steps, self.batch_size = steps, critic_steps, batch_size
        self.lr, self.gp, self.seed, self.device = lr, gp, seed, device
        self.detach_bug, self.log_every, self.progress = detach_bug, log_every, progress
        self.bias_lr_scale = bias_lr_scale

    def _build(self, x: sp.csr_matrix) -> tuple[GeneratorNet, CriticNet]:
        """Generator and critic on ``self.device_`` (item factors from a truncated SVD of ``x``)."""
        counts = np.asarray(x.sum(axis=0)).ravel()
        svd = TruncatedSVD(min(self.factors, x.shape[1] - 1), random_state=self.seed).fit(x)
        item_factors = svd.components_.T.astype(np.float32)  # (n_items, factors), orthonormal columns
        gen = GeneratorNet(self.noise_dim, self.hidden, item_factors * 3.0, np.log(counts + 0.5)).to(self.device_)
        critic = CriticNet(item_factors, self.critic_hidden).to(self.device_)
        return gen, critic

    def fit(self, matrix, monitor: Callable[[InteractionGAN, int], dict] | None = None) -> InteractionGAN:
        """Train on a users x items matrix (binarised) with :func:`fit_torch` and a :class:`WGANStep`."""
        x = binary_csr(matrix, "InteractionGAN.fit")
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        self.device_ = resolve_device(self.device)
        activity = np.diff(x.indptr).astype(np.float32)
        self.activity_ = activity[activity > 0]
        gen, critic = self._build(x)
        dense = torch.as_tensor(x.toarray(), device=self.device_)
        # the item bias starts at the log-popularity (right marginals); a smaller step keeps it there
        others = [p for name, p in gen.named_parameters() if name != "bias"]
        opt_g = torch.optim.Adam([{"params": others}, {"params": [gen.bias], "lr": self.lr * self.bias_lr_scale}],
                                 lr=self.lr, betas=(0.5, 0.9))
        opt_c = torch.optim.Adam(critic.parameters(), lr=self.lr, betas=(0.5, 0.9))
        self.generator_, self.critic_ = gen, critic
        self.history_ = GANHistory()
        every, steps = self.log_every, self.steps

        def block(epoch: int) -> range:  # the loop's "epoch" = log_every generator steps
            return range((epoch - 1) * every + 1, min(epoch * every, steps) + 1)

        callbacks: list[Callback] = [GANMonitor(self, monitor)]
        if self.progress:
            callbacks.append(ProgressBar("GAN", unit="batch", every=every, postfix=("wasserstein",),
                                         mininterval=2.0, total=steps))
        self.train_history_: History = fit_torch(
            nn.ModuleDict({"generator": gen, "critic": critic}), block, epochs=math.ceil(steps / every),
            step_fn=WGANStep(self, dense, rng, opt_c, opt_g), device=self.device_, progress=False,
            callbacks=callbacks)
        gen.train()
        critic.train()
        return self

    def _inputs(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
        """Seeded generator inputs for ``n`` users: noise, activity drawn from the training users, and
        the CPU random generator they came from (for the Bernoulli draws that follow)."""
        gen = torch.Generator(device="cpu").manual_seed(seed)
        rng = np.random.default_rng(seed)
        noise = torch.randn(n, self.noise_dim, generator=gen).to(self.device_)
        act = torch.as_tensor(rng.choice(self.activity_, n), device=self.device_)
        return noise, act, gen

    def _check_fitted(self) -> None:
        if not hasattr(self, "generator_"):
            raise RuntimeError("InteractionGAN is not fitted: call fit(matrix) first")

    @torch.no_grad()
    def calibrate_marginals(self, matrix, iterations: int = 10, n_samples: int = 20_000, seed: int = 0) -> dict:
        """Adjust the generator's item bias so its expected item frequencies match ``matrix``'s.

        A post-hoc step (no critic involved): ``bias_i += log(f_i / g_i)`` where ``f_i`` is the share
        of training users with item ``i`` and ``g_i`` the generator's mean probability over
        ``n_samples`` draws, repeated ``iterations`` times. It fixes the marginals that adversarial
        training leaves slightly off (and the rare items a collapsing generator drops), without
        touching which items go together. Returns the largest relative frequency error before and after.
        """
        self._check_fitted()
        x = binary_csr(matrix, "InteractionGAN.calibrate_marginals")
        target = np.asarray(x.mean(axis=0), dtype=np.float64).ravel()
        noise, act, _ = self._inputs(n_samples, seed)
        self.generator_.eval()

        def mean_and_error() -> tuple[np.ndarray, float]:
            mean = self.generator_.probabilities(noise, act).mean(dim=0).double().cpu().numpy()
            return mean, float(np.max(np.abs(mean - target) / np.maximum(target, 1e-4)))

        mean, before = mean_and_error()
        after = before
        for _ in range(iterations):
            step = np.log((target + 1e-6) / (mean + 1e-6))
            self.generator_.bias += torch.as_tensor(step, dtype=self.generator_.bias.dtype, device=self.device_)
            mean, after = mean_and_error()
        self.generator_.train()
        return {"max_relative_error_before": before, "max_relative_error_after": after}

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0) -> sp.csr_matrix:
        """``n`` generated users as a binary CSR matrix."""
        self._check_fitted()
        noise, act, gen = self._inputs(n, seed)
        self.generator_.eval()
        p = self.generator_.probabilities(noise, act).cpu()
        out = torch.bernoulli(p, generator=gen).numpy()
        self.generator_.train()
        return sp.csr_matrix(out.astype(np.float32))
