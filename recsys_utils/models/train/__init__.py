"""The one torch training loop (:func:`~recsys_utils.models.train.loop.fit_torch`), its callbacks
(:mod:`~recsys_utils.models.train.callbacks`), batches, history and checkpoints."""
