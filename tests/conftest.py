"""Backends as a test parameter: NumPy always, array-api-strict when
installed, CuPy only where a GPU answers."""

import os

import numpy as np
import pytest
from hypothesis import settings

from ptyloss_xp._backend import BackendError, backend_namespace


# CI draws the same examples every run, so a landing never hangs on a new
# random draw; developers' runs keep exploring.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def _namespace_or_none(name):
    try:
        return backend_namespace(name)
    except BackendError:
        return None


BACKENDS = {name: _namespace_or_none(name) for name in ("numpy", "array_api_strict", "cupy")}


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
