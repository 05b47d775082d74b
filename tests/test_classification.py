"""Classification losses: what the generic contract tests cannot see.

Values against independent float64 formulas and published numbers, the
PyTorch conventions (ignore_index, weight normalisation, label smoothing,
the BCE clamp, MultiMargin against Crammer-Singer), stability at logits of
+-1e4, and the error messages. (Gradients, dtypes, namespaces and domain
edges are covered for every loss by tests/test_contract.py.)
"""

import numpy as np
import pytest
from scipy import special

import ptyloss_xp as pl

RNG = np.random.default_rng(7)
N, C = 6, 4
LOGITS = RNG.normal(size=(N, C)) * 2.0
LABELS = np.array([0, 3, -100, 1, 2, 3])
VALID = LABELS != -100
WEIGHT = np.array([0.5, 2.0, 1.0, 3.0])
SOFT = RNG.dirichlet(np.ones(C), size=N)
PROBS = RNG.uniform(0.02, 0.98, size=(3, 5))
BINARY = RNG.integers(0, 2, size=(3, 5)).astype(float)
SIGNS = 2.0 * BINARY - 1.0
X = RNG.normal(size=(3, 5)) * 2.0


def _reduce(per, reduction, denominator):
    return {"none": per, "sum": per.sum(), "mean": per.sum() / denominator}[reduction]


def _torch_ce(x, y, weight=None, eps=0.0, reduction="mean", ignore=-100):
    """PyTorch's CrossEntropyLoss with class indices, written out per sample."""
    n, c = x.shape
    w = np.ones(c) if weight is None else np.asarray(weight)
    logp = special.log_softmax(x, axis=1)
    per = np.zeros(n)
    denominator = 0.0
    for i in range(n):
        if y[i] == ignore:
            continue
        per[i] = (1 - eps) * w[y[i]] * -logp[i, y[i]] + eps / c * np.sum(w * -logp[i])
        denominator += w[y[i]]
    return _reduce(per, reduction, denominator)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(("weight", "eps"), [(None, 0.0), (WEIGHT, 0.0), (None, 0.3), (WEIGHT, 0.3)])
def test_cross_entropy_matches_torch_conventions(weight, eps, reduction):
    loss = pl.get("cross_entropy", weight=weight, label_smoothing=eps, reduction=reduction)
    want = _torch_ce(LOGITS, LABELS, weight, eps, reduction)
    np.testing.assert_allclose(loss.value(LOGITS, LABELS), want, rtol=1e-13)


def test_cross_entropy_mean_divides_by_the_weights_of_counted_labels():
    # One counted sample of class 1 (weight 2): the mean is its plain loss.
    x, y = LOGITS[:2], np.array([1, -100])
    weighted = pl.get("cross_entropy", weight=WEIGHT).value(x, y)
    plain = -special.log_softmax(x[0])[1]
    np.testing.assert_allclose(weighted, plain, rtol=1e-14)
    summed = pl.get("cross_entropy", weight=WEIGHT, reduction="sum").value(x, y)
    np.testing.assert_allclose(summed, 2.0 * plain, rtol=1e-14)


def test_ignore_index_inside_the_class_range_drops_that_class():
    y = np.array([0, 1, 0, 2, 3, 0])
    got = pl.get("cross_entropy", ignore_index=0, reduction="none").value(LOGITS, y)
    want = _torch_ce(LOGITS, y, reduction="none", ignore=0)
    np.testing.assert_allclose(got, want, rtol=1e-14)
    assert np.all(got[y == 0] == 0)
    g = pl.get("cross_entropy", ignore_index=0).grad(LOGITS, y)
    assert np.all(g[y == 0] == 0)


def test_cross_entropy_gradient_and_hessian_in_closed_form():
    loss = pl.get("cross_entropy", reduction="sum")
    p = special.softmax(LOGITS, axis=1)
    onehot = (LABELS[:, None] == np.arange(C)) & VALID[:, None]
    g, h = loss.gradient_hessian(LOGITS, LABELS)
    np.testing.assert_allclose(g, (p - onehot) * VALID[:, None], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(h, p * (1 - p) * VALID[:, None], rtol=1e-12, atol=1e-15)
    g_mean, h_mean = pl.get("cross_entropy").gradient_hessian(LOGITS, LABELS)
    np.testing.assert_allclose(g_mean, g / VALID.sum(), rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(h_mean, h / VALID.sum(), rtol=1e-12, atol=1e-16)


def test_cross_entropy_spatial_inputs_equal_flattened_rows():
    x = RNG.normal(size=(2, 3, 4, 5))
    y = RNG.integers(0, 3, size=(2, 4, 5))
    y[0, 0, 0] = -100
    flat_x = np.moveaxis(x, 1, -1).reshape(-1, 3)
    loss = pl.get("cross_entropy", weight=[1.0, 2.0, 0.5], label_smoothing=0.1)
    np.testing.assert_allclose(loss.value(x, y),
                               _torch_ce(flat_x, y.reshape(-1), [1.0, 2.0, 0.5], 0.1),
                               rtol=1e-13)
    per = pl.get("cross_entropy", reduction="none").value(x, y)
    assert per.shape == (2, 4, 5)


def test_softmax_loss_is_cross_entropy():
    for kw in ({}, {"weight": WEIGHT, "label_smoothing": 0.2}):
        a = pl.get("softmax_loss", **kw).value_and_grad(LOGITS, LABELS)
        b = pl.get("cross_entropy", **kw).value_and_grad(LOGITS, LABELS)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_soft_cross_entropy_matches_formula_and_divides_by_rows_not_weights():
    eps = 0.2
    smoothed = (1 - eps) * SOFT + eps / C
    per = -np.sum(WEIGHT * smoothed * special.log_softmax(LOGITS, axis=1), axis=1)
    loss = pl.get("soft_cross_entropy", weight=WEIGHT, label_smoothing=eps)
    np.testing.assert_allclose(loss.value(LOGITS, SOFT), per.mean(), rtol=1e-13)
    # One-hot probabilities: the class-index loss without weights, but a
    # different mean with weights (PyTorch's two normalisations).
    y = np.array([0, 3, 1, 1, 2, 0])
    onehot = (y[:, None] == np.arange(C)).astype(float)
    np.testing.assert_allclose(pl.get("soft_cross_entropy").value(LOGITS, onehot),
                               pl.get("cross_entropy").value(LOGITS, y), rtol=1e-14)
    soft_w = pl.get("soft_cross_entropy", weight=WEIGHT).value(LOGITS, onehot)
    hard_w = pl.get("cross_entropy", weight=WEIGHT).value(LOGITS, y)
    np.testing.assert_allclose(soft_w * N / WEIGHT[y].sum(), hard_w, rtol=1e-13)


def test_nll_of_log_softmax_is_cross_entropy():
    lp = special.log_softmax(LOGITS, axis=1)
    for kw in ({}, {"weight": WEIGHT}, {"weight": WEIGHT, "reduction": "none"}):
        np.testing.assert_allclose(pl.get("nll", **kw).value(lp, LABELS),
                                   pl.get("cross_entropy", **kw).value(LOGITS, LABELS),
                                   rtol=1e-13)
    per = pl.get("nll", weight=WEIGHT, reduction="none").value(lp, LABELS)
    safe = np.where(VALID, LABELS, 0)
    want = np.where(VALID, -WEIGHT[safe] * lp[np.arange(N), safe], 0.0)
    np.testing.assert_allclose(per, want, rtol=1e-14)


def test_perplexity_is_exp_of_mean_nll_and_of_uniform_is_c():
    lp = special.log_softmax(LOGITS, axis=1)
    v, g = pl.get("perplexity").value_and_grad(lp, LABELS)
    nll = pl.get("nll").value(lp, LABELS)
    np.testing.assert_allclose(v, np.exp(nll), rtol=1e-14)
    np.testing.assert_allclose(g, np.exp(nll) * pl.get("nll").grad(lp, LABELS), rtol=1e-14)
    tokens = np.log(np.full((2, 7, 3), 1 / 7))  # (N, C, T) log-probabilities
    np.testing.assert_allclose(pl.get("perplexity").value(tokens, np.zeros((2, 3), int)), 7.0,
                               rtol=1e-14)


def _keras_cce(p, y, eps=1e-7, smoothing=0.0):
    q = np.clip(p / p.sum(-1, keepdims=True), eps, 1 - eps)
    y = (1 - smoothing) * y + smoothing / p.shape[-1]
    return -np.sum(y * np.log(q), axis=-1)


def test_categorical_cross_entropy_is_keras_clipped_normalised_form():
    p = RNG.uniform(0.0, 1.0, size=(2, 3, 4))
    p[0, 0] = [0.0, 1.0, 0.0, 0.0]  # exact 0 and 1 stay finite
    y = RNG.dirichlet(np.ones(4), size=(2, 3))
    loss = pl.get("categorical_cross_entropy", label_smoothing=0.1, reduction="none")
    np.testing.assert_allclose(loss.value(p, y), _keras_cce(p, y, smoothing=0.1), rtol=1e-13)
    # Seed formula -sum y log yhat on normalised rows inside the clip range.
    s = SOFT / SOFT.sum(1, keepdims=True)
    np.testing.assert_allclose(pl.get("categorical_cross_entropy").value(s, SOFT),
                               np.mean(-np.sum(SOFT * np.log(s), axis=1)), rtol=1e-13)
    # The row normalisation makes it blind to the scale of a row.
    v, g = pl.get("categorical_cross_entropy").value_and_grad(0.5 * s, SOFT)
    np.testing.assert_allclose(v, pl.get("categorical_cross_entropy").value(s, SOFT), rtol=1e-14)
    np.testing.assert_allclose(np.sum(g * s, axis=1), 0.0, atol=1e-14)


def test_categorical_cross_entropy_of_one_class_is_the_clip_constant():
    v, g = pl.get("categorical_cross_entropy").value_and_grad(np.array([[1.0], [0.3]]),
                                                               np.ones((2, 1)))
    np.testing.assert_allclose(v, -np.log1p(-1e-7), rtol=1e-9)
    assert np.all(g == 0)


def test_binary_cross_entropy_matches_formula_and_torch_clamp():
    want = -(BINARY * np.log(PROBS) + (1 - BINARY) * np.log1p(-PROBS))
    loss = pl.get("binary_cross_entropy", reduction="none")
    np.testing.assert_allclose(loss.value(PROBS, BINARY), want, rtol=1e-13)
    x = np.array([0.0, 1.0, 1e-50, 0.0, 1.0, 0.3])
    y = np.array([1.0, 0.0, 1.0, 0.0, 1.0, 0.5])
    v, g = loss.value_and_grad(x, y)
    np.testing.assert_allclose(v[:3], 100.0, rtol=1e-15)  # log clamped at -100
    assert v[3] == 0 and v[4] == 0
    # PyTorch's gradient: (x - y) / max(x (1 - x), 1e-12).
    np.testing.assert_allclose(g, (x - y) / np.maximum(x * (1 - x), 1e-12), rtol=1e-15)
    _, h = loss.gradient_hessian(x, y)
    assert np.all(np.isfinite(h))
    np.testing.assert_allclose(h[:5], 1e12)
    np.testing.assert_allclose(h[5], 0.5 / 0.09 + 0.5 / 0.49, rtol=1e-14)


def test_bce_with_logits_matches_formula_and_bce_of_sigmoid():
    pw = np.array([0.5, 1.0, 2.0, 3.0, 4.0])
    sig = special.expit(X)
    want = -(pw * BINARY * np.log(sig) + (1 - BINARY) * np.log(1 - sig))
    loss = pl.get("binary_cross_entropy_with_logits", pos_weight=pw, reduction="none")
    np.testing.assert_allclose(loss.value(X, BINARY), want, rtol=1e-12)
    soft = RNG.uniform(0, 1, size=X.shape)
    np.testing.assert_allclose(
        pl.get("binary_cross_entropy_with_logits").value_and_grad(X, soft)[1],
        (sig - soft) / X.size, rtol=1e-12)
    np.testing.assert_allclose(pl.get("binary_cross_entropy_with_logits").value(X, soft),
                               pl.get("binary_cross_entropy").value(sig, soft), rtol=1e-12)


def test_pos_weight_must_match_the_last_axis():
    loss = pl.get("binary_cross_entropy_with_logits", pos_weight=[1.0, 2.0])
    with pytest.raises(ValueError, match="'pos_weight' has 2 entries.*last dimension.*5"):
        loss.value(X, BINARY)


def _multi_margin(x, y, p=1, margin=1.0, weight=None):
    n, c = x.shape
    w = np.ones(c) if weight is None else np.asarray(weight)
    per = np.zeros(n)
    for i in range(n):
        for j in range(c):
            if j != y[i]:
                per[i] += w[y[i]] * max(0.0, margin - x[i, y[i]] + x[i, j]) ** p
    return per / c


def test_multi_margin_matches_torch_kernel():
    y = np.where(VALID, LABELS, 1)
    for kw in ({}, {"p": 2, "margin": 0.7}, {"p": 2, "weight": WEIGHT}):
        got = pl.get("multi_margin", reduction="none", **kw).value(LOGITS, y)
        np.testing.assert_allclose(got, _multi_margin(LOGITS, y, **kw), rtol=1e-13)
    # The weight multiplies after the power (PyTorch's kernel), not inside it.
    one = pl.get("multi_margin", p=2, weight=[1.0, 2.0]).value(np.array([[0.0, 0.0]]), np.array([1]))
    np.testing.assert_allclose(one, 2.0 * 1.0 / 2, rtol=1e-15)


def test_crammer_singer_takes_the_max_where_multi_margin_sums():
    y = np.where(VALID, LABELS, 1)
    x = LOGITS
    onehot = y[:, None] == np.arange(C)
    # optax's multiclass_hinge_loss form: max_j (x_j + 1 - [j = y]) - x_y.
    want = np.max(x + 1.0 - onehot, axis=1) - x[np.arange(N), y]
    got = pl.get("crammer_singer", reduction="none").value(x, y)
    np.testing.assert_allclose(got, want, rtol=1e-13)
    two_violations = np.array([[0.0, 0.5, 0.9]])
    lab = np.array([0])
    cs = pl.get("crammer_singer").value_and_grad(two_violations, lab)
    mm = pl.get("multi_margin").value_and_grad(two_violations, lab)
    np.testing.assert_allclose(cs[0], 1.9, rtol=1e-15)
    np.testing.assert_allclose(mm[0], (1.5 + 1.9) / 3, rtol=1e-15)
    np.testing.assert_allclose(cs[1], [[-1.0, 0.0, 1.0]])
    np.testing.assert_allclose(mm[1], [[-2 / 3, 1 / 3, 1 / 3]])


def test_one_class_margins_are_zero():
    x, y = np.array([[3.0], [-2.0]]), np.array([0, 0])
    for name in ("crammer_singer", "multi_margin"):
        v, g = pl.get(name).value_and_grad(x, y)
        assert v == 0 and np.all(g == 0), name


def test_hinge_and_exponential_match_formulas():
    v, g = pl.get("hinge", reduction="none").value_and_grad(X, SIGNS)
    np.testing.assert_allclose(v, np.maximum(0, 1 - SIGNS * X), rtol=1e-15)
    np.testing.assert_allclose(g, np.where(SIGNS * X < 1, -SIGNS, 0.0))
    v, g = pl.get("exponential").value_and_grad(X, SIGNS)
    np.testing.assert_allclose(v, np.mean(np.exp(-SIGNS * X)), rtol=1e-14)
    np.testing.assert_allclose(g, -SIGNS * np.exp(-SIGNS * X) / X.size, rtol=1e-14)


def _torchvision_focal(x, t, alpha, gamma):
    p = special.expit(x)
    ce = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * t + (1 - alpha) * (1 - t))
    return loss


@pytest.mark.parametrize(("alpha", "gamma"), [(0.25, 2.0), (-1.0, 0.5), (0.6, 3.0)])
def test_sigmoid_focal_matches_torchvision(alpha, gamma):
    soft = RNG.uniform(0, 1, size=X.shape)
    for t in (BINARY, soft):
        got = pl.get("sigmoid_focal", alpha=alpha, gamma=gamma).value(X, t)
        np.testing.assert_allclose(got, _torchvision_focal(X, t, alpha, gamma), rtol=1e-12)


def test_sigmoid_focal_without_focus_or_alpha_is_bce_with_logits():
    a = pl.get("sigmoid_focal", alpha=-1.0, gamma=0.0, reduction="mean").value_and_grad(X, BINARY)
    b = pl.get("binary_cross_entropy_with_logits").value_and_grad(X, BINARY)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-14)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-14)


def test_softmax_focal_matches_formula_and_reduces_to_cross_entropy():
    alpha = np.array([0.25, 0.5, 1.0, 2.0])
    p = special.softmax(LOGITS, axis=1)
    safe = np.where(VALID, LABELS, 0)
    p_y = p[np.arange(N), safe]
    want = np.where(VALID, -alpha[safe] * (1 - p_y) ** 1.5 * np.log(p_y), 0.0)
    got = pl.get("softmax_focal", gamma=1.5, alpha=alpha, reduction="none").value(LOGITS, LABELS)
    np.testing.assert_allclose(got, want, rtol=1e-13)
    mean = pl.get("softmax_focal", gamma=1.5, alpha=alpha).value(LOGITS, LABELS)
    np.testing.assert_allclose(mean, want.sum() / VALID.sum(), rtol=1e-13)
    a = pl.get("softmax_focal", gamma=0.0).value_and_grad(LOGITS, LABELS)
    b = pl.get("cross_entropy").value_and_grad(LOGITS, LABELS)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-13)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-12, atol=1e-16)


# --------------------------------------------------------------------------
# Stability at huge logits

BIG = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]])
BIG_LABELS = np.array([1, 0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_family_at_logits_of_1e4(dtype):
    x = BIG.astype(dtype)
    v, g = pl.get("cross_entropy", reduction="none").value_and_grad(x, BIG_LABELS)
    np.testing.assert_allclose(v, [2e4, 2e4 + np.log(2)], rtol=1e-6)
    np.testing.assert_allclose(g, [[1.0, -1.0, 0.0], [-1.0, 0.5, 0.5]], atol=1e-6)
    _, h = pl.get("cross_entropy").gradient_hessian(x, BIG_LABELS)
    assert np.all(np.isfinite(h))
    onehot = (BIG_LABELS[:, None] == np.arange(3)).astype(dtype)
    for name, target in [("soft_cross_entropy", onehot), ("softmax_focal", BIG_LABELS),
                         ("crammer_singer", BIG_LABELS), ("multi_margin", BIG_LABELS)]:
        v, g = pl.get(name).value_and_grad(x, target)
        assert v.dtype == dtype and g.dtype == dtype, name
        assert np.isfinite(v) and np.all(np.isfinite(g)), name
    # A confident right answer has zero focal loss and gradient.
    v, g = pl.get("softmax_focal").value_and_grad(x[1:, :2], np.array([1]))
    assert v == 0 and np.all(g == 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_logistic_losses_at_logits_of_1e4(dtype):
    x = np.array([1e4, -1e4, 1e4, -1e4], dtype=dtype)
    y = np.array([0.0, 0.0, 1.0, 1.0], dtype=dtype)
    loss = pl.get("binary_cross_entropy_with_logits", reduction="none", pos_weight=2.0)
    v, g = loss.value_and_grad(x, y)
    np.testing.assert_allclose(v, [1e4, 0.0, 0.0, 2e4], rtol=1e-6)
    np.testing.assert_allclose(g, [1.0, 0.0, 0.0, -2.0], rtol=1e-6)
    for name in ("binary_cross_entropy_with_logits", "sigmoid_focal"):
        for gamma_kw in ({}, {"gamma": 0.5}) if name == "sigmoid_focal" else ({},):
            g, h = pl.get(name, **gamma_kw).gradient_hessian(x, y)
            assert np.all(np.isfinite(g)) and np.all(np.isfinite(h)), name
    v, g = pl.get("sigmoid_focal", alpha=-1.0, gamma=2.0).value_and_grad(x, y)
    np.testing.assert_allclose(v, [1e4, 0.0, 0.0, 1e4], rtol=1e-6)
    np.testing.assert_allclose(g, [1.0, 0.0, 0.0, -1.0], rtol=1e-6)


# --------------------------------------------------------------------------
# Errors


def test_all_ignored_batch_is_refused_for_the_mean_only():
    y = np.full(N, -100)
    for name, x in (("cross_entropy", LOGITS), ("nll", LOGITS), ("softmax_focal", LOGITS),
                    ("perplexity", -np.abs(LOGITS))):
        with pytest.raises(ValueError, match=rf"^{name}: argument 'target' must hold at least one"):
            pl.get(name).value(x, y)
    assert pl.get("cross_entropy", reduction="sum").value(LOGITS, y) == 0
    with pytest.raises(ValueError, match="class with weight > 0"):
        pl.get("cross_entropy", weight=[0.0, 1.0, 1.0, 1.0]).value(LOGITS, np.zeros(N, int))
    with pl.check_values(False), np.errstate(all="ignore"):  # as PyTorch: 0 / 0
        assert np.isnan(pl.get("cross_entropy").value(LOGITS, y))


def test_bad_inputs_are_named():
    ce = pl.get("cross_entropy")
    with pytest.raises(ValueError, match="'target' must have shape.*dimension N"):
        ce.value(LOGITS, LABELS[:-1])
    with pytest.raises(ValueError, match=r"'target' must hold values in \[0, 4\) or equal ignore_index"):
        ce.value(LOGITS, np.array([0, 1, 2, 3, 4, 0]))
    with pytest.raises(ValueError, match=r"must hold values in \[0, 4\)"):
        ce.value(LOGITS, np.array([0, 1, 2, 3, -1, 0]))
    with pytest.raises(TypeError, match="'target' must have an integer dtype"):
        ce.value(LOGITS, LABELS.astype(float))
    with pytest.raises(ValueError, match="'weight' has 3 entries but 'input' has C = 4"):
        pl.get("cross_entropy", weight=[1.0, 2.0, 3.0]).value(LOGITS, LABELS)
    with pytest.raises(ValueError, match="'input' must be finite and >= 0 and <= 1"):
        pl.get("binary_cross_entropy").value(PROBS + 0.5, BINARY)
    with pytest.raises(ValueError, match="'target' must be finite and >= 0 and <= 1"):
        pl.get("binary_cross_entropy_with_logits").value(X, BINARY * 2)
    with pytest.raises(ValueError, match="'target' must hold values in"):
        pl.get("hinge").value(X, BINARY)
    with pytest.raises(ValueError, match="'input' must be finite and <= 0"):
        pl.get("perplexity").value(LOGITS, np.zeros(N, int))
    with pytest.raises(ValueError, match="mean negative log-likelihood above 80"):
        pl.get("perplexity").value(np.full((2, 3), -200.0), np.zeros(2, int))
    with pytest.raises(ValueError, match="'input' must have rows with a positive sum"):
        pl.get("categorical_cross_entropy").value(np.zeros((2, 3)), np.full((2, 3), 1 / 3))
    with pytest.raises(ValueError, match="'input' must be finite and >= -80 and <= 80"):
        pl.get("exponential").value(np.array([100.0]), np.array([1.0]))


@pytest.mark.parametrize(("name", "params", "match"), [
    ("cross_entropy", {"label_smoothing": 1.5}, "'label_smoothing' must be a real number >= 0 and <= 1"),
    ("cross_entropy", {"weight": [1.0, -1.0]}, "'weight' must be a 1-D array-like of finite floats >= 0"),
    ("cross_entropy", {"weight": [[1.0, 2.0]]}, "'weight' must be a 1-D"),
    ("cross_entropy", {"weight": 2.0}, "'weight' must be a 1-D"),
    ("nll", {"weight": ["a", "b"]}, "'weight' must be a 1-D"),
    ("multi_margin", {"p": 3}, "'p' must be one of 1, 2, got 3"),
    ("softmax_focal", {"gamma": -1.0}, "'gamma' must be a real number >= 0"),
    ("softmax_focal", {"alpha": [np.nan, 1.0]}, "'alpha' must be a 1-D"),
    ("sigmoid_focal", {"alpha": 2.0}, "'alpha' must be a real number <= 1"),
    ("binary_cross_entropy_with_logits", {"pos_weight": -1.0},
     "'pos_weight' must be a real number or a 1-D array-like of finite floats >= 0"),
    ("categorical_cross_entropy", {"epsilon": 0.0}, "'epsilon' must be a real number >= 1.17549e-38"),
    ("cross_entropy", {"reduction": "batchmean"}, "'reduction' must be one of"),
])
def test_bad_parameters_are_named(name, params, match):
    with pytest.raises(ValueError, match=rf"^{name}: parameter {match}"):
        pl.get(name, **params)


def test_class_weights_are_taken_from_any_namespace():
    strict = pytest.importorskip("array_api_strict")
    w = strict.asarray([0.5, 2.0, 1.0, 3.0])
    x, y = strict.asarray(LOGITS), strict.asarray(LABELS)
    got = pl.get("cross_entropy", weight=w).value(x, y)
    np.testing.assert_allclose(np.from_dlpack(got), _torch_ce(LOGITS, LABELS, WEIGHT), rtol=1e-13)
    got32 = pl.get("cross_entropy", weight=WEIGHT).value(LOGITS.astype(np.float32), LABELS)
    assert got32.dtype == np.float32
