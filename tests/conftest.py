"""Backends as a test parameter: NumPy always; array-api-strict, PyTorch
(CPU), JAX and Dask when installed (the ``[test]`` extra installs them all);
CuPy only where a GPU answers."""

import os

# JAX compiles every loss once per new shape; the suite's arrays are tiny, so
# XLA's expensive optimisation passes cost more than they save (about a
# quarter of the JAX tests' time). Set before JAX is imported.
os.environ.setdefault(
    "XLA_FLAGS",
    "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true",
)

import numpy as np
import pytest
from hypothesis import settings

from ptyloss_xp._backend import BackendError, backend_namespace


# CI draws the same examples every run, so a landing never hangs on a new
# random draw; developers' runs keep exploring.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

NAMES = ("numpy", "array_api_strict", "torch", "jax", "dask", "cupy")


def _namespace_or_none(name):
    try:
        return backend_namespace(name)
    except BackendError:
        return None


BACKENDS = {name: _namespace_or_none(name) for name in NAMES}


def backend_params(names=NAMES):
    return [
        pytest.param(
            name,
            marks=pytest.mark.skipif(BACKENDS[name] is None, reason=f"{name} not available"),
            id=name,
        )
        for name in names
    ]


@pytest.fixture(params=backend_params())
def xp(request):
    return BACKENDS[request.param]


def to_numpy(x):
    """A NumPy array of any backend's array (computing a Dask one)."""
    if isinstance(x, (np.ndarray, np.generic)):
        return np.asarray(x)
    if hasattr(x, "get"):
        return x.get()
    if hasattr(x, "compute"):
        return np.asarray(x.compute())
    return np.from_dlpack(x)
