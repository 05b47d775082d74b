"""Metric-learning losses against PyTorch autograd and pytorch-metric-learning.

Where PyTorch has the loss (``triplet_margin_loss``, ``cosine_embedding_loss``,
``margin_ranking_loss``) it is the reference; the batch losses are checked
against pytorch-metric-learning's classes with their defaults; the rest
against PyTorch transcriptions of the papers' definitions. All in float64 to
1e-10 relative. The generic tests (finite differences, dtypes, backends,
inputs unchanged) cover these losses through the registry.
"""

import numpy as np
import pytest

import ptyloss_xp as pl

from conftest import BACKENDS, backend_params, to_numpy

RTOL = 1e-10


def _close(ours, ref, what=""):
    ref = np.asarray(ref, dtype=np.float64)
    np.testing.assert_allclose(np.asarray(ours), ref, rtol=RTOL,
                               atol=RTOL * max(float(np.max(np.abs(ref))), 1e-300), err_msg=what)


def _autograd(torch, fn, *arrays):
    """Value of ``fn`` on float64 tensors and its gradients with respect to each."""
    ts = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    v = fn(*ts)
    grads = torch.autograd.grad(v, ts, allow_unused=True)
    return v.detach().numpy(), [np.zeros(a.shape) if g is None else g.numpy()
                                for a, g in zip(arrays, grads)]


def _check(loss, arrays, ref_value, ref_grads, total=False):
    """``total``: the reference value is the sum of the loss's (``reduction="none"``)."""
    v, g = loss.value_and_grad(*arrays)
    g = (g,) if len(loss.wrt) == 1 else g
    _close(np.sum(v) if total else v, ref_value, "value")
    for name, gi, ri in zip(loss.wrt, g, ref_grads):
        _close(gi, ri, name)


def _rng(seed=0):
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------
# Pair and triplet losses


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("params", [{}, {"swap": True, "margin": 2.0}, {"p": 1.5},
                                    {"p": 1.0, "eps": 0.0}, {"p": 3.0, "swap": True, "eps": 1e-3}])
def test_triplet_margin_matches_torch(params, reduction):
    torch = pytest.importorskip("torch")
    rng = _rng(1)
    a, p, n = (rng.normal(size=(9, 5)) for _ in range(3))
    a[0] = p[0]  # the eps inside the norm matters where a - p is 0
    kw = dict(params, reduction=reduction)

    def ref(a, p, n):
        return torch.sum(torch.nn.functional.triplet_margin_loss(a, p, n, **kw))

    v, g = _autograd(torch, ref, a, p, n)
    loss = pl.get("triplet_margin", **kw)
    vs, gs = loss.value_and_grad(a, p, n)
    _close(np.sum(vs), v)
    for gi, ri in zip(gs, g):
        _close(gi, ri)


def test_triplet_squared_is_facenet():
    torch = pytest.importorskip("torch")
    rng = _rng(2)
    a, p, n = (0.5 * rng.normal(size=(8, 4)) for _ in range(3))

    def ref(a, p, n):
        z = ((a - p) ** 2).sum(1) - ((a - n) ** 2).sum(1) + 0.2
        return torch.clamp_min(z, 0).mean()

    _check(pl.get("triplet_squared"), (a, p, n), *_autograd(torch, ref, a, p, n))


@pytest.mark.parametrize("params", [{}, {"margin": 0.3, "reduction": "sum"},
                                    {"margin": -0.5, "reduction": "none"}])
def test_cosine_embedding_matches_torch(params):
    torch = pytest.importorskip("torch")
    rng = _rng(3)
    x1, x2 = rng.normal(size=(10, 6)), rng.normal(size=(10, 6))
    x1[3] = 0.0  # PyTorch's 1e-12 in the squared norms keeps this finite
    y = rng.choice([-1.0, 1.0], size=10)
    y[3] = -1.0

    def ref(x1, x2):
        return torch.sum(torch.nn.functional.cosine_embedding_loss(
            x1, x2, torch.tensor(y), **params))

    _check(pl.get("cosine_embedding", **params), (x1, x2, y), *_autograd(torch, ref, x1, x2), total=True)


@pytest.mark.parametrize("params", [{}, {"margin": 0.5, "reduction": "sum"},
                                    {"margin": -0.2, "reduction": "none"}])
def test_margin_ranking_matches_torch_including_ties(params):
    torch = pytest.importorskip("torch")
    rng = _rng(4)
    x1, x2 = rng.normal(size=(4, 5)), rng.normal(size=(4, 5))
    x2[0, :2] = x1[0, :2]  # hinge argument exactly at 0 with margin 0
    y = rng.choice([-1.0, 1.0], size=(4, 5))

    def ref(x1, x2):
        return torch.sum(torch.nn.functional.margin_ranking_loss(
            x1, x2, torch.tensor(y), **params))

    _check(pl.get("margin_ranking", **params), (x1, x2, y), *_autograd(torch, ref, x1, x2), total=True)


@pytest.mark.parametrize("half", [False, True])
def test_contrastive_is_hadsells_with_one_meaning_similar(half):
    torch = pytest.importorskip("torch")
    rng = _rng(5)
    x1, x2 = rng.normal(size=(12, 3)), rng.normal(size=(12, 3))
    y = rng.choice([0.0, 1.0], size=12)
    c = 0.5 if half else 1.0

    def ref(x1, x2):
        d = torch.linalg.vector_norm(x1 - x2, dim=1)
        t = torch.tensor(y)
        return (c * (t * d**2 + (1 - t) * torch.clamp_min(2.0 - d, 0) ** 2)).mean()

    loss = pl.get("contrastive", margin=2.0, half=half)
    _check(loss, (x1, x2, y), *_autograd(torch, ref, x1, x2))


def test_cosine_contrastive_squares_the_hinge():
    torch = pytest.importorskip("torch")
    rng = _rng(6)
    x1, x2 = rng.normal(size=(12, 4)), rng.normal(size=(12, 4))
    x2[:6] = x1[:6] + 0.3 * rng.normal(size=(6, 4))  # some cosines above the margin
    y = rng.choice([0.0, 1.0], size=12)
    eps = float(np.float32(1e-12))  # PyTorch's cosine_embedding_loss form

    def ref(x1, x2):
        cos = (x1 * x2).sum(1) / torch.sqrt(((x1 * x1).sum(1) + eps) * ((x2 * x2).sum(1) + eps))
        t = torch.tensor(y)
        return (t * (1 - cos) + (1 - t) * torch.clamp_min(cos - 0.1, 0) ** 2).sum()

    loss = pl.get("cosine_contrastive", margin=0.1, reduction="sum")
    _check(loss, (x1, x2, y), *_autograd(torch, ref, x1, x2))
    per = pl.get("cosine_contrastive", margin=0.1, reduction="none").value(x1, x2, y)
    assert np.any((y == 0) & (per > 0)), "no dissimilar pair inside the margin"


# --------------------------------------------------------------------------
# Batch losses against pytorch-metric-learning


LABELS = {
    "simclr": np.array([0, 1, 2, 3, 4, 0, 1, 2, 3, 4]),
    "classes": np.array([0, 1, 0, 2, 1, 0, 3, 2, 2, 5]),  # sizes 3, 2, 3, 1, 1
    "big_ids": np.array([7, 123456789, 7, 40, 40, 123456789, 9]),
}


def _pml_cases():
    """(our name, our params, PML class name, PML kwargs, distance kwargs or None)."""
    return [
        ("nt_xent", {}, "NTXentLoss", {}, None),
        ("nt_xent", {"temperature": 0.5}, "NTXentLoss", {"temperature": 0.5}, None),
        ("supcon", {}, "SupConLoss", {}, None),
        ("supcon", {"temperature": 0.07}, "SupConLoss", {"temperature": 0.07}, None),
        ("n_pairs", {}, "NPairsLoss", {}, None),
        ("n_pairs", {"normalize": False}, "NPairsLoss", {},
         ("DotProductSimilarity", {"normalize_embeddings": False})),
        ("lifted_structure", {}, "LiftedStructureLoss", {}, None),
        ("lifted_structure", {"neg_margin": 2.0, "pos_margin": 0.3, "normalize": False},
         "LiftedStructureLoss", {"neg_margin": 2.0, "pos_margin": 0.3},
         ("LpDistance", {"normalize_embeddings": False})),
    ]


def _pml(cls, kw, distance):
    pytest.importorskip("pytorch_metric_learning")
    from pytorch_metric_learning import distances, losses

    if distance is not None:
        kw = dict(kw, distance=getattr(distances, distance[0])(**distance[1]))
    return getattr(losses, cls)(**kw)


@pytest.mark.parametrize("labels", list(LABELS), ids=list(LABELS))
@pytest.mark.parametrize(("name", "params", "cls", "kw", "distance"), _pml_cases(),
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(_pml_cases())])
def test_batch_losses_match_pytorch_metric_learning(name, params, cls, kw, distance, labels):
    torch = pytest.importorskip("torch")
    reference = _pml(cls, kw, distance)
    y = LABELS[labels]
    x = _rng(7).normal(size=(len(y), 6))
    lab = torch.tensor(y)
    _check(pl.get(name, **params), (x, y), *_autograd(torch, lambda t: reference(t, lab), x))


@pytest.mark.parametrize("name", ["nt_xent", "supcon", "n_pairs", "lifted_structure"])
def test_batch_losses_match_at_scale_and_with_a_zero_embedding(name):
    """64 rows (``torch.cdist`` switches to the matrix-product form beyond
    25) and one zero row, whose normalisation is clamped as in PyTorch."""
    torch = pytest.importorskip("torch")
    cls = {"nt_xent": "NTXentLoss", "supcon": "SupConLoss", "n_pairs": "NPairsLoss",
           "lifted_structure": "LiftedStructureLoss"}[name]
    reference = _pml(cls, {}, None)
    rng = _rng(8)
    y = rng.integers(0, 12, size=64)
    x = rng.normal(size=(64, 16))
    x[5] = 0.0
    lab = torch.tensor(y)
    _check(pl.get(name), (x, y), *_autograd(torch, lambda t: reference(t, lab), x))


@pytest.mark.parametrize("labels", ["simclr", "classes", "one_class", "drawn"])
@pytest.mark.parametrize("temperature", [0.07, 1e-4])
@pytest.mark.parametrize("name", ["nt_xent", "supcon"])
def test_pairs_as_indices_on_numpy_match_the_masks(name, labels, temperature, monkeypatch):
    """NumPy lists the positive pairs as indices (N of them for SimCLR's
    batch; here whatever their number); other namespaces mask an N x N
    matrix. The same numbers, also for large 1/temperature and a zero
    embedding."""
    from ptyloss_xp.losses import metric

    monkeypatch.setattr(metric, "_INDEXED_SHARE", 1.0)
    xp = BACKENDS["array_api_strict"]
    if xp is None:
        pytest.skip("array_api_strict not available")
    rng = _rng(16)
    y = {"one_class": np.zeros(6, dtype=np.int64), "drawn": rng.integers(0, 5, size=40)}
    y = y.get(labels, LABELS.get(labels))
    x = rng.normal(size=(len(y), 5))
    x[2] = 0.0
    loss = pl.get(name, temperature=temperature)
    v, g = loss.value_and_grad(x, y)
    vs, gs = loss.value_and_grad(xp.asarray(x), xp.asarray(y))
    assert np.all(np.isfinite(g))
    _close(v, np.asarray(vs), "value")
    _close(g, np.asarray(gs), "embeddings")


def test_one_class_batch_gives_zero_for_nt_xent_and_lifted_as_pml():
    torch = pytest.importorskip("torch")
    x = _rng(9).normal(size=(5, 3))
    y = np.zeros(5, dtype=np.int64)
    for name, cls in [("nt_xent", "NTXentLoss"), ("lifted_structure", "LiftedStructureLoss")]:
        ref = _pml(cls, {}, None)(torch.tensor(x), torch.tensor(y))
        v, g = pl.get(name).value_and_grad(x, y)
        assert float(v) == float(ref) == 0.0
        assert np.all(g == 0.0)


def test_supcon_of_one_class_is_khoslas_value_where_pml_gives_zero():
    torch = pytest.importorskip("torch")
    x = _rng(10).normal(size=(5, 3))
    y = np.zeros(5, dtype=np.int64)

    def ref(t):
        z = torch.nn.functional.normalize(t, dim=1)
        s = z @ z.T / 0.1
        off = ~torch.eye(5, dtype=torch.bool)
        lse = torch.logsumexp(s.masked_fill(~off, -torch.inf), dim=1, keepdim=True)
        return -((s - lse) * off).sum(1).div(4).mean()

    _check(pl.get("supcon"), (x, y), *_autograd(torch, ref, x))


# --------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("name", ["contrastive", "cosine_embedding", "cosine_contrastive"])
def test_pairs_of_different_dimension_name_the_argument(name):
    rng = _rng(11)
    with pytest.raises(ValueError, match=rf"^{name}: argument 'input2' must have shape \(N, D\), "
                                         r"got \(3, 5\); dimension D is 4"):
        pl.get(name).value(rng.normal(size=(3, 4)), rng.normal(size=(3, 5)), np.ones(3))


@pytest.mark.parametrize("name", ["triplet_margin", "triplet_squared"])
def test_triplets_of_different_dimension_name_the_argument(name):
    rng = _rng(12)
    a, p, n = rng.normal(size=(3, 4)), rng.normal(size=(3, 4)), rng.normal(size=(3, 2))
    with pytest.raises(ValueError, match=rf"^{name}: argument 'negative' must have shape "
                                         r"\(N, D\), got \(3, 2\); dimension D is 4"):
        pl.get(name).grad(a, p, n)


BATCH = ["nt_xent", "supcon", "n_pairs", "lifted_structure"]


@pytest.mark.parametrize("name", BATCH)
def test_labels_of_another_batch_size_name_the_argument(name):
    with pytest.raises(ValueError, match=rf"^{name}: argument 'labels' must have shape \(N\), "
                                         r"got \(5,\); dimension N is 4"):
        pl.get(name).value(np.ones((4, 3)), np.zeros(5, dtype=np.int64))


@pytest.mark.parametrize("name", BATCH)
def test_batch_without_a_positive_pair_says_what_is_needed(name):
    x = _rng(13).normal(size=(4, 3))
    with pytest.raises(ValueError, match=rf"^{name}: argument 'labels' must give at least one "
                                         r"positive pair \(two samples with the same label\).*"
                                         r"got 4 samples with 4 distinct labels"):
        pl.get(name).value_and_grad(x, np.array([3, 1, 0, 2]))


@pytest.mark.parametrize("name", BATCH)
def test_batch_without_a_positive_pair_gives_zero_with_checks_off(name):
    x = _rng(14).normal(size=(4, 3))
    with pl.check_values(False):
        v, g = pl.get(name).value_and_grad(x, np.array([3, 1, 0, 2]))
    assert float(v) == 0.0
    assert np.all(g == 0.0)


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("name", BATCH)
def test_missing_positive_pair_is_refused_on_every_backend(backend, name):
    """At call time on eager backends; when the result is computed on Dask."""
    x = _rng(15).normal(size=(4, 3))
    y = np.array([3, 1, 0, 2])
    if backend == "dask":
        import dask.array as da

        arrays = (da.from_array(x, chunks=(2, 3)), da.from_array(y, chunks=2))
    else:
        xp = BACKENDS[backend]
        arrays = (xp.asarray(x), xp.asarray(y))
    with pytest.raises(ValueError, match=rf"^{name}: argument 'labels' must give at least one"):
        _, g = pl.get(name).value_and_grad(*arrays)
        to_numpy(g)


def test_one_sample_batch_and_bad_labels_are_refused():
    x = np.ones((1, 3))
    with pytest.raises(ValueError, match=r"^supcon: dimension N .* must have size >= 2, got 1"):
        pl.get("supcon").value(x, np.array([0]))
    with pytest.raises(TypeError, match=r"^nt_xent: argument 'labels' must have an integer dtype"):
        pl.get("nt_xent").value(np.ones((2, 3)), np.array([0.0, 0.0]))
    with pytest.raises(ValueError, match=r"^n_pairs: argument 'labels' must hold values in \[0, "):
        pl.get("n_pairs").value(np.ones((2, 3)), np.array([-1, -1]))


def test_pair_targets_must_be_the_documented_labels():
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match=r"^contrastive: argument 'target' must hold values in"):
        pl.get("contrastive").value(x, x, np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match=r"^cosine_embedding: argument 'target' must hold values"):
        pl.get("cosine_embedding").value(x, x, np.array([1.0, 0.0]))


def test_parameters_are_validated_by_name():
    with pytest.raises(ValueError, match=r"^triplet_margin: parameter 'margin' must be a real "
                                         r"number > 0, got 0"):
        pl.get("triplet_margin", margin=0.0)
    with pytest.raises(ValueError, match=r"^triplet_margin: parameter 'p' must be .* >= 1"):
        pl.get("triplet_margin", p=0.5)
    with pytest.raises(ValueError, match=r"^nt_xent: parameter 'temperature' must be .* >= 1e-20"):
        pl.get("nt_xent", temperature=0.0)


# --------------------------------------------------------------------------
# Scale


@pytest.mark.parametrize("name", BATCH)
def test_batch_losses_keep_to_n_squared_memory(name):
    """Peak NumPy allocation of a call stays a small multiple of one N x N
    matrix (no N x N x D or N^3 intermediate)."""
    import tracemalloc

    rng = _rng(16)
    n, d = 256, 64
    x = rng.normal(size=(n, d))
    y = rng.integers(0, 32, size=n)
    loss = pl.get(name)
    loss.value_and_grad(x, y)
    tracemalloc.start()
    try:
        loss.value_and_grad(x, y)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * n * n * 8
