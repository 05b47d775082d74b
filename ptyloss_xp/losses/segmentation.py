"""Overlap losses for segmentation: soft Dice, Tversky and Jaccard (IoU).

Every loss here takes ``input``, predicted probabilities shaped
(N, C, *spatial) in [0, 1] (a softmax or sigmoid output), and ``target``, a
mask of the same shape in [0, 1] (one-hot or soft). Per sample (``averaging
= "micro"``, all classes pooled) or per sample and class (``"per_class"``,
then the mean over classes) they form the soft counts

    I = sum p g,  P = sum p,  G = sum g

and a score in [0, 1] that is 1 for a perfect overlap; the loss is
``1 - score``, reduced over the batch by ``reduction`` ("mean", "sum", or
"none": one loss per sample).

All three scores are ratios ``(a I + s) / (c_I I + c_P P + c_G G + s)`` of
the same counts, with ``s = smooth``; one kernel serves them:

========  ===  ===============  ====  ====
loss       a   c_I              c_P   c_G
========  ===  ===============  ====  ====
dice       2   0                1     1
tversky    1   1 - alpha - beta alpha beta
jaccard    1   -1               1     1
========  ===  ===============  ====  ====

Empty masks. With ``smooth > 0`` an empty prediction on an empty target
scores ``s / s = 1`` (loss 0) by itself. With ``smooth = 0`` that case is
``0 / 0``; it is defined as a perfect match (score 1, loss 0) and its
gradient as 0. The denominator is 0 only there: on [0, 1] each count term
is >= 0 and they all vanish only when ``p = g = 0`` in the whole group.
(Exception: ``tversky`` with ``alpha = 0`` or ``beta = 0`` ignores one kind
of error, and a group that has only that kind is 0/0 as well, scored 1.)
The loss is not continuous at that point: any non-zero prediction on an
empty target scores 0 when ``smooth = 0``, with a gradient of 0, so only a
positive ``smooth`` pushes false positives on empty targets down. That
push is ``c_P / smooth`` at an empty prediction, so a positive ``smooth``
must be at least ``2**-126 * max(1, |coefficients|)`` (float32's smallest
normal number, scaled), where it stays within float32's range.
"""

from __future__ import annotations

from .._registry import Loss, register, reduce
from .._validate import FLOAT32_TINY, REDUCTION, Arg, Param

__all__ = ["Dice", "Tversky", "Jaccard"]

_INPUT = Arg("input", ("N", "C", "*"), low=0.0, high=1.0, grad=True,
             doc="predicted probabilities")
_TARGET = Arg("target", ("N", "C", "*"), low=0.0, high=1.0,
              doc="target mask (one-hot or soft), same shape as input")

_SMOOTH = Param(1.0, low=0.0, doc="added to the numerator and the denominator of the score")
_AVERAGING = Param("micro", kind="choice", choices=("micro", "per_class"),
                   doc='"micro": one score per sample over all classes; '
                       '"per_class": one per sample and class, then their mean')

_MILLETARI = ("Milletari, Navab and Ahmadi, V-Net: fully convolutional neural networks "
              "for volumetric medical image segmentation, 3DV 2016, arXiv:1606.04797")
_SALEHI = ("Salehi, Erdogmus and Gholipour, Tversky loss function for image segmentation "
           "using 3D fully convolutional deep networks, MLMI 2017, arXiv:1706.05721")


def _check_smooth(loss, coefficients):
    # An empty target under an empty prediction puts c_P / smooth into the
    # gradient: beyond float32's range for a smooth near 1e-45.
    low = FLOAT32_TINY * max(1.0, *(abs(c) for c in coefficients))
    if 0 < loss.smooth < low:
        msg = (f"{loss.name}: parameter 'smooth' must be 0 or a real number >= {low:.8g}, "
               f"got {loss.smooth!r}: the gradient on an empty target, (coefficient) / "
               "smooth, would exceed float32's range")
        raise ValueError(msg)


class _Overlap(Loss):
    """The shared kernel: ``1 - (a I + s) / (c_I I + c_P P + c_G G + s)``.

    Subclasses give :meth:`_coefficients`; ``squared`` (Dice only) makes
    ``P`` and ``G`` sums of squares.
    """

    family = "segmentation"
    args = (_INPUT, _TARGET)
    squared = False

    def _coefficients(self):
        """``(a, c_I, c_P, c_G)``."""
        raise NotImplementedError

    def _setup(self):
        _check_smooth(self, self._coefficients())

    def _evaluate(self, xp, a, need_grad):
        p, g = a["input"], a["target"]
        n = p.shape[0]
        # Pooling classes (micro) sums from axis 1 on; per class from axis 2.
        axes = tuple(range(1 if self.averaging == "micro" else 2, p.ndim))
        k_num, c_i, c_p, c_g = self._coefficients()
        s = self.smooth
        inter = xp.sum(p * g, axis=axes, keepdims=True)
        sum_p = xp.sum(p * p if self.squared else p, axis=axes, keepdims=True)
        sum_g = xp.sum(g * g if self.squared else g, axis=axes, keepdims=True)
        den = c_i * inter + c_p * sum_p + c_g * sum_g + s
        # den == 0 only for an empty prediction on an empty target with
        # smooth == 0 (module docstring): defined as a perfect match.
        empty = den == 0
        safe = xp.where(empty, 1.0, den)
        score = xp.where(empty, 1.0, (k_num * inter + s) / safe)
        per_group = xp.reshape(1.0 - score, (n, -1))
        value, factor = reduce(xp, xp.mean(per_group, axis=1), self.reduction)
        if not need_grad:
            return value, None
        dsum_p = 2.0 * p if self.squared else 1.0
        dscore = (k_num * g - score * (c_i * g + c_p * dsum_p)) / safe
        scale = factor / per_group.shape[1]
        return value, (xp.where(empty, 0.0, -dscore) * scale,)


@register
class Dice(_Overlap):
    r"""Soft Dice loss (Milletari et al. 2016, V-Net).

    Value per group (a sample, or a sample and class, see ``averaging``):
    ``1 - (2 sum(p g) + s) / (sum p^2 + sum g^2 + s)`` with ``squared=True``
    (the default, the seed catalogue's and V-Net's form), or
    ``1 - (2 sum(p g) + s) / (sum p + sum g + s)`` with ``squared=False``;
    ``s = smooth``. Per-class scores are averaged over classes, then the
    per-sample losses are reduced by ``reduction``.

    Gradient: ``dL/dp = -(2 g - D dP/dp) / den`` per group, with ``D`` the
    score, ``den`` its denominator and ``dP/dp = 2 p`` (squared) or 1,
    divided by the number of classes for "per_class" and by N for "mean".

    Domain: ``input`` and ``target`` in [0, 1], shape (N, C, *spatial).
    Empty masks: with ``smooth = 0`` an all-zero prediction on an all-zero
    target has loss 0 and gradient 0 (0/0 defined as a perfect match).

    ``smooth`` defaults to 1: an empty prediction on an empty target then
    scores 1 without a special case, and false positives on an empty
    target still get a gradient (``-s / (P + s)^2`` on the score); against
    sums of the order of the number of pixels, 1 is one pixel's worth. It
    is not scale free: for structures of a few pixels take a small value
    or 0 (the exact coefficient). Differences elsewhere: MONAI
    ``DiceLoss(smooth_nr=1e-5, smooth_dr=1e-5, squared_pred=False)``
    is this loss with ``smooth=1e-5, squared=False, averaging="per_class"``
    (MONAI's default reduction also averages over the classes; its
    ``batch=True`` pools the batch, which is not offered here). Keras
    ``losses.Dice`` is the plain form pooled over all axes with no
    smoothing. PyTorch and optax have no Dice loss.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> p = np.array([[[0.5, 1.0], [0.5, 0.0]]])    # (N=1, C=2, 2 pixels)
    >>> g = np.array([[[1.0, 1.0], [0.0, 0.0]]])
    >>> dice = pl.get("dice", squared=False, smooth=0.0)
    >>> float(dice.value(p, g))                       # 1 - 2 * 1.5 / (2 + 2)
    0.25
    >>> dice.grad(p, g).tolist()
    [[[-0.3125, -0.3125], [0.1875, 0.1875]]]
    """

    name = "dice"
    params = {
        "smooth": _SMOOTH,
        "squared": Param(True, kind="bool", doc="sums of squares in the denominator (V-Net)"),
        "averaging": _AVERAGING,
        "reduction": REDUCTION,
    }
    param_cases = (
        {"squared": False},
        {"averaging": "per_class", "reduction": "sum"},
        {"smooth": 0.0, "squared": False, "averaging": "per_class"},
        {"smooth": 0.0, "reduction": "none"},
    )
    formula = (r"L = 1 - \frac{2 \sum p g + s}{\sum p^2 + \sum g^2 + s}"
               r"\ (\text{squared});\ 1 - \frac{2 \sum p g + s}{\sum p + \sum g + s}"
               r"\ (\text{plain})")
    gradient = (r"\partial L/\partial p = -(2 g - D\,\partial P/\partial p) / "
                r"(P + G + s),\ P = \sum p^2\ \text{or}\ \sum p"
                "; loss 0 and gradient 0 for empty prediction and target when s = 0")
    reference = _MILLETARI + "; counterpart monai.losses.DiceLoss (plain form, smooth 1e-5)"

    def _coefficients(self):
        return 2.0, 0.0, 1.0, 1.0


@register
class Tversky(_Overlap):
    r"""Tversky loss (Salehi et al. 2017).

    Value per group: ``1 - (TP + s) / (TP + alpha FP + beta FN + s)`` with
    the soft counts ``TP = sum p g``, ``FP = sum p (1 - g)``, ``FN = sum
    (1 - p) g`` and ``s = smooth``; ``alpha`` weighs false positives,
    ``beta`` false negatives. Reduced as :class:`Dice`.

    Identities: ``alpha = beta = 0.5`` is the plain Dice loss (with
    ``smooth`` doubled: ``dice(squared=False, smooth=2 s)``);
    ``alpha = beta = 1`` is the Jaccard loss with the same ``smooth``.

    Gradient: ``dL/dp = -(g - T ((1 - alpha - beta) g + alpha)) / den`` per
    group, ``T`` the score and ``den`` its denominator.

    Domain: ``input`` and ``target`` in [0, 1]; ``alpha, beta >= 0``, not
    both 0. Empty masks as in :class:`Dice` (0/0 is a perfect match).

    Defaults ``alpha = beta = 0.5`` (MONAI ``TverskyLoss``); Salehi et al.
    found ``alpha = 0.3, beta = 0.7`` best for lesions. MONAI's
    ``TverskyLoss(smooth_nr=1e-5, smooth_dr=1e-5)`` is this loss with
    ``smooth=1e-5, averaging="per_class"``. PyTorch, optax and Keras core
    have no Tversky loss.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> p = np.array([[[0.5, 1.0, 0.0]]]); g = np.array([[[1.0, 1.0, 1.0]]])
    >>> loss = pl.get("tversky", alpha=0.3, beta=0.7, smooth=0.0)
    >>> round(float(loss.value(p, g)), 6)            # 1 - 1.5 / (1.5 + 0.7 * 1.5)
    0.411765
    """

    name = "tversky"
    params = {
        "alpha": Param(0.5, low=0.0, doc="weight of the false positives"),
        "beta": Param(0.5, low=0.0, doc="weight of the false negatives"),
        "smooth": _SMOOTH,
        "averaging": _AVERAGING,
        "reduction": REDUCTION,
    }
    param_cases = (
        {"alpha": 0.3, "beta": 0.7},
        {"alpha": 0.8, "beta": 0.2, "smooth": 0.0, "averaging": "per_class"},
        {"alpha": 1.0, "beta": 1.0, "reduction": "none"},
    )
    formula = (r"L = 1 - \frac{TP + s}{TP + \alpha FP + \beta FN + s},\ TP = \sum p g,"
               r"\ FP = \sum p (1 - g),\ FN = \sum (1 - p) g")
    gradient = (r"\partial L/\partial p = -\frac{g - T((1 - \alpha - \beta) g + \alpha)}"
                r"{TP + \alpha FP + \beta FN + s}"
                "; loss 0 and gradient 0 for empty prediction and target when s = 0")
    reference = _SALEHI + "; counterpart monai.losses.TverskyLoss"

    def _setup(self):
        super()._setup()
        if self.alpha == 0 and self.beta == 0:
            msg = (f"{self.name}: parameters 'alpha' and 'beta' must not both be 0, got "
                   f"alpha={self.alpha!r}, beta={self.beta!r} (the score would be 1 always)")
            raise ValueError(msg)

    def _coefficients(self):
        # TP + alpha FP + beta FN with FP = P - TP and FN = G - TP.
        return 1.0, 1.0 - self.alpha - self.beta, self.alpha, self.beta


@register
class Jaccard(_Overlap):
    r"""Soft Jaccard (IoU) loss.

    Value per group: ``1 - (I + s) / (sum p + sum g - I + s)`` with
    ``I = sum p g`` (the soft intersection; ``sum p + sum g - I`` the soft
    union) and ``s = smooth``. Reduced as :class:`Dice`; it equals
    ``tversky`` with ``alpha = beta = 1``.

    Gradient: ``dL/dp = -(g - J (1 - g)) / den`` per group, ``J`` the score
    and ``den = sum p + sum g - I + s``.

    Domain: ``input`` and ``target`` in [0, 1]. Empty masks as in
    :class:`Dice` (0/0 is a perfect match).

    This is the soft IoU of segmentation masks (Rahman and Wang 2016), not
    the box IoU loss of detectors. MONAI ``DiceLoss(jaccard=True)``
    computes ``1 - (2 I + s_nr) / (2 (sum p + sum g - I) + s_dr)``: this
    loss with ``smooth = s_nr / 2`` when ``s_nr = s_dr`` and
    ``averaging="per_class"`` (its ``squared_pred`` is not offered here).
    Keras and PyTorch have no soft IoU loss.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> p = np.array([[[0.5, 1.0, 0.0]]]); g = np.array([[[1.0, 1.0, 0.0]]])
    >>> float(pl.get("jaccard", smooth=0.0).value(p, g))   # 1 - 1.5 / 2
    0.25
    """

    name = "jaccard"
    params = {"smooth": _SMOOTH, "averaging": _AVERAGING, "reduction": REDUCTION}
    param_cases = (
        {"smooth": 0.0},
        {"averaging": "per_class", "reduction": "none"},
    )
    formula = r"L = 1 - \frac{\sum p g + s}{\sum p + \sum g - \sum p g + s}"
    gradient = (r"\partial L/\partial p = -\frac{g - J (1 - g)}{\sum p + \sum g - \sum p g + s}"
                "; loss 0 and gradient 0 for empty prediction and target when s = 0")
    reference = ("Rahman and Wang, Optimizing intersection-over-union in deep neural "
                 "networks for image segmentation, ISVC 2016")

    def _coefficients(self):
        return 1.0, -1.0, 1.0, 1.0
