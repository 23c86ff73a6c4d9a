"""Implicit-feedback ALS with confidence weights (Hu, Koren & Volinsky 2008, "Collaborative
Filtering for Implicit Feedback Datasets", ICDM), solved with conjugate gradients
(Takács, Pilászy & Tikk 2011, "Applications of the conjugate gradient method for implicit
feedback collaborative filtering", RecSys).

Every observed cell ``r_ui > 0`` becomes a preference ``p_ui = 1`` with confidence
``c_ui = 1 + alpha * r_ui``; every unobserved cell is a preference 0 with confidence 1:

    min_{X,Y}  sum_{u,i} c_ui (p_ui - x_u^T y_i)^2 + lambda (sum_u ||x_u||^2 + sum_i ||y_i||^2)

With ``Y`` fixed, each user's vector solves the normal equations

    (Y^T Y + Y^T (C_u - I) Y + lambda I) x_u = Y^T C_u p_u,

where ``Y^T Y`` is shared by all users and ``C_u - I`` is non-zero only on the user's items, so a
product ``A_u x_u`` costs ``O(f^2 + n_u f)``. With ``solver="cg"`` (the default) a few steps of
conjugate gradients warm-started from the previous vector are run for *all users at once*: the
products for every user are two sparse kernels over the interaction matrix (a sampled dense-dense
product giving ``x_u^T y_i`` on the stored cells, then a sparse x dense product) plus one dense
``X (Y^T Y + lambda I)``; each user keeps its own CG step sizes. Cost per sweep is linear in ``f``.
With ``solver="cholesky"`` (and in :meth:`ALS.fold_in`) the systems are built explicitly -- users
sorted by activity and chunked so that each chunk is one batched matrix product -- and solved
exactly by batched Cholesky (cost ``O(nnz f^2)``). Items are updated the same way on the transposed
matrix.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch

from recsys_utils.data.interactions import Interactions
from recsys_utils.models.base import Recommender
from recsys_utils.models.factors import nearest_items

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


class _SparseSide:
    """One side of the problem (users or items) as torch CSR tensors sharing one pattern."""

    def __init__(self, matrix: sp.csr_matrix, alpha: float, dtype: torch.dtype, device: str) -> None:
        matrix = sp.csr_matrix(matrix, dtype=np.float64)
        matrix.sort_indices()
        self.shape = matrix.shape
        self.crow = torch.from_numpy(matrix.indptr.astype(np.int32)).to(device)
        self.col = torch.from_numpy(matrix.indices.astype(np.int32)).to(device)
        weights = torch.from_numpy(alpha * matrix.data).to(device=device, dtype=dtype)
        self.conf_minus_one = weights  # c_ui - 1 = alpha r_ui
        self.conf = self.csr(weights + 1.0)  # c_ui, the right-hand side's weights
        self.pattern = self.csr(torch.ones_like(weights))

    def csr(self, values: torch.Tensor) -> torch.Tensor:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "sparse CSR support is in beta"
            return torch.sparse_csr_tensor(self.crow, self.col, values, size=self.shape,
                                           check_invariants=False)

    def weighted_product(self, x: torch.Tensor, y: torch.Tensor, y_t: torch.Tensor) -> torch.Tensor:
        """``sum_i (c_ui - 1) (x_u . y_i) y_i`` for every row ``u``: SDDMM then SpMM.

        ``y_t`` is ``y.T`` made contiguous once by the caller.
        """
        dots = torch.sparse.sampled_addmm(self.pattern, x, y_t, beta=0.0)
        dots.values().mul_(self.conf_minus_one)  # the result is a fresh CSR tensor: scale in place
        return dots @ y


def conjugate_gradient_step(side: _SparseSide, x: torch.Tensor, y: torch.Tensor, l2: float,
                            steps: int) -> torch.Tensor:
    """Improve every row of ``x`` by ``steps`` CG iterations on its normal equations (in place).

    Row ``u`` solves ``(Y^T Y + lambda I + Y^T (C_u - I) Y) x_u = Y^T C_u 1``; all rows run in
    lock-step, each with its own step sizes ``alpha_u`` and ``beta_u``.
    """
    gram = y.T @ y
    gram.diagonal().add_(l2)
    y_t = y.T.contiguous()

    def apply(p: torch.Tensor) -> torch.Tensor:
        return torch.addmm(side.weighted_product(p, y, y_t), p, gram)

    rhs = side.conf @ y
    residual = rhs - apply(x)
    direction = residual.clone()
    rs_old = torch.linalg.vecdot(residual, residual)
    tiny = torch.finfo(x.dtype).tiny
    for _ in range(steps):
        product = apply(direction)
        curvature = torch.linalg.vecdot(direction, product)
        step = torch.where(curvature > tiny, rs_old / curvature.clamp_min(tiny), torch.zeros_like(rs_old))
        x.addcmul_(step[:, None], direction)
        residual.addcmul_(step[:, None], product, value=-1.0)
        rs_new = torch.linalg.vecdot(residual, residual)
        ratio = torch.where(rs_old > tiny, rs_new / rs_old.clamp_min(tiny), torch.zeros_like(rs_old))
        direction = torch.addcmul(residual, ratio[:, None], direction)
        rs_old = rs_new
    return x


def weighted_grams(matrix: sp.csr_matrix, y: torch.Tensor, alpha: float,
                   budget: int = 1 << 23) -> tuple[torch.Tensor, torch.Tensor]:
    """For every row ``u`` of ``matrix``: ``Y_u^T (C_u - I) Y_u`` and ``Y_u^T C_u p_u``.

    Rows are sorted by their number of stored cells and cut into chunks of similar length; each
    chunk gathers its items' factors into a padded ``(rows, length, f)`` tensor (about ``budget``
    numbers) and builds its ``f x f`` matrices with one batched matrix product. Returns
    ``(grams (n, f, f), rhs (n, f))`` on ``y``'s device and dtype.
    """
    matrix = sp.csr_matrix(matrix)
    n, n_factors = matrix.shape[0], y.shape[1]
    counts = np.diff(matrix.indptr)
    order = np.argsort(counts, kind="stable")
    grams = torch.zeros(n, n_factors, n_factors, dtype=y.dtype, device=y.device)
    rhs = torch.zeros(n, n_factors, dtype=y.dtype, device=y.device)
    indices = torch.from_numpy(matrix.indices.astype(np.int64)).to(y.device)
    weights = torch.from_numpy(alpha * matrix.data.astype(np.float64)).to(device=y.device, dtype=y.dtype)
    sorted_counts = counts[order]
    start = int(np.searchsorted(sorted_counts, 1))  # rows without cells keep zeros
    while start < n:
        # the chunk grows while (rows x its longest row x f) stays within the budget
        cost = (np.arange(1, n - start + 1) * sorted_counts[start:]) * n_factors
        stop = start + max(1, int(np.searchsorted(cost, budget, side="right")))
        rows = order[start:stop]
        longest = int(counts[rows].max())
        offsets = np.arange(longest)
        valid = offsets[None, :] < counts[rows, None]
        positions = np.where(valid, matrix.indptr[rows, None] + offsets[None, :], 0)
        pos = torch.from_numpy(positions).to(y.device)
        mask = torch.from_numpy(valid).to(device=y.device, dtype=y.dtype)
        gathered = y[indices[pos]]  # (rows, longest, f)
        w = weights[pos] * mask
        rows_t = torch.from_numpy(rows).to(y.device)
        grams[rows_t] = torch.bmm(gathered.transpose(1, 2), gathered * w[:, :, None])
        rhs[rows_t] = torch.bmm((w + mask)[:, None, :], gathered)[:, 0]
        start = stop
    return grams, rhs


def solve_side(matrix: sp.csr_matrix, x: torch.Tensor, y: torch.Tensor, alpha: float,
               l2: float) -> torch.Tensor:
    """Solve every row of ``x`` exactly (in place) given the other side's factors ``y``.

    Row ``u`` solves ``(Y^T Y + lambda I + Y^T (C_u - I) Y) x_u = Y^T C_u p_u`` by batched Cholesky.
    """
    gram = y.T @ y
    gram.diagonal().add_(l2)
    systems, rhs = weighted_grams(matrix, y, alpha)
    systems += gram
    factor = torch.linalg.cholesky(systems)
    x.copy_(torch.cholesky_solve(rhs[:, :, None], factor)[:, :, 0])
    return x


def exact_solve(user_items: sp.csr_matrix, y: np.ndarray, alpha: float, l2: float) -> np.ndarray:
    """Closed-form ALS vectors (float64) for the rows of ``user_items`` given item factors ``y``."""
    y64 = torch.from_numpy(np.asarray(y, dtype=np.float64))
    x = torch.zeros(user_items.shape[0], y64.shape[1], dtype=torch.float64)
    return solve_side(sp.csr_matrix(user_items, dtype=np.float64), x, y64, alpha, l2).numpy()


class ALS(Recommender):
    """Implicit ALS (Hu et al. 2008) with a batched conjugate-gradient solver.

    ``dim`` latent dimensions, ``l2`` the penalty lambda, confidence ``c = 1 + alpha * r`` on the
    training matrix's stored weights (``binary=True`` uses ``r = 1``), ``epochs`` alternating sweeps
    (users, then items), ``cg_steps`` CG iterations per sweep and side (3, as in ``implicit``) with
    ``solver="cg"``, or an exact solve with ``solver="cholesky"``.
    ``track_loss`` stores the objective after every sweep in ``loss_history_``.
    """

    name = "als"

    def __init__(self, dim: int = 64, l2: float = 0.01, alpha: float = 1.0,
                 epochs: int = 15, cg_steps: int = 3, solver: str = "cg", binary: bool = False,
                 seed: int = 42,
                 dtype: str = "float32", device: str | None = None, num_threads: int | None = None,
                 track_loss: bool = False) -> None:
        super().__init__()
        if dim < 1 or epochs < 0 or cg_steps < 1:
            raise ValueError(f"ALS: dim and cg_steps must be >= 1, epochs >= 0 (got dim={dim}, "
                             f"cg_steps={cg_steps}, epochs={epochs})")
        if l2 < 0 or alpha < 0:
            raise ValueError(f"ALS: l2 and alpha must be >= 0 (got l2={l2}, alpha={alpha})")
        if dtype not in _DTYPES:
            raise ValueError(f"ALS: dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        self.dim = dim
        self.l2 = l2
        self.alpha = alpha
        self.epochs = epochs
        self.cg_steps = cg_steps
        if solver not in ("cg", "cholesky"):
            raise ValueError(f"ALS: solver must be 'cg' or 'cholesky', got {solver!r}")
        self.solver = solver
        self.binary = binary
        self.seed = seed
        self.dtype = dtype
        self.device = device
        self.num_threads = num_threads
        self.track_loss = track_loss

    def _matrix(self, train: Interactions) -> sp.csr_matrix:
        matrix = train.binary() if self.binary else train.matrix
        if matrix.nnz and matrix.data.min() < 0:
            raise ValueError("ALS: interaction weights must be non-negative")
        return matrix

    def _fit(self, train: Interactions) -> None:
        device = self.device or _default_device()
        dtype = _DTYPES[self.dtype]
        threads = torch.get_num_threads()
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        try:
            matrix = self._matrix(train)
            if self.solver == "cg":
                users = _SparseSide(matrix, self.alpha, dtype, device)
                items = _SparseSide(matrix.T.tocsr(), self.alpha, dtype, device)
            else:
                users, items = matrix, matrix.T.tocsr()
            generator = torch.Generator().manual_seed(self.seed)
            scale = 0.01
            x = (torch.rand(train.n_users, self.dim, generator=generator, dtype=torch.float64)
                 * scale).to(device=device, dtype=dtype)
            y = (torch.rand(train.n_items, self.dim, generator=generator, dtype=torch.float64)
                 * scale).to(device=device, dtype=dtype)
            self.loss_history_: list[float] = []
            for _ in range(self.epochs):
                if self.solver == "cg":
                    conjugate_gradient_step(users, x, y, self.l2, self.cg_steps)
                    conjugate_gradient_step(items, y, x, self.l2, self.cg_steps)
                else:
                    solve_side(users, x, y, self.alpha, self.l2)
                    solve_side(items, y, x, self.alpha, self.l2)
                if self.track_loss:
                    self.loss_history_.append(self._loss(matrix, x, y))
        finally:
            torch.set_num_threads(threads)
        self.user_factors_ = x.cpu().numpy()
        self.item_factors_ = y.cpu().numpy()

    def _loss(self, matrix: sp.csr_matrix, x: torch.Tensor, y: torch.Tensor) -> float:
        x64, y64 = x.double().cpu().numpy(), y.double().cpu().numpy()
        coo = matrix.tocoo()
        dots = np.einsum("nf,nf->n", x64[coo.row], y64[coo.col])
        conf = 1.0 + self.alpha * coo.data
        # sum over all cells of (x.y)^2, then correct the stored cells to c (1 - x.y)^2
        everything = float(np.sum((x64.T @ x64) * (y64.T @ y64)))
        stored = float(np.sum(conf * (1.0 - dots) ** 2 - dots ** 2))
        penalty = self.l2 * float((x64 ** 2).sum() + (y64 ** 2).sum())
        return everything + stored + penalty

    def loss(self, train: Interactions | None = None) -> float:
        """The weighted objective of Hu et al. on ``train`` (default: the training matrix)."""
        fitted = self._check_fitted()
        matrix = self._matrix(train if train is not None else fitted)
        return self._loss(matrix, torch.from_numpy(self.user_factors_), torch.from_numpy(self.item_factors_))

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return self.user_factors_[np.asarray(user_indices)] @ self.item_factors_.T

    def fold_in(self, user_items) -> np.ndarray:
        """Vectors for new users from their interactions, without retraining the items.

        ``user_items``: a sparse or dense ``(n_users, n_items)`` matrix of weights in the training
        matrix's item order (or an :class:`Interactions` sharing its item index). Each row is
        solved exactly from the normal equations with the fitted item factors. Returns
        ``(n_users, dim)``; score them with ``vectors @ item_factors_.T``.
        """
        self._check_fitted()
        if isinstance(user_items, Interactions):
            user_items = user_items.matrix
        matrix = sp.csr_matrix(user_items, dtype=np.float64)
        if matrix.shape[1] != self.item_factors_.shape[0]:
            raise ValueError(f"ALS.fold_in: user_items has {matrix.shape[1]} columns, "
                             f"the model has {self.item_factors_.shape[0]} items")
        if self.binary:
            matrix.data[:] = 1.0
        vectors = exact_solve(matrix, self.item_factors_, self.alpha, self.l2)
        return vectors.astype(self.item_factors_.dtype)

    def similar_items(self, item_indices, k: int = 10) -> np.ndarray:
        """The ``k`` nearest items (cosine of item factors) of each item index, itself excluded."""
        self._check_fitted()
        return nearest_items(self.item_factors_, item_indices, k)
