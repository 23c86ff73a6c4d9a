"""The catalogue's knowledge graph (built from the catalogue and logs only) and TransE on it."""

import ast
import inspect

import numpy as np
import pandas as pd
import pytest
import torch

from recsys_utils.data import world_complements
from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.data.world import generate
from recsys_utils.features import association, knowledge_graph
from recsys_utils.features.knowledge_graph import KnowledgeGraph, build_knowledge_graph
from recsys_utils.models import transe
from recsys_utils.models.train.loop import fit_torch
from recsys_utils.models.transe import TransE, TransERecommender, TripleBatches, corrupt, margin_loss


def _toy_catalogue() -> pd.DataFrame:
    return pd.DataFrame({"item_id": [1, 2, 3, 4, 5, 6],
                         "category": ["A > x", "A > x", "A > y", "A > y", "B > z", "B > z"],
                         "top_category": ["A", "A", "A", "A", "B", "B"], "brand": ["p", "q", "p", "q", "r", "r"],
                         "price": [10.0, 20.0, 5.0, 6.0, 100.0, 300.0]})


def _toy_logs() -> tuple[pd.DataFrame, pd.DataFrame]:
    # ten users buy an x item and, two days later, a y item: x -> y is mined, y -> x is not
    day = pd.Timestamp("2024-01-01")
    purchases = pd.DataFrame({"user_id": np.repeat(np.arange(10), 2), "item_id": [1, 3] * 5 + [2, 4] * 5,
                              "timestamp": [day, day + pd.Timedelta("2D")] * 10})
    # twelve sessions view 1 and 2 together (substitutes: lift 2 over 24 sessions); twelve view one item
    views = pd.DataFrame({"session_id": np.repeat(np.arange(12), 2), "item_id": [1, 2] * 12})
    alone = pd.DataFrame({"session_id": np.arange(20, 32), "item_id": [3, 4, 5, 6] * 3})  # one item per session
    views = pd.concat([views, alone], ignore_index=True)
    return purchases, views


def test_graph_holds_the_catalogue_tree_and_mined_relations():
    purchases, views = _toy_logs()
    graph = build_knowledge_graph(_toy_catalogue(), purchases, views, min_count=3, min_lift=1.5)
    triples = set(map(tuple, graph.frame().to_numpy()))
    assert ("item:1", "in_category", "category:A > x") in triples
    assert ("category:A > x", "subcategory_of", "top:A") in triples
    assert ("item:6", "has_brand", "brand:r") in triples
    assert ("item:6", "in_price_band", "price_band:4") in triples  # the dearer of its category
    assert ("category:A > x", "complements", "category:A > y") in triples
    assert ("category:A > y", "complements", "category:A > x") not in triples  # directional
    assert {("item:1", "complements", "item:3"), ("item:2", "complements", "item:4")} <= triples
    assert ("item:1", "substitutes", "item:2") in triples and ("item:2", "substitutes", "item:1") in triples
    assert graph.counts()["in_category"] == 6
    # item 5 and 6 were never bought: still entities, reached through their attributes (cold items)
    assert len(graph.entity("item", [5, 6])) == 2
    assert set(graph.kinds) == {"item", "category", "top", "brand", "price_band"}
    catalogue_only = build_knowledge_graph(_toy_catalogue())
    assert set(catalogue_only.relations) == {"in_category", "subcategory_of", "has_brand", "in_price_band"}


def test_the_graph_never_reads_the_truth(monkeypatch):
    world = generate(n_users=300, n_items=120, n_weeks=3, seed=3)
    with pytest.raises(TypeError, match="DataFrame"):
        build_knowledge_graph(world)
    for module in (knowledge_graph, association, transe):  # no import of the simulator
        imported = [node.module for node in ast.walk(ast.parse(inspect.getsource(module)))
                    if isinstance(node, ast.ImportFrom)]
        assert not [name for name in imported if "world" in name or "simulation" in name], module.__name__

    def hidden(*args, **kwargs):
        raise AssertionError("the knowledge graph read the simulator's truth")

    for name in ("complement_matrix", "complement_frame", "complement_strength", "is_complementary"):
        monkeypatch.setattr(world_complements, name, hidden)
    events = world.interactions
    graph = build_knowledge_graph(world.items, events[events.event == "purchase"], events[events.event == "view"],
                                  min_count=1, min_lift=1.0)
    assert graph.counts()["in_category"] == len(world.items)


def test_transe_distance_and_margin_loss_match_a_hand_computation():
    model = TransE(n_entities=3, n_relations=1, dim=2, p=2)
    with torch.no_grad():
        model.entity.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]))
        model.relation.weight.copy_(torch.tensor([[0.0, 0.5]]))
    positive, negative = torch.tensor([[0, 0, 1]]), torch.tensor([[0, 0, 2]])
    # e0 + r - e1 = (1, -0.5): sqrt(1.25); e0 + r - e2 = (1, 1.5): sqrt(3.25)
    assert model(positive).item() == pytest.approx(1.25**0.5)
    assert model(negative).item() == pytest.approx(3.25**0.5)
    loss = margin_loss(model(positive), model(negative), margin=1.0)
    assert loss.item() == pytest.approx(1.0 + 1.25**0.5 - 3.25**0.5)
    assert margin_loss(model(positive), model(negative), margin=0.5).item() == 0.0  # far enough: no loss
    model.p = 1  # L1: |1| + |-0.5| and |1| + |1.5|
    assert model(torch.tensor([[0, 0, 1], [0, 0, 2]])).tolist() == pytest.approx([1.5, 2.5])
    loss = margin_loss(model(positive), model(negative), 2.0)
    loss.backward()  # d/d r_y of (|0.5 - 1| ... ) = sign(-0.5) - sign(1.5) = -2
    np.testing.assert_allclose(model.relation.weight.grad.numpy(), [[0.0, -2.0]])


def test_corrupted_triples_change_exactly_one_end():
    triples = np.column_stack([np.arange(1000) % 7, np.zeros(1000, dtype=int), (np.arange(1000) + 3) % 7])
    bad = corrupt(triples, 50, np.random.default_rng(0))
    assert (bad[:, 1] == 0).all()
    head_changed, tail_changed = bad[:, 0] != triples[:, 0], bad[:, 2] != triples[:, 2]
    assert not (head_changed & tail_changed).any()
    assert 0.4 < (bad[:, 2] != triples[:, 2]).mean() + 0.02 and head_changed.mean() > 0.4
    batches = TripleBatches(triples, 50, batch_size=300, seed=1)
    assert len(batches) == 4 and sum(len(p) for p, _ in batches(1)) == 1000
    first = [n.numpy() for _, n in batches(2)]
    assert all((a == b).all() for a, b in zip(first, [n.numpy() for _, n in batches(2)], strict=True))


def test_transe_learns_a_toy_graph_through_the_course_loop():
    # entities 0..3 in group one, 4..7 in group two; relation 0 maps i -> i + 4
    triples = np.array([[i, 0, i + 4] for i in range(4)])
    model = TransE(8, 1, dim=8)
    batches = TripleBatches(triples, 8, batch_size=4, seed=0)

    def loss_fn(module, batch):
        module.normalise_entities()
        return margin_loss(module(batch[0]), module(batch[1]), 1.0)

    history = fit_torch(model, batches, loss_fn, torch.optim.Adam(model.parameters(), 0.1), epochs=25,
                        progress=False, seed=0, device="cpu")
    assert history.to_frame()["train_loss"].iloc[-5:].mean() < 0.5 * history.to_frame()["train_loss"].iloc[0]
    with torch.no_grad():
        d = model.distances_to_all(torch.arange(4), 0, torch.arange(8)).numpy()
    assert (d.argmin(axis=1) == np.arange(4) + 4).all()


def test_transe_recommender_ranks_cold_items_by_their_category():
    catalogue = _toy_catalogue()
    graph = build_knowledge_graph(catalogue)
    # users 0-5 touch category A > x items (1, 2); users 6-11 touch B > z item 5; item 6 (B > z) is cold
    users, items = IdIndex(np.arange(12), "user_id"), IdIndex(catalogue.item_id, "item_id")
    frame = pd.DataFrame({"user_id": np.r_[np.repeat(np.arange(6), 2), np.arange(6, 12)],
                          "item_id": np.r_[[1, 2] * 6, [5] * 6]})
    train = Interactions.from_frame(frame, users, items, weight=None)
    model = TransERecommender(graph, dim=8, epochs=40, batch_size=16, lr=0.05, seed=0, device="cpu").fit(train)
    scores = model.score(np.arange(12))
    cold, other = items.to_index([6])[0], items.to_index([3])[0]
    assert (scores[6:, cold] > scores[6:, other]).all()  # B > z fans prefer the cold B > z item
    assert model.related_items(np.array([0]), "in_category", k=2).shape == (1, 2)
    with pytest.raises(TypeError, match="KnowledgeGraph"):
        TransERecommender(graph.frame())
    with pytest.raises(KeyError, match="unknown relation"):
        graph.relation("complements")
    assert isinstance(graph, KnowledgeGraph)
