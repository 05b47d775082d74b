"""Overlap losses for segmentation: soft Dice, Tversky and Jaccard (IoU).

Every loss here takes ``input``, predicted probabilities shaped
(N, C, *spatial) in [0, 1] (a softmax or sigmoid output), and ``target``, a
mask of the same shape in [0, 1] (one-hot or soft). Over a group of
elements they form the soft counts

    I = sum p g,  P = sum p,  G = sum g

and a score in [0, 1] that is 1 for a perfect overlap. A group is all
classes (``averaging = "micro"``) or one class (``"per_class"``, then the
mean of ``1 - score`` over classes), of one sample (``pooling = "sample"``)
or of the whole batch (``pooling = "batch"``: the counts are summed over
the samples too, as MONAI's ``batch=True`` and Keras' global sums). With
sample pooling the per-sample losses are reduced over the batch by
``reduction`` ("mean", "sum", or "none": one loss per sample); with batch
pooling there is one loss for the batch, which "mean" and "sum" both return
("none" is refused: there are no per-sample losses).

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
positive ``smooth`` pushes false positives on empty targets down.
"""

from __future__ import annotations

import math

import numpy as np

from .._registry import Loss, register, reduce
from .._validate import REDUCTION, Arg, Param

__all__ = ["Dice", "Tversky", "Jaccard", "Combo"]

_INPUT = Arg("input", ("N", "C", "*"), low=0.0, high=1.0, grad=True,
             doc="predicted probabilities")
_TARGET = Arg("target", ("N", "C", "*"), low=0.0, high=1.0,
              doc="target mask (one-hot or soft), same shape as input")

_SMOOTH = Param(1.0, low=0.0, doc="added to the numerator and the denominator of the score")
_AVERAGING = Param("micro", kind="choice", choices=("micro", "per_class"),
                   doc='"micro": one score per sample over all classes; '
                       '"per_class": one per sample and class, then their mean')
_POOLING = Param("sample", kind="choice", choices=("sample", "batch"),
                 doc='"sample": counts summed per sample; "batch": summed over the whole '
                     'batch (MONAI batch=True), one loss for the batch')

_MILLETARI = ("Milletari, Navab and Ahmadi, V-Net: fully convolutional neural networks "
              "for volumetric medical image segmentation, 3DV 2016, arXiv:1606.04797")
_SALEHI = ("Salehi, Erdogmus and Gholipour, Tversky loss function for image segmentation "
           "using 3D fully convolutional deep networks, MLMI 2017, arXiv:1706.05721")


def _overlap(xp, p, g, coefficients, smooth, squared, averaging, pooling, need_grad):
    """``1 - score``, averaged over the groups of each row, and its gradient.

    A row is a sample (``pooling="sample"``) or the batch (``"batch"``).
    ``coefficients`` are ``(a, c_I, c_P, c_G)`` of the score ``(a I + s) /
    (c_I I + c_P P + c_G G + s)``; ``squared`` makes ``P`` and ``G`` sums
    of squares. Returns ``(per_row, direction)``: the (rows,) losses and the
    gradient of their sum with respect to ``p`` (``None`` without
    ``need_grad``).
    """
    first = 0 if pooling == "batch" else 1
    axes = tuple(i for i in range(first, p.ndim) if averaging == "micro" or i != 1)
    rows = 1 if pooling == "batch" else p.shape[0]
    k_num, c_i, c_p, c_g = coefficients
    s = smooth
    inter = xp.sum(p * g, axis=axes, keepdims=True)
    sum_p = xp.sum(p * p if squared else p, axis=axes, keepdims=True)
    sum_g = xp.sum(g * g if squared else g, axis=axes, keepdims=True)
    den = c_i * inter + c_p * sum_p + c_g * sum_g + s
    # den == 0 only for an empty prediction on an empty target with
    # smooth == 0 (module docstring): defined as a perfect match.
    empty = den == 0
    safe = xp.where(empty, 1.0, den)
    score = xp.where(empty, 1.0, (k_num * inter + s) / safe)
    per_group = xp.reshape(1.0 - score, (rows, -1))
    per_row = xp.mean(per_group, axis=1)
    if not need_grad:
        return per_row, None
    dsum_p = 2.0 * p if squared else 1.0
    dscore = (k_num * g - score * (c_i * g + c_p * dsum_p)) / safe
    return per_row, xp.where(empty, 0.0, -dscore) * (1.0 / per_group.shape[1])


def _check_pooling(loss):
    if loss.pooling == "batch" and loss.reduction == "none":
        msg = (f"{loss.name}: parameter 'reduction' must be 'mean' or 'sum' with "
               f"pooling='batch' (one loss for the whole batch), got 'none'")
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
        _check_pooling(self)

    def _evaluate(self, xp, a, need_grad):
        per_row, direction = _overlap(xp, a["input"], a["target"], self._coefficients(),
                                      self.smooth, self.squared, self.averaging,
                                      self.pooling, need_grad)
        value, factor = reduce(xp, per_row, self.reduction)
        return value, ((direction * factor,) if need_grad else None)


@register
class Dice(_Overlap):
    r"""Soft Dice loss (Milletari et al. 2016, V-Net).

    Value per group (a sample or the batch, see ``pooling``, or one class
    of it, see ``averaging``):
    ``1 - (2 sum(p g) + s) / (sum p^2 + sum g^2 + s)`` with ``squared=True``
    (the default, the seed catalogue's and V-Net's form), or
    ``1 - (2 sum(p g) + s) / (sum p + sum g + s)`` with ``squared=False``;
    ``s = smooth``. Per-class scores are averaged over classes, then the
    per-sample losses are reduced by ``reduction`` (with
    ``pooling="batch"`` the one batch loss is the value).

    Gradient: ``dL/dp = -(2 g - D dP/dp) / den`` per group, with ``D`` the
    score, ``den`` its denominator and ``dP/dp = 2 p`` (squared) or 1,
    divided by the number of classes for "per_class" and by N for "mean"
    with ``pooling="sample"``.

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
    ``batch=True`` is ``pooling="batch"``). Keras
    ``losses.Dice`` is the plain form pooled over all axes with no
    smoothing (``squared=False, smooth=0, pooling="batch"``, up to the
    1e-7 Keras adds to the denominator). PyTorch and optax have no Dice
    loss.

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
        "pooling": _POOLING,
        "reduction": REDUCTION,
    }
    param_cases = (
        {"squared": False},
        {"averaging": "per_class", "reduction": "sum"},
        {"smooth": 0.0, "squared": False, "averaging": "per_class"},
        {"smooth": 0.0, "reduction": "none"},
        {"pooling": "batch", "squared": False},
        {"pooling": "batch", "averaging": "per_class", "smooth": 0.0, "reduction": "sum"},
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
        "pooling": _POOLING,
        "reduction": REDUCTION,
    }
    param_cases = (
        {"alpha": 0.3, "beta": 0.7},
        {"alpha": 0.8, "beta": 0.2, "smooth": 0.0, "averaging": "per_class"},
        {"alpha": 1.0, "beta": 1.0, "reduction": "none"},
        {"alpha": 0.3, "beta": 0.7, "pooling": "batch", "averaging": "per_class"},
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
    params = {"smooth": _SMOOTH, "averaging": _AVERAGING, "pooling": _POOLING,
              "reduction": REDUCTION}
    param_cases = (
        {"smooth": 0.0},
        {"averaging": "per_class", "reduction": "none"},
        {"pooling": "batch", "smooth": 0.0},
    )
    formula = r"L = 1 - \frac{\sum p g + s}{\sum p + \sum g - \sum p g + s}"
    gradient = (r"\partial L/\partial p = -\frac{g - J (1 - g)}{\sum p + \sum g - \sum p g + s}"
                "; loss 0 and gradient 0 for empty prediction and target when s = 0")
    reference = ("Rahman and Wang, Optimizing intersection-over-union in deep neural "
                 "networks for image segmentation, ISVC 2016")

    def _coefficients(self):
        return 1.0, -1.0, 1.0, 1.0


@register
class Combo(Loss):
    r"""Combo loss (Taghanaki et al. 2019): weighted cross-entropy minus Dice.

    Value per row (a sample, or the batch with ``pooling="batch"``):
    ``alpha * E - (1 - alpha) * D`` where

    - ``E = -mean(beta g log p~ + (1 - beta) (1 - g) log(1 - p~))`` over the
      row's elements, ``p~ = clip(p, eps, 1 - eps)``: the beta-weighted
      binary cross-entropy (``beta > 0.5`` weighs the missed foreground,
      false negatives, more; ``beta < 0.5`` the false positives);
    - ``D = (2 sum(p g) + s) / (sum p + sum g + s)``, ``s = smooth``: the
      plain soft Dice score of :class:`Dice` (``squared=False``), over the
      same groups (``averaging``, ``pooling``) and from the same sums.

    The value lies in ``[-(1 - alpha), inf)``: Dice enters as a score, not
    as ``1 - D``, as in the paper; ``dice`` with ``squared=False`` is the
    ``alpha = 0`` case up to the constant 1. Per-row values are reduced by
    ``reduction``.

    Gradient: ``alpha dE/dp - (1 - alpha) dD/dp`` with ``dE/dp = (-beta
    g / p + (1 - beta) (1 - g) / (1 - p)) / M`` (``M`` elements in the
    row), 0 where ``p`` is clipped (PyTorch's ``clamp`` passes the
    gradient at the bounds themselves, and so does this), and ``dD/dp``
    that of :class:`Dice`.

    Domain: ``input`` (probabilities) and ``target`` in [0, 1], shape
    (N, C, *spatial); ``alpha, beta`` in [0, 1]; ``eps`` in (0, 0.5).

    Which weighting: the paper's equation weighs the two cross-entropy
    terms by ``beta`` and ``1 - beta``, and that is what this loss
    implements. The authors' public Keras code (and the many copies of it)
    computes ``ALPHA * (g log p + (1 - ALPHA) (1 - g) log(1 - p))``: the
    background term gets ``ALPHA (1 - ALPHA)``, which reads as a misplaced
    parenthesis, and it cannot reach the paper's stated range of trade-offs
    (at ``ALPHA = 0.5`` the background already weighs half the
    foreground). The code's other choices are kept as options or defaults:
    its ``CE_RATIO`` is ``alpha``, ``smooth = 1`` and the clip ``e = 1e-7``
    are the defaults here, and its flattening of the whole batch before the
    sums is ``pooling="batch"`` (with ``averaging="micro"``). The paper's
    sum of per-class Dice scores is the mean here (``averaging``), so that
    ``alpha`` keeps its meaning whatever the number of classes.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> p = np.array([[[0.8, 0.4]]]); g = np.array([[[1.0, 0.0]]])
    >>> combo = pl.get("combo", alpha=0.5, beta=0.5, smooth=0.0)
    >>> e = -(0.5 * np.log(0.8) + 0.5 * np.log(0.6)) / 2   # weighted BCE, mean of 2
    >>> d = 2 * 0.8 / (1.2 + 1.0)                          # Dice score
    >>> bool(np.isclose(combo.value(p, g), 0.5 * e - 0.5 * d))
    True
    """

    name = "combo"
    family = "segmentation"
    args = (_INPUT, _TARGET)
    params = {
        "alpha": Param(0.5, low=0.0, high=1.0,
                       doc="weight of the cross-entropy term; 1 - alpha that of the Dice score"),
        "beta": Param(0.5, low=0.0, high=1.0,
                      doc="weight of the foreground (g = 1) cross-entropy term; "
                          "1 - beta that of the background"),
        "smooth": _SMOOTH,
        "eps": Param(1e-7, low=0.0, high=0.5, low_open=True, high_open=True,
                     doc="probabilities are clipped to [eps, 1 - eps] inside the logarithms"),
        "averaging": _AVERAGING,
        "pooling": _POOLING,
        "reduction": REDUCTION,
    }
    param_cases = (
        {"alpha": 0.7, "beta": 0.8, "averaging": "per_class"},
        {"alpha": 1.0, "beta": 0.3, "reduction": "none"},
        {"alpha": 0.2, "smooth": 0.0, "pooling": "batch"},
        {"beta": 1.0, "pooling": "batch", "averaging": "per_class", "reduction": "sum"},
    )
    formula = (r"L = \alpha E - (1 - \alpha) D,\ E = -\overline{\beta g \log \tilde p + "
               r"(1 - \beta)(1 - g) \log(1 - \tilde p)},\ D = \frac{2 \sum p g + s}"
               r"{\sum p + \sum g + s},\ \tilde p = \mathrm{clip}(p, \epsilon, 1 - \epsilon)")
    gradient = (r"\partial L/\partial p = \frac{\alpha}{M}\left(-\frac{\beta g}{p} + "
                r"\frac{(1 - \beta)(1 - g)}{1 - p}\right) - (1 - \alpha)\,\partial D/\partial p"
                "; the cross-entropy part is 0 where p is clipped")
    reference = ("Taghanaki et al., Combo loss: handling input and output imbalance in "
                 "multi-organ segmentation, Comput. Med. Imaging Graph. 75, 24 (2019), "
                 "arXiv:1805.02798")

    def _setup(self):
        _check_pooling(self)

    def nonsmooth_distance(self, name, arrays):
        p = arrays[name]
        return np.minimum(np.abs(p - self.eps), np.abs(1.0 - self.eps - p))

    def _evaluate(self, xp, a, need_grad):
        p, g = a["input"], a["target"]
        dice_loss, dice_dir = _overlap(xp, p, g, (2.0, 0.0, 1.0, 1.0), self.smooth, False,
                                       self.averaging, self.pooling, need_grad)
        rows = dice_loss.shape[0]
        per_row_elements = math.prod(p.shape) // rows
        pc = xp.clip(p, self.eps, 1.0 - self.eps)
        w_fg, w_bg = self.beta, 1.0 - self.beta
        ce = -(w_fg * g * xp.log(pc) + w_bg * (1.0 - g) * xp.log(1.0 - pc))
        ce_row = xp.sum(xp.reshape(ce, (rows, -1)), axis=1)
        # D = 1 - dice_loss: the Dice term -(1 - alpha) D is (1 - alpha)(dice_loss - 1).
        per_row = (self.alpha / per_row_elements) * ce_row + (1.0 - self.alpha) * (dice_loss - 1.0)
        value, factor = reduce(xp, per_row, self.reduction)
        if not need_grad:
            return value, None
        inside = (p >= self.eps) & (p <= 1.0 - self.eps)
        dce = xp.where(inside, -w_fg * g / pc + w_bg * (1.0 - g) / (1.0 - pc), 0.0)
        grad = (self.alpha / per_row_elements) * dce + (1.0 - self.alpha) * dice_dir
        return value, (grad * factor,)
