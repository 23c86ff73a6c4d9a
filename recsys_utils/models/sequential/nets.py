"""The networks of the neural next-item models: a shared base (:class:`SequenceNet`, tied item
embeddings, full softmax loss) and the GRU4Rec, Caser and SASRec encoders.

Every network is causal (the state at position ``t`` depends on items ``<= t`` only) and
padding-invariant (a history scores the same whatever the left padding in its batch).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class SequenceNet(nn.Module):
    """Base network: ``encode(x) -> (B, T, dim)`` for ids ``x`` (0 = padding, item i is i + 1)."""

    def __init__(self, n_items: int, dim: int) -> None:
        super().__init__()
        self.n_items = n_items
        self.dim = dim
        self.item_embedding = nn.Embedding(n_items + 1, dim, padding_idx=0)
        nn.init.normal_(self.item_embedding.weight, std=dim ** -0.5)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()
        self.output_bias = nn.Parameter(torch.zeros(n_items))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores of every item for hidden vectors ``(..., dim)``: tied embeddings plus a bias."""
        return hidden @ self.item_embedding.weight[1:].T + self.output_bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the next item after the last position of each row: ``(B, n_items)``."""
        return self.logits(self.encode(x)[:, -1])


def next_item_loss(module: SequenceNet, batch: torch.Tensor) -> torch.Tensor:
    """Full softmax cross-entropy of the next item at every real position of a ``(B, T)`` id batch."""
    inputs, targets = batch[:, :-1], batch[:, 1:]
    hidden = module.encode(inputs)
    mask = (targets > 0) & (inputs > 0)
    return F.cross_entropy(module.logits(hidden[mask]), targets[mask] - 1)


class GRU4RecNet(SequenceNet):
    """Embedding -> GRU -> projection to the embedding space (Hidasi et al. 2016)."""

    def __init__(self, n_items: int, dim: int = 64, hidden: int | None = None, layers: int = 1,
                 dropout: float = 0.2) -> None:
        super().__init__(n_items, dim)
        hidden = hidden or dim
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(dim, hidden, num_layers=layers, batch_first=True,
                          dropout=dropout if layers > 1 else 0.0)
        self.project = nn.Linear(hidden, dim) if hidden != dim else nn.Identity()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Hidden state after every position; padding steps are skipped (packed sequences).

        Histories are right-aligned, so each row is rotated to the left, packed with its length,
        run through the GRU and rotated back: a row's states do not depend on how much padding
        precedes it (the same history scores the same in any batch).
        """
        steps = x.shape[1]
        lengths = (x > 0).sum(dim=1)
        pad = steps - lengths
        if not bool(pad.any()):  # no padding in this batch: the plain GRU is the same and ~2x faster
            states, _ = self.gru(self.dropout(self.item_embedding(x)))
            return self.project(self.dropout(states))
        columns = torch.arange(steps, device=x.device).unsqueeze(0)
        left = x.gather(1, (columns + pad.unsqueeze(1)) % steps)  # real items first
        packed = nn.utils.rnn.pack_padded_sequence(
            self.dropout(self.item_embedding(left)), lengths.clamp(min=1).cpu(), batch_first=True,
            enforce_sorted=False)
        states, _ = self.gru(packed)
        states, _ = nn.utils.rnn.pad_packed_sequence(states, batch_first=True, total_length=steps)
        back = ((columns - pad.unsqueeze(1)) % steps).unsqueeze(-1).expand(-1, -1, states.shape[-1])
        states = states.gather(1, back)  # right-aligned again; padding positions hold zeros
        return self.project(self.dropout(states))


class CaserNet(SequenceNet):
    """Horizontal and vertical convolutions over the last ``window`` items (Tang & Wang 2018).

    For every position ``t`` the "image" is the ``window x dim`` matrix of the embeddings of items
    ``t - window + 1 .. t``. Horizontal filters of heights ``1..window`` slide over it and are
    max-pooled (union-level and point-level sequential patterns); vertical filters are learned
    weighted sums of the rows. Both are computed for all positions at once: a causal
    ``conv1d`` over the whole sequence followed by a sliding max (horizontal) and a depthwise
    causal ``conv1d`` (vertical). The paper's user embedding is replaced by the running mean of
    the history's item embeddings, so that the model also scores histories of unseen users.
    """

    def __init__(self, n_items: int, dim: int = 64, window: int = 5, n_horizontal: int = 16,
                 n_vertical: int = 4, dropout: float = 0.2) -> None:
        super().__init__(n_items, dim)
        self.window = int(window)
        self.horizontal = nn.ModuleList(nn.Conv1d(dim, n_horizontal, kernel_size=h)
                                        for h in range(1, self.window + 1))
        self.vertical = nn.Conv1d(1, n_vertical, kernel_size=self.window, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.hidden = nn.Linear(n_horizontal * self.window + n_vertical * dim, dim)
        self.output = nn.Linear(2 * dim, dim)
        self.n_vertical = int(n_vertical)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        batch, steps = x.shape
        emb = self.item_embedding(x)  # (B, T, d)
        channels = emb.transpose(1, 2)  # (B, d, T)
        real = (x > 0).unsqueeze(1)  # (B, 1, T)
        pooled = []
        for height, conv in enumerate(self.horizontal, start=1):
            # causal convolution; activations at padding positions are zeroed so that the max
            # over the window sees the same values whatever the amount of left padding
            activation = F.relu(conv(F.pad(channels, (height - 1, 0)))) * real  # (B, n_h, T)
            span = self.window - height + 1  # positions of this filter inside the window
            pooled.append(F.max_pool1d(F.pad(activation, (span - 1, 0)), span, stride=1))
        horizontal = torch.cat(pooled, dim=1).transpose(1, 2)  # (B, T, n_h * window)
        flat = F.pad(channels.reshape(batch * self.dim, 1, steps), (self.window - 1, 0))
        vertical = self.vertical(flat).reshape(batch, self.dim, self.n_vertical, steps)
        vertical = vertical.permute(0, 3, 2, 1).reshape(batch, steps, self.n_vertical * self.dim)
        short = F.relu(self.hidden(self.dropout(torch.cat([horizontal, vertical], dim=2))))
        counts = (x > 0).cumsum(dim=1).clamp(min=1).unsqueeze(-1)
        long = emb.cumsum(dim=1) / counts  # running mean of the history (stands in for P_u)
        return self.output(self.dropout(torch.cat([short, long], dim=2)))


class CausalSelfAttentionBlock(nn.Module):
    """Pre-norm causal self-attention and a position-wise feed-forward layer, with residuals."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"SASRec: dim ({dim}) must be divisible by heads ({heads})")
        self.heads = heads
        self.norm_attention = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm_ffn = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(dim, dim))
        self.dropout = nn.Dropout(dropout)
        self.p = dropout

    def _qkv(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, steps, dim = h.shape
        q, k, v = self.qkv(self.norm_attention(h)).chunk(3, dim=-1)
        return tuple(t.reshape(batch, steps, self.heads, dim // self.heads).transpose(1, 2) for t in (q, k, v))

    def attention_weights(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The attention weights ``softmax(QK^T / sqrt(d_head))`` under ``mask``: ``(B, heads, T, T)``.

        Row ``t`` says how much position ``t`` reads from each earlier position (the same weights
        :meth:`forward` uses, computed explicitly for plots and tests).
        """
        q, k, _ = self._qkv(h)
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        return scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, steps, dim = h.shape
        q, k, v = self._qkv(h)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                                  dropout_p=self.p if self.training else 0.0)
        h = h + self.dropout(self.out(attended.transpose(1, 2).reshape(batch, steps, dim)))
        return h + self.dropout(self.ffn(self.norm_ffn(h)))


class SASRecNet(SequenceNet):
    """Item + learned position embeddings -> causal self-attention blocks (Kang & McAuley 2018).

    Positions are counted from the end of the history (histories are right-aligned), so the most
    recent item always has the same position embedding. Each position attends to itself and the
    real items before it (padding is masked out).
    """

    def __init__(self, n_items: int, dim: int = 64, max_len: int = 50, blocks: int = 2, heads: int = 1,
                 dropout: float = 0.2) -> None:
        super().__init__(n_items, dim)
        self.max_len = int(max_len)
        self.position_embedding = nn.Embedding(self.max_len, dim)
        nn.init.normal_(self.position_embedding.weight, std=dim ** -0.5)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(CausalSelfAttentionBlock(dim, heads, dropout) for _ in range(blocks))
        self.norm = nn.LayerNorm(dim)

    def _inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Embedded inputs ``(B, T, d)``, the real-item mask ``(B, T, 1)`` and the attention mask."""
        steps = x.shape[1]
        if steps > self.max_len:
            raise ValueError(f"SASRecNet: {steps} positions but only {self.max_len} position embeddings "
                             "(keep the last max_len items)")
        positions = torch.arange(self.max_len - steps, self.max_len, device=x.device)
        h = self.item_embedding(x) * math.sqrt(self.dim) + self.position_embedding(positions)
        real = (x > 0).unsqueeze(-1)
        causal = torch.ones(steps, steps, dtype=torch.bool, device=x.device).tril()
        eye = torch.eye(steps, dtype=torch.bool, device=x.device)
        # (B, 1, T, T), True = may attend: itself and the real items at or before the position
        mask = (causal & (x > 0).unsqueeze(1).unsqueeze(2)) | eye
        return self.dropout(h) * real, real, mask

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        h, real, mask = self._inputs(x)
        for block in self.blocks:
            h = block(h, mask) * real
        return self.norm(h)

    def attention_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Attention weights of every block: ``(B, blocks, heads, T, T)`` (no dropout in eval mode)."""
        h, real, mask = self._inputs(x)
        maps = []
        for block in self.blocks:
            maps.append(block.attention_weights(h, mask))
            h = block(h, mask) * real
        return torch.stack(maps, dim=1)
