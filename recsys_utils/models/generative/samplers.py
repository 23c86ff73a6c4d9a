"""Non-adversarial generators of user vectors: popularity, latent classes, and the copying counter-example."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.cluster import KMeans
from sklearn.decomposition import TruncatedSVD

from recsys_utils.models.generative.base import Generator, binary_csr, draw_without_replacement


class PopularitySampler(Generator):
    """Users with real activity levels and items drawn in proportion to their popularity."""

    name = "popularity sampler"

    def fit(self, matrix) -> PopularitySampler:
        x = binary_csr(matrix, "PopularitySampler.fit")
        counts = np.asarray(x.sum(axis=0)).ravel()
        self.log_popularity_ = np.log(counts + 1e-3)
        self.activity_ = np.diff(x.indptr)
        return self

    def sample(self, n: int, seed: int = 0) -> sp.csr_matrix:
        rng = np.random.default_rng(seed)
        return draw_without_replacement(self.log_popularity_, rng.choice(self.activity_, n), rng)


class ClusterSampler(Generator):
    """A latent-class generator: k-means clusters of users (on SVD factors), one smoothed item
    distribution and one activity sample per cluster (Hofmann & Puzicha 1999, aspect models)."""

    name = "cluster sampler"

    def __init__(self, n_clusters: int = 40, factors: int = 32, smoothing: float = 0.5, seed: int = 0) -> None:
        self.n_clusters, self.factors, self.smoothing, self.seed = n_clusters, factors, smoothing, seed

    def fit(self, matrix) -> ClusterSampler:
        x = binary_csr(matrix, "ClusterSampler.fit")
        z = TruncatedSVD(self.factors, random_state=self.seed).fit_transform(x)
        z /= np.linalg.norm(z, axis=1, keepdims=True) + 1e-9
        labels = KMeans(self.n_clusters, n_init=2, random_state=self.seed).fit_predict(z)
        onehot = sp.csr_matrix((np.ones(x.shape[0]), (labels, np.arange(x.shape[0]))),
                               shape=(self.n_clusters, x.shape[0]))
        counts = np.asarray((onehot @ x).todense()) + self.smoothing * (np.asarray(x.mean(axis=0)) + 1e-6)
        self.log_item_probs_ = np.log(counts / counts.sum(axis=1, keepdims=True))
        self.labels_ = labels
        self.activity_ = np.diff(x.indptr)
        return self

    def sample(self, n: int, seed: int = 0) -> sp.csr_matrix:
        rng = np.random.default_rng(seed)
        donors = rng.integers(0, len(self.labels_), n)  # a cluster and an activity from the same user
        return draw_without_replacement(self.log_item_probs_[self.labels_[donors]], self.activity_[donors], rng)


class CopyGenerator(Generator):
    """The counter-example: "generates" by returning training users' vectors, ``flip`` items changed."""

    name = "copy generator"

    def __init__(self, flip: int = 0) -> None:
        self.flip = flip

    def fit(self, matrix) -> CopyGenerator:
        self.matrix_ = binary_csr(matrix, "CopyGenerator.fit")
        return self

    def sample(self, n: int, seed: int = 0) -> sp.csr_matrix:
        rng = np.random.default_rng(seed)
        out = self.matrix_[rng.integers(0, self.matrix_.shape[0], n)].tolil()
        if self.flip:
            cols = rng.integers(0, out.shape[1], (n, self.flip))
            dense = out.toarray()
            rows = np.repeat(np.arange(n), self.flip)
            dense[rows, cols.ravel()] = 1.0 - dense[rows, cols.ravel()]
            return sp.csr_matrix(dense)
        return out.tocsr()
