"""Approximate nearest-neighbour (ANN, 近似最近邻) search for maximum inner product, over Faiss.

A retrieval model that scores by a dot product turns recall into "find the items whose vectors
have the largest inner product with the user vector". Exact search reads every item vector
(``O(N d)`` per query); an index reads a small part of them:

* ``"exact"`` -- ``IndexFlatIP``: brute force, the reference the others are measured against;
* ``"hnsw"`` -- a hierarchical navigable small-world graph (Malkov & Yashunin 2018, TPAMI):
  greedy walks through a layered proximity graph; ``m`` links per node and ``ef_construction``
  set the build cost and quality, ``ef_search`` (the search's candidate list) trades recall for
  latency at query time;
* ``"ivf"`` -- an inverted file (Jégou et al. 2011, TPAMI): k-means cells (``nlist``) and a search
  of the ``nprobe`` cells closest to the query.

The library is Faiss (Johnson, Douze & Jégou 2019, "Billion-scale similarity search with GPUs",
IEEE Trans. Big Data; ``faiss-cpu``), imported when an index is built.
"""

from __future__ import annotations

import time

import numpy as np

MODES = ("exact", "hnsw", "ivf")


def _faiss():
    try:
        import faiss
    except ImportError as error:  # pragma: no cover - the course extra installs it
        raise ImportError("pipeline.ann needs faiss-cpu: pip install -r requirements.lock") from error
    return faiss


def _as_matrix(vectors, where: str, dim: int | None = None) -> np.ndarray:
    array = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"{where}: expected a non-empty 2-d array of vectors, got shape {array.shape}")
    if dim is not None and array.shape[1] != dim:
        raise ValueError(f"{where}: vectors have dimension {array.shape[1]}, the index has {dim}")
    if not np.isfinite(array).all():
        raise ValueError(f"{where}: vectors contain NaN or inf")
    return array


class ANNIndex:
    """A maximum-inner-product index: ``ANNIndex("hnsw", m=32).build(item_vectors).search(queries, k)``.

    ``mode`` is ``"exact"``, ``"hnsw"`` or ``"ivf"``; ``threads`` fixes Faiss's OpenMP threads
    (``None``: leave them). After :meth:`build`, ``build_seconds_`` holds the build time.
    """

    def __init__(self, mode: str = "hnsw", m: int = 32, ef_construction: int = 100, ef_search: int = 64,
                 nlist: int | None = None, nprobe: int = 8, seed: int = 0, threads: int | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"ANNIndex: mode must be one of {MODES}, got {mode!r}")
        for name, value in (("m", m), ("ef_construction", ef_construction), ("ef_search", ef_search),
                            ("nprobe", nprobe)):
            if value < 1:
                raise ValueError(f"ANNIndex: {name} must be >= 1, got {value}")
        if nlist is not None and nlist < 1:
            raise ValueError(f"ANNIndex: nlist must be >= 1, got {nlist}")
        self.mode, self.m, self.ef_construction, self.ef_search = mode, m, ef_construction, ef_search
        self.nlist, self.nprobe, self.seed, self.threads = nlist, nprobe, seed, threads
        self.index_ = None

    def build(self, vectors) -> ANNIndex:
        """Index the rows of ``vectors`` ``(n_items, d)``; row ``i`` is returned as id ``i``."""
        faiss = _faiss()
        if self.threads is not None:
            faiss.omp_set_num_threads(int(self.threads))
        data = _as_matrix(vectors, "ANNIndex.build")
        n, dim = data.shape
        started = time.perf_counter()
        if self.mode == "exact":
            index = faiss.IndexFlatIP(dim)
        elif self.mode == "hnsw":
            index = faiss.IndexHNSWFlat(dim, self.m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = self.ef_construction
        else:
            nlist = self.nlist or max(1, int(round(4 * np.sqrt(n))))
            if nlist > n:
                raise ValueError(f"ANNIndex: nlist={nlist} cells for only {n} vectors; lower nlist")
            self.quantizer_ = faiss.IndexFlatIP(dim)  # kept alive: the IVF index only points to it
            index = faiss.IndexIVFFlat(self.quantizer_, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            index.cp.seed = self.seed
            index.train(data)
        index.add(data)
        self.build_seconds_ = time.perf_counter() - started
        self.index_, self.n_items_, self.dim_ = index, n, dim
        self.set_search(ef_search=self.ef_search, nprobe=self.nprobe)
        return self

    def set_search(self, ef_search: int | None = None, nprobe: int | None = None) -> ANNIndex:
        """Change the query-time knob (HNSW ``ef_search``, IVF ``nprobe``) without rebuilding."""
        if ef_search is not None:
            if ef_search < 1:
                raise ValueError(f"ANNIndex.set_search: ef_search must be >= 1, got {ef_search}")
            self.ef_search = int(ef_search)
        if nprobe is not None:
            if nprobe < 1:
                raise ValueError(f"ANNIndex.set_search: nprobe must be >= 1, got {nprobe}")
            self.nprobe = int(nprobe)
        if self.index_ is not None and self.mode == "hnsw":
            self.index_.hnsw.efSearch = self.ef_search
        if self.index_ is not None and self.mode == "ivf":
            self.index_.nprobe = min(self.nprobe, self.index_.nlist)
        return self

    def search(self, queries, k: int = 10, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` by inner product: ``(scores, ids)``, both ``(n_queries, k)``, best first; ``-1`` pads ids."""
        if self.index_ is None:
            raise RuntimeError("ANNIndex: call build(vectors) first")
        if k < 1:
            raise ValueError(f"ANNIndex.search: k must be >= 1, got {k}")
        data = _as_matrix(queries, "ANNIndex.search", self.dim_)
        k_eff = min(k, self.n_items_)
        scores = np.full((len(data), k), -np.inf, dtype=np.float32)
        ids = np.full((len(data), k), -1, dtype=np.int64)
        for start in range(0, len(data), batch_size):
            chunk = data[start:start + batch_size]
            s, i = self.index_.search(chunk, k_eff)
            scores[start:start + len(chunk), :k_eff] = np.where(i >= 0, s, -np.inf)
            ids[start:start + len(chunk), :k_eff] = i
        return scores, ids

    def __repr__(self) -> str:
        knobs = {"exact": "", "hnsw": f", m={self.m}, ef_construction={self.ef_construction}, "
                 f"ef_search={self.ef_search}", "ivf": f", nlist={self.nlist}, nprobe={self.nprobe}"}[self.mode]
        return f"ANNIndex(mode={self.mode!r}{knobs})"


def recall_vs_exact(approx_ids: np.ndarray, exact_ids: np.ndarray) -> float:
    """Mean share of each query's exact top-k ids found in its approximate top-k (``-1`` ignored)."""
    approx, exact = np.asarray(approx_ids), np.asarray(exact_ids)
    if approx.ndim != 2 or exact.ndim != 2 or len(approx) != len(exact):
        raise ValueError(f"recall_vs_exact: id arrays must be (n_queries, k) with the same rows, got "
                         f"{approx.shape} and {exact.shape}")
    valid = exact >= 0
    hits = (approx[:, :, None] == exact[:, None, :]).any(axis=1) & valid
    return float((hits.sum(1) / np.maximum(valid.sum(1), 1)).mean())


def time_queries(index: ANNIndex, queries, k: int = 10, one_at_a_time: bool = True) -> tuple[float, np.ndarray]:
    """Seconds per query and the ids found: each query alone (online serving) or all in one batch."""
    if index.index_ is None:
        raise RuntimeError("time_queries: build the index first")
    data = _as_matrix(queries, "time_queries", index.dim_)
    rows = [data[row:row + 1] for row in range(len(data))]  # sliced before the clock starts
    k_eff = min(k, index.n_items_)
    started = time.perf_counter()
    if one_at_a_time:  # straight to Faiss: the wrapper's checks would dominate a 20-microsecond query
        found = [index.index_.search(row, k_eff)[1] for row in rows]
    else:
        found = [index.index_.search(data, k_eff)[1]]
    seconds = (time.perf_counter() - started) / len(data)
    return seconds, np.vstack(found)


def clustered_vectors(n: int, dim: int = 32, n_clusters: int = 256, spread: float = 0.35, seed: int = 0,
                      ) -> np.ndarray:
    """``n`` unit vectors around ``n_clusters`` random centres: a stand-in for a large catalogue's
    item embeddings (real embeddings cluster by category; uniform random vectors would not)."""
    if n < 1 or dim < 1 or n_clusters < 1:
        raise ValueError(f"clustered_vectors: n, dim and n_clusters must be >= 1, got {n}, {dim}, {n_clusters}")
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = centres[rng.integers(0, n_clusters, n)] + spread * rng.normal(size=(n, dim)) / np.sqrt(dim)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)
