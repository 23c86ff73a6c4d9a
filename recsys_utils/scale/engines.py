"""Which engine trains a benchmark model: the course's own (``numpy``) or Spark MLlib (``spark``, ALS only).

:func:`on_engine` turns a configured model into its counterpart on the chosen engine. Spark and Java are
imported only when ``spark`` is asked for, so ``recsys-bench`` runs without them otherwise.
"""

from __future__ import annotations

from recsys_utils.models.als import ALS
from recsys_utils.models.base import Recommender

ENGINES = ("numpy", "spark")


def on_engine(model: Recommender, engine: str) -> Recommender:
    """``model`` itself for ``numpy``; for ``spark``, MLlib's ALS with the same ``dim, l2, alpha, epochs, seed``."""
    if engine not in ENGINES:
        raise ValueError(f"--engine: unknown {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "numpy":
        return model
    if not isinstance(model, ALS):
        raise ValueError(f"--engine spark runs only the als model, not {getattr(model, 'name', type(model).__name__)}"
                         " (use --models als)")
    from recsys_utils.scale.spark_recommender import SparkALS  # pyspark and Java only when Spark is asked for
    from recsys_utils.scale.spark_session import JavaNotFoundError, find_java

    try:
        find_java()
    except JavaNotFoundError as error:
        raise ValueError(str(error)) from None
    return SparkALS(dim=model.dim, l2=model.l2, alpha=model.alpha, epochs=model.epochs, seed=model.seed)


__all__ = ["ENGINES", "on_engine"]
