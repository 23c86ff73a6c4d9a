"""top_k: order, exclusion, padding, ties and agreement with a full argsort."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recsys_utils.core.topk import top_k


def test_best_first_and_ties_by_lower_column() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.9], [3.0, 1.0, 2.0, 0.0]])
    # row 0: 0.9 at columns 1 and 3 tie -> column 1 first, then 3, then 0.5 at column 2
    np.testing.assert_array_equal(top_k(scores, 3), [[1, 3, 2], [0, 2, 1]])
    assert top_k(scores, 3).dtype == np.int64


def test_exclude_removes_cells() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.8], [3.0, 1.0, 2.0, 0.0]])
    exclude = sp.csr_matrix(np.array([[0, 1, 0, 0], [1, 0, 0, 0]]))
    np.testing.assert_array_equal(top_k(scores, 2, exclude), [[3, 2], [2, 1]])


def test_pads_with_minus_one_when_fewer_rankable_items() -> None:
    scores = np.array([[0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4]])
    exclude = sp.csr_matrix(np.array([[1, 1, 1, 0], [0, 0, 0, 0]]))
    # row 0 keeps only column 3; k = 3 -> [3, -1, -1]
    np.testing.assert_array_equal(top_k(scores, 3, exclude), [[3, -1, -1], [3, 2, 1]])
    # k above the number of columns: every column once, padded rows stay short
    out = top_k(scores, 6, exclude)
    assert out.shape == (2, 4)
    np.testing.assert_array_equal(out[0], [3, -1, -1, -1])


def test_does_not_mutate_inputs() -> None:
    rng = np.random.default_rng(0)
    scores = rng.random((5, 8)).astype(np.float32)
    exclude = sp.random(5, 8, density=0.3, format="csr", random_state=1)
    scores_before, exclude_before = scores.copy(), exclude.toarray()
    top_k(scores, 3, exclude)
    top_k(scores, 3)
    np.testing.assert_array_equal(scores, scores_before)
    np.testing.assert_array_equal(exclude.toarray(), exclude_before)


@pytest.mark.parametrize("k", [1, 7, 50])
def test_matches_full_argsort_without_ties(k: int) -> None:
    rng = np.random.default_rng(k)
    scores = rng.permutation(40 * 50).reshape(40, 50).astype(np.float32)  # distinct values
    expected = np.argsort(-scores, axis=1)[:, :k]
    np.testing.assert_array_equal(top_k(scores, k), expected)


def test_matches_argsort_with_exclusion() -> None:
    rng = np.random.default_rng(9)
    scores = rng.permutation(30 * 20).reshape(30, 20).astype(np.float32)
    seen = rng.random((30, 20)) < 0.3
    masked = np.where(seen, -np.inf, scores)
    expected = np.argsort(-masked, axis=1, kind="stable")[:, :5]
    ranked = np.take_along_axis(masked, expected, axis=1)
    expected[np.isinf(ranked)] = -1
    np.testing.assert_array_equal(top_k(scores, 5, sp.csr_matrix(seen)), expected)


def test_rejects_non_matrix_input() -> None:
    with pytest.raises(ValueError, match="2-D"):
        top_k(np.zeros(4), 2)
    with pytest.raises(ValueError, match="exclude"):
        top_k(np.zeros((2, 3)), 2, sp.csr_matrix((3, 2)))
