"""Lexical search over item titles: BM25 (Robertson & Zaragoza 2009) built with ``bm25s``.

``bm25s`` (Lù 2024) precomputes every (document, term) BM25 weight into a sparse matrix, so the
score of a query is the sum of its terms' columns. :class:`BM25` indexes titles with it and scores
a batch of queries at once as one sparse product ``Q @ W.T`` (``Q`` counts each query's terms), or
returns the top-``k`` titles per query. The Lucene variant is used:

.. math::
   \\mathrm{score}(q, d) = \\sum_{t \\in q} \\log\\Big(1 + \\frac{N - n_t + 0.5}{n_t + 0.5}\\Big)
   \\frac{f_{t,d}}{f_{t,d} + k_1 (1 - b + b\\,|d| / \\overline{|d|})}

with ``N`` documents, ``n_t`` of them holding term ``t``, ``f_{t,d}`` its count in ``d``.
Tokens are lower-cased runs of two or more word characters (no stop words, no stemming: titles
are short product names). :func:`normalise_query` repairs what users type (case, spaces).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import bm25s
import numpy as np
import scipy.sparse as sp

from recsys_utils.core.topk import top_k

TOKEN = re.compile(r"(?u)\b\w\w+\b")


def tokenize(text: str) -> list[str]:
    """Lower-cased tokens of two or more word characters."""
    return TOKEN.findall(str(text).lower())


def normalise_query(query: str) -> str:
    """A typed query with case and whitespace repaired: ``'  Wireless   EARBUDS '`` -> ``'wireless earbuds'``."""
    return " ".join(str(query).lower().split())


class BM25:
    """BM25 index of a list of documents (item titles); ``k1`` term saturation, ``b`` length normalisation."""

    def __init__(self, k1: float = 1.5, b: float = 0.75) -> None:
        if k1 < 0 or not 0.0 <= b <= 1.0:
            raise ValueError(f"BM25: k1 must be >= 0 and b within [0, 1] (got k1={k1}, b={b})")
        self.k1 = k1
        self.b = b

    def fit(self, documents: Sequence[str]) -> BM25:
        """Index ``documents``; returns ``self``."""
        documents = list(documents)
        if not documents:
            raise ValueError("BM25.fit: documents is empty")
        tokens = [tokenize(d) for d in documents]
        self.index_ = bm25s.BM25(k1=self.k1, b=self.b, method="lucene")
        self.index_.index(tokens, show_progress=False)
        scores = self.index_.scores
        # bm25s stores a (documents x vocabulary) CSC matrix of term weights
        self.weights_ = sp.csc_matrix((scores["data"], scores["indices"], scores["indptr"]),
                                      shape=(scores["num_docs"], len(scores["indptr"]) - 1)).tocsr()
        self.vocabulary_ = dict(self.index_.vocab_dict)
        self.n_documents_ = len(documents)
        return self

    def query_matrix(self, queries: Sequence[str]) -> sp.csr_matrix:
        """Sparse (n_queries, vocabulary) term counts; words not in the index are ignored."""
        if not hasattr(self, "weights_"):
            raise RuntimeError("BM25 is not fitted: call fit(documents) first")
        rows, cols = [], []
        for r, query in enumerate(queries):
            ids = [self.vocabulary_[t] for t in tokenize(query) if t in self.vocabulary_]
            rows.extend([r] * len(ids))
            cols.extend(ids)
        return sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                             shape=(len(queries), self.weights_.shape[1]))

    def score(self, queries: Sequence[str]) -> np.ndarray:
        """Dense (n_queries, n_documents) BM25 scores of every document for every query."""
        return np.asarray((self.query_matrix(queries) @ self.weights_.T).toarray(), dtype=np.float64)

    def search(self, queries: Sequence[str], k: int = 10,
               mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` document indices and scores per query (``-1`` pads); ``mask`` hides documents.

        ``mask`` is a boolean (n_queries, n_documents) array of documents that may be returned
        (e.g. items on sale at the time of the search). Ties keep the document order.
        """
        scores = self.score(queries)
        if mask is not None:
            if mask.shape != scores.shape:
                raise ValueError(f"BM25.search: mask has shape {mask.shape}, expected {scores.shape}")
            scores[~mask] = -np.inf
        scores[scores <= 0] = -np.inf  # documents sharing no word with the query are not results
        top = top_k(scores, k)
        found = np.take_along_axis(scores, np.maximum(top, 0), axis=1)
        top = np.where((top >= 0) & np.isfinite(found), top, -1)
        return top, np.where(top >= 0, found, 0.0)


__all__ = ["BM25", "normalise_query", "tokenize"]
