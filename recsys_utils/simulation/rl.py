"""A slate policy trained for the return over a horizon: REINFORCE with the top-K off-policy correction.

The policy scores each user's candidates with a small network over a compact state (the production
score, whether the candidate was shown at the previous visit, how often it was shown, the user's
fatigue and delight, the progress through the horizon) and draws a slate of ``k`` from the softmax
``π(a|s)`` without replacement. It learns from rollouts in
:class:`~recsys_utils.simulation.long_term.LongTermEnv` with the discounted return-to-go
``G_t = Σ γ^(t'-t) r_t'`` (clicks), minus the return-to-go of the same user's twin episode, as the advantage.

Chen et al. (2019) give the two corrections of :func:`topk_reinforce_loss`:

* **top-K**: a slate of ``K`` items drawn from ``π`` contains ``a`` with probability
  ``α(a) = 1 - (1 - π(a))^K``; its gradient is ``λ_K(a) ∇ log π(a)`` with
  ``λ_K(a) = K (1 - π(a))^(K-1)``, so the policy stops pushing items that are already in the slate
  anyway;
* **off-policy**: rollouts come from a behaviour policy ``β`` (here the network as it was when the
  rollout was collected; after the first of the epoch's mini-batches the network has moved), so each
  term is weighted by ``π(a|s) / β(a|s)``, capped (Munos et al. 2016) to bound the variance.

Training runs through the course's one loop, :func:`~recsys_utils.models.train.loop.fit_torch`: each
epoch's ``batches`` callable plays one rollout with the current network and splits it into
mini-batches; ``loss_fn`` is the corrected REINFORCE loss. At evaluation the policy shows the top
``k`` of its scores (no sampling).

References: R. J. Williams (1992). *Simple statistical gradient-following algorithms for
connectionist reinforcement learning*. Machine Learning 8; M. Chen, A. Beutel, P. Covington,
S. Jain, F. Belletti, E. H. Chi (2019). *Top-K off-policy correction for a REINFORCE recommender
system*. WSDM; R. Munos et al. (2016). *Safe and efficient off-policy reinforcement learning*. NeurIPS;
W. Kool, H. van Hoof, M. Welling (2019). *Buy 4 REINFORCE samples, get a baseline for free!* ICLR workshop.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from recsys_utils.evaluation.off_policy import softmax
from recsys_utils.models.train.history import History
from recsys_utils.models.train.loop import fit_torch
from recsys_utils.simulation.long_term import LongTermEnv, LongTermState

#: the state features of every (user, candidate), in this order
FEATURES = ("score", "shown_last", "exposures", "fatigue", "delight", "progress")


def state_features(state: LongTermState, scores: np.ndarray, horizon: int) -> np.ndarray:
    """(users, candidates, len(FEATURES)) float32 features of the compact state."""
    s = np.asarray(scores, dtype=np.float64)
    z = (s - s.mean(axis=1, keepdims=True)) / (s.std(axis=1, keepdims=True) + 1e-9)
    n, a = z.shape
    per_user = np.stack([state.fatigue, state.delight, np.full(n, state.t / horizon)], axis=1)
    return np.concatenate([z[..., None], state.shown_last[..., None].astype(np.float64),
                           np.log1p(state.exposures)[..., None],
                           np.broadcast_to(per_user[:, None, :], (n, a, 3))], axis=2).astype(np.float32)


class SlatePolicyNet(nn.Module):
    """Logits of every candidate from its state features: a two-layer MLP shared by all candidates."""

    def __init__(self, n_features: int = len(FEATURES), hidden: int = 32) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(features).squeeze(-1)


def topk_reinforce_loss(logits: torch.Tensor, actions: torch.Tensor, advantages: torch.Tensor, k: int,
                        behaviour_prob: torch.Tensor | None = None, cap: float = 10.0) -> torch.Tensor:
    """Chen et al. (2019): ``-mean_rows Σ_{a in slate} min(π/β, cap) · λ_K(a) · A · log π(a|s)``.

    ``logits`` (rows, candidates), ``actions`` (rows, slate) candidate indices, ``advantages`` (rows,),
    ``behaviour_prob`` (rows, slate) the collecting policy's ``β(a|s)`` (``None``: on-policy, weight 1).
    The weights and ``λ_K(a) = K (1 - π(a))^(K-1)`` are constants (no gradient flows through them).
    """
    if actions.ndim != 2 or logits.ndim != 2 or len(actions) != len(logits) or len(advantages) != len(logits):
        raise ValueError(f"topk_reinforce_loss: logits {tuple(logits.shape)}, actions {tuple(actions.shape)} and "
                         f"advantages {tuple(advantages.shape)} must have the same rows")
    log_pi = torch.log_softmax(logits, dim=1).gather(1, actions)
    pi = log_pi.detach().exp()
    lam = k * (1.0 - pi) ** (k - 1)
    weight = torch.ones_like(pi) if behaviour_prob is None else torch.clamp(pi / behaviour_prob, max=cap)
    return -(weight * lam * advantages[:, None] * log_pi).sum(dim=1).mean()


class RLPolicy:
    """The trained network as a policy for :func:`~recsys_utils.simulation.long_term.run_episode`."""

    name = "rl"

    def __init__(self, net: SlatePolicyNet, scores: np.ndarray, k: int, horizon: int, sample: bool = False) -> None:
        self.net, self.scores, self.k, self.horizon, self.sample = net, scores, k, horizon, sample
        self.last_features: np.ndarray | None = None
        self.last_logits: np.ndarray | None = None

    def act(self, state: LongTermState, rng: np.random.Generator) -> np.ndarray:
        features = state_features(state, self.scores, self.horizon)
        device = next(self.net.parameters()).device
        with torch.no_grad():
            logits = self.net(torch.from_numpy(features).to(device)).double().cpu().numpy()
        self.last_features, self.last_logits = features, logits
        if self.sample:
            logits = logits + rng.gumbel(size=logits.shape)  # Gumbel top-k: a draw without replacement
        slates = np.argsort(-logits, axis=1)[:, : self.k]
        return slates


def twin(env: LongTermEnv) -> LongTermEnv:
    """Every user twice (rows ``u`` and ``u + n``): two independent episodes per user per rollout."""
    return LongTermEnv(np.concatenate([env.p_click] * 2), np.concatenate([env.p_purchase] * 2),
                       np.concatenate([env.leaf] * 2), np.concatenate([env.scores] * 2), env.config)


def collect_rollout(env: LongTermEnv, net: SlatePolicyNet, horizon: int, rng: np.random.Generator,
                    gamma: float = 0.9) -> dict[str, torch.Tensor]:
    """One episode with sampled slates on a :func:`twin` environment: features, actions, behaviour
    probabilities and normalised advantages of every (active user, visit).

    The baseline of a user's return-to-go is that of the same user's twin episode at the same visit
    (leave-one-out, as in Kool et al. 2019's REINFORCE with a sampled baseline): users differ far more
    than actions do, and the twin removes the user's own level from the advantage.
    """
    policy = RLPolicy(net, env.scores, env.k, horizon, sample=True)
    state = env.reset()
    feats, acts, probs, rewards, active = [], [], [], [], []
    for _ in range(horizon):
        slates = policy.act(state, rng)
        prob = softmax(policy.last_logits)
        on = state.active.copy()
        state, clicks, _ = env.step(state, slates, rng)
        feats.append(policy.last_features[on])
        acts.append(slates[on])
        probs.append(np.take_along_axis(prob, slates, axis=1)[on])
        rewards.append(clicks.sum(axis=1))
        active.append(on)
    rewards_arr, active_arr = np.stack(rewards), np.stack(active)  # (T, users)
    to_go = np.zeros_like(rewards_arr)
    running = np.zeros(env.n_users)
    for t in range(horizon - 1, -1, -1):
        running = rewards_arr[t] + gamma * running
        to_go[t] = running
    half = env.n_users // 2
    baseline = np.roll(to_go, half, axis=1)  # the twin's return-to-go at the same visit
    advantage = np.concatenate([(to_go[t] - baseline[t])[active_arr[t]] for t in range(horizon)])
    advantage = advantage / (advantage.std() + 1e-9)
    return {"features": torch.from_numpy(np.concatenate(feats)), "actions": torch.from_numpy(np.concatenate(acts)),
            "behaviour_prob": torch.from_numpy(np.concatenate(probs)).float(),
            "advantages": torch.from_numpy(advantage).float()}


def train_reinforce(env: LongTermEnv, horizon: int, epochs: int = 40, lr: float = 0.01, gamma: float = 0.9,
                    minibatches: int = 4, hidden: int = 32, cap: float = 10.0, seed: int = 0,
                    progress: bool = False, device: str | None = None) -> tuple[RLPolicy, History]:
    """Train :class:`SlatePolicyNet` by top-K corrected REINFORCE with :func:`fit_torch`; each epoch is
    one rollout of every user over ``horizon`` visits, cut into ``minibatches`` optimizer steps."""
    if epochs < 1 or minibatches < 1 or horizon < 1:
        raise ValueError(f"train_reinforce: epochs, minibatches and horizon must be >= 1, got {epochs}, "
                         f"{minibatches}, {horizon}")
    torch.manual_seed(seed)
    net = SlatePolicyNet(len(FEATURES), hidden)
    rng = np.random.default_rng(seed)
    pairs = twin(env)

    def batches(epoch: int) -> list[dict[str, torch.Tensor]]:
        net.eval()
        rollout = collect_rollout(pairs, net, horizon, rng, gamma)
        net.train()
        order = torch.from_numpy(rng.permutation(len(rollout["actions"])))
        return [{key: value[part] for key, value in rollout.items()} for part in order.chunk(minibatches)]

    def loss_fn(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return topk_reinforce_loss(model(batch["features"]), batch["actions"], batch["advantages"], env.k,
                                   batch["behaviour_prob"], cap)

    history = fit_torch(net, batches, loss_fn, torch.optim.Adam(net.parameters(), lr=lr), epochs=epochs,
                        patience=None, seed=seed, progress=progress, device=device, desc="REINFORCE (top-K)")
    return RLPolicy(net, env.scores, env.k, horizon), history


__all__ = ["FEATURES", "RLPolicy", "SlatePolicyNet", "collect_rollout", "state_features", "topk_reinforce_loss",
           "train_reinforce", "twin"]
