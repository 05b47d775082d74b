"""PtyRAD's combined loss written in PyTorch (its formulas, autograd for the
gradient) against ptyloss_xp, in float64.

Runs wherever PyTorch is installed (a developer machine, the GPU machines);
PyTorch is not a dependency, so CI skips it. Last run: 2026-11-25, PyTorch
2.13.0 CPU: values agree to 3e-16 and gradients to 8e-16 relative.
"""

import numpy as np
import pytest

import ptyloss_xp as pl

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _blur(x, sigma):
    # torchvision's gaussian_blur: 5 taps, reflect padding, separable kernel.
    t = torch.arange(-2, 3, dtype=x.dtype)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    flat = x.reshape(-1, 1, *x.shape[-2:])
    flat = F.conv2d(F.pad(flat, (2, 2, 2, 2), mode="reflect"), (k[:, None] * k[None, :])[None, None])
    return flat.reshape(x.shape)


def test_combined_loss_matches_pytorch_autograd_of_ptyrads_formulas():
    rng = np.random.default_rng(0)
    I = rng.uniform(0.01, 5.0, (6, 16, 16))
    D = rng.poisson(2.0, (6, 16, 16)).astype(float)
    A = rng.uniform(0.5, 1.0, (6, 3, 2, 12, 10))
    P = rng.normal(size=(6, 3, 2, 12, 10))
    occ = np.array([0.5, 0.3, 0.2])
    cfg = {"loss_single": {"state": True, "dp_pow": 0.5},
           "loss_poissn": {"state": True, "weight": 0.7},
           "loss_pacbed": {"state": True},
           "loss_sparse": {"state": True, "ln_order": 1},
           "loss_simlar": {"state": True, "scale_factor": [1, 0.5, 0.5], "blur_std": 1.0}}
    it, at, pt = (torch.tensor(v, requires_grad=True) for v in (I, A, P))
    dt, ot = torch.tensor(D), torch.tensor(occ)

    def similarity(x):
        x = F.interpolate(_blur(x, 1.0), scale_factor=(1, 0.5, 0.5), mode="area")
        return (x * ot[:, None, None, None]).std(1).mean()

    terms = {
        "loss_single": torch.sqrt(F.mse_loss(it**0.5, dt**0.5)) / (dt**0.5).mean(),
        "loss_poissn": -0.7 * torch.mean(dt * torch.log(it + 1e-6) - it) / dt.mean(),
        "loss_pacbed": 0.5 * torch.sqrt(F.mse_loss(it.mean(0) ** 0.2, dt.mean(0) ** 0.2))
        / (dt**0.2).mean(),
        "loss_sparse": 0.1 * (torch.mean(pt.abs(), dim=(0, 2, 3, 4)) * ot).sum(),
        "loss_simlar": 0.1 * (similarity(at) + similarity(pt)),
    }
    sum(terms.values()).backward()
    res = pl.CombinedLoss(cfg).value_and_grad(model_dp=I, measured_dp=D, obja_patches=A,
                                              objp_patches=P, omode_occu=occ)
    for name, value in terms.items():
        assert float(res.terms[name]) == pytest.approx(value.item(), rel=1e-13), name
    for name, t in (("model_dp", it), ("obja_patches", at), ("objp_patches", pt)):
        g = t.grad.numpy()
        assert np.max(np.abs(res.grads[name] - g)) <= 1e-13 * np.max(np.abs(g)), name
