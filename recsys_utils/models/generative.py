"""Generators of synthetic interaction data (生成对抗网络 GAN, 生成器 generator, 判别器 discriminator).

Two kinds of data are generated: users' binary interaction vectors over the catalogue, and
sessions (ordered item sequences).

User vectors, all with ``fit(matrix) -> self`` and ``sample(n, seed) -> csr_matrix``:

- :class:`InteractionGAN`: a Wasserstein GAN with gradient penalty (Gulrajani et al. 2017) whose
  generator maps noise and a target activity to item probabilities and emits a *binary* vector
  through a straight-through Bernoulli estimator (Bengio et al. 2013), so the critic sees the
  same kind of data as the real vectors. The generator's output bias starts at the items'
  log-popularity. Unconditional by design: unlike CFGAN (Chae et al. 2018), which generates a
  purchase vector *for a given real user*, it never sees a real user's vector when sampling.
- :class:`PopularitySampler`: activity from the real users, items drawn without replacement in
  proportion to popularity: right marginals, no structure (the non-adversarial floor).
- :class:`ClusterSampler`: a latent-class model (users clustered by k-means on SVD factors, one
  item distribution per cluster): a cheap non-adversarial generator with structure.
- :class:`CopyGenerator`: returns real training users' vectors, optionally with a few items
  flipped: perfect fidelity, and a privacy failure (the counter-example).

Sessions: :class:`SessionGRU` (a GRU language model over items with an end token and a noise
vector fed at every step) and :func:`sample_sessions` (temperature sampling, vectorised over
sessions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from recsys_utils.core.device import resolve_device

__all__ = [
    "ClusterSampler",
    "CopyGenerator",
    "GANHistory",
    "InteractionGAN",
    "PopularitySampler",
    "SessionGRU",
    "draw_without_replacement",
    "fit_session_gru",
    "sample_sessions",
]


def _binary_csr(matrix, where: str) -> sp.csr_matrix:
    x = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{where}: expected a non-empty users x items matrix, got shape {x.shape}")
    x.data = (x.data > 0).astype(np.float32)
    x.eliminate_zeros()
    if x.nnz == 0:
        raise ValueError(f"{where}: the matrix has no interactions")
    return x


def draw_without_replacement(log_weights: np.ndarray, sizes: np.ndarray, rng: np.random.Generator) -> sp.csr_matrix:
    """One row per entry of ``sizes``: ``sizes[r]`` distinct columns drawn with probabilities
    proportional to ``exp(log_weights[r])`` (Gumbel-top-k, Vieira 2014; vectorised).

    ``log_weights`` is ``(n_rows, n_items)`` or ``(n_items,)`` (the same weights for every row).
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    logw = np.asarray(log_weights, dtype=np.float64)
    if logw.ndim == 1:
        logw = np.broadcast_to(logw, (len(sizes), logw.size))
    if logw.shape[0] != len(sizes):
        raise ValueError(f"draw_without_replacement: {logw.shape[0]} weight rows for {len(sizes)} sizes")
    n_items = logw.shape[1]
    sizes = np.clip(sizes, 0, n_items)
    keys = logw - np.log(-np.log(rng.random(logw.shape)))
    order = np.argsort(-keys, axis=1)
    take = np.arange(n_items)[None, :] < sizes[:, None]
    rows = np.nonzero(take)[0]
    cols = order[take]
    return sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(sizes), n_items))


# ------------------------------------------------------------------------------- non-adversarial
class PopularitySampler:
    """Users with real activity levels and items drawn in proportion to their popularity."""

    name = "popularity sampler"

    def fit(self, matrix) -> PopularitySampler:
        x = _binary_csr(matrix, "PopularitySampler.fit")
        counts = np.asarray(x.sum(axis=0)).ravel()
        self.log_popularity_ = np.log(counts + 1e-3)
        self.activity_ = np.diff(x.indptr)
        return self

    def sample(self, n: int, seed: int = 0) -> sp.csr_matrix:
        rng = np.random.default_rng(seed)
        return draw_without_replacement(self.log_popularity_, rng.choice(self.activity_, n), rng)


class ClusterSampler:
    """A latent-class generator: k-means clusters of users (on SVD factors), one smoothed item
    distribution and one activity sample per cluster (Hofmann & Puzicha 1999, aspect models)."""

    name = "cluster sampler"

    def __init__(self, n_clusters: int = 40, factors: int = 32, smoothing: float = 0.5, seed: int = 0) -> None:
        self.n_clusters, self.factors, self.smoothing, self.seed = n_clusters, factors, smoothing, seed

    def fit(self, matrix) -> ClusterSampler:
        from sklearn.cluster import KMeans
        from sklearn.decomposition import TruncatedSVD

        x = _binary_csr(matrix, "ClusterSampler.fit")
        z = TruncatedSVD(self.factors, random_state=self.seed).fit_transform(x)
        z /= np.linalg.norm(z, axis=1, keepdims=True) + 1e-9
        labels = KMeans(self.n_clusters, n_init=2, random_state=self.seed).fit_predict(z)
        onehot = sp.csr_matrix((np.ones(x.shape[0]), (labels, np.arange(x.shape[0]))),
                               shape=(self.n_clusters, x.shape[0]))
        counts = np.asarray((onehot @ x).todense()) + self.smoothing * (np.asarray(x.mean(axis=0)) + 1e-6)
        self.log_item_probs_ = np.log(counts / counts.sum(axis=1, keepdims=True))
        self.labels_ = labels
        self.activity_ = np.diff(x.indptr)
        return self

    def sample(self, n: int, seed: int = 0) -> sp.csr_matrix:
        rng = np.random.default_rng(seed)
        donors = rng.integers(0, len(self.labels_), n)  # a cluster and an activity from the same user
        return draw_without_replacement(self.log_item_probs_[self.labels_[donors]], self.activity_[donors], rng)


class CopyGenerator:
    """The counter-example: "generates" by returning training users' vectors, ``flip`` items changed."""

    name = "copy generator"

    def __init__(self, flip: int = 0) -> None:
        self.flip = flip

    def fit(self, matrix) -> CopyGenerator:
        self.matrix_ = _binary_csr(matrix, "CopyGenerator.fit")
        return self

    def sample(self, n: int, seed: int = 0) -> sp.csr_matrix:
        rng = np.random.default_rng(seed)
        out = self.matrix_[rng.integers(0, self.matrix_.shape[0], n)].tolil()
        if self.flip:
            cols = rng.integers(0, out.shape[1], (n, self.flip))
            dense = out.toarray()
            rows = np.repeat(np.arange(n), self.flip)
            dense[rows, cols.ravel()] = 1.0 - dense[rows, cols.ravel()]
            return sp.csr_matrix(dense)
        return out.tocsr()


# ----------------------------------------------------------------------------------------- GAN
class _Generator(nn.Module):
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


class _Critic(nn.Module):
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

    def to_frame(self):
        import pandas as pd

        frame = pd.DataFrame({"step": self.step, "critic_loss": self.critic_loss,
                              "wasserstein": self.wasserstein, "generator_loss": self.generator_loss})
        for key, values in self.extra.items():
            frame[key] = values
        return frame


class InteractionGAN:
    """WGAN-GP over binary user vectors with a straight-through Bernoulli generator output.

    ``steps`` generator updates, ``critic_steps`` critic updates before each, batch ``batch_size``,
    Adam(``lr``, betas (0.5, 0.9)), gradient penalty ``gp`` (Gulrajani et al. 2017). Activity
    (items per user) is drawn from the training users and given to the generator, which learns
    *which* items go together. ``detach_bug=True`` reproduces a bug of public CFGAN ports: the
    generator's loss is computed on detached fake vectors, so no gradient reaches the generator
    and it never moves from its initialisation. ``monitor(gan, step) -> dict`` is called every
    ``log_every`` steps (e.g. to track item coverage, showing mode collapse). The generator's item
    bias (initialised at the log-popularity) learns at ``bias_lr_scale`` times the learning rate.
    """

    name = "GAN (WGAN-GP)"

    def __init__(self, noise_dim: int = 32, hidden: int = 128, critic_hidden: int = 128, factors: int = 48,
                 steps: int = 800,
                 critic_steps: int = 3, batch_size: int = 256, lr: float = 2e-4, gp: float = 10.0,
                 seed: int = 42, device: str | None = None, detach_bug: bool = False, log_every: int = 50,
                 bias_lr_scale: float = 0.1, progress: bool = True) -> None:
        if steps < 1 or critic_steps < 1 or batch_size < 2:
            raise ValueError("InteractionGAN: steps and critic_steps must be >= 1, batch_size >= 2")
        self.noise_dim, self.hidden, self.critic_hidden, self.factors = noise_dim, hidden, critic_hidden, factors
        self.steps, self.critic_steps, self.batch_size = steps, critic_steps, batch_size
        self.lr, self.gp, self.seed, self.device = lr, gp, seed, device
        self.detach_bug, self.log_every, self.progress = detach_bug, log_every, progress
        self.bias_lr_scale = bias_lr_scale

    def fit(self, matrix, monitor=None) -> InteractionGAN:
        """Train on a users x items matrix (binarised)."""
        from tqdm.auto import tqdm

        x = _binary_csr(matrix, "InteractionGAN.fit")
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        device = resolve_device(self.device)
        self.device_ = device
        counts = np.asarray(x.sum(axis=0)).ravel()
        self.activity_ = np.diff(x.indptr).astype(np.float32)
        self.activity_ = self.activity_[self.activity_ > 0]
        from sklearn.decomposition import TruncatedSVD

        svd = TruncatedSVD(min(self.factors, x.shape[1] - 1), random_state=self.seed).fit(x)
        item_factors = svd.components_.T.astype(np.float32)  # (n_items, factors), orthonormal columns
        gen = _Generator(self.noise_dim, self.hidden, item_factors * 3.0, np.log(counts + 0.5)).to(device)
        critic = _Critic(item_factors, self.critic_hidden).to(device)
        dense = torch.as_tensor(x.toarray(), device=device)
        # the item bias starts at the log-popularity (right marginals); a smaller step keeps it there
        others = [p for name, p in gen.named_parameters() if name != "bias"]
        opt_g = torch.optim.Adam([{"params": others}, {"params": [gen.bias], "lr": self.lr * self.bias_lr_scale}],
                                 lr=self.lr, betas=(0.5, 0.9))
        opt_c = torch.optim.Adam(critic.parameters(), lr=self.lr, betas=(0.5, 0.9))
        self.generator_, self.critic_ = gen, critic
        self.history_ = GANHistory()
        n_users = x.shape[0]

        def real_batch() -> torch.Tensor:
            return dense[torch.as_tensor(rng.integers(0, n_users, self.batch_size), device=device)]

        def fake_batch() -> torch.Tensor:
            noise = torch.randn(self.batch_size, self.noise_dim, device=device)
            act = torch.as_tensor(rng.choice(self.activity_, self.batch_size), device=device)
            return gen(noise, act)

        bar = tqdm(range(1, self.steps + 1), desc="GAN", disable=not self.progress, mininterval=2.0)
        for step in bar:
            for _ in range(self.critic_steps):
                real = real_batch()
                with torch.no_grad():
                    fake = fake_batch()
                w_dist = critic(real).mean() - critic(fake).mean()
                alpha = torch.rand(self.batch_size, 1, device=device)
                mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
                grad = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)[0]
                penalty = ((grad.norm(dim=1) - 1.0) ** 2).mean()
                loss_c = -w_dist + self.gp * penalty
                opt_c.zero_grad()
                loss_c.backward()
                opt_c.step()
            fake = fake_batch()
            if self.detach_bug:
                fake = fake.detach()  # the bug: the loss no longer depends on the generator's weights
            loss_g = -critic(fake).mean()
            opt_g.zero_grad()
            if loss_g.requires_grad:
                loss_g.backward()
            opt_g.step()
            if step % self.log_every == 0 or step == self.steps:
                h = self.history_
                h.step.append(step)
                h.critic_loss.append(float(loss_c.detach()))
                h.wasserstein.append(float(w_dist.detach()))
                h.generator_loss.append(float(loss_g.detach()))
                if monitor is not None:
                    for key, value in monitor(self, step).items():
                        h.extra.setdefault(key, []).append(float(value))
                bar.set_postfix(W=f"{float(w_dist.detach()):.3f}")
        return self

    def _inputs(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Generator]:
        """Seeded generator inputs for ``n`` users: noise, activity drawn from the training users, and
        the CPU random generator they came from (for the Bernoulli draws that follow)."""
        gen = torch.Generator(device="cpu").manual_seed(seed)
        rng = np.random.default_rng(seed)
        noise = torch.randn(n, self.noise_dim, generator=gen).to(self.device_)
        act = torch.as_tensor(rng.choice(self.activity_, n), device=self.device_)
        return noise, act, gen

    @torch.no_grad()
    def calibrate_marginals(self, matrix, iterations: int = 10, n_samples: int = 20_000, seed: int = 0) -> dict:
        """Adjust the generator's item bias so its expected item frequencies match ``matrix``'s.

        A post-hoc step (no critic involved): ``bias_i += log(f_i / g_i)`` where ``f_i`` is the share
        of training users with item ``i`` and ``g_i`` the generator's mean probability over
        ``n_samples`` draws, repeated ``iterations`` times. It fixes the marginals that adversarial
        training leaves slightly off (and the rare items a collapsing generator drops), without
        touching which items go together. Returns the largest relative frequency error before and after.
        """
        if not hasattr(self, "generator_"):
            raise RuntimeError("InteractionGAN is not fitted: call fit(matrix) first")
        x = _binary_csr(matrix, "InteractionGAN.calibrate_marginals")
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
        if not hasattr(self, "generator_"):
            raise RuntimeError("InteractionGAN is not fitted: call fit(matrix) first")
        noise, act, gen = self._inputs(n, seed)
        self.generator_.eval()
        p = self.generator_.probabilities(noise, act).cpu()
        out = torch.bernoulli(p, generator=gen).numpy()
        self.generator_.train()
        return sp.csr_matrix(out.astype(np.float32))


# -------------------------------------------------------------------------------------- sessions
class SessionGRU(nn.Module):
    """A GRU language model over item sessions with an end token and input noise.

    Token ``n_items`` is both the start and the end token. A noise vector ``z`` (one per session)
    is concatenated to every input step: the documents' "RNN generator with injected noise".
    """

    def __init__(self, n_items: int, dim: int = 64, hidden: int = 128, noise_dim: int = 8) -> None:
        super().__init__()
        self.n_items, self.noise_dim = n_items, noise_dim
        self.embed = nn.Embedding(n_items + 1, dim)
        self.gru = nn.GRU(dim + noise_dim, hidden, batch_first=True)
        self.out = nn.Linear(hidden, n_items + 1)

    def forward(self, tokens: torch.Tensor, noise: torch.Tensor, state: torch.Tensor | None = None):
        inp = torch.cat([self.embed(tokens), noise[:, None, :].expand(-1, tokens.shape[1], -1)], dim=2)
        out, state = self.gru(inp, state)
        return self.out(out), state


def _left_aligned(items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Right-aligned padded rows (``-1`` padding) to left-aligned rows and their lengths."""
    lengths = (items >= 0).sum(axis=1)
    width = items.shape[1]
    shift = width - lengths
    cols = (np.arange(width)[None, :] + shift[:, None]) % width
    out = np.take_along_axis(items, cols, axis=1)
    return out, lengths


def fit_session_gru(sequences: np.ndarray, n_items: int, epochs: int = 3, batch_size: int = 256, lr: float = 3e-3,
                    dim: int = 64, hidden: int = 128, noise_dim: int = 8, seed: int = 42, device: str | None = None,
                    progress: bool = True) -> SessionGRU:
    """Train :class:`SessionGRU` by next-token cross-entropy (teacher forcing) on padded sessions.

    ``sequences``: ``(n, max_len)`` item indices, right-aligned with ``-1`` padding (as
    :func:`recsys_utils.data.sequences.build_sequences` returns them). Each session is read as
    ``start, i1, ..., iL`` predicting ``i1, ..., iL, end``. Batches hold sessions of similar
    length (less padding to run through the GRU).
    """
    from tqdm.auto import tqdm

    items = np.asarray(sequences, dtype=np.int64)
    if items.ndim != 2 or items.shape[0] == 0:
        raise ValueError(f"fit_session_gru: expected a non-empty (n, max_len) array, got {items.shape}")
    if items.max() >= n_items:
        raise ValueError(f"fit_session_gru: item index {items.max()} >= n_items={n_items}")
    left, lengths = _left_aligned(items)
    keep = lengths > 0
    left, lengths = left[keep], lengths[keep]
    n, width = left.shape
    end = n_items
    inputs = np.full((n, width + 1), end, dtype=np.int64)
    inputs[:, 1:] = np.where(left >= 0, left, end)
    targets = np.full((n, width + 1), -100, dtype=np.int64)
    targets[:, :width] = np.where(left >= 0, left, -100)
    targets[np.arange(n), lengths] = end
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    dev = resolve_device(device)
    model = SessionGRU(n_items, dim, hidden, noise_dim).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss(ignore_index=-100)
    inputs_t, targets_t = torch.as_tensor(inputs), torch.as_tensor(targets)
    n_batches = math.ceil(n / batch_size)
    bar = tqdm(total=epochs * n_batches, desc="session GRU", disable=not progress, mininterval=2.0)
    for _ in range(epochs):
        # bucket by length: shuffle, sort chunks of 32 batches by length, shuffle the batches
        order = rng.permutation(n)
        chunk = 32 * batch_size
        for start in range(0, n, chunk):
            part = order[start:start + chunk]
            order[start:start + chunk] = part[np.argsort(lengths[part], kind="stable")]
        batches = [order[b * batch_size:(b + 1) * batch_size] for b in range(n_batches)]
        for b in rng.permutation(n_batches):
            rows = batches[b]
            w = int(lengths[rows].max()) + 1
            inp, tgt = inputs_t[rows, :w].to(dev), targets_t[rows, :w].to(dev)
            logits, _ = model(inp, torch.randn(len(rows), noise_dim, device=dev))
            loss = loss_fn(logits.reshape(-1, n_items + 1), tgt.reshape(-1))
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
    bar.close()
    model.eval()
    return model


@torch.no_grad()
def sample_sessions(model: SessionGRU, n: int, max_len: int = 30, temperature: float = 1.0, noise_scale: float = 1.0,
                    no_repeat: bool = True, seed: int = 0) -> np.ndarray:
    """Sample ``n`` sessions, right-aligned with ``-1`` padding like the real ones.

    Each step draws from ``softmax(logits / temperature)`` (``temperature=0``: greedy argmax);
    ``noise_scale`` scales the per-session input noise (0 = no noise); ``no_repeat`` forbids the
    item just shown (real sessions collapse consecutive repeats).
    """
    if temperature < 0:
        raise ValueError(f"sample_sessions: temperature must be >= 0, got {temperature}")
    gen = torch.Generator(device="cpu").manual_seed(seed)
    dev = next(model.parameters()).device
    end = model.n_items
    noise = (noise_scale * torch.randn(n, model.noise_dim, generator=gen)).to(dev)
    token = torch.full((n, 1), end, dtype=torch.long, device=dev)
    state = None
    out = np.full((n, max_len), -1, dtype=np.int64)
    alive = np.ones(n, dtype=bool)
    for step in range(max_len + 1):
        logits, state = model(token, noise, state)
        logits = logits[:, -1, :].cpu()
        if step == 0:
            logits[:, end] = -torch.inf  # sessions have at least one item
        if step == max_len:
            break
        if no_repeat and step > 0:
            logits.scatter_(1, token.cpu(), -torch.inf)
        if temperature == 0:
            nxt = logits.argmax(dim=1)
        else:
            nxt = torch.multinomial(torch.softmax(logits / temperature, dim=1), 1, generator=gen).squeeze(1)
        nxt = nxt.numpy()
        stop = nxt == end
        alive &= ~stop
        out[alive, step] = nxt[alive]
        if not alive.any():
            break
        token = torch.as_tensor(np.where(alive, nxt, end), device=dev)[:, None]
    # right-align like build_sequences
    lengths = (out >= 0).sum(axis=1)
    cols = (np.arange(max_len)[None, :] - (max_len - lengths)[:, None]) % max_len
    return np.take_along_axis(out, cols, axis=1)
