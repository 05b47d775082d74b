"""ptyloss_xp: loss functions with analytic gradients on NumPy, CuPy and any array API namespace.

>>> import numpy as np, ptyloss_xp as pl
>>> loss = pl.get("loss_single")
>>> I = np.full((2, 3, 3), 4.0); D = np.ones((2, 3, 3))
>>> value, grad = loss.value_and_grad(I, D)
>>> float(value), grad.shape
(1.0, (2, 3, 3))
"""

from ._registry import Loss, PointwiseLoss, available, get, loss_class, register
from ._validate import Arg, Param, check_values
from .ptycho import (
    CombinedLoss,
    CombinedResult,
    amp_phase_grad_from_object,
    farfield_adjoint,
    farfield_intensity,
    object_grad_from_amp_phase,
    parse_loss_params,
    resolve_loss_params,
)

__version__ = "0.1.0"

__all__ = [
    "get",
    "available",
    "loss_class",
    "register",
    "Loss",
    "PointwiseLoss",
    "Arg",
    "Param",
    "check_values",
    "CombinedLoss",
    "CombinedResult",
    "parse_loss_params",
    "resolve_loss_params",
    "farfield_intensity",
    "farfield_adjoint",
    "object_grad_from_amp_phase",
    "amp_phase_grad_from_object",
]
