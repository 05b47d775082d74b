"""Generative losses: what the generic contract tests cannot see.

PyTorch autograd of the standard definitions and scipy's Wasserstein
distance as references (float64, 1e-10 relative), logits of +-1e4, ties of
the sort, the error messages, and the worked training step of
docs/generative.md. (Gradients against finite differences, dtypes,
namespaces and domain edges are covered for every loss by
tests/test_contract.py and tests/test_backends.py.)
"""

import doctest
import pathlib

import numpy as np
import pytest

import ptyloss_xp as pl

RNG = np.random.default_rng(11)
RTOL = 1e-10
DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"


def _close(ours, ref):
    ref = np.asarray(ref)
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=RTOL * max(np.max(np.abs(ref)), 1e-300))


def _torch_check(loss, arrays, reference):
    """Value and every ``wrt`` gradient of ``loss`` against autograd of
    ``reference(**tensors)`` in float64."""
    torch = pytest.importorskip("torch")
    tensors = {k: torch.tensor(v, requires_grad=k in loss.wrt) for k, v in arrays.items()}
    ref = reference(torch, **tensors)
    ref.sum().backward()
    v, g = loss.value_and_grad(**arrays)
    _close(v, ref.detach().numpy())
    for name, gi in zip(loss.wrt, (g,) if len(loss.wrt) == 1 else g):
        _close(gi, tensors[name].grad.numpy())


# --------------------------------------------------------------------------
# VAE

MU = RNG.normal(size=(5, 3))
LOGVAR = RNG.normal(size=(5, 3))


def _torch_kl(torch, mu, logvar):
    return -0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp(), dim=1)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_vae_kl_matches_torch(reduction):
    def ref(torch, mu, logvar):
        kl = _torch_kl(torch, mu, logvar)
        return {"mean": kl.mean(), "sum": kl.sum(), "none": kl}[reduction]

    _torch_check(pl.get("vae_kl", reduction=reduction), {"mu": MU, "logvar": LOGVAR}, ref)


def test_vae_kl_is_zero_at_the_prior_and_accurate_near_it():
    v, (gm, gl) = pl.get("vae_kl").value_and_grad(np.zeros((2, 4)), np.zeros((2, 4)))
    assert float(v) == 0 and np.all(gm == 0) and np.all(gl == 0)
    lv = np.full((1, 1), 1e-9)  # exp(lv) - 1 - lv = lv^2 / 2 + ...
    np.testing.assert_allclose(pl.get("vae_kl").value(np.zeros((1, 1)), lv), 0.25e-18, rtol=1e-6)


@pytest.mark.parametrize("likelihood", ["bernoulli", "bernoulli_logits", "gaussian"])
@pytest.mark.parametrize(("beta", "reduction"), [(1.0, "mean"), (4.0, "sum"), (0.0, "none")])
def test_vae_elbo_matches_torch(likelihood, beta, reduction):
    x = RNG.uniform(0, 1, size=(5, 2, 3))
    recon = {"bernoulli": RNG.uniform(0.01, 0.99, size=x.shape),
             "bernoulli_logits": RNG.normal(size=x.shape) * 3,
             "gaussian": RNG.normal(size=x.shape)}[likelihood]

    def ref(torch, recon, target, mu, logvar):
        F = torch.nn.functional
        elem = {"bernoulli": lambda: F.binary_cross_entropy(recon, target, reduction="none"),
                "bernoulli_logits": lambda: F.binary_cross_entropy_with_logits(
                    recon, target, reduction="none"),
                "gaussian": lambda: F.mse_loss(recon, target, reduction="none")}[likelihood]()
        per = elem.flatten(1).sum(1) + beta * _torch_kl(torch, mu, logvar)
        return {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]

    loss = pl.get("vae_elbo", likelihood=likelihood, beta=beta, reduction=reduction)
    _torch_check(loss, {"recon": recon, "target": x, "mu": MU, "logvar": LOGVAR}, ref)


def test_vae_elbo_keeps_torchs_bce_clamp_at_probabilities_0_and_1():
    x = np.array([[1.0, 0.0, 1.0]])
    recon = np.array([[0.0, 1.0, 1.0]])
    v, (g, _, _) = pl.get("vae_elbo").value_and_grad(recon, x, MU[:1], LOGVAR[:1])
    kl = pl.get("vae_kl").value(MU[:1], LOGVAR[:1])
    np.testing.assert_allclose(v - kl, 200.0, rtol=1e-14)
    assert np.all(np.isfinite(g))


def test_vae_logvar_at_the_float32_bound_stays_finite():
    mu = np.zeros((2, 3), np.float32)
    lv = np.array([[80.0, -80.0, 0.0], [80.0, 80.0, -80.0]], np.float32)
    v, (gm, gl) = pl.get("vae_kl").value_and_grad(mu, lv)
    assert v.dtype == np.float32 and np.isfinite(v) and np.all(np.isfinite(gl))


def test_vae_bad_inputs_are_named():
    kl = pl.get("vae_kl")
    with pytest.raises(ValueError, match=r"^vae_kl: argument 'logvar' must have shape \(N, D\)"):
        kl.value(MU, LOGVAR[:, :2])
    with pytest.raises(ValueError, match=r"^vae_kl: argument 'logvar' must be finite and >= -80"):
        kl.value(MU, np.full(MU.shape, -100.0))
    elbo = pl.get("vae_elbo")
    x = np.full((5, 2), 0.5)
    with pytest.raises(ValueError, match=r"^vae_elbo: argument 'recon' must be finite and >= 0 "
                                         r"and <= 1"):
        elbo.value(x + 1.0, x, MU, LOGVAR)
    with pytest.raises(ValueError, match=r"^vae_elbo: argument 'mu' .*dimension N is 5"):
        elbo.value(x, x, MU[:4], LOGVAR[:4])
    with pytest.raises(ValueError, match=r"^vae_elbo: parameter 'beta' must be a real number >= 0"):
        pl.get("vae_elbo", beta=-1.0)
    with pytest.raises(ValueError, match="parameter 'likelihood'"):
        pl.get("vae_elbo", likelihood="poisson")


# --------------------------------------------------------------------------
# GAN losses

REAL = RNG.normal(size=(6, 1)) * 3
FAKE = RNG.normal(size=(4, 1)) * 3
HUGE_REAL = np.array([[1e4], [-1e4], [0.0]])
HUGE_FAKE = np.array([[-1e4], [1e4]])


def _bce(torch, x, label):
    return torch.nn.functional.binary_cross_entropy_with_logits(x, torch.full_like(x, label))


GAN_CASES = [
    ("gan_discriminator", {}, lambda t, r, f: _bce(t, r, 1.0) + _bce(t, f, 0.0)),
    ("lsgan_discriminator", {}, lambda t, r, f: 0.5 * ((r - 1) ** 2).mean() + 0.5 * (f**2).mean()),
    ("lsgan_discriminator", {"real_target": 0.5, "fake_target": -1.0},
     lambda t, r, f: 0.5 * ((r - 0.5) ** 2).mean() + 0.5 * ((f + 1) ** 2).mean()),
    ("hinge_gan_discriminator", {},
     lambda t, r, f: t.relu(1 - r).mean() + t.relu(1 + f).mean()),
    ("wgan_critic", {}, lambda t, r, f: f.mean() - r.mean()),
]
GEN_CASES = [
    ("gan_generator", {}, lambda t, f: _bce(t, f, 1.0)),
    ("gan_generator", {"saturating": True},
     lambda t, f: t.log(1 - t.sigmoid(f)).mean()),
    ("lsgan_generator", {}, lambda t, f: 0.5 * ((f - 1) ** 2).mean()),
    ("hinge_gan_generator", {}, lambda t, f: -f.mean()),
    ("wgan_generator", {}, lambda t, f: -f.mean()),
]


@pytest.mark.parametrize(("name", "params", "ref"), GAN_CASES,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(GAN_CASES)])
def test_discriminator_losses_match_torch(name, params, ref):
    _torch_check(pl.get(name, **params), {"real_logits": REAL, "fake_logits": FAKE},
                 lambda torch, real_logits, fake_logits: ref(torch, real_logits, fake_logits))
    # Kinks of the hinge (r = 1, f = -1) get PyTorch's relu gradient, 0.
    _torch_check(pl.get(name, **params),
                 {"real_logits": np.array([1.0, 0.0]), "fake_logits": np.array([-1.0, 0.0])},
                 lambda torch, real_logits, fake_logits: ref(torch, real_logits, fake_logits))


@pytest.mark.parametrize(("name", "params", "ref"), GEN_CASES,
                         ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(GEN_CASES)])
def test_generator_losses_match_torch(name, params, ref):
    _torch_check(pl.get(name, **params), {"fake_logits": FAKE},
                 lambda torch, fake_logits: ref(torch, fake_logits))


def test_saturating_generator_loss_is_negative():
    assert float(pl.get("gan_generator", saturating=True).value(FAKE)) < 0


@pytest.mark.parametrize("name", ["gan_discriminator", "gan_generator"])
@pytest.mark.parametrize("saturating", [False, True])
def test_logits_of_1e4_give_finite_exact_values_and_gradients(name, saturating):
    if name == "gan_discriminator":
        if saturating:
            pytest.skip("no such parameter")
        loss, arrays = pl.get(name), {"real_logits": HUGE_REAL, "fake_logits": HUGE_FAKE}
        # softplus(-1e4) = 0, softplus(1e4) = 1e4, softplus(0) = log 2
        want = (1e4 + np.log(2)) / 3 + 1e4 / 2
    else:
        loss, arrays = pl.get(name, saturating=saturating), {"fake_logits": HUGE_FAKE}
        want = -1e4 / 2 if saturating else 1e4 / 2
    for dtype in (np.float64, np.float32):
        v, g = loss.value_and_grad(**{k: a.astype(dtype) for k, a in arrays.items()})
        np.testing.assert_allclose(v, want, rtol=1e-6)
        for gi in (g,) if len(loss.wrt) == 1 else g:
            assert gi.dtype == dtype and np.all(np.isfinite(gi))
    if name == "gan_discriminator":
        _torch_check(loss, arrays, lambda t, real_logits, fake_logits:
                     _bce(t, real_logits, 1.0) + _bce(t, fake_logits, 0.0))


@pytest.mark.parametrize("case", GAN_CASES + GEN_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(GAN_CASES + GEN_CASES)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_gan_loss_is_finite_at_logits_of_1e4(case, dtype):
    name, params, _ = case
    loss = pl.get(name, **params)
    arrays = {"real_logits": HUGE_REAL, "fake_logits": HUGE_FAKE}
    v, g = loss.value_and_grad(**{k: arrays[k].astype(dtype) for k in loss.wrt})
    assert v.dtype == dtype and np.isfinite(v)
    assert all(np.all(np.isfinite(gi)) for gi in ((g,) if len(loss.wrt) == 1 else g))


def test_vae_elbo_bernoulli_logits_of_1e4_are_finite_and_exact():
    recon = np.array([[1e4, -1e4, 1e4]])
    x = np.array([[1.0, 1.0, 0.0]])
    loss = pl.get("vae_elbo", likelihood="bernoulli_logits", beta=0.0)
    for dtype in (np.float32, np.float64):
        v, (g, _, _) = loss.value_and_grad(*(a.astype(dtype) for a in (recon, x, MU[:1], LOGVAR[:1])))
        np.testing.assert_allclose(v, 2e4, rtol=1e-6)
        np.testing.assert_array_equal(g, [[0.0, -1.0, 1.0]])


def test_discriminator_takes_batches_of_different_sizes_but_one_trailing_shape():
    loss = pl.get("gan_discriminator")
    loss.value(np.zeros((3, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match=r"^gan_discriminator: argument 'fake_logits' must "
                                         r"have shape \(M, \*\)"):
        loss.value(np.zeros((3, 2)), np.zeros((5, 3)))


@pytest.mark.parametrize("weight", [10.0, 1.0])
def test_wgan_gp_matches_torch_including_a_zero_row(weight):
    g = RNG.normal(size=(5, 2, 3)) * 0.7
    g[3] = 0.0

    def ref(torch, grads):
        return weight * ((grads.flatten(1).norm(2, dim=1) - 1) ** 2).mean()

    _torch_check(pl.get("wgan_gp", weight=weight), {"grads": g}, ref)


def test_wgan_gp_bad_weight_is_named():
    with pytest.raises(ValueError, match=r"^wgan_gp: parameter 'weight' must be a real number >= 0"):
        pl.get("wgan_gp", weight=-1.0)


# --------------------------------------------------------------------------
# Wasserstein-1


def test_wasserstein_1d_matches_scipy_and_torch():
    stats = pytest.importorskip("scipy.stats")
    u, v = RNG.normal(size=9), RNG.normal(1.0, 2.0, size=9)
    loss = pl.get("wasserstein_1d")
    _close(loss.value(u, v), stats.wasserstein_distance(u, v))

    def ref(torch, u, v):
        return (torch.sort(u, stable=True).values - torch.sort(v, stable=True).values).abs().mean()

    _torch_check(loss, {"u": u, "v": v}, ref)


def test_wasserstein_1d_ties_follow_the_stable_sort_as_torch_does():
    stats = pytest.importorskip("scipy.stats")
    u = np.array([1.0, 0.0, 1.0, 1.0, 2.0])
    v = np.array([0.5, 1.0, 3.0, 1.0, 0.0])  # ties in both, and a pair at distance 0
    loss = pl.get("wasserstein_1d")
    _close(loss.value(u, v), stats.wasserstein_distance(u, v))

    def ref(torch, u, v):
        return (torch.sort(u, stable=True).values - torch.sort(v, stable=True).values).abs().mean()

    _torch_check(loss, {"u": u, "v": v}, ref)
    gu, gv = loss.grad(u, v)
    # u's three equal ones rank 1, 2, 3 in index order: paired with v's 0.5, 1, 1.
    np.testing.assert_array_equal(5 * gu, [1.0, 0.0, 0.0, 0.0, -1.0])
    np.testing.assert_array_equal(5 * gv, [-1.0, 0.0, 1.0, 0.0, 0.0])


def test_wasserstein_1d_refuses_samples_of_different_sizes_by_name():
    with pytest.raises(ValueError, match=r"^wasserstein_1d: argument 'v' must have shape \(N\)"):
        pl.get("wasserstein_1d").value(np.zeros(3), np.zeros(4))


@pytest.mark.parametrize("dx", [1.0, 0.25])
def test_wasserstein_hist_matches_scipy_on_the_grid_and_torch(dx):
    stats = pytest.importorskip("scipy.stats")
    p, q = RNG.dirichlet(np.ones(7), size=3), RNG.dirichlet(np.ones(7), size=3)
    grid = dx * np.arange(7)
    loss = pl.get("wasserstein_hist", dx=dx, reduction="none")
    want = [stats.wasserstein_distance(grid, grid, p[i], q[i]) for i in range(3)]
    _close(loss.value(p, q), want)

    def ref(torch, p, q):
        return dx * (torch.cumsum(p, -1) - torch.cumsum(q, -1))[:, :-1].abs().sum(-1).mean()

    _torch_check(pl.get("wasserstein_hist", dx=dx), {"p": p, "q": q}, ref)


def test_wasserstein_of_samples_and_of_their_histograms_agree():
    u, v = np.array([0.0, 0.0, 2.0, 3.0]), np.array([1.0, 3.0, 3.0, 3.0])
    p, q = np.bincount(u.astype(int), minlength=4) / 4, np.bincount(v.astype(int), minlength=4) / 4
    _close(pl.get("wasserstein_hist").value(p, q), pl.get("wasserstein_1d").value(u, v))


def test_wasserstein_hist_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"^wasserstein_hist: argument 'q' must be finite and >= 0"):
        pl.get("wasserstein_hist").value(np.full(3, 1 / 3), np.array([0.5, 0.6, -0.1]))
    with pytest.raises(ValueError, match=r"^wasserstein_hist: parameter 'dx' must be a real number > 0"):
        pl.get("wasserstein_hist", dx=0.0)


# --------------------------------------------------------------------------
# Worked example


def test_docs_worked_training_step_runs():
    result = doctest.testfile(str(DOCS / "generative.md"), module_relative=False,
                              optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
