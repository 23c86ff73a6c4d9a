"""The one torch training loop (:func:`~recsys_utils.models.train.loop.fit_torch`), its batches, history
and checkpoints."""
