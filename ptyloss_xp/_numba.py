"""The one switch of the numba kernels.

Every module of numba kernels is loaded through :func:`load`: it answers
``None`` where numba does not import or where the environment variable
``PTYLOSS_XP_NUMBA=0`` switches the kernels off (to compare, or where numba
misbehaves), and the generic array API kernels run instead. Every entry
point of a kernel module is wrapped in :func:`one_at_a_time`.
"""

from __future__ import annotations

import functools
import importlib
import os
import threading

__all__ = ["load", "one_at_a_time"]

# The kernels already use every core, and numba's workqueue threading layer
# (chosen where neither OpenMP nor TBB is available) aborts the process when
# two threads call parallel kernels at once (a threaded solver, Dask's
# threaded scheduler running one call per chunk).
_LOCK = threading.Lock()


def load(module):
    """The kernel module named ``module`` (absolute), or ``None``."""
    if os.environ.get("PTYLOSS_XP_NUMBA", "1") == "0":
        return None
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def one_at_a_time(fn):
    """``fn`` with its calls serialised across threads (see ``_LOCK``)."""
    @functools.wraps(fn)
    def serialised(*args, **kwargs):
        with _LOCK:
            return fn(*args, **kwargs)
    return serialised
