"""Graders of notebook 09 (content and multimodal cold start): a TextCNN with a masked max-pool as an
``nn.Module``, a 2-D convolution by im2col, the linear probe's held-out R² and the content -> factor
loss with its gradient by hand."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from recsys_utils.course.graders.answers import close_to
from recsys_utils.course.graders.registry import grader
from recsys_utils.models.content_towers import TextCNN
from recsys_utils.models.multimodal import weighted_factor_loss


def _titles(seed: int) -> torch.Tensor:
    """Right-padded token ids (0 = padding) of random lengths 1..7 in a width of 9."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, 15, (12, 9), generator=g)
    lengths = torch.randint(1, 8, (12,), generator=g)
    lengths[0] = 1  # shorter than every filter: its first window must still count
    tokens[torch.arange(9)[None, :] >= lengths[:, None]] = 0
    return tokens


@grader("09.1")
def title_cnn_module(learner_class) -> str:
    """The learner's ``TitleCNN`` with the package ``TextCNN``'s weights loaded equals it on padded titles."""
    for widths, seed in (((2, 3, 4), 0), ((1, 3), 1)):
        torch.manual_seed(seed)
        net = TextCNN(15, 5, embed_dim=6, n_filters=4, widths=widths, dropout=0.0).eval()
        for name, p in net.named_parameters():  # negative biases: padding windows would then differ clearly
            torch.nn.init.normal_(p, mean=-0.3 if "bias" in name else 0.0, std=0.8)
        with torch.no_grad():
            net.embedding.weight[0].zero_()
        mine = learner_class(15, 5, embed_dim=6, n_filters=4, widths=widths)
        names = ("embedding", "convs", "out")
        assert all(hasattr(mine, n) for n in names), f"TitleCNN needs attributes {names} (see the docstring)"
        try:
            mine.load_state_dict(net.state_dict())
        except RuntimeError as error:
            raise AssertionError(f"TitleCNN's parameters do not match TextCNN's layout: {error}") from None
        mine.eval()
        tokens = _titles(seed)
        with torch.no_grad():
            close_to(mine(tokens), net(tokens), "TitleCNN.forward",
                     "ReLU after each convolution, then mask the windows that reach into the padding (a title "
                     "shorter than the filter keeps its first window) with -inf before the max over time")
            padded = F.pad(tokens, (0, 4))
            close_to(mine(padded), net(tokens), "TitleCNN.forward with 4 more padding columns",
                     "more padding must not change the output")
    return "two filter layouts on padded titles: equal to the package's TextCNN, and padding-invariant"


@grader("09.2")
def conv2d_im2col(learner) -> str:
    """``learner(x, weight, bias, padding)`` equals ``F.conv2d`` (stride 1) on random inputs."""
    g = torch.Generator().manual_seed(2)
    for (c_in, c_out, k, h, w, padding) in ((3, 4, 3, 8, 8, 1), (2, 5, 2, 5, 7, 0), (3, 2, 5, 6, 6, 2)):
        x = torch.randn(2, c_in, h, w, generator=g)
        weight = torch.randn(c_out, c_in, k, k, generator=g)
        bias = torch.randn(c_out, generator=g)
        expected = F.conv2d(x, weight, bias, padding=padding)
        close_to(learner(x.clone(), weight.clone(), bias.clone(), padding), expected, "conv2d_im2col",
                 "unfold the (padded) input into columns of C_in*k*k values, multiply by the weight reshaped to "
                 "(C_out, C_in*k*k), add the bias and fold back to (B, C_out, H_out, W_out) with "
                 "H_out = H + 2*padding - k + 1", tol=1e-4)
    return "three shapes (with and without padding): equal to torch.nn.functional.conv2d to 1e-4"


@grader("09.3")
def probe_r2(learner) -> str:
    """``learner(x_train, y_train, x_test, y_test, alpha)`` equals sklearn's Ridge + variance-weighted R²."""
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(3)
    for n, d, k, alpha in ((80, 6, 3, 1.0), (60, 10, 2, 25.0)):
        x = rng.normal(2.0, 1.5, (n, d))
        y = x @ rng.normal(size=(d, k)) * 0.3 + rng.normal(0, 1.0, (n, k)) + 5.0
        cut = n * 3 // 4
        model = Ridge(alpha=alpha).fit(x[:cut], y[:cut])
        expected = r2_score(y[cut:], model.predict(x[cut:]), multioutput="variance_weighted")
        got = learner(x[:cut].copy(), y[:cut].copy(), x[cut:].copy(), y[cut:].copy(), alpha)
        assert got is not None, "probe_r2 returned None"
        assert abs(float(got) - expected) < 1e-6, (
            f"probe_r2 = {float(got):.6f}, expected {expected:.6f}: fit ridge WITH an unpenalised intercept "
            "(centre x and y on the training means), then R² = 1 - SSE / SST pooled over the outputs, with SST "
            "around the TEST means")
    return "two data sets: equal to sklearn Ridge + r2_score(multioutput='variance_weighted') to 1e-6"


@grader("09.4")
def factor_loss_and_gradient(learner) -> str:
    """``learner(predicted, target, weight)`` returns the weighted factor loss and its gradient, as autograd does."""
    g = torch.Generator().manual_seed(4)
    for n, k in ((6, 3), (9, 5)):
        predicted = torch.randn(n, k, generator=g, dtype=torch.float64, requires_grad=True)
        target = torch.randn(n, k, generator=g, dtype=torch.float64)
        weight = torch.rand(n, generator=g, dtype=torch.float64) + 0.1
        loss = weighted_factor_loss(predicted, target, weight)
        loss.backward()
        got = learner(predicted.detach().clone(), target.clone(), weight.clone())
        assert got is not None and len(got) == 2, "return the pair (loss, gradient)"
        close_to(torch.as_tensor(got[0]), loss.detach(), "the loss",
                 "sum_i w_i * ||f_hat_i - f_i||^2 / sum_i w_i", tol=1e-8)
        close_to(torch.as_tensor(got[1]), predicted.grad, "the gradient",
                 "d loss / d f_hat_i = 2 w_i (f_hat_i - f_i) / sum_j w_j", tol=1e-8)
    return "two shapes: the loss equals weighted_factor_loss and the gradient equals autograd's to 1e-8"
