"""The numba kernel of CTC gives the generic kernel's numbers (float64, 1e-12
relative) on random cases with every edge: impossible alignments, zero
frames, empty targets, any blank, repeated labels, varied lengths, both
target layouts, every reduction and ``zero_infinity``. The generic kernel
runs on the same NumPy arrays with ``sequence._NUMBA`` set to ``None``."""

import os
import subprocess
import sys

import numpy as np
import pytest

import ptyloss_xp as pl
from ptyloss_xp.losses import sequence

pytest.importorskip("numba")

RTOL = 1e-12


@pytest.fixture(autouse=True)
def _numba_loaded():
    if sequence._NUMBA is None:
        pytest.skip("the numba kernels are switched off (PTYLOSS_XP_NUMBA=0)")


def _random_case(rng, extreme=False):
    """A batch of random sizes; lengths drawn freely, so that some
    alignments are impossible, some inputs have no frame and some targets
    are empty; few classes, so that labels repeat. ``extreme`` puts scores
    of -500 to -2000 (classes all but forbidden) at random entries: the
    paths then differ by more than the float64 range in linear space."""
    t = int(rng.integers(1, 12))
    n = int(rng.integers(1, 6))
    c = int(rng.integers(2, 6))
    s = int(rng.integers(1, 6))
    blank = int(rng.integers(0, c))
    x = 3 * rng.normal(size=(t, n, c))
    if extreme:
        x = np.where(rng.random(x.shape) < 0.4, -rng.uniform(500, 2000, x.shape), x)
    labels = rng.integers(0, c - 1, (n, s))
    targets = np.where(labels >= blank, labels + 1, labels)
    frames = rng.integers(0, t + 1, n)
    lengths = rng.integers(0, s + 1, n)
    # Padding beyond the target lengths may hold anything.
    targets = np.where(np.arange(s)[None, :] < lengths[:, None], targets, -1)
    return x, targets, frames, lengths, blank


def _close(fast, ref, rtol=RTOL):
    fast, ref = np.asarray(fast), np.asarray(ref)
    assert fast.dtype == ref.dtype and fast.shape == ref.shape
    assert not np.any(np.isnan(fast))
    # Log-likelihoods carry an absolute rounding error of order eps, so a
    # loss of 0 (one alignment holds all the mass) is matched to rtol too.
    scale = np.max(np.abs(ref[np.isfinite(ref)]), initial=1.0)
    np.testing.assert_allclose(fast, ref, rtol=rtol, atol=rtol * scale)


def _posterior_rtol(loss):
    """A posterior ``exp(alpha + beta - log p)`` inherits the rounding of its
    exponent, about eps |log p| in either kernel: beyond 1e-12 only for the
    losses of thousands that scores of -2000 give."""
    big = np.max(np.abs(loss[np.isfinite(loss)]), initial=0.0)
    return max(RTOL, 8 * np.finfo(np.float64).eps * big)


def _generic(monkeypatch, call):
    with monkeypatch.context() as m:
        m.setattr(sequence, "_NUMBA", None)
        return call()


@pytest.mark.parametrize("extreme", [False, True], ids=["normal", "extreme"])
@pytest.mark.parametrize("logits", [False, True], ids=["log_probs", "logits"])
def test_per_sample_matches_generic_on_random_cases(monkeypatch, logits, extreme):
    rng = np.random.default_rng(1)
    seen = {"impossible": 0, "no frames": 0, "empty target": 0, "repeat": 0}
    for _ in range(300):
        x, targets, frames, lengths, blank = _random_case(rng, extreme)
        if logits is False:
            x = x - x.max(axis=2, keepdims=True)
            x = x - np.log(np.exp(x).sum(axis=2, keepdims=True))
        args = (x, targets, frames, lengths, blank, logits, True)
        assert sequence._NUMBA.accepts(*args[:5])
        loss, g = sequence._per_sample(*args)
        loss_ref, g_ref = _generic(monkeypatch, lambda: sequence._per_sample(*args))
        _close(loss, loss_ref)
        _close(g, g_ref, rtol=_posterior_rtol(loss_ref))
        value_only, none = sequence._per_sample(*args[:-1], False)
        assert none is None
        np.testing.assert_array_equal(value_only, loss)
        seen["impossible"] += int(np.sum(np.isinf(loss)))
        assert np.all(g[:, np.isinf(loss)] == 0)
        seen["no frames"] += int(np.sum(frames == 0))
        seen["empty target"] += int(np.sum(lengths == 0))
        seen["repeat"] += int(np.sum((targets[:, 1:] == targets[:, :-1])
                                     & (np.arange(1, targets.shape[1]) < lengths[:, None])))
    assert min(seen.values()) >= 10, seen


@pytest.mark.parametrize("name", ["ctc", "ctc_logits"])
@pytest.mark.parametrize("params", [{}, {"reduction": "sum"}, {"reduction": "none"},
                                    {"zero_infinity": True}, {"blank": 2, "reduction": "none"}])
def test_losses_match_generic(monkeypatch, name, params):
    rng = np.random.default_rng(2)
    blank = params.get("blank", 0)
    x = 3 * rng.normal(size=(9, 5, 4))
    targets = rng.integers(0, 3, (5, 4))
    targets = np.where(targets >= blank, targets + 1, targets)
    targets[0, :3] = targets[0, 0]
    frames = np.array([9, 9, 5, 0, 2])
    lengths = np.array([4, 2, 0, 0, 3])  # the last one impossible
    loss = pl.get(name, **params)
    v, g = loss.value_and_grad(x, targets, frames, lengths)
    v_ref, g_ref = _generic(monkeypatch, lambda: loss.value_and_grad(x, targets, frames, lengths))
    _close(v, v_ref)
    _close(g, g_ref)
    # The same with the targets concatenated, 1-D.
    flat = np.concatenate([targets[i, :m] for i, m in enumerate(lengths)])
    v1, g1 = loss.value_and_grad(x, flat, frames, lengths)
    _close(v1, v_ref)
    _close(g1, g_ref)


@pytest.mark.parametrize("name", ["ctc", "ctc_logits"])
def test_float32_stays_float32_and_agrees(monkeypatch, name):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 4, 7)).astype(np.float32)
    targets = rng.integers(1, 7, (4, 8)).astype(np.int32)
    frames, lengths = np.array([30, 25, 30, 12]), np.array([8, 5, 0, 6])
    loss = pl.get(name, reduction="none")
    v, g = loss.value_and_grad(x, targets, frames, lengths)
    assert v.dtype == g.dtype == np.float32
    v_ref, g_ref = _generic(monkeypatch, lambda: loss.value_and_grad(x, targets, frames, lengths))
    _close(v, v_ref, rtol=1e-5)
    _close(g, g_ref, rtol=1e-5)


def test_input_outside_the_domain_goes_to_the_generic_kernel():
    """With the value checks off nothing refuses bad labels or lengths; the
    kernel, which trusts its input, must not see them."""
    x = np.zeros((4, 2, 3))
    targets = np.array([[1, 2], [1, 2]])
    frames, lengths = np.array([4, 4]), np.array([2, 2])
    accepts = sequence._NUMBA.accepts
    assert accepts(x, targets, frames, lengths, 0)
    assert not accepts(x, np.array([[1, 3], [1, 2]]), frames, lengths, 0)
    assert not accepts(x, np.array([[1, -1], [1, 2]]), frames, lengths, 0)
    assert not accepts(x, targets, frames, lengths, 1)
    assert not accepts(x, targets, np.array([5, 4]), lengths, 0)
    assert not accepts(x, targets, frames, np.array([3, 2]), 0)
    assert not accepts(x.astype(np.float16), targets, frames, lengths, 0)
    assert not accepts(x, targets.astype(float), frames, lengths, 0)


def test_the_switch_turns_the_kernel_off():
    code = ("from ptyloss_xp.losses import sequence; from ptyloss_xp.ptycho import _fast; "
            "print(sequence._NUMBA is None, _fast._NUMBA is None)")
    env = {**os.environ, "PTYLOSS_XP_NUMBA": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["True", "True"]


def test_calls_from_several_threads_under_the_workqueue_layer():
    """numba's workqueue threading layer aborts the process on concurrent
    calls (Dask's threaded scheduler makes them); the kernel serialises them."""
    code = """
import numpy as np, numba, ptyloss_xp as pl
from concurrent.futures import ThreadPoolExecutor
rng = np.random.default_rng(0)
x = rng.normal(size=(40, 16, 6))
args = (x, rng.integers(1, 6, (16, 8)), np.full(16, 40), np.full(16, 8))
loss = pl.get("ctc_logits")
v0, g0 = loss.value_and_grad(*args)
with ThreadPoolExecutor(4) as pool:
    out = list(pool.map(lambda _: loss.value_and_grad(*args), range(16)))
assert all(v == v0 and np.array_equal(g, g0) for v, g in out)
print(numba.threading_layer())
"""
    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["workqueue"]
