"""CTC against PyTorch's ``ctc_loss`` (value and autograd gradient, float64,
1e-10 relative), impossible alignments, the two target layouts and the
errors for bad input. The generic contract tests cover the rest."""

import numpy as np
import pytest

import ptyloss_xp as pl

from conftest import backend_params, BACKENDS, to_numpy

RTOL = 1e-10


def _batch(seed=0, t=14, n=6, c=6, s=5, blank=0):
    """Varied lengths, a repeated label, an empty target, a sample of 0 frames."""
    rng = np.random.default_rng(seed)
    logits = 3 * rng.normal(size=(t, n, c))
    targets = rng.integers(0, c, (n, s))
    targets = np.where(targets == blank, (targets + 1) % c, targets)
    targets[0, :3] = targets[0, 0]
    frames = np.array([t, t - 2, 9, t, 5, 0])[:n]
    labels = np.array([s, 3, 2, 0, 1, 0])[:n]
    # Padding beyond the target lengths may hold anything, blank and -1 included.
    targets[3, :] = -1
    targets[4, 1:] = blank
    return logits, targets, frames, labels


def _torch_ctc(torch, logits, targets, frames, labels, blank, reduction, zero_infinity=False):
    """PyTorch's value, its autograd gradient with respect to the logits
    through log_softmax, and the one it returns for ``log_probs``."""
    F = torch.nn.functional
    z = torch.tensor(logits, requires_grad=True)
    lp = torch.log_softmax(z, dim=2)
    lp.retain_grad()
    args = (torch.tensor(np.where(targets < 0, 1, targets)), torch.tensor(frames),
            torch.tensor(labels))
    v = F.ctc_loss(lp, *args, blank=blank, reduction=reduction, zero_infinity=zero_infinity)
    v.sum().backward()
    return v.detach().numpy(), z.grad.numpy(), lp.grad.numpy(), lp.detach().numpy()


def _close(a, b, rtol=RTOL):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.max(np.abs(b)))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("blank", [0, 3, 5])
def test_matches_pytorch_autograd(reduction, blank):
    torch = pytest.importorskip("torch")
    logits, targets, frames, labels = _batch(blank=blank)
    v_ref, g_logits, g_lp_torch, lp = _torch_ctc(torch, logits, targets, frames, labels, blank,
                                                 reduction)
    v, g = pl.get("ctc_logits", blank=blank, reduction=reduction).value_and_grad(
        logits, targets, frames, labels)
    _close(v, v_ref)
    _close(g, g_logits)
    # PyTorch's "gradient with respect to log_probs" is this same logits gradient.
    _close(g, g_lp_torch)
    v2, g2 = pl.get("ctc", blank=blank, reduction=reduction).value_and_grad(
        lp, targets, frames, labels)
    _close(v2, v_ref)
    # As free variables: PyTorch's array minus its softmax term exp(log_probs)
    # on every frame that counts, scaled by the reduction's weights.
    w = (1.0 / (len(frames) * np.maximum(labels, 1)) if reduction == "mean"
         else np.ones(len(frames)))
    counted = np.arange(len(lp))[:, None] < frames[None, :]
    _close(g2, g_lp_torch - np.exp(lp) * (w * counted)[..., None])


def test_free_variable_gradient_is_minus_the_posterior_counts():
    """Each counted frame's posteriors sum to 1: the gradient of the summed
    loss sums to -1 over the classes, and it is 0 after the last frame."""
    logits, targets, frames, labels = _batch()
    lp = logits - np.log(np.exp(logits).sum(axis=2, keepdims=True))
    g = pl.get("ctc", reduction="sum").grad(lp, targets, frames, labels)
    counted = np.arange(len(lp))[:, None] < frames[None, :]
    _close(g.sum(axis=2), -counted.astype(float), rtol=1e-12)


@pytest.mark.parametrize("name", ["ctc", "ctc_logits"])
def test_concatenated_targets_equal_padded(name):
    logits, targets, frames, labels = _batch()
    flat = np.concatenate([targets[k, :labels[k]] for k in range(len(labels))])
    loss = pl.get(name, reduction="none")
    v, g = loss.value_and_grad(logits, targets, frames, labels)
    v1, g1 = loss.value_and_grad(logits, flat, frames, labels)
    np.testing.assert_array_equal(v1, v)
    np.testing.assert_array_equal(g1, g)


@pytest.mark.parametrize("backend", backend_params(("array_api_strict", "torch", "jax", "dask")))
def test_concatenated_targets_on_other_namespaces(backend):
    """Padded there to the total length, with the same numbers."""
    logits, targets, frames, labels = _batch(n=5)
    flat = np.concatenate([targets[k, :labels[k]] for k in range(len(labels))])
    loss = pl.get("ctc_logits")
    v0, g0 = loss.value_and_grad(logits, targets, frames, labels)
    xp = BACKENDS[backend]
    if backend == "dask":
        import dask.array as da
        on = [da.from_array(a, chunks=2) for a in (logits, flat, frames, labels)]
    else:
        on = [xp.asarray(a) for a in (logits, flat, frames, labels)]
    v, g = loss.value_and_grad(*on)
    _close(to_numpy(v), v0, rtol=1e-12)
    _close(to_numpy(g), g0)


@pytest.mark.parametrize("name", ["ctc", "ctc_logits"])
def test_impossible_alignment_is_inf_with_zero_gradient_never_nan(name):
    torch = pytest.importorskip("torch")
    logits, targets, frames, labels = _batch()
    targets[1, :3] = [2, 2, 2]          # 3 labels, 2 repeats: needs 5 frames
    frames = frames.copy()
    frames[1] = 4
    frames[5], labels[5] = 0, 1         # no frame for one label
    x = logits if name == "ctc_logits" else logits - np.log(np.exp(logits).sum(2, keepdims=True))
    for zero_infinity in (False, True):
        loss = pl.get(name, reduction="none", zero_infinity=zero_infinity)
        v, g = loss.value_and_grad(x, targets, frames, labels)
        v_ref, g_ref, _, _ = _torch_ctc(torch, logits, targets, frames, labels, 0, "none",
                                        zero_infinity)
        np.testing.assert_array_equal(v[[1, 5]], 0.0 if zero_infinity else np.inf)
        np.testing.assert_array_equal(v_ref[[1, 5]], v[[1, 5]])
        assert np.all(np.isfinite(g))
        np.testing.assert_array_equal(g[:, [1, 5]], 0.0)
        ok = [0, 2, 3, 4]
        _close(v[ok], v_ref[ok])
        if name == "ctc_logits":
            _close(g[:, ok], g_ref[:, ok])
    # The mean is then +inf (PyTorch: +inf too, with NaN gradients).
    v, g = pl.get(name).value_and_grad(x, targets, frames, labels)
    assert v == np.inf and np.all(np.isfinite(g))


def test_float32_keeps_its_precision_and_agrees():
    torch = pytest.importorskip("torch")
    logits, targets, frames, labels = _batch()
    v_ref, g_ref, _, _ = _torch_ctc(torch, logits, targets, frames, labels, 0, "mean")
    v, g = pl.get("ctc_logits").value_and_grad(logits.astype(np.float32), targets, frames, labels)
    assert v.dtype == g.dtype == np.float32
    _close(v, v_ref, rtol=1e-5)
    _close(g, g_ref, rtol=1e-4)


def test_inputs_are_not_modified():
    arrays = _batch()
    before = [a.copy() for a in arrays]
    pl.get("ctc_logits").value_and_grad(*arrays)
    pl.get("ctc").value_and_grad(*arrays)
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(("change", "match"), [
    (lambda a: a["input_lengths"].__setitem__(2, 15),
     r"^ctc: argument 'input_lengths' must hold values in \[0, 14\] \(T = 14.*e\.g\. 15"),
    (lambda a: a["input_lengths"].__setitem__(2, -1),
     r"^ctc: argument 'input_lengths' must hold values in \[0, 14\]"),
    (lambda a: a["target_lengths"].__setitem__(0, 6),
     r"^ctc: argument 'target_lengths' must hold values in \[0, 5\] \(S = 5"),
    (lambda a: a["targets"].__setitem__((0, 1), 0),
     r"^ctc: argument 'targets' must hold labels in \[0, 6\) other than blank=0 .*e\.g\. 0"),
    (lambda a: a["targets"].__setitem__((1, 0), 6),
     r"^ctc: argument 'targets' must hold labels in \[0, 6\) .*e\.g\. 6"),
    (lambda a: a["log_probs"].__setitem__((0, 0, 0), np.nan),
     r"^ctc: argument 'log_probs' must be finite"),
])
def test_bad_values_are_refused_by_name(change, match):
    logits, targets, frames, labels = _batch()
    a = {"log_probs": logits, "targets": targets, "input_lengths": frames,
         "target_lengths": labels}
    change(a)
    with pytest.raises(ValueError, match=match):
        pl.get("ctc").value(**a)


def test_bad_layout_and_parameters_are_refused_by_name():
    logits, targets, frames, labels = _batch()
    with pytest.raises(ValueError,
                       match=r"^ctc_logits: parameter 'blank' must be in \[0, C\) = \[0, 6\)"):
        pl.get("ctc_logits", blank=6).value(logits, targets, frames, labels)
    with pytest.raises(ValueError, match=r"^ctc: parameter 'blank' must be an integer >= 0"):
        pl.get("ctc", blank=-1)
    with pytest.raises(ValueError, match=r"^ctc: argument 'target_lengths' must sum to 4"):
        pl.get("ctc").value(logits, np.array([1, 2, 3, 4]), frames, labels)
    with pytest.raises(TypeError, match=r"^ctc: 1-D \(concatenated\) 'targets' need"):
        pl.get("ctc").value(logits, np.array([1, 2]), frames, labels.astype(float))
    with pytest.raises(TypeError, match=r"^ctc: argument 'targets' must have an integer dtype"):
        pl.get("ctc").value(logits, targets.astype(float), frames, labels)
    with pytest.raises(ValueError, match=r"^ctc: argument 'input_lengths' must have shape \(N\)"):
        pl.get("ctc").value(logits, targets, frames[:3], labels)


@pytest.mark.parametrize("backend", backend_params(("torch", "dask")))
def test_bad_lengths_get_the_librarys_error_on_other_backends(backend):
    logits, targets, frames, labels = _batch()
    frames[0] = 20
    xp = BACKENDS[backend]
    if backend == "dask":
        import dask.array as da
        arrays = [da.from_array(a, chunks=3) for a in (logits, targets, frames, labels)]
    else:
        arrays = [xp.asarray(a) for a in (logits, targets, frames, labels)]
    with pytest.raises(ValueError, match=r"^ctc_logits: argument 'input_lengths' must hold"):
        to_numpy(pl.get("ctc_logits").value(*arrays))


def test_missing_lengths_are_named():
    logits, targets, frames, _ = _batch()
    with pytest.raises(TypeError,
                       match=r"^ctc: missing required array argument\(s\) 'target_lengths'"):
        pl.get("ctc").value(logits, np.array([1, 2]), frames)
