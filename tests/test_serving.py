"""Serving: re-ranking rules, MMR, sponsored slot, the pipeline's save/load, bandits, privacy, real time."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.evaluation.protocol import evaluate
from recsys_utils.models import EASE, PopularityRecommender, RandomRecommender
from recsys_utils.pipeline.privacy import FederatedMF, k_anonymity, laplace_counts, pseudonymise
from recsys_utils.pipeline.realtime import DecayedPopularity
from recsys_utils.pipeline.rerank import (
    BusinessRules,
    apply_rules,
    cap_per_group,
    insert_sponsored,
    mmr,
    rule_violations,
)
from recsys_utils.pipeline.serving import PipelineFormatError, ServingPipeline, channel_from_model, dedupe_rows
from recsys_utils.simulation.bandits import EpsilonGreedy, Greedy, LinUCB, ThompsonSampling, run_bandit

RNG = np.random.default_rng(0)


def _rules(n_users=30, n_items=50, seed=0):
    rng = np.random.default_rng(seed)
    blocked = sp.random(n_users, n_items, density=0.1, random_state=seed, format="csr")
    return BusinessRules(in_stock=rng.random(n_items) > 0.2, item_category=rng.integers(0, 5, n_items),
                         max_per_category=2, blocked=blocked, item_price=rng.uniform(0, 100, n_items),
                         user_price=np.where(rng.random(n_users) < 0.2, np.nan, rng.uniform(5, 40, n_users)),
                         max_price_ratio=2.0, min_price=1.0)


def _brute_rules(user, row, rules, k):
    out, per_cat = [], {}
    for item in row:
        if item < 0 or not rules.in_stock[item] or rules.blocked[user, item] != 0:
            continue
        price = rules.item_price[item]
        if price < rules.min_price or (not np.isnan(rules.user_price[user]) and price > 2.0 * rules.user_price[user]):
            continue
        cat = rules.item_category[item]
        if per_cat.get(cat, 0) >= rules.max_per_category:
            continue
        per_cat[cat] = per_cat.get(cat, 0) + 1
        out.append(item)
    return (out + [-1] * k)[:k]


def test_apply_rules_matches_a_row_by_row_reference_and_never_violates():
    rules = _rules()
    users = np.arange(30)
    candidates = np.argsort(RNG.random((30, 50)), axis=1)[:, :40]
    candidates[3, 30:] = -1
    got = apply_rules(users, candidates, rules, k=8)
    for u in users:
        assert list(got[u]) == _brute_rules(u, candidates[u], rules, 8)
    assert set(rule_violations(users, got, rules).values()) == {0}
    assert rule_violations(users, candidates[:, :8], rules)["out_of_stock"] > 0


def test_cap_per_group_keeps_the_first_of_each_group():
    candidates = np.array([[0, 1, 2, 3, 4, -1]])
    group = np.array([0, 0, 0, 1, 1])
    keep = cap_per_group(candidates, candidates >= 0, group, 2)
    assert keep.tolist() == [[True, True, False, True, True, False]]


def test_mmr_without_diversity_is_the_relevance_order_and_matches_a_greedy_reference():
    candidates = np.argsort(RNG.random((6, 20)), axis=1)[:, :12]
    scores = -np.sort(-RNG.random((6, 12)), axis=1)
    vectors = RNG.normal(size=(20, 4))
    np.testing.assert_array_equal(mmr(candidates, scores, vectors, 5, trade_off=1.0), candidates[:, :5])
    got = mmr(candidates, scores, vectors, 5, trade_off=0.5)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    for r in range(6):
        rel = (scores[r] - scores[r].min()) / (scores[r].max() - scores[r].min())
        picked = []
        for _ in range(5):
            best, best_value = None, -np.inf
            for j, item in enumerate(candidates[r]):
                if item in picked:
                    continue
                sim = max([unit[item] @ unit[p] for p in picked], default=0.0)
                value = 0.5 * rel[j] - 0.5 * max(sim, 0.0)  # similarities below 0 count as 0
                if value > best_value:
                    best, best_value = item, value
            picked.append(best)
        assert list(got[r]) == picked


def test_insert_sponsored_shifts_and_never_duplicates():
    lists = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    out = insert_sponsored(lists, np.array([9, 7]), position=1)
    assert out.tolist() == [[1, 9, 2, 3], [5, 7, 6, 8]]
    with pytest.raises(ValueError, match="position"):
        insert_sponsored(lists, np.array([9, 7]), position=4)


def test_dedupe_rows_keeps_first_occurrences_in_order():
    rows = np.array([[3, 1, 3, 2, 1, -1], [5, 5, 5, 4, -1, -1]])
    assert dedupe_rows(rows).tolist() == [[3, 1, 2, -1, -1, -1], [5, 4, -1, -1, -1, -1]]


def _structured(n_users=200, n_items=60, seed=1):
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 3, n_users)
    rows, cols = [], []
    for u in range(n_users):
        items = rng.choice(np.arange(group[u] * 20, group[u] * 20 + 20), 8, replace=False)
        rows += [u] * 8
        cols += list(items)
    matrix = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n_users, n_items))
    return Interactions(matrix, IdIndex(np.arange(n_users)), IdIndex(np.arange(n_items))), np.arange(n_items) // 20


def _two_periods(n_users=200, n_items=60, seed=1):
    """Like :func:`_structured`, with a later period of 8 other items of each user's own block."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 3, n_users)
    picks = group[:, None] * 20 + rng.permuted(np.tile(np.arange(20), (n_users, 1)), axis=1)[:, :16]

    def build(cols):
        rows = np.repeat(np.arange(n_users), cols.shape[1])
        matrix = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols.ravel())), shape=(n_users, n_items))
        return Interactions(matrix, IdIndex(np.arange(n_users)), IdIndex(np.arange(n_items)))

    return build(picks[:, :8]), build(picks[:, 8:]), np.arange(n_items) // 20


def _precision_at(lists, relevant):
    return float(np.asarray(relevant[np.repeat(np.arange(lists.shape[0]), lists.shape[1]), lists.ravel()]).mean())


def test_pipeline_ranks_saves_and_loads_without_pickle(tmp_path):
    train, later, category = _two_periods()
    ease = EASE(l2=10.0).fit(train)
    pop = PopularityRecommender().fit(train)
    pipeline = ServingPipeline([channel_from_model("ease", ease), channel_from_model("popularity", pop)],
                               train.matrix, category, n_recall=15)
    summary = pipeline.fit_ranker(np.arange(200), later.matrix)
    # the training rows are the recalled candidates, labelled by the later period
    candidates, _, _ = pipeline.recall(np.arange(200))
    valid = candidates >= 0
    labels = later.matrix.toarray()[np.nonzero(valid)[0], candidates[valid]] > 0
    assert summary["rows"] == int(valid.sum()) and summary["positives"] == int(labels.sum())
    assert summary["candidate_recall"] == pytest.approx(labels.sum() / later.matrix.nnz)
    lists = pipeline.recommend(np.arange(200), k=5)
    assert (lists >= 0).all()
    # the later items are unseen items of the user's own block (8 of its 12): popularity alone cannot find them
    later_dense = later.matrix.toarray() > 0
    ranked = _precision_at(lists, later_dense)
    popular = _precision_at(pop.recommend_indices(np.arange(200), k=5), later_dense)
    assert ranked > 0.5 and ranked > 2 * popular, (ranked, popular)
    seen = train.matrix.toarray() > 0
    assert not seen[np.repeat(np.arange(200), 5), lists.ravel()].any()
    path = pipeline.save(tmp_path / "pipeline.npz")
    again = ServingPipeline.load(path)
    np.testing.assert_array_equal(again.recommend(np.arange(200), k=5), lists)
    data = dict(np.load(path))
    data["manifest"] = np.frombuffer(bytes(data["manifest"]).replace(b'"format_version": 1', b'"format_version": 99'),
                                     dtype=np.uint8)
    np.savez(tmp_path / "old.npz", **data)
    with pytest.raises(PipelineFormatError, match="version 99"):
        ServingPipeline.load(tmp_path / "old.npz")
    (tmp_path / "junk.npz").write_bytes(b"not numpy")
    with pytest.raises(PipelineFormatError, match="junk.npz"):
        ServingPipeline.load(tmp_path / "junk.npz")


def test_context_free_bandits_find_the_best_arm_and_linucb_personalises():
    rng = np.random.default_rng(3)
    n_users = 2000
    segment = rng.integers(0, 2, n_users)
    expected = np.where(segment[:, None] == 0, [0.2, 0.5, 0.3], [0.6, 0.3, 0.2])  # best arm depends on segment
    contexts = np.stack([segment == 0, segment == 1], axis=1).astype(float)
    runs = {p.name: run_bandit(p, expected, contexts, n_rounds=60, batch_size=100, seed=5)
            for p in (Greedy(3), EpsilonGreedy(3, 0.1, seed=1), ThompsonSampling(3, seed=1),
                      LinUCB(3, n_features=2, alpha=0.5, seed=1))}
    regret = {name: run.cumulative_regret for name, run in runs.items()}
    assert regret["linucb_0.5"] < 0.3 * min(regret["greedy"], regret["epsilon_greedy_0.1"], regret["thompson"])
    assert all(run.rounds["regret"].ge(-1e-9).all() for run in runs.values())


def test_pseudonymise_is_keyed_stable_and_rejects_weak_keys():
    key, other = b"k" * 32, b"o" * 32
    a = pseudonymise([1, 2, 1], key)
    assert a[0] == a[2] != a[1] and len(a[0]) == 16
    assert not set(a) & set(pseudonymise([1, 2], other))
    with pytest.raises(ValueError, match="16 random bytes"):
        pseudonymise([1], b"short")


def test_k_anonymity_counts_the_smallest_group():
    frame = pd.DataFrame({"age": [30, 30, 30, 40, 40], "city": ["a", "a", "a", "b", "b"]})
    k, small = k_anonymity(frame, ["age", "city"])
    assert k == 2 and len(small) == 2


def test_laplace_noise_has_the_calibrated_scale():
    noisy = laplace_counts(np.full(200_000, 1000.0), epsilon=0.5, seed=0)
    assert np.std(noisy - 1000.0) == pytest.approx(np.sqrt(2) * 2.0, rel=0.02)
    with pytest.raises(ValueError):
        laplace_counts(np.ones(3), epsilon=0)


def _central_mf(matrix, init, dim, l2, alpha, lr, local_steps, rounds):
    """Reference: the same confidence-weighted MF trained on all users at once, written out per user
    with the textbook normal equations (Y^T C_u Y + lambda I) x_u = Y^T C_u p_u (Hu et al. 2008)."""
    p = (matrix.toarray() > 0).astype(float)
    conf = 1 + alpha * p
    items = init.copy()

    def solve(items):
        x = np.empty((p.shape[0], dim))
        for u in range(p.shape[0]):
            weighted = items.T * conf[u]
            x[u] = np.linalg.solve(weighted @ items + l2 * np.eye(dim), weighted @ p[u])
        return x

    for _ in range(rounds * local_steps):
        x = solve(items)
        gradient = 2 * (conf * (x @ items.T - p)).T @ x + 2 * l2 * items
        items = items - lr * gradient / p.shape[0]
    return solve(items), items


def test_federated_mf_with_one_client_is_central_training():
    train, _ = _structured(n_users=60)
    one_client = np.zeros(train.n_users, dtype=np.int64)  # an explicit assignment draws nothing from the seed
    model = FederatedMF(clients=one_client, dim=4, rounds=4, seed=3).fit(train)
    init = np.random.default_rng(3).normal(0, 0.1, (train.n_items, 4))
    users, items = _central_mf(train.matrix, init, 4, model.l2, model.alpha, model.lr, model.local_steps, 4)
    np.testing.assert_allclose(model.item_factors, items, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(model.score(np.arange(train.n_users)), users @ items.T, rtol=1e-4, atol=1e-5)
    assert np.all(np.diff(model.history) < 0)  # the training loss falls every round
    with pytest.raises(ValueError, match="clients has 3 entries"):
        FederatedMF(clients=np.zeros(3, dtype=np.int64)).fit(train)


def test_federated_mf_stays_close_to_central_training_on_later_data():
    train, later, _ = _two_periods(n_users=150)
    test = Interactions(later.matrix, train.users, train.items)
    ndcg = {name: evaluate(model.fit(train), train, test, k=5)["ndcg@5"] for name, model in {
        "central": FederatedMF(clients=1, dim=8, rounds=15, seed=0),
        "federated": FederatedMF(clients=4, dim=8, rounds=15, seed=0),
        "random": RandomRecommender(seed=0),
    }.items()}
    # every later item is one of 12 unseen items of the user's block (of 52 unseen): random gets about 0.15
    assert ndcg["central"] > 0.6, ndcg
    assert ndcg["federated"] > ndcg["central"] - 0.05, ndcg  # averaging the item factors costs little
    assert ndcg["federated"] > 3 * ndcg["random"], ndcg


def test_decayed_popularity_hand_computed():
    pop = DecayedPopularity(3, half_life_hours=1.0)
    pop.update(np.array([0, 1]), np.array([0.0, 0.0]))
    pop.update(np.array([2]), np.array([3600.0]))
    np.testing.assert_allclose(pop.counts, [0.5, 0.5, 1.0])
    assert pop.top(1).tolist() == [2]
    with pytest.raises(ValueError, match="older"):
        pop.update(np.array([0]), np.array([0.0]))


def test_item_item_channel_scores_the_history_the_way_the_model_was_fitted():
    train, _ = _structured(n_users=50)
    weighted = train.matrix.copy()
    weighted.data[:] = 3.0  # e.g. purchase weights in the pipeline's history
    ease = EASE(l2=10.0).fit(train)
    channel = channel_from_model("ease", ease)
    assert bool(channel.arrays["binary"])
    np.testing.assert_allclose(channel.score(np.arange(50), sp.csr_matrix(weighted)), ease.score(np.arange(50)),
                               rtol=1e-5, atol=1e-6)


def test_rerank_puts_a_rule_abiding_advert_in_place_and_counts_it_in_the_category_cap():
    rules = _rules()
    users = np.arange(30)
    rng = np.random.default_rng(4)
    candidates = np.argsort(rng.random((30, 50)), axis=1)[:, :40]
    scores = -np.sort(-rng.random((30, 40)), axis=1)
    pipeline = ServingPipeline([], sp.csr_matrix((30, 50)), rules.item_category)
    ads = rng.integers(0, 50, 30)
    lists = pipeline.rerank(users, candidates, scores, k=8, rules=rules, sponsored=ads, sponsored_position=2)
    assert set(rule_violations(users, lists, rules).values()) == {0}
    ok = rules.allowed(users, ads[:, None])[:, 0]
    assert (lists[ok, 2] == ads[ok]).all() and (lists[~ok, 2] != ads[~ok]).all()
    assert ok.any() and (~ok).any()
    plain = pipeline.rerank(users, candidates, scores, k=8, rules=rules)
    np.testing.assert_array_equal(plain, apply_rules(users, candidates, rules, 8))
    with pytest.raises(ValueError, match="sponsored items"):
        pipeline.rerank(users, candidates, scores, k=8, sponsored=ads[:3])


def test_gbdt_ranker_roundtrips_and_can_be_copied(tmp_path):
    train, category = _structured()
    channels = [channel_from_model("ease", EASE(l2=10.0).fit(train)),
                channel_from_model("popularity", PopularityRecommender().fit(train))]
    pipeline = ServingPipeline(channels, train.matrix, category, n_recall=15,
                               item_features={"freshness": np.linspace(0, 1, 60)})
    later, _ = _structured(seed=2)
    pipeline.fit_ranker(np.arange(200), later.matrix, kind="gbdt", n_trees=10, min_data_in_leaf=20)
    assert "user:log_activity" in pipeline.feature_importance()
    lists = pipeline.recommend(np.arange(200), k=5)
    again = ServingPipeline.load(pipeline.save(tmp_path / "p.npz"))
    np.testing.assert_array_equal(again.recommend(np.arange(200), k=5), lists)
    twin = ServingPipeline(channels, train.matrix, category, n_recall=15,
                           item_features={"freshness": np.linspace(0, 1, 60)}).copy_ranker(pipeline)
    np.testing.assert_array_equal(twin.recommend(np.arange(200), k=5), lists)
    with pytest.raises(ValueError, match="features differ"):
        ServingPipeline(channels, train.matrix, category).copy_ranker(pipeline)
    with pytest.raises(ValueError, match="shape"):
        pipeline.fit_ranker(np.arange(10), sp.csr_matrix((3, 3)))


def test_item_serving_features_use_only_the_past_and_mark_fresh_items():
    from recsys_utils.pipeline.serving import item_serving_features

    items = pd.DataFrame({"item_id": [1, 2, 3], "price": [10.0, 20.0, np.nan],
                          "launch_time": pd.to_datetime(["2024-01-01", "2024-03-08", "2024-03-20"])})
    events = pd.DataFrame({"user_id": [7, 8, 7, 9], "item_id": [1, 1, 2, 3], "timestamp": pd.to_datetime(
        ["2024-03-09", "2024-03-01", "2024-03-09", "2024-03-21"])})
    out = item_serving_features(events, items, np.array([1, 2, 3]), "2024-03-15", recent_days=7)
    np.testing.assert_allclose(out["recent_log_popularity"], np.log1p([1, 1, 0]))
    np.testing.assert_allclose(out["freshness"], [0.0, 1 - 7 / 14, 0.0], atol=1e-6)  # item 3 not launched yet
    np.testing.assert_allclose(out["log_price"], np.log([10.0, 20.0, 15.0]), rtol=1e-6)
