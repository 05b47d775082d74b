"""The benchmarked cases: each library call with its two comparisons.

For every case there are three implementations of the same value and
gradient:

- the library's ``value_and_grad`` (the fast path where one exists);
- a naive transcription on the same namespace ``xp`` (NumPy or CuPy): the
  powers, then the means, then the chain rule written out factor by factor,
  each step a full-size array, as one would first write it;
- PyTorch autograd of the forward formula, forward plus backward, which is
  how PtyRAD gets its gradients.

``moved`` counts the bytes that must cross memory at least once: every input
read once and every output written once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

import ptyloss_xp as pl


@dataclass
class Inputs:
    """Host float32 arrays of one problem size."""

    model_dp: np.ndarray
    measured_dp: np.ndarray
    obja_patches: np.ndarray
    objp_patches: np.ndarray
    omode_occu: np.ndarray


def make_inputs(n, k, omode, seed=0):
    """Realistic-looking 4D-STEM data: a bright disk over a falling background.

    The measured patterns are Poisson counts of the model, so most pixels at
    high angles are 0, as in experiments (and as the kernels must handle).
    """
    rng = np.random.default_rng(seed)
    y, x = np.indices((k, k)) - k / 2
    r = np.hypot(y, x) / k
    profile = 200.0 * (r < 0.12) + 20.0 * np.exp(-r / 0.08) + 0.02
    model = (profile * rng.gamma(20.0, 1 / 20.0, (n, k, k))).astype(np.float32) + 1e-10
    measured = rng.poisson(model).astype(np.float32)
    shape = (n, omode, 1, k, k)
    obja = (1.0 + 0.05 * rng.standard_normal(shape)).astype(np.float32)
    objp = (0.3 * rng.standard_normal(shape)).astype(np.float32)
    occu = np.linspace(1.0, 0.5, omode).astype(np.float32)
    occu /= occu.sum()
    return Inputs(model, measured, obja, objp, occu)


@dataclass
class Case:
    """One benchmarked call.

    ``library(a)``, ``naive(xp, a)`` and ``torch(t)`` take dicts of arrays
    (``a``) or tensors (``t``) keyed by the argument names in ``args``;
    ``torch`` returns the scalar loss to differentiate with respect to
    ``wrt``; ``outputs`` are the argument names whose gradient is returned.
    """

    label: str
    args: tuple
    wrt: tuple
    library: Callable
    naive: Callable
    torch: Callable

    def moved(self, arrays):
        """Bytes read (each input once) plus bytes written (each gradient once)."""
        return (sum(arrays[n].nbytes for n in self.args)
                + sum(arrays[n].nbytes for n in self.wrt))


DP = ("model_dp", "measured_dp")
OBJ_P = ("objp_patches", "omode_occu")
OBJ_AP = ("obja_patches", "objp_patches", "omode_occu")


# ------------------------------------------------------------ naive NumPy

def naive_single(xp, a, w=1.0, p=0.5):
    I, D = a["model_dp"], a["measured_dp"]
    Ip, Dp = I**p, D**p
    r = Ip - Dp
    mse = xp.mean(r**2)
    rms = xp.sqrt(mse)
    mean_d = xp.mean(Dp)
    value = w * rms / mean_d
    dvalue_drms = w / mean_d
    drms_dmse = 0.5 / rms
    dmse_dr = 2.0 * r / r.size
    dr_dI = p * I ** (p - 1)
    return value, {"model_dp": dvalue_drms * drms_dmse * dmse_dr * dr_dI}


def naive_poissn(xp, a, w=1.0, p=1.0, eps=1e-6):
    I, D = a["model_dp"], a["measured_dp"]
    Ip, Dp = I**p, D**p
    mean_d = xp.mean(Dp)
    value = -w * xp.mean(Dp * xp.log(Ip + eps) - Ip) / mean_d
    dvalue_dterms = -w / (mean_d * I.size)
    dterms_dIp = Dp / (Ip + eps) - 1.0
    dIp_dI = p * I ** (p - 1)
    return value, {"model_dp": dvalue_dterms * dterms_dIp * dIp_dI}


def naive_pacbed(xp, a, w=0.5, p=0.2):
    I, D = a["model_dp"], a["measured_dp"]
    Im, Dm = xp.mean(I, axis=0), xp.mean(D, axis=0)
    mean_d = xp.mean(D**p)
    r = Im**p - Dm**p
    rms = xp.sqrt(xp.mean(r**2))
    value = w * rms / mean_d
    dr = (w / mean_d) * (0.5 / rms) * (2.0 * r / r.size) * p * Im ** (p - 1)
    return value, {"model_dp": xp.ones_like(I) * (dr / I.shape[0])}


def naive_sparse(xp, a, w=0.1):
    P, occ = a["objp_patches"], a["omode_occu"]
    absP = xp.abs(P)
    m = xp.mean(absP, axis=(0, 2, 3, 4))
    value = w * xp.sum(occ * m)
    count = P.size // P.shape[1]
    return value, {"objp_patches": w * occ[None, :, None, None, None] * xp.sign(P) / count}


def _tv_diffs(xp, x):
    zy = xp.zeros_like(x[..., :1, :])
    zx = xp.zeros_like(x[..., :1])
    dy = xp.concatenate([x[..., 1:, :] - x[..., :-1, :], zy], axis=-2)
    dx = xp.concatenate([x[..., 1:] - x[..., :-1], zx], axis=-1)
    return dy, dx


def naive_tv(xp, a, w=0.1, eps=1e-3):
    """Isotropic TV of the phase: forward differences, then their adjoint."""
    P, occ = a["objp_patches"], a["omode_occu"][None, :, None, None, None]
    dy, dx = _tv_diffs(xp, P)
    mag = xp.sqrt(dy**2 + dx**2 + eps**2)
    count = P.size // P.shape[1]
    value = w * xp.sum(occ * (mag - eps)) / count
    qy, qx = occ * w * dy / (mag * count), occ * w * dx / (mag * count)
    gy = -qy
    gy[..., 1:, :] += qy[..., :-1, :]
    gx = -qx
    gx[..., 1:] += qx[..., :-1]
    return value, {"objp_patches": gy + gx}


def _taps(sigma):
    t = np.arange(-2, 3, dtype=np.float64)
    k = np.exp(-(t**2) / (2 * sigma**2))
    return k / k.sum()


def _blur_axis(xp, x, k, axis):
    """5-tap correlation along ``axis`` of the ``reflect``-padded signal."""
    pad = [(0, 0)] * x.ndim
    pad[axis] = (2, 2)
    xpad = xp.pad(x, pad, mode="reflect")
    n = x.shape[axis]
    return sum(float(kj) * xp.take(xpad, xp.arange(j, j + n), axis=axis) for j, kj in enumerate(k))


def _blur_axis_adjoint(xp, g, k, axis):
    """Adjoint of :func:`_blur_axis`: spread onto the padded signal, fold the pad back."""
    g = xp.moveaxis(g, axis, -1)
    n = g.shape[-1]
    gpad = xp.zeros(g.shape[:-1] + (n + 4,), dtype=g.dtype)
    for j, kj in enumerate(k):
        gpad[..., j:j + n] += float(kj) * g
    out = gpad[..., 2:n + 2].copy()
    out[..., 2] += gpad[..., 0]
    out[..., 1] += gpad[..., 1]
    out[..., n - 2] += gpad[..., n + 2]
    out[..., n - 3] += gpad[..., n + 3]
    return xp.moveaxis(out, -1, axis)


def _zoom_half(xp, x):
    """Area averaging by 1/2 along y and x (sizes here are even)."""
    s = x.shape
    return x.reshape(s[:-2] + (s[-2] // 2, 2, s[-1] // 2, 2)).mean(axis=(-3, -1))


def _zoom_half_adjoint(xp, g):
    return xp.repeat(xp.repeat(g, 2, axis=-2), 2, axis=-1) / 4.0


def naive_simlar(xp, a, w=0.1, blur_std=1.0):
    """``loss_simlar`` with blur and a (1, 0.5, 0.5) zoom on both channels."""
    k = _taps(blur_std)
    occ = a["omode_occu"][None, :, None, None, None]
    value, grads = 0.0, {}
    for name in ("obja_patches", "objp_patches"):
        x = a[name]
        xb = _blur_axis(xp, _blur_axis(xp, x, k, -1), k, -2)
        u = occ * _zoom_half(xp, xb)
        d = u - xp.mean(u, axis=1, keepdims=True)
        o = u.shape[1]
        s = xp.sqrt(xp.sum(d**2, axis=1, keepdims=True) / (o - 1))
        value = value + w * xp.mean(s)
        du = w * d / ((o - 1) * s * s.size)
        gx = _zoom_half_adjoint(xp, occ * du)
        grads[name] = _blur_axis_adjoint(xp, _blur_axis_adjoint(xp, gx, k, -2), k, -1)
    return value, grads


def naive_combined(xp, a):
    """PtyRAD's documented example block: ``loss_single`` (p = 0.5) plus ``loss_sparse`` (weight 0.1)."""
    v1, g1 = naive_single(xp, a)
    v2, g2 = naive_sparse(xp, a)
    return v1 + v2, {**g1, **g2}


# ------------------------------------------------------------ PyTorch

def torch_single(torch, t, w=1.0, p=0.5):
    I, D = t["model_dp"], t["measured_dp"]
    return w * torch.sqrt(torch.mean((I**p - D**p) ** 2)) / torch.mean(D**p)


def torch_poissn(torch, t, w=1.0, p=1.0, eps=1e-6):
    I, D = t["model_dp"], t["measured_dp"]
    return -w * torch.mean(D**p * torch.log(I**p + eps) - I**p) / torch.mean(D**p)


def torch_pacbed(torch, t, w=0.5, p=0.2):
    I, D = t["model_dp"], t["measured_dp"]
    r = I.mean(0) ** p - D.mean(0) ** p
    return w * torch.sqrt(torch.mean(r**2)) / torch.mean(D**p)


def torch_sparse(torch, t, w=0.1):
    P, occ = t["objp_patches"], t["omode_occu"]
    return w * torch.sum(occ * P.abs().mean(dim=(0, 2, 3, 4)))


def torch_simlar(torch, t, w=0.1, blur_std=1.0):
    F = torch.nn.functional
    k = torch.as_tensor(_taps(blur_std), dtype=t["objp_patches"].dtype,
                        device=t["objp_patches"].device)
    kernel = (k[:, None] * k[None, :])[None, None]
    occ = t["omode_occu"][None, :, None, None, None]
    total = 0.0
    for name in ("obja_patches", "objp_patches"):
        x = t[name]
        n, o, z, ny, nx = x.shape
        flat = F.pad(x.reshape(n * o * z, 1, ny, nx), (2, 2, 2, 2), mode="reflect")
        xb = F.conv2d(flat, kernel).reshape(n, o, z, ny, nx)
        xz = F.adaptive_avg_pool3d(xb, (z, ny // 2, nx // 2))
        total = total + w * torch.std(occ * xz, dim=1).mean()
    return total


def torch_tv(torch, t, w=0.1, eps=1e-3):
    P, occ = t["objp_patches"], t["omode_occu"][None, :, None, None, None]
    F = torch.nn.functional
    dy = F.pad(P[..., 1:, :] - P[..., :-1, :], (0, 0, 0, 1))
    dx = F.pad(P[..., 1:] - P[..., :-1], (0, 1))
    mag = torch.sqrt(dy**2 + dx**2 + eps**2)
    return w * torch.sum(occ * (mag - eps)) / (P.numel() // P.shape[1])


def torch_combined(torch, t):
    return torch_single(torch, t) + torch_sparse(torch, t)


# ------------------------------------------------------------ cases

def _in_wrt_order(wrt, out):
    return out[wrt[0]] if len(wrt) == 1 else tuple(out[n] for n in wrt)


def _term(name, **params):
    loss = pl.get(name, **params)
    names = [arg.name for arg in loss.args if not arg.optional]

    def call(a, out=None):
        _, g = loss.value_and_grad(**{n: a[n] for n in names},
                                   out=None if out is None else _in_wrt_order(loss.wrt, out))
        return g

    return call


def _combined():
    combo = pl.CombinedLoss(pl.ptycho.ptyrad_example_loss_params())

    def call(a, out=None):
        return combo.value_and_grad(**{n: a[n] for n in DP + OBJ_P}, out=out).grads

    return call


def cases():
    """The benchmarked cases, in table order."""
    return [
        Case("loss_single p=0.5", DP, ("model_dp",), _term("loss_single", dp_pow=0.5),
             naive_single, torch_single),
        Case("loss_single p=0.2", DP, ("model_dp",), _term("loss_single", dp_pow=0.2),
             lambda xp, a: naive_single(xp, a, p=0.2),
             lambda torch, t: torch_single(torch, t, p=0.2)),
        Case("loss_poissn p=1", DP, ("model_dp",), _term("loss_poissn"), naive_poissn,
             torch_poissn),
        Case("loss_pacbed p=0.2", DP, ("model_dp",), _term("loss_pacbed"), naive_pacbed,
             torch_pacbed),
        Case("loss_sparse n=1", OBJ_P, ("objp_patches",), _term("loss_sparse"), naive_sparse,
             torch_sparse),
        Case("loss_tv phase", OBJ_P, ("objp_patches",), _term("loss_tv"), naive_tv, torch_tv),
        Case("loss_simlar blur+zoom", OBJ_AP, ("obja_patches", "objp_patches"),
             _term("loss_simlar", obj_type="both", blur_std=1.0, scale_factor=(1.0, 0.5, 0.5)),
             naive_simlar, torch_simlar),
        Case("CombinedLoss example", DP + OBJ_P, ("model_dp", "objp_patches"), _combined(),
             naive_combined, torch_combined),
    ]
