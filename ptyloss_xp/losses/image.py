"""Image losses: SSIM, and the perceptual and style losses on feature maps.

``ssim`` compares two image batches (N, C, H, W) with local Gaussian-weighted
statistics, as scikit-image's ``structural_similarity`` does with
``gaussian_weights=True, use_sample_covariance=False``. Its gradient is
exact: the SSIM map is a function of five filtered images, and the adjoint
of the filter carries the map's partial derivatives back to the pixels.

``perceptual`` and ``style`` take feature maps the user computed with a
network of their choice (VGG in Johnson et al. and Gatys et al.), one layer
per call, and differentiate with respect to the generated image's features.
A multi-layer loss is the weighted sum of one call per layer (each loss has
a ``weight``); the gradient with respect to the image is the sum over layers
of the feature extractor's vector-Jacobian product applied to each layer's
gradient, which the user's framework (or their hand-written adjoint) gives.
See docs/image.md for a worked example.
"""

from __future__ import annotations

import dataclasses
import functools
import math

from .._backend import is_numpy, whole_planes
from .._registry import Loss, register, reduce
from .._validate import REDUCTION, Arg, Param
from . import _numpy_blocks
from ._filters import filter_valid, filter_valid_adjoint, gaussian_window

__all__ = ["SSIM", "Perceptual", "Style"]

_TRUNCATE = 3.5  # scikit-image's window radius, in standard deviations


@register
class SSIM(Loss):
    r"""Structural similarity loss ``1 - SSIM`` (Wang et al. 2004).

    Value per sample: ``1 - mean S`` over its channels and the 'valid'
    pixels, with the SSIM map

    ``S = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))``

    from the local statistics ``mu_x = w * x``, ``s_x^2 = w * x^2 - mu_x^2``,
    ``s_xy = w * (x y) - mu_x mu_y`` (population covariances), ``w`` the
    normalised Gaussian window of standard deviation ``sigma`` and radius
    ``int(3.5 sigma + 0.5)`` (11 taps for 1.5), applied per channel as a
    'valid' separable correlation (only windows that lie inside the image),
    ``C1 = (k1 L)^2``, ``C2 = (k2 L)^2``, ``L = data_range``. Reduced over
    the batch by ``reduction``.

    Gradient: with ``D = (mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2)`` and the
    numerator factors ``A1, A2`` and denominator factors ``B1, B2`` above,

    ``dS/dmu_x = 2 (mu_y (A2 - A1) - mu_x S (B2 - B1)) / D``,
    ``dS/d(w*x^2) = -S / B2``, ``dS/d(w*xy) = 2 A1 / D``;

    ``dL/dx = w^T(a) + 2 x w^T(b) + y w^T(c)`` where ``a, b, c`` are those
    three partials times ``-1 / (C H' W')`` (and the reduction's factor)
    and ``w^T`` is the adjoint (full) correlation. ``grad_target=True``
    also returns ``dL/dy``, the same with ``x`` and ``y`` swapped.

    Domain: ``input`` and ``target`` real, (N, C, H, W), ``H, W >=`` the
    window size; ``data_range, k1, k2, sigma > 0``. Images are expected in
    ``[0, data_range]`` (or a range of that width): ``s_x^2`` is formed as
    ``w * x^2 - mu_x^2``, and for means far larger than ``data_range`` the
    cancellation (in float32 above all) can outweigh ``C2``.

    Matches ``skimage.metrics.structural_similarity(x, y, data_range=L,
    gaussian_weights=True, sigma=sigma, use_sample_covariance=False,
    channel_axis=0)`` per image (1 minus it); scikit-image's default is the
    7x7 uniform window with sample covariances. pytorch-msssim's ``ssim``
    (``win_size=11, win_sigma=1.5``) computes the same map but builds its
    window in float32 (a ~2e-6 relative difference) and defaults to
    ``data_range=255``; torchmetrics' default pads the images (reflect)
    before cropping. Value range [0, 2]: SSIM lies in [-1, 1].

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> rng = np.random.default_rng(0)
    >>> x = rng.uniform(size=(2, 1, 16, 16))
    >>> loss = pl.get("ssim", data_range=1.0)
    >>> float(loss.value(x, x))
    0.0
    >>> v, g = loss.value_and_grad(x, np.clip(x + 0.1 * rng.normal(size=x.shape), 0, 1))
    >>> g.shape
    (2, 1, 16, 16)
    """

    name = "ssim"
    family = "image"
    args = (
        Arg("input", ("N", "C", "H", "W"), grad=True, doc="images (the prediction)"),
        Arg("target", ("N", "C", "H", "W"), doc="reference images, same shape"),
    )
    params = {
        "data_range": Param(1.0, low=0.0, low_open=True,
                            doc="L, the width of the images' value range (1 or 255 ...)"),
        "k1": Param(0.01, low=0.0, low_open=True, doc="C1 = (k1 L)^2"),
        "k2": Param(0.03, low=0.0, low_open=True, doc="C2 = (k2 L)^2"),
        "sigma": Param(1.5, low=0.0, low_open=True, high=20.0,
                       doc="standard deviation of the Gaussian window, in pixels"),
        "grad_target": Param(False, kind="bool",
                             doc="also differentiate with respect to target"),
        "reduction": REDUCTION,
    }
    param_cases = (
        {"sigma": 0.5, "grad_target": True, "reduction": "none"},
        {"data_range": 2.0, "k1": 0.05, "k2": 0.1, "reduction": "sum"},
        {"sigma": 0.8, "data_range": 0.5, "grad_target": True},
    )
    formula = (r"L = 1 - \overline{S},\ S = \frac{(2\mu_x\mu_y + C_1)(2\sigma_{xy} + C_2)}"
               r"{(\mu_x^2 + \mu_y^2 + C_1)(\sigma_x^2 + \sigma_y^2 + C_2)}"
               r",\ \mu_x = w \star x,\ \sigma_x^2 = w \star x^2 - \mu_x^2"
               r",\ \sigma_{xy} = w \star xy - \mu_x\mu_y\ (\text{valid})")
    gradient = (r"\partial L/\partial x = w^T a + 2x\,w^T b + y\,w^T c,\ "
                r"a \propto \partial S/\partial\mu_x,\ b \propto \partial S/\partial(w\star x^2),"
                r"\ c \propto \partial S/\partial(w\star xy)")
    reference = ("Wang, Bovik, Sheikh and Simoncelli, Image quality assessment: from error "
                 "visibility to structural similarity, IEEE TIP 13, 600 (2004); counterpart "
                 "skimage.metrics.structural_similarity (gaussian_weights=True, "
                 "use_sample_covariance=False)")

    def _setup(self):
        self._window = gaussian_window(self.sigma, _TRUNCATE)
        n = len(self._window)
        # An instance attribute: the window size sets the smallest image.
        self.dims_min = {"H": n, "W": n}
        if self.grad_target:
            x, y = type(self).args
            self.args = (x, dataclasses.replace(y, grad=True))

    def _evaluate(self, xp, a, need_grad):
        x, y = a["input"], a["target"]
        n, c = x.shape[0], x.shape[1]
        r = len(self._window) - 1
        count = c * (x.shape[2] - r) * (x.shape[3] - r)
        # reduce()'s gradient factor, wanted before the value exists: the
        # NumPy blocks write their part of the gradient as they go.
        factor = 1.0 / n if self.reduction == "mean" else 1.0
        planes = functools.partial(self._planes, scale=-factor / count, need_grad=need_grad)
        if is_numpy(xp):
            sums, grads = _numpy_blocks.by_plane_blocks(planes, x, y)
        else:
            sums, grads = planes(xp, whole_planes(x), whole_planes(y))
        per_sample = 1.0 - xp.sum(sums, axis=1) / count
        value, _ = reduce(xp, per_sample, self.reduction)
        return value, (grads if need_grad else None)

    def _planes(self, xp, x, y, scale, need_grad):
        """SSIM over the planes ``x[..., :, :]``: the sums of the map per
        plane, and the gradients (a tuple in ``wrt`` order) of ``scale``
        times their total (``None`` without ``need_grad``)."""
        w = self._window
        c1 = (self.k1 * self.data_range) ** 2
        c2 = (self.k2 * self.data_range) ** 2
        mu_x, mu_y = filter_valid(xp, x, w), filter_valid(xp, y, w)
        e_xx, e_yy, e_xy = (filter_valid(xp, x * x, w), filter_valid(xp, y * y, w),
                            filter_valid(xp, x * y, w))
        a1 = 2.0 * mu_x * mu_y + c1
        a2 = 2.0 * (e_xy - mu_x * mu_y) + c2
        b1 = mu_x * mu_x + mu_y * mu_y + c1
        b2 = (e_xx - mu_x * mu_x) + (e_yy - mu_y * mu_y) + c2
        den = b1 * b2
        s_map = a1 * a2 / den
        sums = xp.sum(s_map, axis=(-2, -1))
        if not need_grad:
            return sums, None
        q = (2.0 * scale) / den
        da_diff, db_diff = a2 - a1, s_map * (b2 - b1)
        adj_sq = filter_valid_adjoint(xp, (-scale) * s_map / b2, w)  # w^T(dS/d(w*x^2))
        adj_xy = filter_valid_adjoint(xp, q * a1, w)                 # w^T(dS/d(w*xy))
        gx = (filter_valid_adjoint(xp, q * (mu_y * da_diff - mu_x * db_diff), w)
              + 2.0 * x * adj_sq + y * adj_xy)
        if not self.grad_target:
            return sums, (gx,)
        gy = (filter_valid_adjoint(xp, q * (mu_x * da_diff - mu_y * db_diff), w)
              + 2.0 * y * adj_sq + x * adj_xy)
        return sums, (gx, gy)


_FEATURES = Arg("input", ("N", "*"), grad=True,
                doc="the generated image's features at one layer")
_FEATURE_TARGET = Arg("target", ("N", "*"), doc="the reference's features at the same layer")
_WEIGHT = Param(1.0, low=0.0, doc="the layer's weight in the sum over layers")


@register
class Perceptual(Loss):
    r"""Perceptual (feature reconstruction) loss of one layer (Johnson et al. 2016).

    Value per sample: ``weight * mean((phi - phi_ref)^2)`` over the sample's
    feature elements (Johnson et al.'s ``||phi_j(y^) - phi_j(y)||^2 /
    (C_j H_j W_j)``), reduced over the batch by ``reduction``. A loss over
    several layers is the sum of one call per layer, each with its own
    ``weight``.

    Gradient with respect to the features: ``2 weight (phi - phi_ref) / M``
    (``M`` elements per sample, and the reduction's factor). The gradient
    with respect to the image is the feature extractor's vector-Jacobian
    product of this (summed over layers); see docs/image.md.

    Domain: ``input`` and ``target`` real, same shape (N, ...).

    Examples
    --------
    A fixed linear "extractor" ``phi(x) = A x`` has the VJP ``g -> A^T g``;
    two layers, chained by hand:

    >>> import numpy as np, ptyloss_xp as pl
    >>> rng = np.random.default_rng(0)
    >>> A1, A2 = rng.normal(size=(6, 4)), rng.normal(size=(3, 4))
    >>> x, ref = rng.normal(size=(2, 4)), rng.normal(size=(2, 4))
    >>> layers = [(pl.get("perceptual", weight=1.0), A1), (pl.get("perceptual", weight=0.5), A2)]
    >>> value, grad_x = 0.0, np.zeros_like(x)
    >>> for loss, A in layers:
    ...     v, g_feat = loss.value_and_grad(x @ A.T, ref @ A.T)   # features (N, K)
    ...     value, grad_x = value + v, grad_x + g_feat @ A        # the VJP: A^T g per sample
    >>> def total(z):
    ...     return sum(float(l.value(z @ A.T, ref @ A.T)) for l, A in layers)
    >>> e = np.zeros_like(x); e[1, 2] = 1e-6
    >>> bool(np.isclose((total(x + e) - total(x - e)) / 2e-6, grad_x[1, 2]))
    True
    """

    name = "perceptual"
    family = "image"
    args = (_FEATURES, _FEATURE_TARGET)
    params = {"weight": _WEIGHT, "reduction": REDUCTION}
    param_cases = ({"weight": 0.3, "reduction": "sum"}, {"reduction": "none"})
    formula = r"L = w\,\overline{(\phi - \phi_{ref})^2}\ \text{per sample}"
    gradient = r"\partial L/\partial \phi = 2 w (\phi - \phi_{ref}) / M"
    reference = ("Johnson, Alahi and Fei-Fei, Perceptual losses for real-time style transfer "
                 "and super-resolution, ECCV 2016, arXiv:1603.08155")

    def _evaluate(self, xp, a, need_grad):
        d = a["input"] - a["target"]
        n = d.shape[0]
        m = math.prod(d.shape[1:])
        per_sample = (self.weight / m) * xp.sum(xp.reshape(d * d, (n, -1)), axis=1)
        value, factor = reduce(xp, per_sample, self.reduction)
        if not need_grad:
            return value, None
        return value, (d * ((2.0 * self.weight / m) * factor),)


@register
class Style(Loss):
    r"""Gram-matrix style loss of one layer (Gatys, Ecker and Bethge 2016).

    With the features ``F`` of a sample reshaped to (C, M) (``M`` the number
    of positions) and its Gram matrix ``G = F F^T``, the value per sample is
    Gatys et al.'s ``E = weight * sum((G - A)^2) / (4 C^2 M^2)``, ``A`` the
    Gram matrix of the target features; reduced over the batch by
    ``reduction``. A loss over several layers is the sum of one call per
    layer, each with its own ``weight`` (Gatys et al.'s ``w_l``).

    Gradient: ``dE/dF = weight (G - A) F / (C^2 M^2)`` (Gatys et al.'s
    eq. 6 before the ReLU's mask, which belongs to the extractor's VJP).

    Domain: ``input`` and ``target`` real, same shape (N, C, ...). For one
    style image and a batch of generated ones, pass the style features
    broadcast to the batch (``numpy.broadcast_to``, a view).

    Johnson et al. (2016) normalise the Gram matrix by ``C M`` and take the
    squared Frobenius norm: ``sum((G - A)^2) / (C M)^2``, four times this
    loss (``weight=4``).

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> f = np.array([[[1.0, 0.0], [0.0, 1.0]]])      # (N=1, C=2, M=2)
    >>> t = np.array([[[1.0, 1.0], [0.0, 0.0]]])
    >>> style = pl.get("style")
    >>> float(style.value(f, t))                      # G = I, A = [[2, 0], [0, 0]]
    0.03125
    """

    name = "style"
    family = "image"
    args = (Arg("input", ("N", "C", "*"), grad=True,
                doc="the generated image's features at one layer"),
            Arg("target", ("N", "C", "*"), doc="the style image's features at the same layer"))
    params = {"weight": _WEIGHT, "reduction": REDUCTION}
    param_cases = ({"weight": 4.0, "reduction": "none"}, {"reduction": "sum"})
    formula = (r"L = \frac{w}{4 C^2 M^2} \sum_{ij} (G_{ij} - A_{ij})^2,\ G = F F^T,"
               r"\ A = F_{ref} F_{ref}^T")
    gradient = r"\partial L/\partial F = \frac{w}{C^2 M^2} (G - A) F"
    reference = ("Gatys, Ecker and Bethge, Image style transfer using convolutional neural "
                 "networks, CVPR 2016")

    def _evaluate(self, xp, a, need_grad):
        x = a["input"]
        n, c = x.shape[0], x.shape[1]
        m = math.prod(x.shape[2:])
        f = xp.reshape(x, (n, c, m))
        f_ref = xp.reshape(a["target"], (n, c, m))
        diff = (xp.matmul(f, xp.permute_dims(f, (0, 2, 1)))
                - xp.matmul(f_ref, xp.permute_dims(f_ref, (0, 2, 1))))
        norm = self.weight / (c * m) ** 2
        per_sample = (0.25 * norm) * xp.sum(xp.reshape(diff * diff, (n, -1)), axis=1)
        value, factor = reduce(xp, per_sample, self.reduction)
        if not need_grad:
            return value, None
        return value, (xp.reshape(xp.matmul(diff, f) * (norm * factor), x.shape),)
