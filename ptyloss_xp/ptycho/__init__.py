"""PtyRAD's loss terms, the combiner and the far-field bridge."""

from . import terms  # noqa: F401  (registers the terms)
from .combined import DEFAULT_LOSS_PARAMS, CombinedLoss, CombinedResult, parse_loss_params
from .farfield import (
    amp_phase_grad_from_object,
    farfield_adjoint,
    farfield_intensity,
    object_grad_from_amp_phase,
)
from .params import ResolvedLossParams, ptyrad_example_loss_params, resolve_loss_params

__all__ = [
    "CombinedLoss",
    "CombinedResult",
    "DEFAULT_LOSS_PARAMS",
    "parse_loss_params",
    "resolve_loss_params",
    "ResolvedLossParams",
    "ptyrad_example_loss_params",
    "farfield_intensity",
    "farfield_adjoint",
    "object_grad_from_amp_phase",
    "amp_phase_grad_from_object",
]
