"""Segmentation and divergence losses: what the generic contract tests
cannot see. Values against independent float64 formulas (scipy where it has
them) and known numbers, batch pooling against MONAI's batch=True and Keras'
global Dice, combo against PyTorch autograd of the paper's formula, the
Tversky identities, the empty-mask answers, zeros that only some arguments
accept, torch's "mean" vs "batchmean", and the error messages. (Gradients,
dtypes, namespaces and domain edges are covered for every loss by
tests/test_contract.py.)
"""

import itertools
import math

import numpy as np
import pytest
from scipy import special
from scipy.spatial.distance import jensenshannon

import ptyloss_xp as pl

RNG = np.random.default_rng(20240612)
# (N=3, C=4, 5, 2) probabilities: a softmax over C, and a one-hot target.
_LOGITS = RNG.normal(size=(3, 4, 5, 2))
PROBS = np.exp(_LOGITS) / np.exp(_LOGITS).sum(axis=1, keepdims=True)
ONEHOT = np.moveaxis(np.eye(4)[RNG.integers(0, 4, size=(3, 5, 2))], -1, 1)
SOFT = RNG.uniform(0.0, 1.0, size=(3, 4, 5, 2))


def _ref_overlap(p, g, score_fn, averaging):
    """Per-sample loss by explicit loops: 1 - score per sample (micro) or
    the mean over classes of 1 - score per class."""
    out = []
    for pn, gn in zip(p, g):
        groups = [(pn, gn)] if averaging == "micro" else list(zip(pn, gn))
        out.append(np.mean([1.0 - score_fn(pc.ravel(), gc.ravel()) for pc, gc in groups]))
    return np.array(out)


def _dice_score(squared, s):
    power = 2 if squared else 1
    return lambda p, g: (2 * np.dot(p, g) + s) / (np.sum(p**power) + np.sum(g**power) + s)


def _tversky_score(alpha, beta, s):
    def score(p, g):
        tp, fp, fn = np.sum(p * g), np.sum(p * (1 - g)), np.sum((1 - p) * g)
        return (tp + s) / (tp + alpha * fp + beta * fn + s)
    return score


def _jaccard_score(s):
    # the union as a sum of elementwise probabilistic unions p + g - p g
    return lambda p, g: (np.sum(p * g) + s) / (np.sum(p + g - p * g) + s)


OVERLAP_REFERENCES = [
    *[("dice", {"squared": sq, "smooth": s}, _dice_score(sq, s))
      for sq, s in itertools.product((True, False), (0.0, 1.0, 1e-5))],
    ("tversky", {"alpha": 0.3, "beta": 0.7, "smooth": 0.0}, _tversky_score(0.3, 0.7, 0.0)),
    ("tversky", {"alpha": 0.8, "beta": 0.1, "smooth": 0.5}, _tversky_score(0.8, 0.1, 0.5)),
    ("tversky", {"alpha": 0.0, "beta": 2.0, "smooth": 1.0}, _tversky_score(0.0, 2.0, 1.0)),
    ("jaccard", {"smooth": 0.0}, _jaccard_score(0.0)),
    ("jaccard", {"smooth": 1.0}, _jaccard_score(1.0)),
]


@pytest.mark.parametrize("target", [ONEHOT, SOFT], ids=["onehot", "soft"])
@pytest.mark.parametrize("averaging", ["micro", "per_class"])
@pytest.mark.parametrize(("name", "params", "score"), OVERLAP_REFERENCES,
                         ids=[f"{r[0]}-{r[1]}" for r in OVERLAP_REFERENCES])
def test_overlap_value_matches_loop_reference(name, params, score, averaging, target):
    expected = _ref_overlap(PROBS, target, score, averaging)
    for reduction, want in (("none", expected), ("sum", expected.sum()),
                            ("mean", expected.mean())):
        loss = pl.get(name, **params, averaging=averaging, reduction=reduction)
        got = loss.value(PROBS, target)
        assert got.shape == np.shape(want)
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15, err_msg=reduction)


def test_overlap_known_numbers():
    # One sample, one class: p = (1, 0.5, 0), g = (1, 1, 0).
    p = np.array([[[1.0, 0.5, 0.0]]]); g = np.array([[[1.0, 1.0, 0.0]]])
    # plain Dice 2*1.5/(1.5+2) = 6/7; squared 3/(1.25+2) = 12/13; IoU 1.5/2.
    assert math.isclose(pl.get("dice", squared=False, smooth=0.0).value(p, g), 1 / 7)
    assert math.isclose(pl.get("dice", smooth=0.0).value(p, g), 1 / 13)
    assert math.isclose(pl.get("jaccard", smooth=0.0).value(p, g), 0.25)
    # smooth = 1: (3 + 1) / (3.5 + 1)
    assert math.isclose(pl.get("dice", squared=False).value(p, g), 1 - 4 / 4.5)
    # a perfect binary prediction is a loss of 0 for every variant; disjoint
    # masks a loss of 1 with smooth = 0.
    for name in ("dice", "tversky", "jaccard"):
        loss = pl.get(name, smooth=0.0)
        assert loss.value(ONEHOT, ONEHOT) == 0.0
        assert loss.value(ONEHOT, 1.0 - ONEHOT) == 1.0


def test_tversky_identities_with_dice_and_jaccard():
    for s in (0.0, 0.7):
        for averaging in ("micro", "per_class"):
            kw = {"averaging": averaging, "reduction": "none"}
            half = pl.get("tversky", alpha=0.5, beta=0.5, smooth=s, **kw)
            # Tversky counts TP once where Dice counts it twice: the smooth
            # doubles along with everything else.
            dice = pl.get("dice", squared=False, smooth=2 * s, **kw)
            one = pl.get("tversky", alpha=1.0, beta=1.0, smooth=s, **kw)
            jac = pl.get("jaccard", smooth=s, **kw)
            for a, b in ((half, dice), (one, jac)):
                va, ga = a.value_and_grad(PROBS, SOFT)
                vb, gb = b.value_and_grad(PROBS, SOFT)
                np.testing.assert_allclose(va, vb, rtol=1e-13)
                np.testing.assert_allclose(ga, gb, rtol=1e-12, atol=1e-16)


def test_dice_gradient_by_hand():
    # One group: plain Dice D = 2I/(P+G); dL/dp = -(2g - D)/(P+G), over N=2.
    p = np.array([[[0.2, 0.6]], [[0.9, 0.1]]]); g = np.array([[[1.0, 0.0]], [[1.0, 1.0]]])
    grad = pl.get("dice", squared=False, smooth=0.0).grad(p, g)
    for n in range(2):
        d = 2 * np.sum(p[n] * g[n]) / (p[n].sum() + g[n].sum())
        np.testing.assert_allclose(grad[n], -(2 * g[n] - d) / (p[n].sum() + g[n].sum()) / 2)


EMPTY = np.zeros((2, 3, 4))


@pytest.mark.parametrize("name", ["dice", "tversky", "jaccard"])
@pytest.mark.parametrize("averaging", ["micro", "per_class"])
@pytest.mark.parametrize("smooth", [0.0, 1.0])
def test_empty_prediction_on_empty_target_is_a_perfect_match(name, averaging, smooth):
    loss = pl.get(name, smooth=smooth, averaging=averaging, reduction="none")
    v, g = loss.value_and_grad(EMPTY, EMPTY)
    np.testing.assert_array_equal(v, np.zeros(2))
    assert np.all(np.isfinite(g))
    if smooth == 0.0:
        # the 0/0 point is defined, and so is its gradient: 0
        np.testing.assert_array_equal(g, np.zeros_like(EMPTY))


def test_empty_class_counts_as_perfect_per_class_only():
    # Class 0 empty in both, class 1 a perfect match, class 2 disjoint.
    p = np.zeros((1, 3, 2)); g = np.zeros((1, 3, 2))
    p[0, 1] = g[0, 1] = [1.0, 1.0]
    p[0, 2, 0] = 1.0; g[0, 2, 1] = 1.0
    per_class = pl.get("dice", smooth=0.0, averaging="per_class")
    assert math.isclose(per_class.value(p, g), 1 / 3)          # (0 + 0 + 1) / 3
    micro = pl.get("dice", smooth=0.0, squared=False)
    assert math.isclose(micro.value(p, g), 1 - 2 * 2 / (3 + 3))


def test_false_positives_on_an_empty_target_need_a_positive_smooth():
    p = np.full((1, 1, 4), 0.5); g = np.zeros((1, 1, 4))
    v0, g0 = pl.get("dice", smooth=0.0, squared=False).value_and_grad(p, g)
    assert v0 == 1.0 and np.all(g0 == 0.0)       # documented: no signal at s = 0
    v1, g1 = pl.get("dice", smooth=1.0, squared=False).value_and_grad(p, g)
    # score s/(P+s) = 1/3; d(1 - score)/dp = s/(P+s)^2 = 1/9
    assert math.isclose(v1, 2 / 3)
    np.testing.assert_allclose(g1, np.full_like(p, 1 / 9))
    # Tversky without a false-positive weight: this group is 0/0, scored 1.
    v2, g2 = pl.get("tversky", alpha=0.0, beta=1.0, smooth=0.0).value_and_grad(p, g)
    assert v2 == 0.0 and np.all(g2 == 0.0)


def _monai_torch(torch, p, g, kind, batch, smooth, squared=False, alpha=0.5, beta=0.5):
    """A transcription of MONAI's DiceLoss / TverskyLoss (sigmoid, softmax and
    background handling off, reduction "mean") from their documented
    formulas: counts summed over the spatial axes, and over the batch axis
    too with ``batch=True``; ``smooth_nr = smooth_dr = smooth``."""
    axes = ([0] if batch else []) + list(range(2, p.ndim))
    inter = torch.sum(p * g, dim=axes)
    if kind == "tversky":
        fp = torch.sum(p * (1 - g), dim=axes)
        fn = torch.sum((1 - p) * g, dim=axes)
        score = (inter + smooth) / (inter + alpha * fp + beta * fn + smooth)
    else:
        den = (torch.sum(p * p, dim=axes) + torch.sum(g * g, dim=axes) if squared
               else torch.sum(p, dim=axes) + torch.sum(g, dim=axes))
        if kind == "jaccard":
            den = 2.0 * (den - inter)
        score = (2.0 * inter + smooth) / (den + smooth)
    return torch.mean(1.0 - score)


MONAI_CASES = [
    ("dice", {}, {"squared": False}),
    ("dice", {"squared": True}, {"squared": True}),
    ("jaccard", {}, {}),
    ("tversky", {"alpha": 0.3, "beta": 0.7}, {"alpha": 0.3, "beta": 0.7}),
]


@pytest.mark.parametrize("batch", [True, False])
@pytest.mark.parametrize(("name", "monai_kw", "ours_kw"), MONAI_CASES,
                         ids=[c[0] + str(c[1]) for c in MONAI_CASES])
def test_pooling_matches_monai_batch_option(name, monai_kw, ours_kw, batch):
    torch = pytest.importorskip("torch")
    smooth = 1e-5
    pt = torch.tensor(PROBS, requires_grad=True)
    want = _monai_torch(torch, pt, torch.tensor(SOFT), name, batch, smooth, **monai_kw)
    want.backward()
    # MONAI's Jaccard carries a factor 2 on both sides: our smooth is half.
    ours_smooth = smooth / 2 if name == "jaccard" else smooth
    loss = pl.get(name, smooth=ours_smooth, averaging="per_class",
                  pooling="batch" if batch else "sample", **ours_kw)
    v, g = loss.value_and_grad(PROBS, SOFT)
    np.testing.assert_allclose(v, want.item(), rtol=1e-10)
    np.testing.assert_allclose(g, pt.grad.numpy(), rtol=1e-10, atol=1e-18)


def test_batch_pooling_is_keras_global_dice_and_one_sample_pooling():
    i, s = np.sum(PROBS * ONEHOT), np.sum(PROBS) + np.sum(ONEHOT)
    for reduction in ("mean", "sum"):
        got = pl.get("dice", squared=False, smooth=0.0, pooling="batch",
                     reduction=reduction).value(PROBS, ONEHOT)
        assert got.shape == ()
        np.testing.assert_allclose(got, 1 - 2 * i / s, rtol=1e-13)
    # a batch of one: both poolings agree
    for name in ("dice", "tversky", "jaccard", "combo"):
        for averaging in ("micro", "per_class"):
            a = pl.get(name, averaging=averaging, pooling="batch")
            b = pl.get(name, averaging=averaging)
            va, ga = a.value_and_grad(PROBS[:1], SOFT[:1])
            vb, gb = b.value_and_grad(PROBS[:1], SOFT[:1])
            np.testing.assert_allclose(va, vb, rtol=1e-13)
            np.testing.assert_allclose(ga, gb, rtol=1e-12, atol=1e-17)


def test_batch_pooling_scores_an_empty_sample_with_the_others():
    p, g = ONEHOT.copy(), ONEHOT.copy()
    p[0], g[0] = 0.0, 0.0
    assert pl.get("dice", smooth=0.0, averaging="per_class").value(p, g) == 0.0
    assert pl.get("dice", smooth=0.0, pooling="batch").value(p, g) == 0.0
    p[0, 1] = 1.0   # false positives in the empty sample lower the pooled score only a little
    per_sample = pl.get("dice", smooth=0.0, squared=False, reduction="none").value(p, g)
    assert per_sample[0] == 1.0
    pooled = pl.get("dice", smooth=0.0, squared=False, pooling="batch").value(p, g)
    np.testing.assert_allclose(pooled, 1 - 2 * 20 / (30 + 20), rtol=1e-13)


def _combo_torch(torch, p, g, alpha, beta, smooth, eps, averaging, pooling):
    """The paper's Combo loss, batch-mean of per-sample values, by autograd."""
    rows = [(p, g)] if pooling == "batch" else [(p[i:i + 1], g[i:i + 1]) for i in range(len(p))]
    out = []
    for pr, gr in rows:
        pc = torch.clamp(pr, eps, 1 - eps)
        ce = -torch.mean(beta * gr * torch.log(pc) + (1 - beta) * (1 - gr) * torch.log(1 - pc))
        axes = [0] + list(range(2, p.ndim)) if averaging == "per_class" else list(range(p.ndim))
        score = ((2 * torch.sum(pr * gr, dim=axes) + smooth)
                 / (torch.sum(pr, dim=axes) + torch.sum(gr, dim=axes) + smooth))
        out.append(alpha * ce - (1 - alpha) * torch.mean(score))
    return torch.stack(out)


@pytest.mark.parametrize("pooling", ["sample", "batch"])
@pytest.mark.parametrize("averaging", ["micro", "per_class"])
@pytest.mark.parametrize(("alpha", "beta", "smooth"), [(0.5, 0.5, 1.0), (0.3, 0.8, 0.0),
                                                       (1.0, 0.2, 1e-5)])
def test_combo_matches_torch_autograd_of_the_papers_formula(alpha, beta, smooth, averaging,
                                                            pooling):
    torch = pytest.importorskip("torch")
    p = PROBS.copy()
    p[0, 0, 0, 0], p[1, 2, 3, 1] = 0.0, 1.0          # clipped: no cross-entropy gradient
    eps = 1e-7
    pt = torch.tensor(p, requires_grad=True)
    per = _combo_torch(torch, pt, torch.tensor(SOFT), alpha, beta, smooth, eps, averaging,
                       pooling)
    for reduction in ("mean", "sum", "none") if pooling == "sample" else ("mean", "sum"):
        pt.grad = None
        want = {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]
        want.sum().backward(retain_graph=True)
        loss = pl.get("combo", alpha=alpha, beta=beta, smooth=smooth, eps=eps,
                      averaging=averaging, pooling=pooling, reduction=reduction)
        v, g = loss.value_and_grad(p, SOFT)
        expected = want.detach().numpy()
        np.testing.assert_allclose(v, expected.reshape(np.shape(v)), rtol=1e-10)
        np.testing.assert_allclose(g, pt.grad.numpy(), rtol=1e-10, atol=1e-18)


def test_combo_limits_are_dice_and_weighted_cross_entropy():
    for averaging in ("micro", "per_class"):
        dice = pl.get("dice", squared=False, averaging=averaging, reduction="none")
        combo = pl.get("combo", alpha=0.0, averaging=averaging, reduction="none")
        np.testing.assert_allclose(combo.value(PROBS, SOFT), dice.value(PROBS, SOFT) - 1,
                                   rtol=1e-13)
        np.testing.assert_allclose(combo.grad(PROBS, SOFT), dice.grad(PROBS, SOFT),
                                   rtol=1e-13)
    # alpha = 1, beta = 0.5: half the binary cross-entropy, mean over elements
    bce = -np.mean(SOFT * np.log(PROBS) + (1 - SOFT) * np.log(1 - PROBS))
    np.testing.assert_allclose(pl.get("combo", alpha=1.0).value(PROBS, SOFT), bce / 2,
                               rtol=1e-13)


# ---------------------------------------------------------------------------
# divergences

P = RNG.dirichlet(np.ones(5), size=(2, 3))
Q = RNG.dirichlet(np.ones(5), size=(2, 3))
ONEHOT_P = np.eye(5)[RNG.integers(0, 5, size=(2, 3))]


def _kl_rows(p, q):
    return special.rel_entr(p, q).sum(-1)


# only kl_divergence accepts zeros in p (one-hot targets)
ROW_REFERENCES = [
    ("kl_divergence", P, _kl_rows),
    ("kl_divergence", ONEHOT_P, _kl_rows),
    ("reverse_kl", P, lambda p, q: special.rel_entr(q, p).sum(-1)),
    ("jensen_shannon", P, lambda p, q: jensenshannon(p, q, axis=-1) ** 2),
]


@pytest.mark.parametrize(("name", "p", "ref"), ROW_REFERENCES,
                         ids=["kl", "kl-onehot", "reverse_kl", "js"])
def test_row_divergences_match_scipy(name, p, ref):
    expected = ref(p, Q)
    for reduction, want in (("none", expected), ("sum", expected.sum()),
                            ("mean", expected.mean())):
        got = pl.get(name, reduction=reduction).value(p, Q)
        assert got.shape == np.shape(want)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15, err_msg=reduction)


def test_kl_divergence_accepts_one_hot_targets_with_finite_gradient():
    v, g = pl.get("kl_divergence", reduction="sum").value_and_grad(ONEHOT_P, Q)
    # KL(onehot || q) = -log q_true, the cross-entropy
    np.testing.assert_allclose(v, -np.log(Q[ONEHOT_P == 1]).sum(), rtol=1e-13)
    np.testing.assert_array_equal(g, -ONEHOT_P / Q)


def test_reverse_kl_is_kl_with_arguments_swapped():
    v, g = pl.get("reverse_kl").value_and_grad(P, Q)
    np.testing.assert_allclose(v, pl.get("kl_divergence").value(Q, P), rtol=1e-13)
    np.testing.assert_allclose(g, (np.log(Q / P) + 1) / 6, rtol=1e-13)


def test_jensen_shannon_is_symmetric_bounded_and_zero_on_equal_rows():
    js = pl.get("jensen_shannon", reduction="none")
    np.testing.assert_allclose(js.value(P, Q), js.value(Q, P), rtol=1e-14)
    np.testing.assert_array_equal(js.value(P, P), np.zeros((2, 3)))
    gp, gq = js.grad(P, P)
    np.testing.assert_array_equal(gp, 0.0)
    np.testing.assert_array_equal(gq, 0.0)
    # Disjoint supports reach the bound log 2; zeros are outside the declared
    # domain (infinite gradient), so only with value checks off.
    a = np.array([[1.0, 0.0]]); b = np.array([[0.0, 1.0]])
    with pytest.raises(ValueError, match="jensen_shannon: argument 'p' must be finite and > 0"):
        js.value(a, b)
    with pl.check_values(False):
        np.testing.assert_allclose(js.value(a, b), [math.log(2)], rtol=1e-15)


LOGQ = np.log(RNG.dirichlet(np.ones(4), size=3))     # (N=3, C=4) log-probabilities
TARGET = RNG.dirichlet(np.ones(4), size=3)
TARGET[0, 1] = 0.0                                  # exercises 0 log 0 = 0
TARGET[0] /= TARGET[0].sum()


def test_kl_div_elementwise_matches_torch_formula():
    expected = special.rel_entr(TARGET, np.exp(LOGQ))     # t (log t - x)
    for reduction, want in (("none", expected), ("sum", expected.sum()),
                            ("mean", expected.mean()),
                            ("batchmean", expected.sum() / 3)):
        got = pl.get("kl_div", reduction=reduction).value(LOGQ, TARGET)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-16, err_msg=reduction)
    assert pl.get("kl_div", reduction="none").value(LOGQ, TARGET)[0, 1] == 0.0


def test_kl_div_log_target_equals_probability_target():
    logt = np.log(RNG.dirichlet(np.ones(4), size=3))
    for reduction in ("mean", "batchmean", "sum", "none"):
        a = pl.get("kl_div", reduction=reduction, log_target=True)
        b = pl.get("kl_div", reduction=reduction)
        va, ga = a.value_and_grad(LOGQ, logt)
        vb, gb = b.value_and_grad(LOGQ, np.exp(logt))
        np.testing.assert_allclose(va, vb, rtol=1e-13, atol=1e-16)
        np.testing.assert_allclose(ga, gb, rtol=1e-13)


def test_kl_div_mean_and_batchmean_differ_by_the_number_of_classes():
    mean = pl.get("kl_div", reduction="mean")
    batchmean = pl.get("kl_div", reduction="batchmean")
    vm, gm = mean.value_and_grad(LOGQ, TARGET)
    vb, gb = batchmean.value_and_grad(LOGQ, TARGET)
    np.testing.assert_allclose(vb, 4 * vm, rtol=1e-14)
    np.testing.assert_allclose(gb, 4 * gm, rtol=1e-14)
    np.testing.assert_allclose(gb, -TARGET / 3, rtol=1e-15)
    # "batchmean" is the true KL per sample, averaged: kl_divergence's "mean".
    np.testing.assert_allclose(vb, pl.get("kl_divergence").value(TARGET, np.exp(LOGQ)),
                               rtol=1e-13)
    _, hess = batchmean.gradient_hessian(LOGQ, TARGET)
    np.testing.assert_array_equal(hess, 0.0)


# ---------------------------------------------------------------------------
# errors

BAD_INPUTS = [
    ("dice", {}, (np.full((1, 2, 3), 1.5), np.zeros((1, 2, 3))),
     ValueError, r"dice: argument 'input' must be finite and >= 0 and <= 1"),
    ("jaccard", {}, (np.zeros((1, 2, 3)), np.full((1, 2, 3), -0.1)),
     ValueError, r"jaccard: argument 'target' must be finite and >= 0"),
    ("tversky", {}, (np.zeros((1, 2, 3)), np.zeros((1, 3, 3))),
     ValueError, r"tversky: argument 'target' must have shape \(N, C, \*\).*dimension C"),
    ("dice", {}, (np.zeros((0, 2, 3)), np.zeros((0, 2, 3))),
     ValueError, r"dice: dimension N .* must have size >= 1, got 0"),
    ("dice", {}, (np.zeros(3), np.zeros(3)),
     ValueError, r"dice: argument 'input' must have shape \(N, C, \*\), got \(3,\)"),
    ("kl_divergence", {}, (P, np.zeros_like(Q)),
     ValueError, r"kl_divergence: argument 'q' must be finite and > 0"),
    ("reverse_kl", {}, (ONEHOT_P, Q),
     ValueError, r"reverse_kl: argument 'p' must be finite and > 0"),
    ("kl_divergence", {}, (np.zeros((0, 5)), np.zeros((0, 5))),
     ValueError, r"kl_divergence: arrays must not be empty"),
    ("jensen_shannon", {}, (P, Q[..., :4]),
     ValueError, r"jensen_shannon: argument 'q' must have shape.*dimension K"),
    ("kl_div", {}, (-LOGQ, TARGET),
     ValueError, r"kl_div: argument 'input' must be finite and <= 0"),
    ("kl_div", {"log_target": True}, (LOGQ, TARGET),
     ValueError, r"kl_div: argument 'target' must be finite and <= 0"),
    ("kl_div", {}, (LOGQ, LOGQ),
     ValueError, r"kl_div: argument 'target' must be finite and >= 0"),
    ("kl_div", {}, (LOGQ.astype(np.float32), TARGET),
     TypeError, r"kl_div: floating arguments must share one precision"),
    ("combo", {}, (np.full((1, 2, 3), -0.5), np.zeros((1, 2, 3))),
     ValueError, r"combo: argument 'input' must be finite and >= 0 and <= 1"),
    ("combo", {}, (np.zeros((2, 3)), np.zeros((2, 4))),
     ValueError, r"combo: argument 'target' must have shape \(N, C, \*\).*dimension C"),
]


@pytest.mark.parametrize(("name", "params", "arrays", "exc", "match"), BAD_INPUTS,
                         ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD_INPUTS)])
def test_bad_input_is_a_clear_error(name, params, arrays, exc, match):
    with pytest.raises(exc, match=match):
        pl.get(name, **params).value(*arrays)


BAD_PARAMS = [
    ("dice", {"averaging": "macro"}, ValueError, "parameter 'averaging' must be one of"),
    ("dice", {"smooth": -1.0}, ValueError, "parameter 'smooth' must be a real number >= 0"),
    ("dice", {"squared": 1}, TypeError, "parameter 'squared' must be a bool"),
    ("jaccard", {"squared": True}, TypeError, "unknown parameter.*'squared'"),
    ("tversky", {"alpha": -0.1}, ValueError, "parameter 'alpha' must be a real number >= 0"),
    ("tversky", {"alpha": 0.0, "beta": 0.0}, ValueError,
     "tversky: parameters 'alpha' and 'beta' must not both be 0"),
    ("kl_div", {"reduction": "batch_mean"}, ValueError, "'batchmean'"),
    ("kl_div", {"log_target": "yes"}, TypeError, "parameter 'log_target' must be a bool"),
    ("kl_divergence", {"reduction": "batchmean"}, ValueError,
     "parameter 'reduction' must be one of 'mean', 'sum', 'none'"),
    ("dice", {"pooling": "global"}, ValueError,
     "dice: parameter 'pooling' must be one of 'sample', 'batch'"),
    ("jaccard", {"pooling": "batch", "reduction": "none"}, ValueError,
     "jaccard: parameter 'reduction' must be 'mean' or 'sum' with pooling='batch'"),
    ("combo", {"pooling": "batch", "reduction": "none"}, ValueError,
     "combo: parameter 'reduction' must be 'mean' or 'sum' with pooling='batch'"),
    ("combo", {"alpha": 1.5}, ValueError,
     "combo: parameter 'alpha' must be a real number >= 0 and <= 1"),
    ("combo", {"eps": 0.0}, ValueError,
     "combo: parameter 'eps' must be a real number > 0 and < 0.5"),
]


@pytest.mark.parametrize(("name", "params", "exc", "match"), BAD_PARAMS,
                         ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD_PARAMS)])
def test_bad_parameter_is_a_clear_error(name, params, exc, match):
    with pytest.raises(exc, match=match):
        pl.get(name, **params)
