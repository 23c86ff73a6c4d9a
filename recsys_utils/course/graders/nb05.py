"""Graders of notebook 05 (deep models): the documents' MLP on ids as an ``nn.Module``, binary cross-entropy
by hand, NeuMF's fusion layer, the Mult-VAE loss, DeepFM's factorisation-machine interaction term and the
RBM's CD-1 statistics."""

from __future__ import annotations

import itertools

import numpy as np
import torch
import torch.nn.functional as F

from recsys_utils.course.graders.answers import close_to
from recsys_utils.course.graders.registry import grader
from recsys_utils.models.autoencoders import MultVAE, MultVAENet
from recsys_utils.models.ctr import DeepFMNet
from recsys_utils.models.neural import MLPNet, NeuMFNet
from recsys_utils.models.rbm import RBMNet, cd_statistics, cd_surrogate


def _pairs(n_users: int, n_items: int, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, n_users, (n,), generator=g), torch.randint(0, n_items, (n,), generator=g)


@grader("05.1")
def id_mlp_module(learner_class) -> str:
    """The learner's ``IdMLPNet`` with the package ``MLPNet``'s weights copied in gives σ of its logits."""
    for dim, hidden in ((4, (8, 4)), (6, (12, 6, 3))):
        torch.manual_seed(5)
        net = MLPNet(7, 9, dim, hidden)
        for p in net.parameters():  # move away from the tiny initial embeddings
            torch.nn.init.normal_(p, std=0.5)
        mine = learner_class(7, 9, dim, hidden)
        names = ("user", "item", "layers", "out")
        assert all(hasattr(mine, n) for n in names), f"IdMLPNet needs attributes {names} (see the docstring)"
        assert len(mine.layers) == len(hidden), f"expected {len(hidden)} hidden Linear layers, got {len(mine.layers)}"
        pairs = [("user", mine.user, net.user), ("item", mine.item, net.item), ("out", mine.out, net.out)]
        layers = zip(mine.layers, net.tower.layers, strict=True)
        pairs += [(f"layers[{k}]", own, theirs) for k, (own, theirs) in enumerate(layers)]
        for name, own, theirs in pairs:
            assert own.weight.shape == theirs.weight.shape, (
                f"{name}: weight shape {tuple(own.weight.shape)}, expected {tuple(theirs.weight.shape)} "
                "(the first hidden layer reads the concatenation [p_u ; q_i], of width 2 * dim)")
        with torch.no_grad():
            mine.user.weight.copy_(net.user.weight)
            mine.item.weight.copy_(net.item.weight)
            for theirs, own in zip(net.tower.layers, mine.layers, strict=True):
                own.weight.copy_(theirs.weight)
                own.bias.copy_(theirs.bias)
            mine.out.weight.copy_(net.out.weight)
            mine.out.bias.copy_(net.out.bias)
            users, items = _pairs(7, 9, 40, dim)
            close_to(mine(users, items), torch.sigmoid(net(users, items)), "IdMLPNet.forward",
                   "concatenate [p_u ; q_i] (user first), ReLU after every hidden layer, sigmoid on the output")
    return "two layer layouts: with MLPNet's weights, outputs equal sigmoid(MLPNet) to 1e-5"


@grader("05.2")
def binary_cross_entropy(learner) -> str:
    """``learner(p, y)`` equals ``F.binary_cross_entropy`` in value and in autograd gradient."""
    g = torch.Generator().manual_seed(2)
    y = (torch.rand(200, generator=g) < 0.2).double()
    logits = torch.randn(200, generator=g, dtype=torch.float64) * 2
    a = logits.clone().requires_grad_(True)
    b = logits.clone().requires_grad_(True)
    got = learner(torch.sigmoid(a), y)
    assert got is not None, "bce returned None"
    assert torch.is_tensor(got) and got.ndim == 0, "return one torch scalar (the mean over rows)"
    expected = F.binary_cross_entropy(torch.sigmoid(b), y)
    close_to(got, expected, "bce", "mean of -[y log p + (1 - y) log(1 - p)]: the bracket covers both terms")
    got.backward()
    expected.backward()
    close_to(a.grad, b.grad, "the gradient of bce", "write the loss with torch operations so autograd can follow it")
    return "200 rows: value and gradient equal torch.nn.functional.binary_cross_entropy"


@grader("05.3")
def neumf_fusion(learner) -> str:
    """``learner(net, users, items)`` equals the package ``NeuMFNet``'s logits."""
    torch.manual_seed(3)
    net = NeuMFNet(8, 11, gmf_dim=4, mlp_dim=3, hidden=(6, 5))
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.5)
    net.eval()
    users, items = _pairs(8, 11, 30, 3)
    with torch.no_grad():
        close_to(learner(net, users, items), net(users, items), "neumf_logits",
               "concatenate [GMF's p⊙q ; the MLP tower's last layer] in that order, then net.out")
    return "30 pairs: equal to recsys_utils.models.neural.NeuMFNet.forward to 1e-5"


@grader("05.4")
def mult_vae_loss(learner) -> str:
    """``learner(logits, rows, mu, logvar, beta)`` equals ``MultVAE``'s training loss on the same network."""
    torch.manual_seed(4)
    rows = (torch.rand(16, 25) < 0.2).float()
    net = MultVAENet(25, hidden=(10,), latent=4, dropout=0.0).eval()  # eval: z = μ, no sampling
    for beta in (0.0, 0.3):
        vae = MultVAE(hidden=(10,), latent=4, beta_cap=beta)
        vae.step_, vae.anneal_steps_ = 1, 1  # the KL weight has reached beta
        with torch.no_grad():
            expected = vae._loss(net, (None, rows))
            mu, logvar = net.encode(rows)
            logits = net.decode(mu)
            close_to(learner(logits, rows, mu, logvar, beta), expected, f"mult_vae_loss (beta={beta})",
                   "mean over users of -Σ_i x_ui log softmax(logits)_i + beta · KL, "
                   "KL = ½ Σ (exp(logvar) + mu² - 1 - logvar)")
    return "beta 0 and 0.3: equal to recsys_utils.models.autoencoders.MultVAE's loss"


@grader("05.5")
def fm_interaction(learner) -> str:
    """``learner(e)`` equals the brute-force pairwise sum and the FM part of the package ``DeepFMNet``."""
    torch.manual_seed(6)
    e = torch.randn(20, 5, 3, dtype=torch.float64)
    brute = sum((e[:, f] * e[:, g]).sum(-1) for f, g in itertools.combinations(range(5), 2))
    close_to(learner(e.clone()), brute, "fm_interaction", "sum over field pairs f < g of <e_f, e_g>, per row")
    net = DeepFMNet([4, 3, 5, 2], n_user_side=2, dim=3, hidden=(6,)).eval()
    torch.nn.init.normal_(net.embedding.weight, std=0.7)
    codes = torch.from_numpy(np.random.default_rng(6).integers(0, [4, 3, 5, 2], size=(12, 4)))
    with torch.no_grad():
        with_fm = net(codes)
        net.fm = False
        fm_part = with_fm - net(codes)
        close_to(learner(net.embedding(codes + net.offsets)), fm_part, "fm_interaction on DeepFMNet's embeddings",
               "0.5 * ((Σ_f e_f)² - Σ_f e_f²), summed over the embedding dimension")
    return "equal to the brute-force pairwise sum and to DeepFMNet's FM term (with minus without) to 1e-5"


@grader("05.6")
def cd1_statistics(learner) -> str:
    """``learner(net, v0, vk)`` equals :func:`~recsys_utils.models.rbm.cd_statistics` and minus the autograd
    gradient of the free-energy surrogate."""
    torch.manual_seed(7)
    net = RBMNet(12, 5).double()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.5)
    v0 = torch.bernoulli(torch.full((9, 12), 0.3, dtype=torch.float64))
    vk = net.gibbs(v0, k=1)
    got = learner(net, v0, vk)
    assert got is not None, "cd1_statistics returned None"
    assert len(got) == 3, "return three tensors: (dW, db, dc)"
    grads = torch.autograd.grad(cd_surrogate(net, v0, vk), [net.W, net.b, net.c])
    for name, own, theirs, grad in zip(("dW", "db", "dc"), got, cd_statistics(net, v0, vk), grads, strict=True):
        close_to(own, theirs, f"cd1_statistics {name}", "positive phase (data v0, p(h|v0)) minus negative phase "
               "(v_k, p(h|v_k)), averaged over the batch")
        close_to(own, -grad, f"cd1_statistics {name} vs autograd", "the free-energy surrogate's gradient is minus CD")
    return "equal to recsys_utils.models.rbm.cd_statistics and to minus the surrogate's autograd gradient, to 1e-5"
