"""Search sessions of the world, BM25, the personalised re-ranker and the cross-domain split."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd
import pytest

from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.data.world import generate
from recsys_utils.data.world_search import QUERY_COLUMNS, search_relevance, search_utility
from recsys_utils.features.text_search import BM25, normalise_query, tokenize
from recsys_utils.models.als import ALS
from recsys_utils.models.cross_domain import DOMAIN_B, EMCDR, DomainPopularity, SharedALS, cross_domain_split
from recsys_utils.models.personalised_search import BlendReranker, graded_ndcg, search_features

TABLES = ("users", "items", "interactions", "reviews", "cancelled")


def _digest(frame: pd.DataFrame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes()).hexdigest()


@pytest.fixture(scope="module")
def world():
    return generate(n_users=400, n_items=240, n_weeks=4, seed=11)


def brute_force_bm25(docs: list[list[str]], query: list[str], k1: float = 1.5, b: float = 0.75) -> list[float]:
    """BM25 (Lucene idf) with plain loops, straight from Robertson & Zaragoza (2009)."""
    n = len(docs)
    avgdl = sum(len(d) for d in docs) / n
    out = []
    for d in docs:
        total = 0.0
        for term in query:
            df = sum(1 for other in docs if term in other)
            if df == 0:
                continue
            idf = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
            tf = d.count(term)
            total += idf * tf / (tf + k1 * (1.0 - b + b * len(d) / avgdl))
        out.append(total)
    return out


def test_bm25_matches_a_brute_force_implementation():
    corpus = ["Nuvo Wireless Earbuds", "Voltix Earbuds Pro earbuds", "Kestrel Smart Plug", "Wireless Smart Hub Max",
              "Aurelion Classic Phone Case", "phone"]
    queries = ["wireless earbuds", "SMART  phone", "plug plug", "nothing here"]
    index = BM25(k1=1.2, b=0.7).fit(corpus)
    got = index.score(queries)
    docs = [tokenize(c) for c in corpus]
    want = np.array([brute_force_bm25(docs, tokenize(q), 1.2, 0.7) for q in queries])
    np.testing.assert_allclose(got, want, rtol=1e-5)
    top, scores = index.search(queries, k=3)
    assert top[0, 0] == np.argmax(want[0]) and scores[0, 0] == pytest.approx(want[0].max(), rel=1e-5)
    assert (top[3] == -1).all()  # no word in common: no result
    hidden = np.ones((4, 6), dtype=bool)
    hidden[0, 1] = False
    assert 1 not in index.search(queries, k=3, mask=hidden)[0][0]
    assert normalise_query("  Wireless   EARBUDS ") == "wireless earbuds"
    with pytest.raises(ValueError, match="k1"):
        BM25(k1=-1.0)


def test_searches_are_seeded_and_leave_the_world_unchanged(world):
    before = {name: _digest(getattr(world, name)) for name in TABLES}
    searches = world.searches
    _ = world.raw_search_log
    assert {name: _digest(getattr(world, name)) for name in TABLES} == before
    assert list(searches.columns) == QUERY_COLUMNS and len(searches) > 50
    again = generate(n_users=400, n_items=240, n_weeks=4, seed=11)
    pd.testing.assert_frame_equal(searches, again.searches)
    for name in TABLES:  # a world that never made searches has the same tables
        assert _digest(getattr(again, name)) == before[name]
    other = generate(n_users=400, n_items=240, n_weeks=4, seed=12).searches
    assert not searches["query"].head(30).equals(other["query"].head(30))


def test_queries_match_their_intent_and_clicks_are_matching_items(world):
    searches = world.searches
    items = world.items.set_index("item_id")
    for row in searches.head(200).itertuples():
        assert row.intent_noun.lower() in row.query
        assert not row.query_brand or row.query.startswith(row.query_brand.lower())
        if row.clicked_item_id >= 0:
            clicked = items.loc[row.clicked_item_id]
            assert clicked["category"] == row.intent_category and row.intent_noun in clicked["title"]
            assert clicked["launch_time"] <= row.timestamp + pd.Timedelta(hours=1)
    u = search_utility(world, searches.head(50))
    rel = search_relevance(world, searches.head(50))
    assert ((rel > 0) <= np.isfinite(u)).all() and rel.max() == 3
    assert (np.isfinite(u).sum(axis=1) == searches["n_matching"].head(50)).all()


def test_raw_search_log_has_its_defects_recorded(world):
    raw = world.raw_search_log
    log = raw.log.set_index("log_id")
    assert len(log) == len(world.searches)
    empty = raw.truth.loc[raw.truth["reason"] == "empty", "log_id"]
    assert (log.loc[empty, "q"].str.strip() == "").all()
    fixes = raw.truth[raw.truth["reason"].isin(["case", "whitespace"])]
    clean_ids = set(fixes["log_id"]) - set(raw.truth.loc[raw.truth["reason"].isin(["typo", "empty"]), "log_id"])
    clean = world.searches.set_index("search_id")["query"]
    assert all(normalise_query(log.loc[i, "q"]) == clean.loc[i] for i in clean_ids)
    untouched = sorted(set(log.index) - set(raw.truth["log_id"]))
    assert (log.loc[untouched, "q"] == clean.loc[untouched]).all()


def test_graded_ndcg_by_hand():
    relevance = np.array([[3.0, 0.0, 1.0, 2.0]])
    ranked = np.array([[2, 0, -1]])
    dcg = (2**1 - 1) / 1 + (2**3 - 1) / math.log2(3)
    idcg = 7 + 3 / math.log2(3) + 1 / 2
    assert graded_ndcg(relevance, ranked, 3)[0] == pytest.approx(dcg / idcg)
    assert np.isnan(graded_ndcg(np.zeros((1, 4)), ranked, 3)[0])
    with pytest.raises(ValueError, match="non-negative"):
        graded_ndcg(-relevance, ranked, 3)


def test_personalised_reranker_beats_bm25_against_the_truth():
    world = generate(n_users=600, n_items=300, n_weeks=4, seed=5)
    searches, items = world.searches, world.items
    split = world.start + pd.Timedelta(weeks=3)
    item_index = IdIndex(items["item_id"].to_numpy(), "item_id")
    train = Interactions.from_frame(world.interactions[world.interactions["timestamp"] < split], items=item_index)
    als = ALS(dim=8, l2=1.0, alpha=2.0, epochs=6, binary=True).fit(train)
    category = pd.factorize(items["category"])[0]
    affinity = np.zeros((train.n_users, category.max() + 1))
    coo = train.binary().tocoo()
    np.add.at(affinity, (coo.row, category[coo.col]), 1.0)
    affinity /= np.maximum(affinity.sum(axis=1, keepdims=True), 1.0)
    index = BM25().fit(items["title"])

    def block(frame):
        mask = items["launch_time"].to_numpy()[None, :] <= frame["timestamp"].to_numpy()[:, None]
        cands, scores = index.search(frame["query"].tolist(), k=30, mask=mask)
        rows = train.users.to_index(frame["user_id"].to_numpy(), missing="ignore")
        feats = search_features(cands, scores, rows, als.user_factors_, als.item_factors_, affinity, category,
                                train.item_counts())
        return cands, feats, item_index.to_index(frame["clicked_item_id"].to_numpy(), missing="ignore")

    fit_part, test_part = searches[searches["timestamp"] < split], searches[searches["timestamp"] >= split]
    cands, feats, clicked = block(fit_part)
    reranker = BlendReranker(grid=(0.0, 0.25, 1.0)).fit(feats, cands, clicked)
    cands, feats, _ = block(test_part)
    relevance = search_relevance(world, test_part)
    bm25 = np.nanmean(graded_ndcg(relevance, cands))
    personal = np.nanmean(graded_ndcg(relevance, reranker.rerank(feats, cands)))
    assert personal > bm25 + 0.05, (bm25, personal)


def test_cross_domain_split_has_no_leakage_and_transfer_scores_only_b(world):
    items = world.items
    b_items = items.loc[items["top_category"].isin(DOMAIN_B), "item_id"].to_numpy()
    start = world.start + pd.Timedelta(weeks=2)
    split = cross_domain_split(world.interactions, b_items, start)
    assert len(split.target_users) > 0 and split.leaks() == 0
    train_b = split.train[split.train["item_id"].isin(b_items)]
    assert not set(train_b["user_id"]) & set(split.target_users)
    assert (split.train["timestamp"] < start).all() and (split.test["timestamp"] >= start).all()
    assert split.test["item_id"].isin(b_items).all() and set(split.test["user_id"]) == set(split.target_users)
    train = Interactions.from_frame(split.train, items=IdIndex(items["item_id"].to_numpy(), "item_id"))
    rows = train.users.to_index(split.target_users)
    in_b = np.isin(train.items.ids, b_items)
    for model in (DomainPopularity(b_items), SharedALS(b_items, dim=4, epochs=3), EMCDR(b_items, dim=4, epochs=3)):
        scores = model.fit(train).score(rows)
        assert np.isneginf(scores[:, ~in_b]).all() and np.isfinite(scores[:, in_b]).all()
    with pytest.raises(ValueError, match="test_end"):
        cross_domain_split(world.interactions, b_items, start, start)
