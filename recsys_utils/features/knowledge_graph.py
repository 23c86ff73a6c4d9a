"""A knowledge graph of the catalogue: items, brands, categories, the category tree, price bands and mined relations.

Entities are labelled ``"kind:value"`` (``item:200123``, ``brand:Nordic``, ``category:Electronics > Phones``,
``top:Electronics``, ``price_band:3``, ``user:10001``); a triple is (head, relation, tail). The
catalogue gives the fixed relations (``in_category``, ``subcategory_of``, ``has_brand``,
``in_price_band``); the logs give the mined ones, with the rules of
:mod:`recsys_utils.features.association`:

* ``complements`` between categories and between items: "bought within a window after", with a
  category-level lift of at least ``min_lift`` over at least ``min_count`` purchases, never
  within one category (McAuley et al. 2015 call this "also bought");
* ``substitutes`` between items of one category viewed in the same session (McAuley et al.'s
  "also viewed") with a lift of at least ``min_lift`` over at least ``min_count`` sessions.

Only the catalogue table and the logs given are read: never a simulator's hidden truth, so the
same code runs on a real shop's tables. Graph embeddings (TransE) are in
:mod:`recsys_utils.models.transe`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_utils.core.vocabulary import BRAND, CATEGORY, ITEM, SESSION, USER
from recsys_utils.data.interactions import IdIndex
from recsys_utils.features.association import basket_matrix, rule_matrices, sequential_matrices
from recsys_utils.features.items import price_bands

CATALOGUE_RELATIONS = ("in_category", "subcategory_of", "has_brand", "in_price_band")
MINED_RELATIONS = ("complements", "substitutes")


@dataclass
class KnowledgeGraph:
    """Entities (labels ``kind:value``), relation names and integer triples ``(head, relation, tail)``."""

    entities: IdIndex
    relations: list[str]
    triples: np.ndarray  # (n, 3) int64
    kinds: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.triples = np.asarray(self.triples, dtype=np.int64).reshape(-1, 3)
        self.kinds = np.asarray([str(label).split(":", 1)[0] for label in self.entities.ids], dtype=object)

    @property
    def n_entities(self) -> int:
        return len(self.entities)

    @property
    def n_relations(self) -> int:
        return len(self.relations)

    def relation(self, name: str) -> int:
        """Index of a relation; a clear error lists the known ones."""
        if name not in self.relations:
            raise KeyError(f"KnowledgeGraph: unknown relation {name!r}; known: {self.relations}")
        return self.relations.index(name)

    def entity(self, kind: str, values) -> np.ndarray:
        """Entity indices of raw values of one kind, e.g. ``entity("item", item_ids)``."""
        return self.entities.to_index([f"{kind}:{v}" for v in np.asarray(values, dtype=object).ravel()])

    def frame(self) -> pd.DataFrame:
        """The triples as labels: ``head, relation, tail``."""
        labels = self.entities.ids
        return pd.DataFrame({"head": labels[self.triples[:, 0]],
                             "relation": np.asarray(self.relations, dtype=object)[self.triples[:, 1]],
                             "tail": labels[self.triples[:, 2]]})

    def counts(self) -> pd.Series:
        """Number of triples per relation."""
        return self.frame()["relation"].value_counts().reindex(self.relations, fill_value=0)

    def extend(self, kind: str, values, relation: str, heads: np.ndarray, tails: np.ndarray) -> KnowledgeGraph:
        """A new graph with entities ``kind:value`` added and triples (heads, relation, tails) between indices."""
        labels = np.concatenate([self.entities.ids, [f"{kind}:{v}" for v in np.asarray(values, dtype=object)]])
        relations = self.relations + ([relation] if relation not in self.relations else [])
        added = np.column_stack([heads, np.full(len(heads), relations.index(relation)), tails])
        return KnowledgeGraph(IdIndex(labels, "entity"), relations, np.vstack([self.triples, added]))


def _check_frame(frame, columns: list[str], where: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{where}: expected a DataFrame, got {type(frame).__name__} (pass the catalogue and "
                        "the logs, never a simulator)")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(f"{where}: missing column(s) {missing} (columns are {list(frame.columns)})")


def _mined_pairs(counts: sp.spmatrix, lifts: sp.spmatrix, min_count: int, min_lift: float) -> tuple[np.ndarray, ...]:
    coo = sp.coo_matrix(counts)
    lift = np.asarray(sp.csr_matrix(lifts)[coo.row, coo.col]).ravel()
    keep = (coo.data >= min_count) & (lift >= min_lift)
    return coo.row[keep], coo.col[keep]


def mine_relations(items: pd.DataFrame, purchases: pd.DataFrame | None = None, views: pd.DataFrame | None = None,
                   window: str = "7D", min_count: int = 5, min_lift: float = 2.0) -> pd.DataFrame:
    """Mined ``complements`` (category and item level) and ``substitutes`` (items) as labelled triples."""
    _check_frame(items, [ITEM, CATEGORY], "mine_relations")
    category_of = items.set_index(ITEM)[CATEGORY]
    frames = []
    if purchases is not None:
        _check_frame(purchases, [USER, ITEM], "mine_relations (purchases)")
        bought = purchases.assign(**{CATEGORY: category_of.reindex(purchases[ITEM].to_numpy()).to_numpy()})
        bought = bought[bought[CATEGORY].notna()]
        a, b, cats = sequential_matrices(bought, window, key=CATEGORY)
        m = rule_matrices(a, b)
        src, dst = _mined_pairs(m["count"], m["lift"], min_count, min_lift)
        pairs = pd.DataFrame({"head": cats.to_ids(src), "tail": cats.to_ids(dst)})
        frames.append(pd.DataFrame({"head": "category:" + pairs["head"], "relation": "complements",
                                    "tail": "category:" + pairs["tail"]}))
        a, b, ids = sequential_matrices(bought, window, key=ITEM)
        coo = rule_matrices(a, b)["count"].tocoo()
        item_pairs = pd.DataFrame({"head_item": ids.to_ids(coo.row), "tail_item": ids.to_ids(coo.col)})
        item_pairs["head"] = category_of.loc[item_pairs["head_item"]].to_numpy()
        item_pairs["tail"] = category_of.loc[item_pairs["tail_item"]].to_numpy()
        item_pairs = item_pairs.merge(pairs, on=["head", "tail"])  # only pairs of a mined category rule
        frames.append(pd.DataFrame({"head": "item:" + item_pairs["head_item"].astype(str), "relation": "complements",
                                    "tail": "item:" + item_pairs["tail_item"].astype(str)}))
    if views is not None:
        _check_frame(views, [SESSION, ITEM], "mine_relations (views)")
        baskets, ids = basket_matrix(views, basket=SESSION, key=ITEM)
        m = rule_matrices(baskets)
        src, dst = _mined_pairs(m["count"], m["lift"], min_count, min_lift)
        head, tail = ids.to_ids(src), ids.to_ids(dst)
        same = category_of.reindex(head).to_numpy() == category_of.reindex(tail).to_numpy()
        frames.append(pd.DataFrame({"head": [f"item:{h}" for h in head[same]], "relation": "substitutes",
                                    "tail": [f"item:{t}" for t in tail[same]]}))
    empty = pd.DataFrame({"head": pd.Series(dtype=object), "relation": pd.Series(dtype=object),
                          "tail": pd.Series(dtype=object)})
    return pd.concat([empty, *frames], ignore_index=True)


def catalogue_triples(items: pd.DataFrame, n_price_bands: int = 5) -> pd.DataFrame:
    """The fixed relations of the catalogue as labelled triples (the category tree from ``top_category``)."""
    _check_frame(items, [ITEM, CATEGORY, BRAND], "catalogue_triples")
    item = "item:" + items[ITEM].astype(str)
    parts = [pd.DataFrame({"head": item, "relation": "in_category", "tail": "category:" + items[CATEGORY]}),
             pd.DataFrame({"head": item, "relation": "has_brand", "tail": "brand:" + items[BRAND].astype(str)})]
    if "top_category" in items.columns:
        tree = items[[CATEGORY, "top_category"]].drop_duplicates()
        parts.append(pd.DataFrame({"head": "category:" + tree[CATEGORY], "relation": "subcategory_of",
                                   "tail": "top:" + tree["top_category"]}))
    if "price" in items.columns:
        band = price_bands(items, n_price_bands).to_numpy()
        parts.append(pd.DataFrame({"head": item[band >= 0], "relation": "in_price_band",
                                   "tail": "price_band:" + pd.Series(band[band >= 0]).astype(str).to_numpy()}))
    return pd.concat(parts, ignore_index=True)


def build_knowledge_graph(items: pd.DataFrame, purchases: pd.DataFrame | None = None,
                          views: pd.DataFrame | None = None, window: str = "7D", min_count: int = 5,
                          min_lift: float = 2.0, n_price_bands: int = 5) -> KnowledgeGraph:
    """The catalogue's graph plus relations mined from the given logs (training events only, please).

    Every catalogue item is an entity, also items nobody touched yet (cold items): they are reached
    through their category, brand and price band.
    """
    triples = pd.concat([catalogue_triples(items, n_price_bands),
                         mine_relations(items, purchases, views, window, min_count, min_lift)], ignore_index=True)
    labels = np.concatenate([("item:" + items[ITEM].astype(str)).to_numpy(), triples["head"].to_numpy(),
                             triples["tail"].to_numpy()])
    entities = IdIndex(labels, "entity")
    relations = [r for r in CATALOGUE_RELATIONS + MINED_RELATIONS if r in set(triples["relation"])]
    codes = np.column_stack([entities.to_index(triples["head"].to_numpy()),
                             pd.Index(relations).get_indexer(triples["relation"].to_numpy()),
                             entities.to_index(triples["tail"].to_numpy())])
    return KnowledgeGraph(entities, relations, np.unique(codes, axis=0))


__all__ = ["CATALOGUE_RELATIONS", "MINED_RELATIONS", "KnowledgeGraph", "build_knowledge_graph",
           "catalogue_triples", "mine_relations"]
