"""Next-item recommenders that read a history in order: Markov chain, GRU4Rec, Caser and SASRec.

Every model here is a :class:`~recsys_utils.models.base.Recommender` whose training data are
sequences (:class:`~recsys_utils.models.sequential.base.SequentialRecommender`):

- ``fit(sequences, validation=None) -> self`` -- learn from a
  :class:`~recsys_utils.data.sequences.Sequences` (right-aligned item-index histories, ``-1`` =
  padding); the neural models early-stop on a validation
  :class:`~recsys_utils.data.sequences.NextItemTask` (NDCG@10) when one is given;
- ``score_next(histories) -> (n, n_items)`` -- a score for every catalogue item being the next one;
- ``recommend_next(histories, k)`` -- the top ``k`` item indices, best first;
- the protocol's ``score(user_indices)`` and ``recommend(user_ids, k, exclude_seen=True)`` -- the
  next item after each training row's history (user index = row, user id = the row's key).

:func:`evaluate_next_item` ranks the **full catalogue** and scores the lists with
:func:`recsys_utils.core.metrics.ranking_metrics` (one relevant item per row: HR@k, NDCG@k,
MRR@k). Items already in the history are **not** excluded by default: people look at items again
(on the marketplace about a quarter of the held-out next views are items already in the history),
so removing them would make those targets unreachable. ``exclude_history=True`` removes them (the
target then counts as a miss when it was in the history).

The three neural models share one training recipe: item ids are embedded (``padding_idx=0``; the
arrays' ``-1`` padding becomes 0), a network turns the history into one vector per position, and
the logits of *every* catalogue item are the dot products with the (tied) item embeddings. The
loss is the **full softmax cross-entropy** of the true next item at every position of every
training sequence. With a catalogue of a few thousand items this is cheap (one matrix product) and
stronger than the sampled losses of the original papers (BPR / TOP1 in GRU4Rec, binary
cross-entropy with one sampled negative in SASRec); see Klenitskiy & Vasilev (2023) for SASRec
trained with cross-entropy. Training uses the course loop
:func:`recsys_utils.models.train.loop.fit_torch` (batching, early stopping on validation NDCG@10,
gradient clipping, device choice, seeding).

Modules: :mod:`.base` (protocol and evaluation), :mod:`.markov` (count baselines), :mod:`.nets`
(the networks), :mod:`.losses` (full softmax, sampled softmax, gBCE and one-negative BCE, the
``loss=`` knob), :mod:`.neural` (the trained models); every public name is importable from here.

Every network is causal (the state at position ``t`` depends on items ``<= t`` only) and
padding-invariant (a history scores the same whatever the left padding in its batch); both are
tested in ``tests/test_sequential.py``. :meth:`SASRec.attention_maps` returns one history's
attention weights for plots.

References: Rendle, Freudenthaler & Schmidt-Thieme (2010) "Factorizing personalized Markov chains";
Hidasi et al. (2016) "Session-based recommendations with recurrent neural networks" (GRU4Rec);
Tang & Wang (2018) "Personalized top-N sequential recommendation via convolutional sequence
embedding" (Caser); Kang & McAuley (2018) "Self-attentive sequential recommendation" (SASRec);
Klenitskiy & Vasilev (2023) "Turning dross into gold loss: is BERT4Rec really better than SASRec?".
"""

from recsys_utils.models.sequential.base import (
    NextItemEvaluation,
    SequentialRecommender,
    compare_next_item,
    evaluate_next_item,
    history_matrix,
)
from recsys_utils.models.sequential.losses import LOSSES, gbce_beta, make_loss
from recsys_utils.models.sequential.markov import MarkovChain, MostPopularNext
from recsys_utils.models.sequential.nets import (
    CaserNet,
    CausalSelfAttentionBlock,
    GRU4RecNet,
    SASRecNet,
    SequenceNet,
    next_item_loss,
)
from recsys_utils.models.sequential.neural import (
    Caser,
    GRU4Rec,
    SASRec,
    SequenceBatches,
    TorchSequentialRecommender,
)

__all__ = [
    "LOSSES",
    "Caser",
    "CaserNet",
    "CausalSelfAttentionBlock",
    "GRU4Rec",
    "GRU4RecNet",
    "MarkovChain",
    "MostPopularNext",
    "NextItemEvaluation",
    "SASRec",
    "SASRecNet",
    "SequenceBatches",
    "SequenceNet",
    "SequentialRecommender",
    "TorchSequentialRecommender",
    "compare_next_item",
    "evaluate_next_item",
    "gbce_beta",
    "history_matrix",
    "make_loss",
    "next_item_loss",
]
