"""The far-field bridge: exit waves to diffraction patterns and back.

PtyRAD's forward model maps exit waves ``psi`` (N, pmode, omode, Ky, Kx) to

    Psi = fft2(psi, norm="ortho"),
    I = fftshift2(sum_{p,o} occu_o |Psi|^2) + floor      (floor = 1e-10).

A solver without autograd gets ``dL/dI`` from :class:`CombinedLoss` and
turns it into the exit-wave gradient with :func:`farfield_adjoint`:

    dL/dpsi = 2 occu_o ifft2_ortho(ifftshift2(dL/dI) * Psi),

in the convention ``dL/dRe + 1j dL/dIm`` (PyTorch's), so that
``psi -= step * grad`` descends. tike and PtyPy use ``dL/dconj(z)``, which is
half of this.

>>> import numpy as np
>>> from ptyloss_xp.ptycho import farfield_intensity
>>> psi = np.ones((1, 1, 1, 2, 2), dtype=np.complex128) / 2
>>> I, Psi = farfield_intensity(psi, np.ones(1))
>>> np.round(I[0], 6)
array([[0., 0.],
       [0., 1.]])
"""

from __future__ import annotations

from .._backend import device_of, real_dtype, whole_planes
from .._validate import Arg, Param, check_arrays, deferred_checks

__all__ = [
    "farfield_intensity",
    "farfield_adjoint",
    "object_grad_from_amp_phase",
    "amp_phase_grad_from_object",
]

_WAVES = ("N", "P", "O", "Ky", "Kx")
_AXES = (-2, -1)


def _occu_or_ones(xp, occu, like, n_omode):
    real = real_dtype(xp, like.dtype)
    if occu is None:
        return xp.ones((1, 1, n_omode, 1, 1), dtype=real, device=device_of(like))
    return xp.reshape(xp.astype(occu, real), (1, 1, -1, 1, 1))


def farfield_intensity(psi, omode_occu=None, *, floor=1e-10):
    """PtyRAD's far-field diffraction patterns of exit waves.

    Parameters
    ----------
    psi : complex array, shape (N, pmode, omode, Ky, Kx)
        Exit waves.
    omode_occu : real array, shape (omode,), optional
        Object-mode occupancies (ones when omitted).
    floor : float
        Added to every intensity (PtyRAD: 1e-10), keeping ``I > 0`` so that
        ``I ** p`` has a finite slope for ``p < 1``.

    Returns
    -------
    I : real array, shape (N, Ky, Kx)
        Model diffraction patterns, zero frequency at the centre.
    Psi : complex array, shape of ``psi``
        The far-field waves, to pass on to :func:`farfield_adjoint`.
    """
    floor = _FLOOR.validate("farfield_intensity", "floor", floor)
    with deferred_checks() as guard:
        xp, _ = check_arrays("farfield_intensity", _BRIDGE_ARGS,
                             {"psi": psi, "omode_occu": omode_occu}, {}, {})
        Psi = xp.fft.fftn(whole_planes(psi), axes=_AXES, norm="ortho")
        occ = _occu_or_ones(xp, omode_occu, psi, psi.shape[2])
        power = xp.real(Psi) ** 2 + xp.imag(Psi) ** 2
        I = xp.sum(xp.sum(occ * power, axis=1), axis=1)
        return guard((xp.fft.fftshift(I, axes=_AXES) + floor, Psi))


def farfield_adjoint(dl_dI, Psi, omode_occu=None):
    """Gradient with respect to the exit waves from the gradient with respect to ``I``.

    Parameters
    ----------
    dl_dI : real array, shape (N, Ky, Kx)
        Gradient of the loss with respect to the model patterns (centred, as
        returned by the loss).
    Psi : complex array, shape (N, pmode, omode, Ky, Kx)
        Far-field waves from :func:`farfield_intensity`.
    omode_occu : real array, shape (omode,), optional

    Returns
    -------
    complex array, shape of ``Psi``
        ``dL/dRe(psi) + 1j dL/dIm(psi)``.
    """
    with deferred_checks() as guard:
        xp, _ = check_arrays("farfield_adjoint", _ADJ_ARGS,
                             {"dl_dI": dl_dI, "Psi": Psi, "omode_occu": omode_occu}, {}, {})
        occ = _occu_or_ones(xp, omode_occu, Psi, Psi.shape[2])
        g = xp.fft.ifftshift(dl_dI, axes=_AXES)[:, None, None, ...]
        return guard(xp.fft.ifftn(whole_planes((2 * occ * g) * Psi), axes=_AXES, norm="ortho"))


def object_grad_from_amp_phase(dl_damp, dl_dphase, obj):
    """Complex-object gradient from amplitude and phase gradients.

    With ``O = A exp(i phi)``: ``dL/dO = (dL/dA + 1j dL/dphi / A) exp(i phi)``
    (convention ``dL/dRe + 1j dL/dIm``). Where ``A = 0`` the phase is not
    defined and only the amplitude part is kept.
    """
    with deferred_checks() as guard:
        xp, _ = check_arrays("object_grad_from_amp_phase", _AP_ARGS,
                             {"dl_damp": dl_damp, "dl_dphase": dl_dphase, "obj": obj}, {}, {})
        amp = xp.abs(obj)
        unit = xp.where(amp > 0, obj / xp.where(amp > 0, amp, 1.0), 1.0 + 0j)
        tangential = xp.where(amp > 0, dl_dphase / xp.where(amp > 0, amp, 1.0), 0.0)
        return guard((dl_damp + 1j * tangential) * unit)


def amp_phase_grad_from_object(dl_dobj, obj):
    """Amplitude and phase gradients from the complex-object gradient.

    The inverse of :func:`object_grad_from_amp_phase` where ``A > 0``:
    ``dL/dA = Re(conj(g) e^{i phi})``, ``dL/dphi = Re(conj(g) i O)``.
    """
    with deferred_checks() as guard:
        xp, _ = check_arrays("amp_phase_grad_from_object", _OA_ARGS,
                             {"dl_dobj": dl_dobj, "obj": obj}, {}, {})
        amp = xp.abs(obj)
        unit = xp.where(amp > 0, obj / xp.where(amp > 0, amp, 1.0), 1.0 + 0j)
        c = xp.conj(dl_dobj)
        return guard((xp.real(c * unit), xp.real(c * (1j * obj))))


_FLOOR = Param(1e-10, low=0.0, doc="added to every intensity")
_OCCU_ARG = Arg("omode_occu", ("O",), low=0.0, optional=True)
_BRIDGE_ARGS = (Arg("psi", _WAVES, kind="complex"), _OCCU_ARG)
_ADJ_ARGS = (Arg("dl_dI", ("N", "Ky", "Kx")), Arg("Psi", _WAVES, kind="complex"), _OCCU_ARG)
_AP_ARGS = (Arg("dl_damp", ("*",)), Arg("dl_dphase", ("*",)), Arg("obj", ("*",), kind="complex"))
_OA_ARGS = (Arg("dl_dobj", ("*",), kind="complex"), Arg("obj", ("*",), kind="complex"))
