"""A reference ptychography solver whose every gradient comes from ptyloss_xp.

Minibatch gradient descent on the object ``O`` (omode, H, W) and the probe
``P`` (pmode, Ky, Kx). For a batch of scan positions:

1. cut the object patches ``O_n`` (B, omode, Ky, Kx) out of ``O``;
2. exit waves ``psi[n, p, o] = P[p] O_n[o]`` and PtyRAD's far field
   ``I, Psi = farfield_intensity(psi, occu)``;
3. :meth:`CombinedLoss.value_and_grad` gives the weighted terms, ``dL/dI``
   and, for the regularizers, ``dL/dA`` and ``dL/dphi`` of the amplitude and
   phase patches;
4. ``dL/dpsi = farfield_adjoint(dL/dI, Psi, occu)``; the product rule gives
   ``dL/dO_n = sum_p conj(P) dL/dpsi`` and ``dL/dP = sum_{n,o} conj(O_n)
   dL/dpsi``; :func:`object_grad_from_amp_phase` adds the regularizers'
   part; a scatter-add of the patch gradients gives ``dL/dO``.

Gradients use the convention ``dL/dRe + 1j dL/dIm``, so ``z - step * g``
descends.

Step. The directions are the gradients divided by rPIE's preconditioners
(Maiden & Rodenburg 2009, ePIE; Maiden, Johnson & Li 2017, rPIE), summed over
the batch as in a simultaneous update::

    d_O = -g_O / ((1 - a) S_P + a max S_P),   S_P = sum_n |P|^2 at position n
    d_P = -g_P / ((1 - a) S_O + a max S_O),   S_O = sum_{n,o} |O_n|^2

with ``a = 0.1`` by default. The loss terms are normalised means whose scale
depends on the batch and the terms switched on, so a fixed ePIE step length
would not carry over between configurations. The step length ``t`` along
``(d_O, d_P)`` comes instead from a quadratic fit of the batch loss, in the
spirit of LSQ-ML's per-batch step (Odstrcil, Menzel & Guizar-Sicairos
2018): the loss at 0 and its slope ``s = Re<g, d>`` are known, one more loss
evaluation at the previous batch's step ``t0`` gives the curvature
``c = (L(t0) - L(0) - s t0) / t0^2``, and the step is ``-s / (2c)``, at most
``2 t0`` (so it can grow but not jump), or ``2 t0`` where the fit is not convex.
Each batch costs one forward and adjoint pass and one extra forward pass,
and the step stays on the device (no host round trip) so that the loop runs
on CuPy without synchronising per batch.

The scatter-add is the only backend-specific operation: ``bincount`` with
weights, which NumPy and CuPy both have (the array API standard has no
scatter-add). Everything else uses the array API namespace of the inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._backend import device_of, namespace, real_dtype
from .._validate import check_values
from ..ptycho import farfield_adjoint, farfield_intensity, object_grad_from_amp_phase

__all__ = ["patch_index", "object_probe_grad", "reconstruct", "Reconstruction"]


def patch_index(positions, patch_shape, obj_shape, *, xp=np, device=None):
    """Flat indices into the object plane of every patch pixel.

    Parameters
    ----------
    positions : int array, shape (N, 2)
        Top-left (row, column) of each patch.
    patch_shape, obj_shape : (int, int)
        ``(Ky, Kx)`` and ``(H, W)``.

    Returns
    -------
    int64 array of ``xp``, shape (N, Ky * Kx)

    Examples
    --------
    >>> patch_index(np.array([[0, 1]]), (2, 2), (3, 4))
    array([[1, 2, 5, 6]])
    """
    pos = np.asarray(positions, dtype=np.int64)
    ky, kx = patch_shape
    h, w = obj_shape
    if pos.size and (pos.min() < 0 or (pos[:, 0] + ky).max() > h or (pos[:, 1] + kx).max() > w):
        msg = f"patch_index: patches of {ky}x{kx} at these positions do not fit in a {h}x{w} object"
        raise ValueError(msg)
    rows = pos[:, :1, None] + np.arange(ky)[None, :, None]
    cols = pos[:, None, 1:] + np.arange(kx)[None, None, :]
    return xp.asarray((rows * w + cols).reshape(len(pos), ky * kx), device=device)


def _patches(xp, obj, index, patch_shape):
    """(B, omode, Ky, Kx) patches of ``obj`` (omode, H, W) at ``index`` (B, Ky*Kx)."""
    n_mode = obj.shape[0]
    flat = xp.reshape(obj, (n_mode, -1))
    cut = xp.take(flat, xp.reshape(index, (-1,)), axis=1)
    cut = xp.reshape(cut, (n_mode, index.shape[0]) + tuple(patch_shape))
    return xp.permute_dims(cut, (1, 0, 2, 3))


def _scatter_add(xp, values, index, size):
    """Sum ``values`` (..., M) into ``size`` bins per leading entry at ``index`` (M,).

    ``bincount`` with weights is NumPy's and CuPy's fast scatter-add; it takes
    real weights and returns float64, hence the split and the cast back.
    """
    lead = values.shape[:-1]
    rows = xp.reshape(values, (-1, values.shape[-1]))
    real = real_dtype(xp, values.dtype)
    out = []
    for i in range(rows.shape[0]):
        row = rows[i, ...]
        parts = (xp.real(row), xp.imag(row)) if xp.isdtype(values.dtype, "complex floating") else (row,)
        sums = [xp.astype(xp.bincount(index, weights=part, minlength=size), real) for part in parts]
        out.append(sums[0] if len(sums) == 1 else sums[0] + 1j * sums[1])
    return xp.reshape(xp.stack(out), lead + (size,))


def _loss_inputs(xp, probe, patches, measured, occu):
    psi = probe[None, :, None, ...] * patches[:, None, ...]
    model, far = farfield_intensity(psi, occu)
    # Nz = 1: the demo's object is a single slice.
    amp = xp.abs(patches)[:, :, None, ...]
    phase = xp.atan2(xp.imag(patches), xp.real(patches))[:, :, None, ...]
    arrays = dict(model_dp=model, measured_dp=measured, obja_patches=amp,
                  objp_patches=phase, omode_occu=occu)
    return arrays, far


def _patch_grads(xp, loss, probe, patches, measured, occu):
    """The combiner's result and ``dL/dO_n`` (B, omode, Ky, Kx), ``dL/dP`` (pmode, Ky, Kx)."""
    arrays, far = _loss_inputs(xp, probe, patches, measured, occu)
    res = loss.value_and_grad(**arrays)
    g_psi = farfield_adjoint(res.grads["model_dp"], far, occu)
    g_patch = xp.sum(xp.conj(probe)[None, :, None, ...] * g_psi, axis=1)
    g_amp, g_phase = res.grads.get("obja_patches"), res.grads.get("objp_patches")
    if g_amp is not None or g_phase is not None:
        zero = xp.zeros(patches.shape, dtype=real_dtype(xp, patches.dtype), device=device_of(patches))
        g_amp = zero if g_amp is None else g_amp[:, :, 0, ...]
        g_phase = zero if g_phase is None else g_phase[:, :, 0, ...]
        g_patch = g_patch + object_grad_from_amp_phase(g_amp, g_phase, patches)
    g_probe = xp.sum(xp.conj(patches)[:, None, ...] * g_psi, axis=(0, 2))
    return res, g_patch, g_probe


def _occupancy(xp, obj):
    n_mode = obj.shape[0]
    return xp.full((n_mode,), 1.0 / n_mode, dtype=real_dtype(xp, obj.dtype), device=device_of(obj))


def _batch_grads(xp, loss, obj, probe, index, measured, occu):
    """Patches, the combiner's result, ``dL/dO`` (whole object) and ``dL/dP`` for one batch."""
    patches = _patches(xp, obj, index, probe.shape[1:])
    res, g_patch, g_probe = _patch_grads(xp, loss, probe, patches, measured, occu)
    by_mode = xp.reshape(xp.permute_dims(g_patch, (1, 0, 2, 3)), (obj.shape[0], -1))
    g_obj = _scatter_add(xp, by_mode, xp.reshape(index, (-1,)), obj.shape[1] * obj.shape[2])
    return patches, res, xp.reshape(g_obj, obj.shape), g_probe


def object_probe_grad(loss, obj, probe, measured, positions, omode_occu=None):
    """Loss and its gradients with respect to the whole object and the probe.

    Parameters
    ----------
    loss : CombinedLoss
    obj : complex array, shape (omode, H, W)
    probe : complex array, shape (pmode, Ky, Kx)
    measured : real array, shape (N, Ky, Kx)
        Measured patterns at ``positions``, zero frequency at the centre.
    positions : int array, shape (N, 2)
        Top-left corners of the patches (host array).
    omode_occu : real array, shape (omode,), optional
        Object-mode occupancies; ``1 / omode`` each when omitted.

    Returns
    -------
    result : CombinedResult
        The combiner's total, terms and per-variable gradients.
    g_obj : complex array, shape of ``obj``
    g_probe : complex array, shape of ``probe``
        ``dL/dRe + 1j dL/dIm`` of the total.

    Examples
    --------
    >>> import ptyloss_xp as pl
    >>> rng = np.random.default_rng(0)
    >>> obj = np.exp(0.3j * rng.random((1, 6, 6)))
    >>> probe = rng.normal(size=(1, 4, 4)) + 0j
    >>> res, g_obj, g_probe = object_probe_grad(
    ...     pl.CombinedLoss(), obj, probe, rng.random((2, 4, 4)), np.array([[0, 0], [2, 2]]))
    >>> g_obj.shape, g_probe.shape
    ((1, 6, 6), (1, 4, 4))
    """
    xp = namespace({"obj": obj, "probe": probe, "measured": measured})
    occu = _occupancy(xp, obj) if omode_occu is None else omode_occu
    index = patch_index(positions, probe.shape[1:], obj.shape[1:], xp=xp, device=device_of(obj))
    _, res, g_obj, g_probe = _batch_grads(xp, loss, obj, probe, index, measured, occu)
    return res, g_obj, g_probe


@dataclass
class Reconstruction:
    """What :func:`reconstruct` returns.

    Attributes
    ----------
    obj, probe : arrays of the input namespace
        The final estimates.
    history : dict
        Term name -> one float per iteration: the term's mean over the
        iteration's batches (the losses as they were when each batch was
        visited); ``"total"`` is their sum.
    steps : list of float
        The mean step length of each iteration.
    """

    obj: object
    probe: object
    history: dict = field(default_factory=dict)
    steps: list = field(default_factory=list)


def _preconditioned(xp, grad, weight, alpha):
    """``-grad / ((1 - a) w + a max w)``: rPIE's normalisation."""
    return -grad / ((1.0 - alpha) * weight + alpha * xp.max(weight))


def _slope(xp, grad, direction):
    """Directional derivative ``Re <grad, direction>`` in the ``dL/dRe + 1j dL/dIm`` convention."""
    return xp.sum(xp.real(grad) * xp.real(direction) + xp.imag(grad) * xp.imag(direction))


def reconstruct(loss, measured, positions, obj, probe, *, iters=50, batch=16, alpha=0.1,
                probe_start=5, first_step=0.1, seed=0, omode_occu=None, callback=None):
    """Reconstruct object and probe with minibatch preconditioned gradient descent.

    Parameters
    ----------
    loss : CombinedLoss
        The loss; every gradient comes from it and the far-field bridge.
    measured : real array, shape (N, Ky, Kx)
        Measured patterns (the namespace of ``obj`` and ``probe``).
    positions : int array, shape (N, 2)
        Top-left corners of the patches in the object (host array).
    obj : complex array, shape (omode, H, W)
        Starting object.
    probe : complex array, shape (pmode, Ky, Kx)
        Starting probe.
    iters : int
        Passes over all positions.
    batch : int
        Positions per update; the positions are shuffled every pass.
    alpha : float
        rPIE's regularisation ``a`` in ``(0, 1]``.
    probe_start : int
        First pass (0-based) that updates the probe: the object settles first,
        so that the probe does not absorb object structure early on.
    first_step : float
        The first batch's trial step moves the object by at most this much
        (relative to ``max |obj|``).
    seed : int
        Seed of the batch order.
    omode_occu : real array, shape (omode,), optional
        Object-mode occupancies; ``1 / omode`` each when omitted.
    callback : callable, optional
        Called after every pass as ``callback(iteration, terms)`` with
        ``terms`` a dict of floats (the history's last entries).

    Returns
    -------
    Reconstruction
        New arrays; the inputs are not modified.
    """
    xp = namespace({"measured": measured, "obj": obj, "probe": probe})
    device = device_of(obj)
    measured = xp.astype(measured, real_dtype(xp, obj.dtype))
    # Checked once here, so that the loop can skip the losses' per-call value
    # checks (each is a device synchronisation on a GPU).
    if not bool(xp.all(measured >= 0)):
        msg = "reconstruct: measured patterns must be >= 0"
        raise ValueError(msg)
    occu = _occupancy(xp, obj) if omode_occu is None else omode_occu
    n_pos = measured.shape[0]
    size = obj.shape[1] * obj.shape[2]
    patch_shape = tuple(probe.shape[1:])
    index_all = patch_index(positions, patch_shape, obj.shape[1:], xp=xp, device=device)
    n_batches = max(1, -(-n_pos // batch))
    rng = np.random.default_rng(seed)
    history = {t: [] for t in ("total",) + tuple(loss.config)}
    steps = []
    step = None
    with check_values(False):
        for it in range(iters):
            update_probe = it >= probe_start
            sums, step_sum = None, 0.0
            for ids in np.array_split(rng.permutation(n_pos), n_batches):
                ids = xp.asarray(ids, device=device)
                index = xp.take(index_all, ids, axis=0)
                dp = xp.take(measured, ids, axis=0)
                patches, res, g_obj, g_probe = _batch_grads(xp, loss, obj, probe, index, dp, occu)

                # The batch's illumination sum_n |P|^2 at each object pixel.
                p_power = xp.reshape(xp.sum(xp.abs(probe) ** 2, axis=0), (1, -1))
                tiled = xp.broadcast_to(p_power, (ids.shape[0], p_power.shape[1]))
                lit = _scatter_add(xp, xp.reshape(tiled, (-1,)), xp.reshape(index, (-1,)), size)
                d_obj = _preconditioned(xp, g_obj, xp.reshape(lit, obj.shape[1:]), alpha)
                slope = _slope(xp, g_obj, d_obj)
                d_probe = None
                if update_probe:
                    o_power = xp.sum(xp.abs(patches) ** 2, axis=(0, 1))
                    d_probe = _preconditioned(xp, g_probe, o_power, alpha)
                    slope = slope + _slope(xp, g_probe, d_probe)

                if step is None:
                    step = first_step * xp.max(xp.abs(obj)) / xp.max(xp.abs(d_obj))
                d_patches = _patches(xp, d_obj, index, patch_shape)
                trial_probe = probe if d_probe is None else probe + step * d_probe
                trial, _ = loss(**_loss_inputs(xp, trial_probe, patches + step * d_patches, dp,
                                               occu)[0])
                curv = (trial - res.total - slope * step) / step**2
                fit = -slope / (2.0 * xp.where(curv > 0, curv, 1.0))
                new = xp.where(curv > 0, xp.minimum(fit, 2.0 * step), 2.0 * step)
                # A non-finite trial (overflow far from the data) means: back off.
                step = xp.where(xp.isfinite(new), new, 0.25 * step)

                obj = obj + step * d_obj
                if d_probe is not None:
                    probe = probe + step * d_probe
                values = xp.stack([res.total] + [res.terms[t] for t in loss.config])
                sums = values if sums is None else sums + values
                step_sum = step_sum + step
            means = [float(v) / n_batches for v in sums]
            for name, v in zip(history, means):
                history[name].append(v)
            steps.append(float(step_sum) / n_batches)
            if callback is not None:
                callback(it, {name: h[-1] for name, h in history.items()})
    return Reconstruction(obj, probe, history, steps)
