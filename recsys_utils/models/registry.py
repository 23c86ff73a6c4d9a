"""One registry of the course's recommenders by name, used by the bench command, tuning and notebooks.

``create("ease", l2=500.0)`` builds a model; ``names()`` lists them. Every entry speaks the one
protocol of :class:`~recsys_utils.models.base.Recommender` (``fit``, ``score``, ``recommend``) and
takes its settings under the one set of knob names described there (``dim``, ``l2``, ``lr``,
``epochs``, ``seed``); sequential models add next-item prediction on top of it
(:mod:`recsys_utils.models.sequential`). Models that need side data (item features, the member
table, raw events) take it as a required keyword: ``create("content", item_features=X)``.
"""

from __future__ import annotations

from recsys_utils.models.als import ALS
from recsys_utils.models.autoencoders import MultDAE, MultVAE
from recsys_utils.models.autorec import AutoRec
from recsys_utils.models.base import Recommender, constructor_parameters
from recsys_utils.models.baselines import PopularityRecommender, RandomRecommender
from recsys_utils.models.bpr import BPR
from recsys_utils.models.bpr_torch import TorchBPR
from recsys_utils.models.ctr import DeepFM
from recsys_utils.models.dbn import DBNAutoencoder
from recsys_utils.models.ease import EASE
from recsys_utils.models.hybrid import AttributeHybrid, CategoryPopularity, ContentRecommender, GroupPopularity
from recsys_utils.models.lightgcn import LightGCN
from recsys_utils.models.mf import BiasBaseline, ExplicitMF, GlobalMean
from recsys_utils.models.multimodal import ContentToFactors
from recsys_utils.models.neighbors import ItemKNN, UserKNN
from recsys_utils.models.neural import GMF, NCFMLP, IdMLP, IdMLPRegressor, NeuMF
from recsys_utils.models.rbm import RBM
from recsys_utils.models.two_tower import TwoTower

#: name -> class; the names are what the bench command's ``--models`` and the tuning helpers accept
MODELS: dict[str, type[Recommender]] = {
    "random": RandomRecommender,
    "popularity": PopularityRecommender,
    "itemknn": ItemKNN,
    "userknn": UserKNN,
    "als": ALS,
    "bpr": BPR,
    "torch-bpr": TorchBPR,
    "ease": EASE,
    "mf": GMF,
    "idmlp": IdMLP,
    "ncf-mlp": NCFMLP,
    "neumf": NeuMF,
    "multvae": MultVAE,
    "multdae": MultDAE,
    "autorec": AutoRec,
    "rbm": RBM,
    "dbn-autoencoder": DBNAutoencoder,
    "deepfm": DeepFM,
    "content": ContentRecommender,
    "attribute-hybrid": AttributeHybrid,
    "multimodal": ContentToFactors,
    "group-popularity": GroupPopularity,
    "category-popularity": CategoryPopularity,
    "global-mean": GlobalMean,
    "bias-baseline": BiasBaseline,
    "explicit-mf": ExplicitMF,
    "idmlp-regressor": IdMLPRegressor,
    "two-tower": TwoTower,
    "lightgcn": LightGCN,
}


def names() -> list[str]:
    """Registered model names, sorted."""
    return sorted(MODELS)


def model_class(name: str) -> type[Recommender]:
    """The class registered under ``name``; a clear error lists the known names."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model '{name}'; choose one of {names()}") from None


def accepts(cls: type, name: str) -> bool:
    """Whether ``cls(...)`` takes keyword ``name`` (directly, or through ``**kwargs`` up the MRO)."""
    return name in constructor_parameters(cls)


def create(name: str, seed: int | None = None, **params) -> Recommender:
    """Build the model registered under ``name`` with ``params`` (and ``seed`` where it takes one)."""
    cls = model_class(name)
    if seed is not None and accepts(cls, "seed"):
        params.setdefault("seed", seed)
    return cls(**params)
