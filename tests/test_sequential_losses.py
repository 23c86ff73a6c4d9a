"""The next-item losses (recsys_utils.models.sequential.losses) against hand-written formulas."""

import numpy as np
import pytest
import torch

from recsys_utils.data.sequences import Sequences
from recsys_utils.models.sequential import LOSSES, SASRec, SASRecNet, gbce_beta, make_loss, next_item_loss


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks: intra-op threads only spin (and on a loaded machine slow each step many times)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _net_and_batch(n_items=12, seed=0):
    torch.manual_seed(seed)
    net = SASRecNet(n_items, dim=8, max_len=6, blocks=1, heads=1, dropout=0.0)
    with torch.no_grad():
        net.output_bias.normal_()
    batch = torch.tensor([[0, 0, 3, 5, 7, 2], [1, 4, 6, 8, 9, 12], [0, 0, 0, 11, 10, 1]])
    return net, batch


def _positions(net, batch):
    hidden = net.encode(batch[:, :-1])
    mask = (batch[:, 1:] > 0) & (batch[:, :-1] > 0)
    return hidden[mask], batch[:, 1:][mask] - 1


def _logit(net, h, item):
    return float(h @ net.item_embedding.weight[item + 1] + net.output_bias[item])


def test_full_softmax_is_the_mean_cross_entropy_over_real_positions():
    net, batch = _net_and_batch()
    with torch.no_grad():
        hidden, targets = _positions(net, batch)
        by_hand = np.mean([float(torch.logsumexp(net.logits(h), 0)) - _logit(net, h, t)
                           for h, t in zip(hidden, targets, strict=True)])
    assert len(targets) == 3 + 5 + 2
    assert float(make_loss("ce")(net, batch)) == pytest.approx(by_hand, rel=1e-5)
    assert float(next_item_loss(net, batch)) == pytest.approx(by_hand, rel=1e-5)


def test_gbce_beta_interpolates_between_bce_and_calibrated():
    assert gbce_beta(10, 101, 0.0) == pytest.approx(1.0)  # t = 0: plain BCE
    assert gbce_beta(10, 101, 1.0) == pytest.approx(0.1)  # t = 1: beta = alpha = k / (n - 1)
    assert 0.1 < gbce_beta(10, 101, 0.75) < 1.0


@pytest.mark.parametrize("t", [0.0, 0.75])
def test_gbce_and_sampled_softmax_match_the_formulas_on_the_same_draws(t):
    net, batch = _net_and_batch()
    with torch.no_grad():
        hidden, targets = _positions(net, batch)
    k, n = 5, net.n_items
    torch.manual_seed(7)
    gbce = float(make_loss("gbce", n_negatives=k, gbce_t=t)(net, batch))
    torch.manual_seed(7)
    sampled = float(make_loss("sampled-ce", n_negatives=k)(net, batch))
    torch.manual_seed(7)
    draw = torch.randint(0, n, (k,)).tolist()
    beta = gbce_beta(k, n, t)
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    per_position, per_position_ce = [], []
    for h, target in zip(hidden.detach(), targets.tolist(), strict=True):
        s_pos = _logit(net, h, target)
        negs = [_logit(net, h, j) for j in draw if j != target]
        per_position.append(-(beta * np.log(sig(s_pos)) + sum(np.log(1 - sig(s)) for s in negs)) / (1 + k))
        per_position_ce.append(np.log(np.exp(s_pos) + sum(np.exp(negs))) - s_pos)
    assert gbce == pytest.approx(np.mean(per_position), rel=1e-4)
    assert sampled == pytest.approx(np.mean(per_position_ce), rel=1e-4)


def test_one_negative_bce_never_draws_the_target():
    net, batch = _net_and_batch(n_items=3)
    hidden, targets = _positions(net, batch.clamp(max=3))
    torch.manual_seed(0)
    draw = torch.randint(0, 2, (10_000,))
    target = torch.randint(0, 3, (10_000,))
    negative = draw + (draw >= target).long()
    assert not (negative == target).any() and set(negative.tolist()) == {0, 1, 2}
    value = make_loss("bce")(net, batch.clamp(max=3))
    assert torch.isfinite(value) and float(value) > 0


def test_unknown_settings_are_rejected_with_the_option_named():
    with pytest.raises(ValueError, match="loss: unknown 'softmax'"):
        SASRec(loss="softmax")
    with pytest.raises(ValueError, match="n_negatives"):
        make_loss("gbce", n_negatives=0)
    with pytest.raises(ValueError, match="gbce_t"):
        make_loss("gbce", gbce_t=1.5)


@pytest.mark.parametrize("loss", LOSSES)
def test_every_loss_trains_sasrec_on_a_cycle(loss):
    items = np.array([[(start + step) % 6 for step in range(7)] for start in range(6)] * 4)
    train = Sequences.from_array(items, 6)
    model = SASRec(dim=16, blocks=1, epochs=30, batch_size=8, lr=2e-2, dropout=0.0, max_len=6, patience=None,
                   seed=0, loss=loss, n_negatives=3).fit(train)
    histories = np.array([[0, 1, 2], [3, 4, 5]])
    assert model.recommend_next(histories, k=1)[:, 0].tolist() == [3, 0]
    assert model.history_.train_loss[-1] < model.history_.train_loss[0]
    assert "loss=" in repr(model) or loss == "ce"


class _FixedLogits(torch.nn.Module):
    """A stand-in network whose every position has hidden vector [1]: item j's logit is ``logits[j]``."""

    def __init__(self, logits):
        super().__init__()
        self.n_items = len(logits)
        self.item_embedding = torch.nn.Embedding(self.n_items + 1, 1)
        with torch.no_grad():
            self.item_embedding.weight[1:, 0] = torch.tensor(logits)
        self.output_bias = torch.nn.Parameter(torch.zeros(self.n_items))

    def encode(self, inputs):
        return torch.ones(*inputs.shape, 1)


def test_gbce_matches_a_hand_computed_case_and_the_papers_calibrated_positive(monkeypatch):
    """Petrov & Macdonald (2023), eq. 4-6: n = 5 items, k = 3 negatives, t = 0.5.

    alpha = 3/4, beta = 3/4 (1/2 (1 - 4/3) + 4/3) = 7/8. One position: target item 1 with logit ln 3;
    the draws are items 0, 1, 2 (logits 0, ln 3, -ln 3); the draw equal to the target is dropped from
    the negative sum, the mean still divides by 1 + k = 4.
    """
    assert gbce_beta(3, 5, 0.5) == pytest.approx(7 / 8)
    ln3 = np.log(3.0)
    net = _FixedLogits([0.0, ln3, -ln3, 0.0, 2.0])
    batch = torch.tensor([[1, 2]])  # input item 0, target item 1 (ids are 1-based, 0 = padding)
    monkeypatch.setattr(torch, "randint", lambda low, high, size, device=None: torch.tensor([0, 1, 2]))
    with torch.no_grad():
        loss = float(make_loss("gbce", n_negatives=3, gbce_t=0.5)(net, batch))
    softplus = lambda x: np.log1p(np.exp(x))  # noqa: E731
    by_hand = (7 / 8 * -np.log(0.75) + softplus(0.0) + softplus(-ln3)) / 4  # sigma(ln 3) = 3/4
    assert loss == pytest.approx(by_hand, rel=1e-6)
    assert by_hand == pytest.approx(0.308138, abs=1e-6)
    # the paper's form: BCE on a transformed positive logit s' with sigma(s') = sigma(s)^beta
    p_beta = 0.75 ** (7 / 8)
    transformed = np.log(p_beta / (1 - p_beta))
    assert loss == pytest.approx((softplus(-transformed) + softplus(0.0) + softplus(-ln3)) / 4, rel=1e-6)
