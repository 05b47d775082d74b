"""The one switch of the numba kernels.

Every module of numba kernels is loaded through :func:`load`: it answers
``None`` where numba does not import or where the environment variable
``PTYLOSS_XP_NUMBA=0`` switches the kernels off (to compare, or where numba
misbehaves), and the generic array API kernels run instead.
"""

from __future__ import annotations

import importlib
import os

__all__ = ["load"]


def load(module):
    """The kernel module named ``module`` (absolute), or ``None``."""
    if os.environ.get("PTYLOSS_XP_NUMBA", "1") == "0":
        return None
    try:
        return importlib.import_module(module)
    except ImportError:
        return None
