"""Generators of synthetic interaction data (生成对抗网络 GAN, 生成器 generator, 判别器 discriminator).

Every generator speaks the small protocol of :class:`~recsys_utils.models.generative.base.Generator`:
``fit(data) -> self`` and ``sample(n, seed=0)``. Two kinds of data are generated: users' binary
interaction vectors over the catalogue (``sample`` returns a ``scipy.sparse.csr_matrix``) and
sessions (ordered item sequences; ``sample`` returns an ``(n, max_len)`` array, ``-1`` = padding).

User vectors:

- :class:`InteractionGAN` (:mod:`.gan`): a Wasserstein GAN with gradient penalty (Gulrajani et
  al. 2017) with a straight-through Bernoulli output (Bengio et al. 2013), trained by the course
  loop :func:`~recsys_utils.models.train.loop.fit_torch` with a ``step_fn`` (critic and generator
  updates) and a monitor callback.
- :class:`PopularitySampler` (:mod:`.samplers`): activity from the real users, items drawn without
  replacement in proportion to popularity: right marginals, no structure (the non-adversarial floor).
- :class:`ClusterSampler`: a latent-class model (users clustered by k-means on SVD factors, one
  item distribution per cluster): a cheap non-adversarial generator with structure.
- :class:`CopyGenerator`: returns real training users' vectors, optionally with a few items
  flipped: perfect fidelity, and a privacy failure (the counter-example).

Sessions (:mod:`.sessions`): :class:`SessionGRU` (a GRU language model over items with an end token
and a noise vector fed at every step) trained by :func:`fit_session_gru` (the course loop), sampled
by :func:`sample_sessions` (temperature sampling, vectorised over sessions); :class:`SessionGenerator`
wraps both as a :class:`Generator`.
"""

from recsys_utils.models.generative.base import Generator, binary_csr, draw_without_replacement
from recsys_utils.models.generative.gan import (
    CriticNet,
    GANHistory,
    GANMonitor,
    GeneratorNet,
    InteractionGAN,
    WGANStep,
)
from recsys_utils.models.generative.samplers import ClusterSampler, CopyGenerator, PopularitySampler
from recsys_utils.models.generative.sessions import (
    SessionBatches,
    SessionGenerator,
    SessionGRU,
    fit_session_gru,
    sample_sessions,
    session_loss,
)

__all__ = [
    "ClusterSampler",
    "CopyGenerator",
    "CriticNet",
    "GANHistory",
    "GANMonitor",
    "Generator",
    "GeneratorNet",
    "InteractionGAN",
    "PopularitySampler",
    "SessionBatches",
    "SessionGRU",
    "SessionGenerator",
    "WGANStep",
    "binary_csr",
    "draw_without_replacement",
    "fit_session_gru",
    "sample_sessions",
    "session_loss",
]
