"""Next-item models (recsys_utils.models.sequential): baselines by hand, causal masking, learning."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from recsys_utils.data.sequences import NextItemTask, Sequences
from recsys_utils.models.base import Recommender
from recsys_utils.models.sequential import (
    Caser,
    CaserNet,
    GRU4Rec,
    GRU4RecNet,
    MarkovChain,
    MostPopularNext,
    SASRec,
    SASRecNet,
    SequenceBatches,
    SequentialRecommender,
    compare_next_item,
    evaluate_next_item,
    history_matrix,
    next_item_loss,
)

NETS = {
    "gru4rec": lambda n: GRU4RecNet(n, dim=16, dropout=0.0),
    "caser": lambda n: CaserNet(n, dim=16, window=3, n_horizontal=4, n_vertical=2, dropout=0.0),
    "sasrec": lambda n: SASRecNet(n, dim=16, max_len=12, blocks=2, heads=2, dropout=0.0),
}
SMALL = dict(dim=16, epochs=25, batch_size=32, lr=1e-2, dropout=0.0, max_len=12, patience=None, seed=0)
MODELS = {
    "gru4rec": lambda: GRU4Rec(**SMALL),
    "caser": lambda: Caser(window=3, n_horizontal=8, n_vertical=2, **SMALL),
    "sasrec": lambda: SASRec(blocks=1, heads=1, **SMALL),
}


# --------------------------------------------------------------------------------------------
# count baselines and evaluation
# --------------------------------------------------------------------------------------------


def test_markov_chain_by_hand():
    # transitions: 0->1 twice, 1->2, 1->3; item 4 never occurs
    seq = Sequences.from_array(np.array([[-1, 0, 1, 2], [-1, 0, 1, 3]]), n_items=5)
    model = MarkovChain(popularity_weight=0.0).fit(seq)
    scores = model.score_next(np.array([[-1, 0], [0, 1], [-1, -1]]))
    np.testing.assert_allclose(scores, [[0, 1, 0, 0, 0], [0, 0, 0.5, 0.5, 0], [0, 0, 0, 0, 0]], atol=1e-7)
    # a window of two adds decay * P(. | item before the last)
    two = MarkovChain(window=2, decay=0.5, popularity_weight=0.0).fit(seq)
    np.testing.assert_allclose(two.score_next(np.array([[0, 1]])), [[0, 0.5, 0.5, 0.5, 0]], atol=1e-7)
    # the popularity term backs off for a last item with no outgoing transition
    backed = MarkovChain(popularity_weight=1.0).fit(seq)
    assert backed.recommend_next(np.array([[-1, 3]]), k=2).tolist() == [[0, 1]]


def test_most_popular_next_is_the_same_list_for_everyone():
    seq = Sequences.from_array(np.array([[-1, 2, 1], [2, 0, 2]]), n_items=4)
    model = MostPopularNext().fit(seq)
    assert model.recommend_next(np.array([[-1, 0], [1, 3]]), k=3).tolist() == [[2, 0, 1], [2, 0, 1]]
    np.testing.assert_allclose(model.score_next(np.array([[0, 1]]))[0], [0.2, 0.2, 0.6, 0.0])


class FixedScores(SequentialRecommender):
    """Scores given up front, one row per history row (for checking the evaluation)."""

    def __init__(self, scores):
        super().__init__()
        self.scores = scores

    def _fit(self, sequences, validation):
        pass

    def score_next(self, histories):
        return self.scores[: len(histories)].copy()


def test_evaluate_next_item_matches_brute_force_ranks():
    rng = np.random.default_rng(1)
    n, n_items = 300, 40
    scores = rng.random((n, n_items))
    histories = rng.integers(-1, n_items, (n, 6))
    histories = np.sort(histories, axis=1)  # padding (-1) first: right-aligned
    targets = rng.integers(0, n_items, n)
    task = NextItemTask(histories, targets, np.arange(n))
    model = FixedScores(scores).fit(Sequences.from_array(histories, n_items))
    result = evaluate_next_item(model, task, k=(5, 10))
    rank = (scores > scores[np.arange(n), targets][:, None]).sum(axis=1)  # 0 = best
    assert result["hr@10"] == pytest.approx(np.mean(rank < 10))
    assert result["hr@5"] == pytest.approx(np.mean(rank < 5))
    assert result["ndcg@10"] == pytest.approx(np.mean(np.where(rank < 10, 1 / np.log2(rank + 2), 0)))
    assert result["mrr@10"] == pytest.approx(np.mean(np.where(rank < 10, 1 / (rank + 1), 0)))
    assert result.per_user.shape[0] == n and (result.per_user["history_length"] == task.lengths).all()
    # excluding the history: a target inside the history becomes a miss
    excl = evaluate_next_item(model, task, k=10, exclude_history=True)
    in_history = (histories == targets[:, None]).any(axis=1)
    assert (excl.per_user["hr@10"].to_numpy()[in_history] == 0).all()
    table = compare_next_item({"fixed": model}, task, k=10)
    assert table.loc["fixed", "ndcg@10"] == pytest.approx(result["ndcg@10"])


def test_history_matrix():
    matrix = history_matrix(np.array([[-1, 2, 2], [0, 1, 3]]), n_items=4)
    assert isinstance(matrix, sp.csr_matrix)
    assert matrix.toarray().tolist() == [[0, 0, 1, 0], [1, 1, 0, 1]]


# --------------------------------------------------------------------------------------------
# networks: causality, padding, attention
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(NETS))
def test_a_future_item_cannot_change_an_earlier_position(name):
    torch.manual_seed(0)
    net = NETS[name](30).eval()
    x = torch.randint(1, 31, (4, 10))
    x[0, :3] = 0  # some left padding
    changed = x.clone()
    changed[:, 6] = (x[:, 6] % 30) + 1  # a different item at position 6
    with torch.no_grad():
        before, after = net.encode(x), net.encode(changed)
    torch.testing.assert_close(before[:, :6], after[:, :6])  # positions before 6 see nothing of it
    assert (before[:, 6:] - after[:, 6:]).abs().amax() > 1e-4  # ... and the test can fail


@pytest.mark.parametrize("name", sorted(NETS))
def test_scores_do_not_depend_on_left_padding(name):
    torch.manual_seed(0)
    net = NETS[name](30).eval()
    x = torch.randint(1, 31, (3, 5))
    padded = torch.cat([torch.zeros(3, 7, dtype=torch.long), x], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(net(x), net(padded), atol=1e-5, rtol=1e-5)


def test_sasrec_attention_is_causal_and_matches_the_forward_pass():
    torch.manual_seed(0)
    net = SASRecNet(30, dim=16, max_len=12, blocks=2, heads=2, dropout=0.0).eval()
    x = torch.randint(1, 31, (2, 8))
    x[1, :3] = 0
    maps = net.attention_maps(x)  # (B, blocks, heads, T, T)
    assert maps.shape == (2, 2, 2, 8, 8)
    torch.testing.assert_close(maps.sum(-1), torch.ones(2, 2, 2, 8))
    upper = torch.ones(8, 8, dtype=torch.bool).triu(1)
    assert (maps[..., upper] == 0).all()  # nothing from the future
    assert (maps[1, :, :, 3:, :3] == 0).all()  # nor from padding
    # the explicit weights reproduce the block's scaled-dot-product attention
    h, _, mask = net._inputs(x)
    block = net.blocks[0]
    q, k, v = block._qkv(h)
    torch.testing.assert_close(block.attention_weights(h, mask) @ v,
                               F.scaled_dot_product_attention(q, k, v, attn_mask=mask))


def test_next_item_loss_uses_only_real_transitions():
    torch.manual_seed(0)
    net = NETS["sasrec"](10).eval()
    batch = torch.tensor([[0, 0, 3, 4], [1, 2, 3, 4]])
    loss = next_item_loss(net, batch)
    logits = net.logits(net.encode(batch[:, :-1]))
    manual = torch.cat([F.cross_entropy(logits[0, 2:], torch.tensor([3]), reduction="none"),
                        F.cross_entropy(logits[1], torch.tensor([1, 2, 3]), reduction="none")]).mean()
    torch.testing.assert_close(loss, manual)


def test_sequence_batches_cover_each_usable_row_once():
    items = np.full((50, 6), -1)
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 7, 50)
    for r, n in enumerate(lengths):
        items[r, 6 - n:] = rng.integers(0, 9, n)
    batches = SequenceBatches(Sequences.from_array(items, 9), batch_size=8, seed=1)
    seen = [b for b in batches(1)]
    assert sum(len(b) for b in seen) == int((lengths >= 2).sum())
    assert all(b.shape[1] == int((b > 0).sum(1).max()) for b in seen)  # no all-padding columns
    rows = {tuple(r[r > 0].tolist()) for b in seen for r in b}
    assert rows == {tuple((items[r][items[r] >= 0] + 1).tolist()) for r in np.flatnonzero(lengths >= 2)}


# --------------------------------------------------------------------------------------------
# learning
# --------------------------------------------------------------------------------------------


def second_order_task(n_sequences=240, length=10, n_items=24, seed=0):
    """Sequences where the next item depends on the item *two* steps back: x[t+1] = x[t-1] + 1.

    Two interleaved counters (even positions and odd positions), so the last item alone says
    nothing about the next one: a first-order Markov chain cannot do better than chance among
    the items that follow the last one, while a sequence model that reads the history can.
    """
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, n_items, (2, n_sequences, 1))
    steps = np.arange(length + 2)
    items = np.where(steps % 2 == 0, a + steps // 2, b + steps // 2) % n_items
    train = Sequences.from_array(items[:, :length], n_items)
    validation = NextItemTask(items[:, :length], items[:, length], np.arange(n_sequences))
    test = NextItemTask(items[:, 1:length + 1], items[:, length + 1], np.arange(n_sequences))
    return train, validation, test


@pytest.mark.parametrize("name", ["gru4rec", "caser", "sasrec"])
def test_sequence_models_learn_what_a_markov_chain_cannot(name):
    train, validation, test = second_order_task()
    markov = MarkovChain().fit(train)
    model = MODELS[name]().fit(train, validation)
    markov_hr = evaluate_next_item(markov, test, k=1)["hr@1"]
    model_hr = evaluate_next_item(model, test, k=1)["hr@1"]
    assert markov_hr < 0.3  # the last item alone is ambiguous
    assert model_hr > 0.9, f"{name}: hr@1 {model_hr:.3f} on a deterministic second-order task"
    losses = model.history_.train_loss
    assert losses[-1] < 0.5 * losses[0]


def test_early_stopping_restores_the_best_validation_epoch():
    train, validation, _ = second_order_task()
    model = SASRec(dim=16, epochs=12, batch_size=32, lr=3e-2, dropout=0.0, max_len=12, patience=2,
                   blocks=1, seed=0).fit(train, validation)
    history = model.history_
    assert history.best_epoch == int(np.nanargmax(history.val_metric)) + 1
    assert evaluate_next_item(model, validation, k=10)["ndcg@10"] == pytest.approx(history.best_metric, abs=1e-6)
    if history.best_epoch < len(history.epoch):  # a later, worse epoch was not kept
        assert history.val_metric[-1] <= history.best_metric


def test_training_is_reproducible_for_a_seed():
    train, validation, _ = second_order_task(n_sequences=60)
    kwargs = dict(dim=8, epochs=2, batch_size=16, max_len=12, seed=3)
    first = GRU4Rec(**kwargs).fit(train).score_next(validation.histories)
    again = GRU4Rec(**kwargs).fit(train).score_next(validation.histories)
    np.testing.assert_allclose(first, again, rtol=1e-5, atol=1e-6)


def test_sasrec_attention_maps_of_a_fitted_model():
    train, validation, _ = second_order_task(n_sequences=60)
    model = SASRec(dim=8, epochs=1, max_len=6, blocks=2, heads=2, seed=0).fit(train)
    maps = model.attention_maps(np.array([-1, -1, 3, 4, 5]))
    assert maps.shape == (2, 2, 3, 3)
    np.testing.assert_allclose(maps.sum(-1), 1.0, rtol=1e-5)
    assert model.attention_maps(validation.histories[0]).shape == (2, 2, 6, 6)  # the last max_len


@pytest.mark.parametrize("name", ["markov", "gru4rec"])
def test_sequential_models_speak_the_recommender_protocol(name):
    """score(user_indices) scores the next item after each training row; recommend(user_ids) maps the
    rows' keys and leaves out the items already in the history (the protocol's exclude_seen)."""
    train, _, _ = second_order_task(n_sequences=60)
    keyed = Sequences(train.items, train.keys + 1000, train.item_index)
    model = MarkovChain() if name == "markov" else GRU4Rec(dim=8, epochs=1, max_len=12, seed=0)
    assert isinstance(model, Recommender) and model.fit(keyed) is model
    users = np.array([0, 5, 7])
    np.testing.assert_allclose(model.score(users), model.score_next(keyed.items[users]))
    frame = model.recommend([1005, 1007], k=3)
    expected = model.recommend_next(keyed.items[[5, 7]], k=3, exclude_history=True)
    assert frame.groupby("user_id")["item_id"].apply(list).to_dict() == {1005: list(expected[0]),
                                                                        1007: list(expected[1])}
    for user in (5, 7):
        assert not set(frame.loc[frame.user_id == 1000 + user, "item_id"]) & set(keyed.items[user].tolist())
    np.testing.assert_array_equal(model.recommend_indices(users, k=3), model.recommend_next(
        keyed.items[users], k=3, exclude_history=True))


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------


def test_bad_input_errors():
    seq = Sequences.from_array(np.array([[-1, 0, 1], [0, 1, 2]]), n_items=3)
    with pytest.raises(RuntimeError, match="not fitted"):
        MarkovChain().recommend_next(np.array([[0]]))
    with pytest.raises(TypeError, match="Sequences"):
        MarkovChain().fit(np.array([[0, 1]]))
    with pytest.raises(TypeError, match="NextItemTask"):
        MarkovChain().fit(seq, validation=seq)
    model = MarkovChain().fit(seq)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        model.score_next(np.array([[0, 5]]))
    with pytest.raises(ValueError, match="2-D"):
        model.score_next(np.array([0, 1]))
    with pytest.raises(ValueError, match="integer"):
        model.score_next(np.array([[0.5, 1.0]]))
    with pytest.raises(ValueError, match="window"):
        MarkovChain(window=0)
    with pytest.raises(ValueError, match="divisible"):
        SASRec(dim=10, heads=3, epochs=1).fit(seq)
    with pytest.raises(ValueError, match="two or more items"):
        GRU4Rec(dim=4, epochs=1).fit(Sequences.from_array(np.array([[-1, 0], [-1, 1]]), n_items=3))
    with pytest.raises(RuntimeError, match="fit"):
        SASRec(dim=4).attention_maps(np.array([0, 1]))
