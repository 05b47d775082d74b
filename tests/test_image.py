"""Image losses: what the generic contract tests cannot see. SSIM against
scikit-image, gradients against PyTorch autograd (float64, 1e-10 relative),
the separable filter's adjoint, the NumPy plane blocks against the
generic kernel, the style loss's normalisations, the worked VJP example of
docs/image.md, and the error messages. (Finite differences, dtypes,
namespaces, lazy backends and domain edges are covered for every loss by
tests/test_contract.py and tests/test_backends.py.)
"""

import doctest
import pathlib

import numpy as np
import pytest

import ptyloss_xp as pl
from ptyloss_xp.losses import _filters, _numpy_blocks

from conftest import BACKENDS

RNG = np.random.default_rng(20241206)
X = RNG.uniform(size=(3, 2, 21, 18))
Y = np.clip(X + 0.15 * RNG.normal(size=X.shape), 0.0, 1.0)
DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"

SSIM_CASES = [
    {},
    {"sigma": 0.8},
    {"sigma": 2.0, "data_range": 2.0},
    {"k1": 0.05, "k2": 0.1, "data_range": 0.5},
]


@pytest.mark.parametrize("params", SSIM_CASES, ids=str)
def test_ssim_matches_scikit_image(params):
    metrics = pytest.importorskip("skimage.metrics")
    loss = pl.get("ssim", **params, reduction="none")
    sigma = params.get("sigma", 1.5)
    data_range = params.get("data_range", 1.0)
    x, y = X * data_range, Y * data_range
    want = np.array([
        1.0 - metrics.structural_similarity(
            xi, yi, data_range=data_range, gaussian_weights=True, sigma=sigma,
            use_sample_covariance=False, channel_axis=0,
            K1=params.get("k1", 0.01), K2=params.get("k2", 0.03))
        for xi, yi in zip(x, y)])
    np.testing.assert_allclose(loss.value(x, y), want, rtol=1e-10, atol=0)
    for reduction, total in (("mean", want.mean()), ("sum", want.sum())):
        got = pl.get("ssim", **params, reduction=reduction).value(x, y)
        np.testing.assert_allclose(got, total, rtol=1e-10, atol=0)


def _torch_ssim(torch, x, y, window, c1, c2, reduction):
    conv2d = torch.nn.functional.conv2d
    c = x.shape[1]
    w = torch.tensor(window, dtype=torch.float64)

    def blur(z):
        z = conv2d(z, w.reshape(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
        return conv2d(z, w.reshape(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)

    mu_x, mu_y = blur(x), blur(y)
    s_xx, s_yy, s_xy = (blur(x * x) - mu_x**2, blur(y * y) - mu_y**2,
                        blur(x * y) - mu_x * mu_y)
    s_map = ((2 * mu_x * mu_y + c1) * (2 * s_xy + c2)
             / ((mu_x**2 + mu_y**2 + c1) * (s_xx + s_yy + c2)))
    per_sample = 1 - s_map.mean(dim=(1, 2, 3))
    return {"mean": per_sample.mean(), "sum": per_sample.sum(), "none": per_sample}[reduction]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("params", SSIM_CASES, ids=str)
def test_ssim_gradients_match_torch_autograd(params, reduction):
    torch = pytest.importorskip("torch")
    loss = pl.get("ssim", **params, grad_target=True, reduction=reduction)
    xt = torch.tensor(X, requires_grad=True)
    yt = torch.tensor(Y, requires_grad=True)
    c1 = (loss.k1 * loss.data_range) ** 2
    c2 = (loss.k2 * loss.data_range) ** 2
    ref = _torch_ssim(torch, xt, yt, _filters.gaussian_window(loss.sigma), c1, c2, reduction)
    ref.sum().backward()
    v, (gx, gy) = loss.value_and_grad(X, Y)
    np.testing.assert_allclose(v, ref.detach().numpy(), rtol=1e-10, atol=0)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-10, atol=1e-10 * np.abs(gx).max())
    np.testing.assert_allclose(gy, yt.grad.numpy(), rtol=1e-10, atol=1e-10 * np.abs(gy).max())
    # the gradient with respect to the first image alone is the same array
    np.testing.assert_array_equal(pl.get("ssim", **params, reduction=reduction).grad(X, Y), gx)


def test_ssim_is_zero_on_equal_images_and_symmetric():
    loss = pl.get("ssim", grad_target=True)
    v, (gx, gy) = loss.value_and_grad(X, X)
    assert v == 0.0
    np.testing.assert_allclose(gx, 0.0, atol=1e-12)
    np.testing.assert_allclose(gy, 0.0, atol=1e-12)
    np.testing.assert_allclose(loss.value(X, Y), loss.value(Y, X), rtol=1e-14)
    gxy, gyx = loss.grad(X, Y), loss.grad(Y, X)
    np.testing.assert_allclose(gxy[0], gyx[1], rtol=1e-12, atol=1e-16)


def test_gaussian_window_is_scipys_ssim_window():
    ndimage = pytest.importorskip("scipy.ndimage")
    for sigma in (0.5, 1.5, 2.3):
        w = _filters.gaussian_window(sigma)
        r = len(w) // 2
        assert r == int(3.5 * sigma + 0.5)
        want = ndimage.gaussian_filter(X, sigma, axes=(-2, -1), truncate=3.5,
                                       mode="reflect")[..., r:-r, r:-r]
        np.testing.assert_allclose(_filters.filter_valid(np, X, w), want, rtol=1e-13)


@pytest.mark.parametrize("sigma", [0.5, 1.5])
def test_filter_adjoint_is_the_transpose(sigma):
    w = _filters.gaussian_window(sigma)
    g = RNG.normal(size=X.shape[:2] + (X.shape[2] - len(w) + 1, X.shape[3] - len(w) + 1))
    adj = _filters.filter_valid_adjoint(np, g, w)
    assert adj.shape == X.shape
    lhs = np.sum(_filters.filter_valid(np, X, w) * g)
    rhs = np.sum(X * adj)
    assert abs(lhs - rhs) <= 1e-13 * np.sum(np.abs(X)) * np.abs(g).max()
    # the adjoint of a unit impulse is the window, placed where it came from
    e = np.zeros_like(g)
    e[0, 0, 2, 3] = 1.0
    window2d = np.outer(w, w)
    want = np.zeros(X.shape)
    want[0, 0, 2:2 + len(w), 3:3 + len(w)] = window2d
    np.testing.assert_allclose(_filters.filter_valid_adjoint(np, e, w), want, atol=1e-17)


@pytest.mark.parametrize("planes_per_block", [1, 4])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_ssim_by_plane_blocks_equals_the_generic_kernel(monkeypatch, planes_per_block,
                                                       reduction):
    strict = BACKENDS["array_api_strict"]
    if strict is None:
        pytest.skip("array_api_strict not available")
    monkeypatch.setattr(_numpy_blocks, "_BLOCK_BYTES", planes_per_block * 21 * 18 * 8)
    loss = pl.get("ssim", grad_target=True, reduction=reduction)
    v, (gx, gy) = loss.value_and_grad(X, Y)            # 6 planes: blocks of 1, or 4 + 2
    v0, (gx0, gy0) = loss.value_and_grad(strict.asarray(X), strict.asarray(Y))
    np.testing.assert_allclose(v, np.asarray(v0), rtol=1e-13)
    np.testing.assert_allclose(gx, np.asarray(gx0), rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(gy, np.asarray(gy0), rtol=1e-12, atol=1e-16)


def test_perceptual_and_style_match_torch_autograd():
    torch = pytest.importorskip("torch")
    feats = RNG.normal(size=(3, 4, 5, 6))
    ref_feats = RNG.normal(size=(3, 4, 5, 6))
    for weight, reduction in ((1.0, "mean"), (0.3, "sum"), (2.0, "none")):
        ft = torch.tensor(feats, requires_grad=True)
        rt = torch.tensor(ref_feats)
        per = weight * ((ft - rt) ** 2).mean(dim=(1, 2, 3))
        want = {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
        want.sum().backward()
        v, g = pl.get("perceptual", weight=weight, reduction=reduction).value_and_grad(
            feats, ref_feats)
        np.testing.assert_allclose(v, want.detach().numpy(), rtol=1e-10)
        np.testing.assert_allclose(g, ft.grad.numpy(), rtol=1e-10)

        ft = torch.tensor(feats, requires_grad=True)
        f, fr = ft.reshape(3, 4, -1), rt.reshape(3, 4, -1)
        gram, gram_ref = f @ f.transpose(1, 2), fr @ fr.transpose(1, 2)
        per = weight * ((gram - gram_ref) ** 2).sum(dim=(1, 2)) / (4 * 4**2 * 30**2)
        want = {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
        want.sum().backward()
        v, g = pl.get("style", weight=weight, reduction=reduction).value_and_grad(
            feats, ref_feats)
        np.testing.assert_allclose(v, want.detach().numpy(), rtol=1e-10)
        np.testing.assert_allclose(g, ft.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_style_weight_four_is_johnsons_normalisation():
    feats, ref_feats = RNG.normal(size=(2, 3, 4, 4)), RNG.normal(size=(2, 3, 4, 4))
    c, m = 3, 16
    johnson = [np.sum((f.reshape(c, m) @ f.reshape(c, m).T / (c * m)
                       - r.reshape(c, m) @ r.reshape(c, m).T / (c * m)) ** 2)
               for f, r in zip(feats, ref_feats)]
    got = pl.get("style", weight=4.0, reduction="none").value(feats, ref_feats)
    np.testing.assert_allclose(got, johnson, rtol=1e-12)


def test_docs_page_examples_run():
    pytest.importorskip("skimage.metrics")   # the page compares with scikit-image
    result = doctest.testfile(str(DOCS / "image.md"), module_relative=False,
                              optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


BAD_INPUT = [
    ("ssim", {}, {"input": np.ones((1, 1, 10, 20)), "target": np.ones((1, 1, 10, 20))},
     ValueError, r"^ssim: dimension H \(of input, target\) must have size >= 11, got 10"),
    ("ssim", {"sigma": 0.5}, {"input": np.ones((1, 1, 9, 4)), "target": np.ones((1, 1, 9, 4))},
     ValueError, r"^ssim: dimension W \(of input, target\) must have size >= 5, got 4"),
    ("ssim", {}, {"input": np.ones((16, 16)), "target": np.ones((16, 16))},
     ValueError, r"^ssim: argument 'input' must have shape \(N, C, H, W\), got \(16, 16\)"),
    ("ssim", {}, {"input": np.ones((1, 1, 12, 12)), "target": np.ones((1, 2, 12, 12))},
     ValueError, r"^ssim: argument 'target' must have shape .*dimension C is 1"),
    ("ssim", {}, {"input": np.full((1, 1, 12, 12), np.nan), "target": np.ones((1, 1, 12, 12))},
     ValueError, r"^ssim: argument 'input' must be finite"),
    ("ssim", {}, {"input": np.ones((1, 1, 12, 12), np.float16),
                  "target": np.ones((1, 1, 12, 12), np.float16)},
     TypeError, r"^ssim: argument 'input' must have dtype float32 or float64"),
    ("perceptual", {}, {"input": np.ones((2, 3)), "target": np.ones((2, 4))},
     ValueError, r"^perceptual: argument 'target' must have shape"),
    ("style", {}, {"input": np.ones((2,)), "target": np.ones((2,))},
     ValueError, r"^style: argument 'input' must have shape \(N, C, \*\), got \(2,\)"),
]


@pytest.mark.parametrize(("name", "params", "arrays", "exc", "match"), BAD_INPUT,
                         ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD_INPUT)])
def test_bad_input_is_a_clear_error(name, params, arrays, exc, match):
    with pytest.raises(exc, match=match):
        pl.get(name, **params).value_and_grad(**arrays)


BAD_PARAMS = [
    ("ssim", {"data_range": 0.0}, ValueError, r"^ssim: parameter 'data_range' must be .* > 0"),
    ("ssim", {"sigma": -1.0}, ValueError, r"^ssim: parameter 'sigma' must be .* > 0"),
    ("ssim", {"k2": 0.0}, ValueError, r"^ssim: parameter 'k2'"),
    ("ssim", {"grad_target": 1}, TypeError, r"^ssim: parameter 'grad_target' must be a bool"),
    ("style", {"weight": -1.0}, ValueError, r"^style: parameter 'weight' must be .* >= 0"),
]


@pytest.mark.parametrize(("name", "params", "exc", "match"), BAD_PARAMS,
                         ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD_PARAMS)])
def test_bad_parameter_is_a_clear_error(name, params, exc, match):
    with pytest.raises(exc, match=match):
        pl.get(name, **params)
