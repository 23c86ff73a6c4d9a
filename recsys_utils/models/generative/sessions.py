"""Generated sessions: :class:`SessionGRU` (a GRU language model over items with an end token and a
noise vector fed at every step), trained by the course loop (:func:`fit_session_gru`), and
:func:`sample_sessions` (temperature sampling, vectorised over sessions); :class:`SessionGenerator`
wraps both in the :class:`~recsys_utils.models.generative.base.Generator` protocol.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recsys_utils.core.device import resolve_device
from recsys_utils.data.sequences import Sequences
from recsys_utils.models.generative.base import Generator
from recsys_utils.models.train.callbacks import Callback, ProgressBar
from recsys_utils.models.train.loop import fit_torch


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


class SessionBatches:
    """Teacher-forcing batches ``(inputs, targets)`` of sessions of similar length (less padding).

    Each session is read as ``start, i1, ..., iL`` predicting ``i1, ..., iL, end``. Every epoch:
    shuffle, sort chunks of 32 batches by length, then visit the batches in a random order; one
    numpy generator (``seed``) drives all epochs.
    """

    def __init__(self, sequences: np.ndarray, n_items: int, batch_size: int = 256, seed: int = 0) -> None:
        items = np.asarray(sequences, dtype=np.int64)
        if items.ndim != 2 or items.shape[0] == 0:
            raise ValueError(f"fit_session_gru: expected a non-empty (n, max_len) array, got {items.shape}")
        if items.max() >= n_items:
            raise ValueError(f"fit_session_gru: item index {items.max()} >= n_items={n_items}")
        left, lengths = _left_aligned(items)
        keep = lengths > 0
        left, self.lengths = left[keep], lengths[keep]
        n, width = left.shape
        end = n_items
        inputs = np.full((n, width + 1), end, dtype=np.int64)
        inputs[:, 1:] = np.where(left >= 0, left, end)
        targets = np.full((n, width + 1), -100, dtype=np.int64)
        targets[:, :width] = np.where(left >= 0, left, -100)
        targets[np.arange(n), self.lengths] = end
        self.inputs, self.targets = torch.as_tensor(inputs), torch.as_tensor(targets)
        self.n, self.batch_size = n, int(batch_size)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __call__(self, epoch: int = 0):
        n, size, n_batches = self.n, self.batch_size, len(self)
        order = self.rng.permutation(n)
        chunk = 32 * size
        for start in range(0, n, chunk):
            part = order[start:start + chunk]
            order[start:start + chunk] = part[np.argsort(self.lengths[part], kind="stable")]
        batches = [order[b * size:(b + 1) * size] for b in range(n_batches)]
        for b in self.rng.permutation(n_batches):
            rows = batches[b]
            w = int(self.lengths[rows].max()) + 1
            yield self.inputs[rows, :w], self.targets[rows, :w]


def session_loss(model: SessionGRU, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Next-token cross-entropy of a teacher-forcing batch, with fresh input noise per session."""
    inputs, targets = batch
    logits, _ = model(inputs, torch.randn(len(inputs), model.noise_dim, device=inputs.device))
    return F.cross_entropy(logits.reshape(-1, model.n_items + 1), targets.reshape(-1), ignore_index=-100)


def fit_session_gru(sequences: np.ndarray, n_items: int, epochs: int = 3, batch_size: int = 256, lr: float = 3e-3,
                    dim: int = 64, hidden: int = 128, noise_dim: int = 8, seed: int = 42, device: str | None = None,
                    progress: bool = True) -> SessionGRU:
    """Train :class:`SessionGRU` by next-token cross-entropy (teacher forcing) on padded sessions.

    ``sequences``: ``(n, max_len)`` item indices, right-aligned with ``-1`` padding (as
    :func:`recsys_utils.data.sequences.build_sequences` returns them); batches from
    :class:`SessionBatches`. The course loop :func:`fit_torch` runs Adam with the gradient norm
    clipped to 5; the returned model (in eval mode) keeps the loop's ``history_``.
    """
    batches = SessionBatches(sequences, n_items, batch_size, seed)
    torch.manual_seed(seed)
    dev = resolve_device(device)
    model = SessionGRU(n_items, dim, hidden, noise_dim).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    callbacks: list[Callback] = []
    if progress:
        callbacks.append(ProgressBar("session GRU", unit="batch", every=1, mininterval=2.0,
                                     total=epochs * len(batches)))
    history = fit_torch(model, batches, session_loss, opt, epochs, clip_norm=5.0, device=dev, progress=False,
                        callbacks=callbacks)
    model.history_ = history
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


class SessionGenerator(Generator):
    """Sessions in the :class:`Generator` protocol: ``fit(sequences)`` trains a :class:`SessionGRU`
    (``sequences``: a :class:`~recsys_utils.data.sequences.Sequences` or an ``(n, max_len)`` array
    with ``n_items``) and ``sample(n, seed)`` returns an ``(n, max_len)`` array of item indices,
    right-aligned with ``-1`` padding (:func:`sample_sessions` with this object's settings)."""

    name = "session GRU"

    def __init__(self, epochs: int = 3, batch_size: int = 256, lr: float = 3e-3, dim: int = 64, hidden: int = 128,
                 noise_dim: int = 8, max_len: int = 30, temperature: float = 1.0, noise_scale: float = 1.0,
                 no_repeat: bool = True, seed: int = 42, device: str | None = None, progress: bool = True) -> None:
        self.train_args = dict(epochs=epochs, batch_size=batch_size, lr=lr, dim=dim, hidden=hidden,
                               noise_dim=noise_dim, seed=seed, device=device, progress=progress)
        self.max_len, self.temperature, self.noise_scale, self.no_repeat = max_len, temperature, noise_scale, no_repeat

    def fit(self, sequences: Sequences | np.ndarray, n_items: int | None = None) -> SessionGenerator:
        if isinstance(sequences, Sequences):
            n_items, sequences = sequences.n_items, sequences.items
        if n_items is None:
            raise ValueError("SessionGenerator.fit: give n_items with an array of sequences")
        self.model_ = fit_session_gru(sequences, n_items, **self.train_args)
        return self

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        if not hasattr(self, "model_"):
            raise RuntimeError("SessionGenerator is not fitted: call fit(sequences) first")
        return sample_sessions(self.model_, n, self.max_len, self.temperature, self.noise_scale, self.no_repeat, seed)
