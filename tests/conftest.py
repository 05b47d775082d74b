"""Backends as a test parameter: NumPy always, array-api-strict when
installed, CuPy only where a GPU answers."""

import importlib

import numpy as np
import pytest


def _cupy():
    try:
        cp = importlib.import_module("cupy")
        cp.cuda.runtime.getDeviceCount()
        cp.zeros(1)
    except Exception:  # noqa: BLE001  (no CuPy, no driver or no device)
        return None
    return importlib.import_module("array_api_compat.cupy")


def _strict():
    try:
        return importlib.import_module("array_api_strict")
    except ImportError:
        return None


BACKENDS = {"numpy": np, "array_api_strict": _strict(), "cupy": _cupy()}


def backend_params():
    return [
        pytest.param(
            name,
            marks=pytest.mark.skipif(xp is None, reason=f"{name} not available"),
            id=name,
        )
        for name, xp in BACKENDS.items()
    ]


@pytest.fixture(params=backend_params())
def xp(request):
    return BACKENDS[request.param]


def to_numpy(x):
    if hasattr(x, "get"):
        return x.get()
    return np.from_dlpack(x) if not isinstance(x, np.ndarray) else x
