"""Small test doubles shared by several test files."""

import numpy as np

from recsys_utils.models.base import Recommender


class FixedScores(Recommender):
    """A recommender whose scores are given: row ``u`` of ``scores`` for user index ``u``."""

    def __init__(self, scores, dtype=np.float64):
        super().__init__()
        self.scores = np.asarray(scores, dtype=dtype)

    def _fit(self, train):
        pass

    def score(self, user_indices):
        return self.scores[np.asarray(user_indices)]
