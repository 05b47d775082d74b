"""Array namespace, device and dtype helpers.

Every public entry point finds its namespace here; kernels receive it as the
keyword ``xp`` and use only the array API standard (plus ``xp.fft``).
"""

from __future__ import annotations

import importlib

import array_api_compat

__all__ = [
    "BACKENDS",
    "BackendError",
    "backend_namespace",
    "namespace",
    "device_of",
    "is_numpy",
    "whole_planes",
    "is_cupy",
    "real_dtype",
    "power",
    "constant",
]


def namespace(named: dict, owner: str = "ptyloss_xp"):
    """Return the one array namespace shared by the arrays in ``named``.

    Parameters
    ----------
    named : dict
        Argument name -> array (``None`` values are ignored); at least one
        array.
    owner : str
        The loss or function named in error messages.

    Raises
    ------
    TypeError
        If an entry is not an array, or if the arrays come from different
        namespaces (a NumPy/CuPy mix, say); the message names the arguments.
    """
    spaces = {}
    for name, arr in named.items():
        if arr is None:
            continue
        try:
            spaces[name] = array_api_compat.array_namespace(arr)
        except TypeError:
            msg = (
                f"{owner}: argument {name!r} must be an array (NumPy, CuPy or another "
                f"array API namespace), got {type(arr).__name__}"
            )
            raise TypeError(msg) from None
    if not spaces:
        msg = f"{owner}: no array arguments were given"
        raise TypeError(msg)
    distinct = {id(xp): xp for xp in spaces.values()}
    if len(distinct) > 1:
        where = ", ".join(f"{n}: {xp.__name__}" for n, xp in spaces.items())
        msg = f"{owner}: all array arguments must come from one array namespace, got {where}"
        raise TypeError(msg)
    return next(iter(distinct.values()))


def device_of(x):
    return array_api_compat.device(x)


def whole_planes(x):
    """A Dask array with its last two axes in one chunk (an FFT, or a filter
    of many shifted slices, needs whole planes; cut planes multiply the
    tasks); the leading axes stay chunked as given. Other arrays as they are."""
    if hasattr(x, "rechunk"):
        return x.rechunk({x.ndim - 2: -1, x.ndim - 1: -1})
    return x


def is_numpy(xp) -> bool:
    return array_api_compat.is_numpy_namespace(xp)


def is_cupy(xp) -> bool:
    return array_api_compat.is_cupy_namespace(xp)


def real_dtype(xp, dtype):
    """The real floating dtype of the same precision as ``dtype``."""
    if dtype == xp.complex64:
        return xp.float32
    if dtype == xp.complex128:
        return xp.float64
    return dtype


def power(xp, x, p):
    """``x ** p`` with the common exponents done without ``pow``.

    ``pow`` costs a log and an exp per element; 1, 0.5 and 2 are the powers
    PtyRAD configurations use most.
    """
    if p == 1:
        return x
    if p == 0.5:
        return xp.sqrt(x)
    if p == 2:
        return x * x
    return x**p


def constant(xp, values, like):
    """A host constant (NumPy array or list) as an array of ``like``'s
    namespace, dtype and device."""
    return xp.asarray(values, dtype=like.dtype, device=device_of(like))


BACKENDS = ("numpy", "cupy", "array_api_strict", "torch", "jax", "dask")

# Backend name -> (module array-api-compat wraps or the namespace itself, pip hint).
_MODULES = {
    "numpy": ("array_api_compat.numpy", "numpy"),
    "array_api_strict": ("array_api_strict", "array-api-strict"),
    "torch": ("array_api_compat.torch", "torch"),
    "jax": ("jax.numpy", "jax"),
    "dask": ("array_api_compat.dask.array", '"dask[array]"'),
}


class BackendError(ValueError):
    """A backend name that is unknown or not usable on this machine."""


def backend_namespace(name: str):
    """The array namespace behind a backend name of the command line and the tests.

    ``"numpy"``, ``"torch"`` and ``"dask"`` give array-api-compat's wrappers,
    ``"array_api_strict"`` the reference namespace and ``"jax"``
    ``jax.numpy`` with 64-bit floats switched on (JAX computes in float32
    otherwise, whatever the input). CuPy counts as usable only when a CUDA
    device answers.
    """
    if name == "cupy":
        try:
            cp = importlib.import_module("cupy")
            if cp.cuda.runtime.getDeviceCount() < 1:
                raise RuntimeError
        except Exception:  # noqa: BLE001  (no CuPy, no driver or no device)
            msg = ('backend cupy needs CuPy and a CUDA GPU, and none was found '
                   '(pip install "ptyloss-xp[cupy]" on a machine with a GPU)')
            raise BackendError(msg) from None
        return importlib.import_module("array_api_compat.cupy")
    if name not in _MODULES:
        msg = f"unknown backend {name!r}; valid: {', '.join(BACKENDS)}"
        raise BackendError(msg)
    module, hint = _MODULES[name]
    try:
        xp = importlib.import_module(module)
    except ImportError:
        msg = f"backend {name} is not installed (pip install {hint})"
        raise BackendError(msg) from None
    if name == "jax":
        importlib.import_module("jax").config.update("jax_enable_x64", True)
    return xp
