"""Cross-domain transfer: recommend in domain B to users known only from domain A.

A *domain* is a set of items (here a group of top categories). :func:`cross_domain_split` builds
the leakage-free protocol: training events before ``test_start`` from every domain, and as
targets the users active in A but with no B event before ``test_start`` who do have B events
afterwards. Models that only see B can do no better than B's popularity for them
(:class:`DomainPopularity`). Two transfer models share what users do in A:

- :class:`SharedALS`: collective matrix factorisation (Singh & Gordon 2008) in its simplest form,
  one implicit ALS on the joint user x (A + B) matrix, so a user's vector learnt from A events
  scores B items; scores are restricted to B;
- :class:`EMCDR`: embedding and mapping (Man et al. 2017): ALS in each domain, a ridge map from
  A-vectors to B-vectors learnt on users active in both, applied to the targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_utils.core.vocabulary import ITEM, TIMESTAMP, USER
from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.models.als import ALS
from recsys_utils.models.base import Recommender

#: the two domains of the marketplace: every customer segment shops in both, so taste can transfer
DOMAIN_A = ("Electronics", "Fashion", "Grocery", "Toys & Kids")
DOMAIN_B = ("Home & Kitchen", "Beauty", "Sports & Outdoors", "Books & Media")


@dataclass
class CrossDomainSplit:
    """Training events (both domains, before ``test_start``), target users and their B test events."""

    train: pd.DataFrame
    test: pd.DataFrame
    target_users: np.ndarray
    domain_b_items: np.ndarray

    def leaks(self) -> int:
        """Number of training B events of target users (0 for a correct split)."""
        b_train = self.train[self.train[ITEM].isin(self.domain_b_items)]
        return int(b_train[USER].isin(self.target_users).sum())


def cross_domain_split(interactions: pd.DataFrame, domain_b_items: Sequence, test_start,
                       test_end=None, min_a_events: int = 1) -> CrossDomainSplit:
    """Split for users new to domain B: see the module docstring.

    ``domain_b_items`` are B's item ids; every other item is domain A. Target users have at least
    ``min_a_events`` events in A before ``test_start``, none in B, and one or more in B within
    ``[test_start, test_end)``; ``test`` keeps only those B events.
    """
    missing = [c for c in (USER, ITEM, TIMESTAMP) if c not in interactions.columns]
    if missing:
        raise ValueError(f"cross_domain_split: interactions lack the columns {missing}")
    start = pd.Timestamp(test_start)
    end = pd.Timestamp(test_end) if test_end is not None else pd.Timestamp.max
    if end <= start:
        raise ValueError(f"cross_domain_split: test_end {end} must be after test_start {start}")
    b_items = np.unique(np.asarray(domain_b_items))
    in_b = interactions[ITEM].isin(b_items).to_numpy()
    ts = interactions[TIMESTAMP]
    before = (ts < start).to_numpy()
    during = ((ts >= start) & (ts < end)).to_numpy()
    train = interactions[before]
    a_counts = train[~in_b[before]].groupby(USER).size()
    seen_b = set(interactions.loc[before & in_b, USER])
    test_b = interactions[during & in_b]
    candidates = a_counts.index[a_counts >= min_a_events]
    targets = np.array(sorted(set(candidates) & set(test_b[USER]) - seen_b), dtype=np.int64)
    test = test_b[test_b[USER].isin(targets)].reset_index(drop=True)
    return CrossDomainSplit(train.reset_index(drop=True), test, targets, b_items)


def _domain_mask(train: Interactions, domain_items: Sequence) -> np.ndarray:
    cols = train.items.to_index(np.asarray(domain_items), missing="ignore")
    mask = np.zeros(train.n_items, dtype=bool)
    mask[cols[cols >= 0]] = True
    if not mask.any():
        raise ValueError("cross-domain model: none of domain_items is in the training matrix")
    return mask


class DomainPopularity(Recommender):
    """The best a B-only model can do for a user with no B history: B's most popular items."""

    name = "domain-popularity"

    def __init__(self, domain_items: Sequence) -> None:
        super().__init__()
        self.domain_items = domain_items

    def _fit(self, train: Interactions) -> None:
        self.mask_ = _domain_mask(train, self.domain_items)
        counts = train.item_counts().astype(np.float64)
        self.item_scores_ = np.where(self.mask_, counts, -np.inf)

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return np.broadcast_to(self.item_scores_, (len(user_indices), len(self.item_scores_))).copy()


class SharedALS(Recommender):
    """Collective MF (Singh & Gordon 2008): one implicit ALS on both domains, scores kept to B."""

    name = "shared-als"

    def __init__(self, domain_items: Sequence, dim: int = 32, l2: float = 1.0, alpha: float = 2.0,
                 epochs: int = 10, seed: int = 42) -> None:
        super().__init__()
        self.domain_items = domain_items
        self.dim, self.l2, self.alpha, self.epochs, self.seed = dim, l2, alpha, epochs, seed

    def _fit(self, train: Interactions) -> None:
        self.mask_ = _domain_mask(train, self.domain_items)
        self.als_ = ALS(dim=self.dim, l2=self.l2, alpha=self.alpha, epochs=self.epochs, seed=self.seed,
                        binary=True).fit(train)

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        self._check_fitted()
        scores = self.als_.score(user_indices).astype(np.float64)
        scores[:, ~self.mask_] = -np.inf
        return scores


class EMCDR(Recommender):
    """Embedding and mapping (Man et al. 2017) with a linear (ridge) map from A- to B-vectors.

    ALS is fitted on A's columns and on B's columns separately; the map ``M`` minimises
    ``||X_A M - X_B||^2 + map_l2 ||M||^2`` over users with events in both domains. Users with
    B events keep their B vector; the others get ``X_A M``.
    """

    name = "emcdr"

    def __init__(self, domain_items: Sequence, dim: int = 32, l2: float = 1.0, alpha: float = 2.0,
                 epochs: int = 10, map_l2: float = 1.0, seed: int = 42) -> None:
        super().__init__()
        self.domain_items = domain_items
        self.dim, self.l2, self.alpha, self.epochs, self.seed = dim, l2, alpha, epochs, seed
        self.map_l2 = map_l2

    def _side(self, train: Interactions, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        part = Interactions(sp.csr_matrix(train.matrix[:, mask]), train.users,
                            IdIndex(train.items.ids[mask], train.items.name))
        als = ALS(dim=self.dim, l2=self.l2, alpha=self.alpha, epochs=self.epochs, seed=self.seed,
                  binary=True).fit(part)
        return als.user_factors_.astype(np.float64), als.item_factors_.astype(np.float64)

    def _fit(self, train: Interactions) -> None:
        self.mask_ = _domain_mask(train, self.domain_items)
        x_a, _ = self._side(train, ~self.mask_)
        x_b, self.item_b_ = self._side(train, self.mask_)
        counts = train.binary()
        has_a = np.asarray(counts[:, ~self.mask_].sum(axis=1)).ravel() > 0
        self.has_b_ = np.asarray(counts[:, self.mask_].sum(axis=1)).ravel() > 0
        both = has_a & self.has_b_
        if both.sum() < 2:
            raise ValueError("EMCDR: fewer than two users are active in both domains; nothing to learn a map from")
        xa = x_a[both]
        self.map_ = np.linalg.solve(xa.T @ xa + self.map_l2 * np.eye(self.dim), xa.T @ x_b[both])
        self.user_b_ = np.where(self.has_b_[:, None], x_b, x_a @ self.map_)

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        self._check_fitted()
        scores = np.full((len(user_indices), len(self.mask_)), -np.inf)
        scores[:, self.mask_] = self.user_b_[np.asarray(user_indices)] @ self.item_b_.T
        return scores


__all__ = ["DOMAIN_A", "DOMAIN_B", "EMCDR", "CrossDomainSplit", "DomainPopularity", "SharedALS",
           "cross_domain_split"]
