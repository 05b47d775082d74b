"""Classification losses: scores, logits or probabilities against labels.

Conventions, as in PyTorch: the prediction ``input`` comes first, the
``target`` second. Multi-class inputs put the classes on axis 1 (``(N, C)``,
and ``(N, C, d1, ...)`` where PyTorch allows it); integer labels are in
``[0, C)`` and, where the loss has ``ignore_index``, that value marks a
sample that contributes nothing. ``reduction`` is "mean", "sum" or "none";
with "none" the gradient is that of the sum of the per-sample losses.

Class weights (``weight``, ``alpha``) are given at construction as any 1-D
array-like (a list, a NumPy or CuPy array); they are checked once on the
host and moved to each call's namespace, device and dtype.

Every kernel is written for large logits: log-softmax subtracts the row
maximum, the logistic losses use ``softplus(z) = max(z, 0) + log1p(exp(-|z|))``
and compute ``sigmoid(x)`` and ``sigmoid(-x)`` separately, so values and
gradients stay finite for logits of +-1e4.
"""

from __future__ import annotations

import numpy as np

from .._backend import device_of
from .._registry import Loss, PointwiseLoss, register, reduce
from .._validate import REDUCTION, Arg, Param, require

__all__ = [
    "CrossEntropy", "SoftmaxLoss", "SoftCrossEntropy", "CategoricalCrossEntropy",
    "BinaryCrossEntropy", "BinaryCrossEntropyWithLogits", "NLL", "Perplexity",
    "Hinge", "MultiMargin", "CrammerSinger", "SigmoidFocal", "SoftmaxFocal", "Exponential",
]

_FAMILY = "classification"
# Exponents beyond this would overflow float32 sums (exp(88.7) is its largest
# value); the same limit as the regression family's exp-based losses.
_EXP_LIMIT = 80.0

_LOGITS = Arg("input", ("N", "C", "*"), grad=True, doc="unnormalised scores (logits), classes on axis 1")
_LOGITS_2D = Arg("input", ("N", "C"), grad=True, doc="class scores")
_LABELS = Arg("target", ("N", "*"), kind="int", low=0, high="C", also="ignore_index",
              doc="class indices in [0, C), or ignore_index")
_LABELS_2D = Arg("target", ("N",), kind="int", low=0, high="C", doc="class indices in [0, C)")
_PROBS_TARGET = Arg("target", ("*",), low=0.0, high=1.0,
                    doc="probability of the positive class (0/1 labels or soft)")
_SIGNS = Arg("target", ("*",), kind="choice", values=(-1.0, 1.0), doc="labels -1 or +1")

_WEIGHT = Param(None, kind="array", allow_none=True,
                doc="class weights, a 1-D array-like of C values >= 0")
_IGNORE = Param(-100, kind="int", doc="label value that is ignored (contributes nothing)")
_SMOOTHING = Param(0.0, low=0.0, high=1.0,
                   doc="mass moved from the target to the uniform distribution")


# --------------------------------------------------------------------------
# Shared helpers


def _on_device(xp, w, like, axis):
    """Host vector ``w`` in ``like``'s namespace, dtype and device, laid out
    along ``axis`` so that it broadcasts against ``like``."""
    arr = xp.asarray(w.tolist(), dtype=like.dtype, device=device_of(like))
    if like.ndim == 0 or w.ndim == 0:
        return arr
    shape = [1] * like.ndim
    shape[axis] = w.size
    return xp.reshape(arr, tuple(shape))


def _fit_axis(arr, k, axis):
    """``k`` entries of ``arr`` along ``axis``, cycling when it has fewer;
    used to give drawn test inputs as many classes as a weight vector."""
    return np.take(arr, np.arange(k) % arr.shape[axis], axis=axis)


def _log_softmax(xp, x):
    shifted = x - xp.max(x, axis=1, keepdims=True)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))


def _hot(xp, labels, c):
    """Boolean one-hot of integer ``labels`` (N, *) on a new class axis 1,
    shaped (N, C, *). Picking a label's entry is then a masked sum over that
    axis: a comparison where take_along_axis would gather, which Dask lacks."""
    classes = xp.arange(c, dtype=labels.dtype, device=device_of(labels))
    classes = xp.reshape(classes, (1, c) + (1,) * (labels.ndim - 1))
    return xp.expand_dims(labels, axis=1) == classes


def _softplus(xp, z):
    """``log(1 + exp(z))`` without overflow."""
    return xp.maximum(z, 0.0) + xp.log1p(xp.exp(-xp.abs(z)))


def _sigmoids(xp, x):
    """``(sigmoid(x), sigmoid(-x))``, each accurate where it is tiny."""
    e = xp.exp(-xp.abs(x))
    big, small = 1.0 / (1.0 + e), e / (1.0 + e)
    pos = x >= 0
    return xp.where(pos, big, small), xp.where(pos, small, big)


# --------------------------------------------------------------------------
# Losses on integer labels: cross entropy, NLL, perplexity, focal, margins


class _Labelled(Loss):
    """Multi-class loss with integer labels on ``target``.

    ``_weight_param`` names the per-class weight parameter (``None``: none).
    Provides the weighted one-hot target and the rules that drawn test
    samples must obey (classes matching the weights, at least one label
    that counts).
    """

    family = _FAMILY
    args = (_LOGITS, _LABELS)
    _weight_param: str | None = "weight"

    def _setup(self):
        name = self._weight_param
        self._w = getattr(self, name) if name else None

    def _class_weights(self, xp, x):
        if self._w is None:
            return None
        if self._w.size != x.shape[1]:
            msg = (f"{self.name}: parameter {self._weight_param!r} has {self._w.size} "
                   f"entries but 'input' has C = {x.shape[1]} classes")
            raise ValueError(msg)
        return _on_device(xp, self._w, x, axis=1)

    def _one_hot(self, xp, x, target):
        """Float one-hot of the labels, shaped like ``x``, all zero where the
        label is ignore_index; and the float mask of counted samples
        (``None`` without ignore_index), shaped ``(N, 1, *)``."""
        hot = _hot(xp, target, x.shape[1])
        ignore = getattr(self, "ignore_index", None)
        if ignore is None:
            return xp.astype(hot, x.dtype), None
        valid = xp.expand_dims(target, axis=1) != ignore
        return xp.astype(hot & valid, x.dtype), xp.astype(valid, x.dtype)

    def _target_mass(self, xp, x, target, smoothing=0.0):
        """Weights ``t`` with ``loss = -sum_c t_c log p_c`` (PyTorch's
        label smoothing included) and the "mean" denominator: the summed
        class weight of the counted labels (their number without weights)."""
        hot, valid = self._one_hot(xp, x, target)
        w = self._class_weights(xp, x)
        t = hot if w is None else hot * w
        count = xp.sum(t)
        if smoothing:
            spread = smoothing / x.shape[1]
            spread = spread if w is None else spread * w
            spread = spread if valid is None else spread * valid
            t = (1.0 - smoothing) * t + spread
        return t, count

    def _check_count(self, xp, count, weighted=True):
        """The mean divides by ``count``: refuse a batch where it is 0."""
        if "reduction" in self.params and self.reduction != "mean":
            return
        ignore = getattr(self, "ignore_index", None)
        rule = f" other than ignore_index={ignore}" if ignore is not None else ""
        if weighted and self._w is not None:
            rule += f" of a class with {self._weight_param} > 0"
        require(xp, count > 0,
                f"{self.name}: argument 'target' must hold at least one label{rule}: "
                "the mean divides by their (weighted) count")

    def fix_sample(self, arrays, rng):
        out = dict(arrays)
        x, y = out["input"], out["target"]
        if self._w is not None and x.shape[1] != self._w.size:
            out["input"] = _fit_axis(x, self._w.size, 1)
            y = y % self._w.size
        ignore = getattr(self, "ignore_index", None)
        if ignore is not None:
            # Ignored labels are valid input, but no drawn label equals a
            # negative ignore_index unless put there.
            y = np.where(rng.random(y.shape) < 0.25, ignore, y)
            c = out["input"].shape[1]
            keep = np.arange(c) if self._w is None else np.flatnonzero(self._w > 0)
            keep = keep[keep != ignore]
            if keep.size and y.size:
                y = y.copy()
                y.flat[0] = keep[0]
        out["target"] = y
        return out


class _SoftmaxCE(_Labelled):
    """Cross entropy of softmax(input) against target weights ``t``:
    ``-sum_c t_c log_softmax(x)_c``, gradient ``p sum_c t_c - t``."""

    def _parts(self, xp, a, order):
        x = a["input"]
        t, count = self._ce_target(xp, a)
        lp = _log_softmax(xp, x)
        per = -xp.sum(t * lp, axis=1)
        value, factor = reduce(xp, per, self.reduction, count)
        if order < 1:
            return value, None, None
        p = xp.exp(lp)
        total = xp.sum(t, axis=1, keepdims=True)
        g = (p * total - t) * factor
        h = (total * factor) * p * -xp.expm1(lp) if order >= 2 else None
        return value, g, h

    def _evaluate(self, xp, a, need_grad):
        value, g, _ = self._parts(xp, a, 1 if need_grad else 0)
        return value, ((g,) if need_grad else None)

    def gradient_hessian(self, *arrays, **kw):
        """Gradient and diagonal Hessian of the reduced value with respect to
        the logits; the Hessian diagonal is ``T p (1 - p)`` (``T`` the row's
        target mass) scaled like the gradient. Use ``reduction="sum"`` for
        per-sample values."""
        xp, a, _ = self.bind(arrays, kw)
        _, g, h = self._parts(xp, a, 2)
        return g, h


@register
class CrossEntropy(_SoftmaxCE):
    """Softmax cross entropy from logits and class indices, PyTorch's ``CrossEntropyLoss``.

    Value per sample ``n`` with label ``y`` (``l = log_softmax(input)`` over
    the class axis 1, ``w`` the class weights, 1 without ``weight``,
    ``eps`` = ``label_smoothing``)::

        loss_n = (1 - eps) * w[y] * (-l[y]) + eps / C * sum_c w[c] * (-l[c])

    and 0 where ``target == ignore_index``. "mean" divides the sum by
    ``sum_n w[y_n]`` over the samples not ignored (their number without
    weights), as PyTorch does, also with label smoothing; "sum" and "none"
    do not normalise.

    Gradient with respect to the logits: ``p * T - t`` with ``p =
    softmax(input)``, ``t_c = (1 - eps) w[y] [c = y] + eps w[c] / C`` and
    ``T = sum_c t_c``; :meth:`gradient_hessian` adds the diagonal Hessian
    ``T p (1 - p)``. log-softmax subtracts the row maximum, so logits of
    +-1e4 give finite values and gradients.

    Domain: finite logits ``(N, C)`` or ``(N, C, d1, ...)``; integer labels
    ``(N)`` or ``(N, d1, ...)`` in ``[0, C)`` or equal to ``ignore_index``.
    With "mean", at least one label must count (PyTorch returns NaN for an
    all-ignored batch; this raises ``ValueError`` while value checks are on).
    Class weights must be ``>= 0`` (PyTorch also takes negative ones).
    Probability targets are :class:`SoftCrossEntropy`. Same as optax's
    ``softmax_cross_entropy_with_integer_labels`` followed by a mean, for
    unweighted, unsmoothed inputs.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> x = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]]); y = np.array([0, -100])
    >>> v, g = pl.get("cross_entropy").value_and_grad(x, y)
    >>> round(float(v), 6)
    0.239545
    >>> np.round(g, 4).tolist()
    [[-0.2129, 0.1065, 0.1065], [0.0, 0.0, 0.0]]
    """

    name = "cross_entropy"
    params = {"weight": _WEIGHT, "ignore_index": _IGNORE, "reduction": REDUCTION,
              "label_smoothing": _SMOOTHING}
    param_cases = (
        {"weight": [0.5, 2.0, 1.0]},
        {"label_smoothing": 0.2},
        {"weight": [1.0, 0.0, 3.0, 0.5], "label_smoothing": 0.1, "ignore_index": -1},
        {"reduction": "sum"},
        {"reduction": "none", "label_smoothing": 1.0},
    )
    formula = (r"\ell_n = -\sum_c t_{nc} \log \mathrm{softmax}(x_n)_c,\ "
               r"t_{nc} = (1-\epsilon) w_{y_n} [c = y_n] + \epsilon w_c / C;\ "
               r"L = \sum_n \ell_n / \sum_n w_{y_n} \text{ (mean)}")
    gradient = (r"\partial \ell_n/\partial x_{nc} = p_{nc} T_n - t_{nc},\ T_n = \sum_c t_{nc};"
                r"\ \mathrm{diag\ Hessian}\ T_n p_{nc}(1 - p_{nc})")
    reference = ("torch.nn.CrossEntropyLoss (class-index targets, weight, ignore_index, "
                 "label_smoothing); optax.softmax_cross_entropy_with_integer_labels "
                 "(unreduced, no weights); keras.losses.SparseCategoricalCrossentropy"
                 "(from_logits=True). Differences: class weights must be >= 0; an "
                 "all-ignored batch with 'mean' raises ValueError (PyTorch: NaN)")

    def _ce_target(self, xp, a):
        t, count = self._target_mass(xp, a["input"], a["target"], self.label_smoothing)
        self._check_count(xp, count)
        return t, count


@register
class SoftmaxLoss(CrossEntropy):
    """The "softmax loss": cross entropy paired with a softmax, from logits.

    The seeds' name for softmax followed by the cross entropy ``-sum_c y_c
    log softmax(z)_c`` with a one-hot ``y``; with class-index labels that is
    :class:`CrossEntropy`, whose code, parameters, gradient and diagonal
    Hessian this alias shares (same PyTorch defaults; see there).

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> x = np.array([[0.0, 0.0]]); y = np.array([1])
    >>> round(float(pl.get("softmax_loss").value(x, y)), 6)  # log 2
    0.693147
    """

    name = "softmax_loss"
    param_cases = ()
    reference = "alias of cross_entropy (torch.nn.CrossEntropyLoss applied to logits)"


@register
class SoftCrossEntropy(_SoftmaxCE):
    """Softmax cross entropy from logits and probability targets.

    PyTorch's ``CrossEntropyLoss`` given class probabilities instead of
    indices, and optax's ``softmax_cross_entropy``. Per row ``n``::

        loss_n = -sum_c w[c] * y~[n, c] * log_softmax(input)[n, c]
        y~ = (1 - eps) * target + eps / C

    with ``eps = label_smoothing``. "mean" divides by the number of rows
    ``N`` (not by weights: PyTorch's rule for probability targets).

    Gradient: ``p * T - t`` with ``t = w * y~`` and ``T = sum_c t_c``;
    :meth:`gradient_hessian` adds ``T p (1 - p)``. Domain: finite logits
    ``(N, C)``; targets in ``[0, 1]`` (rows normally sum to 1; this is not
    checked, as in PyTorch). No ``ignore_index``: PyTorch has none for
    probability targets.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> x = np.zeros((1, 2)); y = np.array([[0.25, 0.75]])
    >>> v, g = pl.get("soft_cross_entropy").value_and_grad(x, y)
    >>> round(float(v), 6), g.tolist()
    (0.693147, [[0.25, -0.25]])
    """

    name = "soft_cross_entropy"
    args = (_LOGITS_2D, Arg("target", ("N", "C"), low=0.0, high=1.0, simplex=True,
                            doc="class probabilities, rows summing to 1"))
    params = {"weight": _WEIGHT, "reduction": REDUCTION, "label_smoothing": _SMOOTHING}
    param_cases = ({"weight": [2.0, 0.5, 1.0], "label_smoothing": 0.3},
                   {"reduction": "none"})
    formula = (r"\ell_n = -\sum_c w_c \tilde y_{nc} \log \mathrm{softmax}(x_n)_c,\ "
               r"\tilde y = (1-\epsilon) y + \epsilon / C")
    gradient = (r"\partial \ell_n/\partial x_{nc} = p_{nc} T_n - t_{nc},\ t = w \tilde y,\ "
                r"T_n = \sum_c t_{nc}")
    reference = ("torch.nn.CrossEntropyLoss (probability targets); "
                 "optax.softmax_cross_entropy; keras.losses.CategoricalCrossentropy"
                 "(from_logits=True)")

    def _ce_target(self, xp, a):
        x, y = a["input"], a["target"]
        if self.label_smoothing:
            y = (1.0 - self.label_smoothing) * y + self.label_smoothing / x.shape[1]
        w = self._class_weights(xp, x)
        return (y if w is None else y * w), None

    def fix_sample(self, arrays, rng):
        if self._w is None or arrays["input"].shape[1] == self._w.size:
            return arrays
        y = _fit_axis(arrays["target"], self._w.size, 1)
        return {"input": _fit_axis(arrays["input"], self._w.size, 1),
                "target": y / y.sum(axis=1, keepdims=True)}


@register
class NLL(_Labelled):
    """Negative log-likelihood of log-probabilities, PyTorch's ``NLLLoss``.

    Value per sample: ``-w[y] * input[n, y]`` (0 where ``target ==
    ignore_index``); "mean" divides the sum by ``sum_n w[y_n]`` over the
    samples not ignored (their number without weights). Apply it to
    ``log_softmax`` outputs; ``nll(log_softmax(x))`` is ``cross_entropy(x)``.

    Gradient: ``-w[y]`` at the label's entry, 0 elsewhere (the loss is
    linear in ``input``), over the denominator for "mean". Domain: any
    finite ``input`` (PyTorch does not check that it holds
    log-probabilities), shaped ``(N, C)`` or ``(N, C, d1, ...)``; labels in
    ``[0, C)`` or ``ignore_index``; with "mean", at least one label must
    count (PyTorch: NaN).

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> lp = np.log(np.array([[0.5, 0.5], [0.1, 0.9]])); y = np.array([0, 1])
    >>> v, g = pl.get("nll", weight=[1.0, 3.0]).value_and_grad(lp, y)
    >>> round(float(v), 6), g.tolist()
    (0.252307, [[-0.25, -0.0], [-0.0, -0.75]])
    """

    name = "nll"
    args = (Arg("input", ("N", "C", "*"), grad=True, doc="log-probabilities, classes on axis 1"),
            _LABELS)
    params = {"weight": _WEIGHT, "ignore_index": _IGNORE, "reduction": REDUCTION}
    param_cases = ({"weight": [0.2, 1.0, 4.0]}, {"ignore_index": -1, "reduction": "sum"},
                   {"reduction": "none"})
    formula = r"\ell_n = -w_{y_n} x_{n y_n};\ L = \sum_n \ell_n / \sum_n w_{y_n} \text{ (mean)}"
    gradient = r"\partial \ell_n/\partial x_{nc} = -w_{y_n} [c = y_n]"
    reference = ("torch.nn.NLLLoss (weight, ignore_index). Differences: class weights "
                 "must be >= 0; an all-ignored batch with 'mean' raises ValueError (PyTorch: NaN)")

    def _evaluate(self, xp, a, need_grad):
        t, count = self._target_mass(xp, a["input"], a["target"])
        self._check_count(xp, count)
        value, factor = reduce(xp, -xp.sum(t * a["input"], axis=1), self.reduction, count)
        return value, ((-t * factor,) if need_grad else None)


@register
class Perplexity(_Labelled):
    """Perplexity: the exponential of the mean NLL of log-probabilities.

    Value: ``exp(-mean_n input[n, y_n])`` over the samples (tokens) whose
    label is not ``ignore_index``. It is an evaluation metric: it has the
    same minimiser as the mean NLL (:class:`NLL`), which is the better
    training objective since the exponential rescales its gradient by the
    perplexity itself. No ``reduction``; no class weights.

    Gradient: ``-ppl / M`` at each counted label's entry, 0 elsewhere, ``M``
    the number of counted labels. Domain: log-probabilities ``<= 0``, shaped
    ``(N, C)`` or ``(N, C, T)`` (tokens on the last axes); at least one
    label must count, and the mean NLL must not exceed 80, whose
    exponential (5.5e34) is near float32's limit; both raise
    ``ValueError`` while value checks are on (else the result is inf or
    NaN). Same number as ``torchmetrics.text.Perplexity`` applied to logits
    whose log-softmax is ``input`` (ignore_index there defaults to None).

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> lp = np.log(np.full((2, 4), 0.25)); y = np.array([0, 3])
    >>> v, g = pl.get("perplexity").value_and_grad(lp, y)
    >>> round(float(v), 6), np.round(g[0], 6).tolist()
    (4.0, [-2.0, 0.0, 0.0, 0.0])
    """

    name = "perplexity"
    args = (Arg("input", ("N", "C", "*"), high=0.0, grad=True,
                doc="log-probabilities (<= 0), classes on axis 1"), _LABELS)
    params = {"ignore_index": _IGNORE}
    param_cases = ({"ignore_index": -1},)
    _weight_param = None
    formula = r"\mathrm{PPL} = \exp\big(-\tfrac{1}{M} \sum_n x_{n y_n}\big)"
    gradient = r"\partial\,\mathrm{PPL}/\partial x_{nc} = -\mathrm{PPL}\,[c = y_n] / M"
    reference = ("an evaluation metric, no PyTorch loss; torchmetrics.text.Perplexity "
                 "(takes logits, ignore_index None by default); Jelinek et al., "
                 "J. Acoust. Soc. Am. 62, S63 (1977)")

    def _evaluate(self, xp, a, need_grad):
        t, count = self._target_mass(xp, a["input"], a["target"])
        self._check_count(xp, count)
        mean_nll = -xp.sum(t * a["input"]) / count
        require(xp, mean_nll <= _EXP_LIMIT,
                f"{self.name}: argument 'input' gives a mean negative log-likelihood "
                f"above {_EXP_LIMIT:g}; its exponential would overflow float32 "
                "(report the mean NLL instead)")
        value = xp.exp(mean_nll)
        return value, ((t * (-value / count),) if need_grad else None)

    def fix_sample(self, arrays, rng):
        out = super().fix_sample(arrays, rng)
        out["input"] = np.maximum(out["input"], -_EXP_LIMIT)
        return out


@register
class SoftmaxFocal(_Labelled):
    """Multi-class (softmax) focal loss from logits and class indices.

    Value per sample with label ``y`` and ``p = softmax(input)[y]``::

        loss_n = -alpha[y] * (1 - p)**gamma * log(p)

    0 where ``target == ignore_index``; "mean" divides by the number of
    samples not ignored (``alpha`` is a factor, not a normaliser). ``gamma
    = 0`` with ``alpha = None`` is :class:`CrossEntropy`. The multi-class
    form of Lin et al. (2017); PyTorch has none (torchvision's is the
    sigmoid form, :class:`SigmoidFocal`); kornia's ``focal_loss`` is this
    with a scalar alpha and reduction "none" by default.

    Gradient: ``alpha[y] * c * (softmax(input) - onehot(y))`` with ``c =
    (1 - p)**gamma * (1 - gamma p log(p) / (1 - p))``; ``1 - p`` is
    computed as ``-expm1(log p)``, so confident predictions keep their
    precision and ``c`` stays finite (its limit at ``p = 1`` is used).
    Domain: finite logits ``(N, C)`` or ``(N, C, d1, ...)``; labels in
    ``[0, C)`` or ``ignore_index``; ``gamma >= 0``; ``alpha`` ``>= 0``, one
    per class.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> x = np.array([[0.0, 0.0]]); y = np.array([0])
    >>> round(float(pl.get("softmax_focal", gamma=2.0).value(x, y)), 6)  # log(2) / 4
    0.173287
    """

    name = "softmax_focal"
    params = {"gamma": Param(2.0, low=0.0, doc="focusing exponent"),
              "alpha": Param(None, kind="array", allow_none=True,
                             doc="per-class balancing factors, a 1-D array-like of C values >= 0"),
              "ignore_index": _IGNORE, "reduction": REDUCTION}
    param_cases = ({"gamma": 0.0}, {"gamma": 0.5, "alpha": [0.25, 0.75, 1.0]},
                   {"gamma": 3.0, "reduction": "none"})
    _weight_param = "alpha"
    formula = r"\ell_n = -\alpha_{y_n} (1 - p_{n y_n})^\gamma \log p_{n y_n},\ p = \mathrm{softmax}(x)"
    gradient = (r"\partial \ell_n/\partial x_{nc} = \alpha_{y_n} (1-p)^\gamma "
                r"\big(1 - \gamma p \log p / (1-p)\big) (p_{nc} - [c = y_n]),\ p = p_{n y_n}")
    reference = ("Lin et al., Focal Loss for Dense Object Detection, ICCV (2017), "
                 "multi-class form; no PyTorch loss; kornia.losses.focal_loss (scalar "
                 "alpha, reduction 'none' by default); 'mean' divides by the non-ignored count")

    def _evaluate(self, xp, a, need_grad):
        x = a["input"]
        hot, valid = self._one_hot(xp, x, a["target"])
        w = self._class_weights(xp, x)
        alpha_y = xp.sum(hot if w is None else hot * w, axis=1, keepdims=True)
        lp = _log_softmax(xp, x)
        lp_y = xp.sum(hot * lp, axis=1, keepdims=True)
        rest = -xp.expm1(lp_y)  # 1 - p_y, exact where p_y is close to 1
        focus = rest**self.gamma
        per = xp.squeeze(-alpha_y * focus * lp_y, axis=1)
        count = xp.sum(valid)
        self._check_count(xp, count, weighted=False)
        value, factor = reduce(xp, per, self.reduction, count)
        if not need_grad:
            return value, None
        # log(p) / (1 - p) tends to -1 as p -> 1.
        ratio = xp.where(rest > 0, lp_y / xp.where(rest > 0, rest, 1.0), -1.0)
        c = alpha_y * focus * (1.0 - self.gamma * xp.exp(lp_y) * ratio)
        return value, ((c * factor) * (xp.exp(lp) - hot),)


class _Margin(_Labelled):
    """Multi-class margin losses on scores ``(N, C)`` and labels ``(N)``."""

    args = (_LOGITS_2D, _LABELS_2D)

    def _violations(self, xp, a):
        """One-hot of the labels and ``z_j = margin - x_y + x_j`` (``x_y``
        per row)."""
        x = a["input"]
        hot, _ = self._one_hot(xp, x, a["target"])
        x_y = xp.sum(hot * x, axis=1, keepdims=True)
        return hot, self.margin - x_y + x


@register
class MultiMargin(_Margin):
    """Multi-class hinge loss, PyTorch's ``MultiMarginLoss``.

    Value per sample with label ``y`` (``w`` the class weights, 1 without
    ``weight``)::

        loss_n = w[y] / C * sum_{j != y} max(0, margin - x[y] + x[j]) ** p

    It *sums* the violations of every wrong class and divides by ``C``
    (Weston & Watkins 1999); :class:`CrammerSinger` takes only the
    largest. ``w[y]`` multiplies after the power, as PyTorch's kernel does
    (its documentation puts it inside the power). "mean" divides by ``N``,
    not by the weights. The seeds' "multi-class hinge" ``sum_{j != y}
    max(0, s_j - s_y + Delta)`` is ``C`` times this with ``p = 1``.

    Gradient: ``w[y] p z_j**(p-1) / C`` at each wrong class ``j`` with ``z_j
    = margin - x[y] + x[j] > 0``, minus their sum at ``y``; at ``z_j = 0``
    the violation counts as inactive (0). Domain: finite scores ``(N, C)``,
    labels in ``[0, C)``; ``p`` 1 or 2; ``margin`` any real.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> x = np.array([[0.1, 0.2, 0.4, 0.8]]); y = np.array([3])
    >>> v, g = pl.get("multi_margin").value_and_grad(x, y)
    >>> round(float(v), 6), np.round(g, 6).tolist()  # PyTorch's docs example
    (0.325, [[0.25, 0.25, 0.25, -0.75]])
    """

    name = "multi_margin"
    params = {"p": Param(1, kind="choice", choices=(1, 2), doc="power of each violation"),
              "margin": Param(1.0, doc="required gap between the label's score and the others"),
              "weight": _WEIGHT, "reduction": REDUCTION}
    param_cases = ({"p": 2}, {"margin": 0.5, "weight": [1.0, 2.0, 0.5]},
                   {"p": 2, "reduction": "none"})
    formula = (r"\ell_n = \frac{w_{y_n}}{C} \sum_{j \ne y_n} "
               r"\max(0, m - x_{n y_n} + x_{nj})^p")
    gradient = (r"\partial \ell_n/\partial x_{nj} = w_{y_n} p z_j^{p-1} [z_j > 0] / C\ (j \ne y_n),\ "
                r"-\sum_{j \ne y_n} (\cdot) \text{ at } y_n;\ z_j = m - x_{n y_n} + x_{nj}")
    reference = ("torch.nn.MultiMarginLoss (sum over wrong classes, divided by C; "
                 "weight applied after the power, as PyTorch's kernel does); "
                 "Weston & Watkins, ESANN (1999)")

    def nonsmooth_distance(self, name, arrays):
        x, y = arrays["input"], arrays["target"]
        hot = y[:, None] == np.arange(x.shape[1])
        z = self.margin - np.sum(np.where(hot, x, 0), axis=1, keepdims=True) + x
        # A step in x[y] moves every z of its row: the row's nearest kink bounds all.
        near = np.min(np.where(hot, np.inf, np.abs(z)), axis=1, keepdims=True)
        return np.broadcast_to(near, x.shape)

    def _evaluate(self, xp, a, need_grad):
        hot, z = self._violations(xp, a)
        active = (z > 0) & (hot == 0)
        viol = xp.where(active, z, 0.0)
        w = self._class_weights(xp, a["input"])
        scale = (1.0 if w is None else xp.sum(hot * w, axis=1, keepdims=True)) / z.shape[1]
        per = xp.sum(scale * (viol if self.p == 1 else viol * viol), axis=1)
        value, factor = reduce(xp, per, self.reduction)
        if not need_grad:
            return value, None
        g = scale * (xp.astype(active, z.dtype) if self.p == 1 else 2.0 * viol)
        return value, ((g - hot * xp.sum(g, axis=1, keepdims=True)) * factor,)


@register
class CrammerSinger(_Margin):
    """Crammer-Singer multi-class hinge loss: the largest margin violation.

    Value per sample with label ``y``::

        loss_n = max(0, margin + max_{j != y} x[j] - x[y])

    Only the most offending wrong class counts, where
    :class:`MultiMargin` (PyTorch's) sums all of them and divides by ``C``.
    Same as optax's ``multiclass_hinge_loss`` (margin 1) and the loss of
    scikit-learn's ``LinearSVC(multi_class="crammer_singer")``; PyTorch has
    none. With one class the loss is 0.

    Gradient: +1 at the highest-scoring wrong class and -1 at ``y`` where
    the violation is > 0, else 0. At ties (two wrong classes share the top
    score; the violation is exactly 0) the value has a kink and the
    gradient is the one-sided one of the first such class / 0.
    Domain: finite scores ``(N, C)``, labels in ``[0, C)``.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> x = np.array([[0.1, 0.2, 0.4, 0.8]]); y = np.array([3])
    >>> v, g = pl.get("crammer_singer").value_and_grad(x, y)
    >>> round(float(v), 6), np.round(g, 6).tolist()
    (0.6, [[0.0, 0.0, 1.0, -1.0]])
    """

    name = "crammer_singer"
    params = {"margin": Param(1.0, doc="required gap between the label's score and the others"),
              "reduction": REDUCTION}
    param_cases = ({"margin": 2.0, "reduction": "sum"},)
    _weight_param = None
    formula = r"\ell_n = \max\big(0,\ m + \max_{j \ne y_n} x_{nj} - x_{n y_n}\big)"
    gradient = (r"\partial \ell_n/\partial x = (e_{j^*} - e_{y_n}) [\ell_n > 0],\ "
                r"j^* = \arg\max_{j \ne y_n} x_{nj}")
    reference = ("optax.multiclass_hinge_loss; sklearn.svm.LinearSVC(multi_class="
                 "'crammer_singer'); Crammer & Singer, JMLR 2, 265 (2001)")

    def nonsmooth_distance(self, name, arrays):
        x, y = arrays["input"], arrays["target"]
        if x.shape[1] < 2:
            return None
        hot = y[:, None] == np.arange(x.shape[1])
        wrong = -np.sort(-np.where(hot, -np.inf, x), axis=1)  # descending
        z = self.margin + wrong[:, 0] - np.sum(np.where(hot, x, 0), axis=1)
        gap = wrong[:, 0] - wrong[:, 1]  # inf with one wrong class
        near = np.minimum(np.abs(z), 0.5 * gap)[:, None]
        return np.broadcast_to(near, x.shape)

    def _evaluate(self, xp, a, need_grad):
        x = a["input"]
        hot, z = self._violations(xp, a)
        wrong = xp.where(hot > 0, -xp.inf, z)
        worst = xp.max(wrong, axis=1, keepdims=True)
        active = worst > 0
        per = xp.squeeze(xp.where(active, worst, 0.0), axis=1)
        value, factor = reduce(xp, per, self.reduction)
        if not need_grad:
            return value, None
        first = xp.argmax(wrong, axis=1, keepdims=True)
        classes = xp.reshape(xp.arange(x.shape[1], dtype=first.dtype, device=device_of(x)),
                             (1, -1))
        top = xp.astype(classes == first, x.dtype)
        return value, (xp.where(active, (top - hot) * factor, 0.0),)


# --------------------------------------------------------------------------
# Probability inputs


@register
class CategoricalCrossEntropy(Loss):
    """Categorical cross entropy from probabilities, Keras's ``CategoricalCrossentropy``.

    The seeds' ``-sum_c y_c log yhat_c`` with Keras's safeguards: each row
    of ``input`` is first divided by its sum, then clipped to ``[epsilon, 1
    - epsilon]``; ``label_smoothing`` replaces the target by ``(1 - eps) y +
    eps / C``. Classes are on the *last* axis (Keras's ``axis=-1``), rows on
    the leading axes; "mean" averages the row losses (Keras's
    "sum_over_batch_size"). PyTorch has no loss on probabilities for more
    than two classes (``NLLLoss`` of their log is this without
    normalisation and clipping).

    Gradient: with ``s`` the row sum, ``q = input / s`` and ``g_c = -y~_c /
    q_c`` where ``q`` is inside the clip range (0 where it is clipped), the
    gradient is ``(g - sum_c g_c q_c) / s``: the normalisation makes the loss
    blind to the scale of a row. Domain: probabilities in ``[0, 1]`` (rows
    normally summing to 1; every row needs a positive sum, checked while
    value checks are on), targets in ``[0, 1]``. Probabilities exactly 0
    and 1 give finite values, as in Keras.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> p = np.array([[0.05, 0.95, 0.0], [0.1, 0.8, 0.1]])
    >>> y = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    >>> round(float(pl.get("categorical_cross_entropy").value(p, y)), 6)  # Keras docs
    1.176939
    """

    name = "categorical_cross_entropy"
    family = _FAMILY
    args = (Arg("input", ("*", "C"), low=0.0, high=1.0, simplex=True, grad=True,
                doc="predicted class probabilities, classes on the last axis"),
            Arg("target", ("*", "C"), low=0.0, high=1.0, simplex=True,
                doc="one-hot or soft target probabilities"))
    # A one-class row is the constant 1 after normalisation, at the domain's
    # upper bound, where finite differences have no room (tested separately).
    sample_dims_min = {"C": 2}
    params = {"label_smoothing": _SMOOTHING,
              "epsilon": Param(1e-7, low=0.0, high=0.5, low_open=True, high_open=True,
                               doc="clip range of the probabilities (Keras's backend epsilon)"),
              "reduction": REDUCTION}
    param_cases = ({"label_smoothing": 0.1, "reduction": "sum"}, {"epsilon": 1e-3},
                   {"reduction": "none"})
    formula = (r"\ell = -\sum_c \tilde y_c \log \mathrm{clip}(\hat y_c / \textstyle\sum_k \hat y_k,"
               r" \epsilon, 1 - \epsilon)")
    gradient = (r"\partial \ell/\partial \hat y_c = (g_c - \sum_k g_k q_k)/s,\ "
                r"g_c = -\tilde y_c / q_c [\epsilon < q_c < 1-\epsilon],\ q = \hat y / s")
    reference = ("keras.losses.CategoricalCrossentropy (from_logits=False, "
                 "label_smoothing; classes on the last axis, rows renormalised and "
                 "clipped); seed formula -sum y log yhat; no PyTorch loss")

    def nonsmooth_distance(self, name, arrays):
        p = arrays["input"]
        s = np.sum(p, axis=-1, keepdims=True)
        q = p / s
        to_clip = np.minimum(np.abs(q - self.epsilon), np.abs(q - (1.0 - self.epsilon)))
        # A step h in one entry moves every q of its row by at most h / s.
        return np.broadcast_to(s * np.min(to_clip, axis=-1, keepdims=True), p.shape)

    def _evaluate(self, xp, a, need_grad):
        p, y = a["input"], a["target"]
        if self.label_smoothing:
            y = (1.0 - self.label_smoothing) * y + self.label_smoothing / p.shape[-1]
        s = xp.sum(p, axis=-1, keepdims=True)
        require(xp, xp.all(s > 0), f"{self.name}: argument 'input' must have rows with a positive sum")
        q = p / s
        eps = self.epsilon
        r = xp.clip(q, eps, 1.0 - eps)
        value, factor = reduce(xp, -xp.sum(y * xp.log(r), axis=-1), self.reduction)
        if not need_grad:
            return value, None
        g = xp.where((q > eps) & (q < 1.0 - eps), -y / r, 0.0)
        g = (g - xp.sum(g * q, axis=-1, keepdims=True)) / s
        return value, (g * factor,)


# --------------------------------------------------------------------------
# Binary and pointwise losses


@register
class BinaryCrossEntropy(PointwiseLoss):
    """Binary cross entropy from probabilities, PyTorch's ``BCELoss``.

    Value per element: ``-(y * max(log x, -100) + (1 - y) * max(log(1 - x),
    -100))``; the logs are clamped at -100 as in PyTorch, so ``x = 0`` or
    ``1`` gives at most 100 per element instead of inf.

    Gradient: PyTorch's ``(x - y) / max(x (1 - x), 1e-12)``. It is the
    derivative of the value wherever ``x (1 - x) > 1e-12``; within about
    1e-12 of 0 or 1 it is capped (and is not 0 where the clamp makes the
    value flat), so a sample predicted certainly wrong still gets a large
    finite push. Diagonal Hessian: ``y / x**2 + (1 - y) / (1 - x)**2``,
    ``1e12`` where the gradient is capped. Domain: ``input`` and ``target``
    in ``[0, 1]``. No per-element ``weight`` (PyTorch's; multiply the
    ``reduction="none"`` values instead). For logits use
    :class:`BinaryCrossEntropyWithLogits`, which is more accurate. Same as
    ``keras.losses.BinaryCrossentropy`` except that Keras clips the
    probabilities to ``[1e-7, 1 - 1e-7]`` instead.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> x = np.array([0.5, 0.0, 1.0]); y = np.array([1.0, 1.0, 1.0])
    >>> v, g = pl.get("binary_cross_entropy", reduction="none").value_and_grad(x, y)
    >>> np.round(v, 6).tolist(), g.tolist()
    ([0.693147, 100.0, 0.0], [-2.0, -1000000000000.0, 0.0])
    """

    name = "binary_cross_entropy"
    family = _FAMILY
    args = (Arg("input", ("*",), low=0.0, high=1.0, grad=True,
                doc="predicted probability of the positive class"), _PROBS_TARGET)
    param_cases = ({"reduction": "sum"}, {"reduction": "none"})
    formula = r"\ell = -\big(y \max(\log x, -100) + (1 - y) \max(\log(1 - x), -100)\big)"
    gradient = (r"\partial \ell/\partial x = (x - y) / \max(x(1-x), 10^{-12}),\ "
                r"\partial^2 \ell/\partial x^2 = y/x^2 + (1-y)/(1-x)^2")
    reference = ("torch.nn.BCELoss (log clamped at -100, gradient denominator at 1e-12; "
                 "no per-element weight); keras.losses.BinaryCrossentropy clips at 1e-7 instead")
    _FLOOR = 1e-12  # PyTorch's EPSILON in the BCE backward kernel

    def _pointwise(self, xp, a, order):
        x, y = a["input"], a["target"]
        # The inner where keeps log(0) (and its warning) out of the discarded branch.
        log_x = xp.where(x > 0, xp.log(xp.where(x > 0, x, 1.0)), -100.0)
        log_1mx = xp.where(x < 1, xp.log1p(-xp.where(x < 1, x, 0.0)), -100.0)
        loss = -(y * xp.maximum(log_x, -100.0) + (1.0 - y) * xp.maximum(log_1mx, -100.0))
        if order < 1:
            return loss, None, None
        var = x * (1.0 - x)
        d1 = (x - y) / xp.maximum(var, self._FLOOR)
        if order < 2:
            return loss, d1, None
        ok = var > self._FLOOR
        xs = xp.where(ok, x, 0.5)
        d2 = xp.where(ok, y / (xs * xs) + (1.0 - y) / ((1.0 - xs) * (1.0 - xs)), 1.0 / self._FLOOR)
        return loss, d1, d2


class _LogitBinary(PointwiseLoss):
    """Binary losses on logits against targets in [0, 1]."""

    family = _FAMILY
    args = (Arg("input", ("*",), grad=True, doc="logit of the positive class"), _PROBS_TARGET)


def _logit_bce(xp, x, y, order, pos_weight=None):
    """BCE from logits with PyTorch's ``pos_weight`` and its first two
    derivatives; also returns ``sigmoid(x)`` and ``sigmoid(-x)``."""
    pos = y if pos_weight is None else pos_weight * y
    lw = 1.0 + pos - y
    loss = (1.0 - y) * x + lw * _softplus(xp, -x)
    if order < 1:
        return loss, None, None, None, None
    s, s_neg = _sigmoids(xp, x)
    # (1 - y) - lw sigmoid(-x), written without cancellation
    d1 = (1.0 - y) * s - pos * s_neg
    d2 = lw * s * s_neg if order >= 2 else None
    return loss, d1, d2, s, s_neg


@register
class BinaryCrossEntropyWithLogits(_LogitBinary):
    """Binary cross entropy from logits, PyTorch's ``BCEWithLogitsLoss``.

    Value per element, with ``l = 1 + (pos_weight - 1) * y``::

        loss = (1 - y) * x + l * softplus(-x)

    which is ``-(pos_weight y log sigmoid(x) + (1 - y) log sigmoid(-x))``
    written so that it cannot overflow. ``pos_weight`` (default None, i.e.
    1) is a number or a 1-D array broadcast along the last axis, as in
    PyTorch (one weight per class of a multi-label problem).

    Gradient: ``(1 - y) - l * sigmoid(-x)`` (``sigmoid(x) - y`` without
    pos_weight); diagonal Hessian ``l sigmoid(x) sigmoid(-x)``. Domain:
    finite logits; targets in ``[0, 1]``; ``pos_weight >= 0``. No
    per-element ``weight`` (PyTorch's; multiply the ``reduction="none"``
    values instead). Matches ``optax.sigmoid_binary_cross_entropy`` (no
    pos_weight, unreduced) and ``keras.losses.BinaryCrossentropy(
    from_logits=True)``.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> x = np.array([0.0, 1e4, -1e4]); y = np.array([1.0, 1.0, 1.0])
    >>> loss = pl.get("binary_cross_entropy_with_logits", pos_weight=2.0, reduction="none")
    >>> v, g = loss.value_and_grad(x, y)
    >>> np.round(v, 6).tolist(), g.tolist()
    ([1.386294, 0.0, 20000.0], [-1.0, -0.0, -2.0])
    """

    name = "binary_cross_entropy_with_logits"
    params = {"reduction": REDUCTION,
              "pos_weight": Param(None, kind="array", allow_none=True, scalar_ok=True,
                                  doc="weight of positive targets: a number, or one per class "
                                      "(last axis)")}
    param_cases = ({"pos_weight": 3.0}, {"pos_weight": [0.5, 2.0, 1.0], "reduction": "sum"},
                   {"reduction": "none"})
    formula = r"\ell = (1 - y) x + (1 + (w_+ - 1) y)\,\mathrm{softplus}(-x)"
    gradient = (r"\partial \ell/\partial x = (1 - y) - (1 + (w_+ - 1) y)\,\sigma(-x),\ "
                r"\partial^2 \ell/\partial x^2 = (1 + (w_+ - 1) y)\,\sigma(x)\sigma(-x)")
    reference = ("torch.nn.BCEWithLogitsLoss (pos_weight a number or one per last-axis "
                 "entry; no per-element weight); optax.sigmoid_binary_cross_entropy; "
                 "keras.losses.BinaryCrossentropy(from_logits=True)")

    def _pos_weight(self, xp, x):
        pw = self.pos_weight
        if pw is None:
            return None
        if pw.ndim == 0:
            return float(pw)
        last = x.shape[-1] if x.ndim else 1
        if pw.size not in (1, last):
            msg = (f"{self.name}: parameter 'pos_weight' has {pw.size} entries but the last "
                   f"dimension of 'input' is {last}; it is broadcast along the last axis")
            raise ValueError(msg)
        return _on_device(xp, pw, x, axis=-1)

    def fix_sample(self, arrays, rng):
        pw = self.pos_weight
        if pw is None or pw.ndim == 0 or arrays["input"].ndim == 0:
            return arrays
        return {k: _fit_axis(v, pw.size, -1) for k, v in arrays.items()}

    def _pointwise(self, xp, a, order):
        x = a["input"]
        return _logit_bce(xp, x, a["target"], order, self._pos_weight(xp, x))[:3]


@register
class SigmoidFocal(_LogitBinary):
    """Sigmoid (binary) focal loss, torchvision's ``sigmoid_focal_loss``.

    Value per element, with ``p = sigmoid(x)``, ``ce`` the BCE from logits,
    ``1 - p_t = y (1 - p) + (1 - y) p``::

        loss = alpha_t * (1 - p_t)**gamma * ce,   alpha_t = alpha y + (1 - alpha)(1 - y)

    and ``alpha_t = 1`` when ``alpha < 0`` (torchvision's switch). Lin et
    al. (2017). **The default reduction is "none"**, as in torchvision
    (every other loss here defaults to "mean").

    Gradient: ``alpha_t (1 - p_t)**gamma [(p - y) + gamma ce (1 - 2y) r]``
    with ``r = p (1 - p) / (1 - p_t)``, which is bounded (``p`` for ``y =
    1``, ``1 - p`` for ``y = 0``; taken as 0 where ``1 - p_t`` underflows),
    so the powers ``(1 - p_t)**(gamma - 1)`` and ``**(gamma - 2)`` of the
    chain rule never appear; :meth:`gradient_hessian` gives the diagonal
    Hessian the same way. Domain: finite logits, targets in ``[0, 1]``,
    ``gamma >= 0``, ``alpha <= 1``.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> x = np.array([0.0, 2.0]); y = np.array([1.0, 0.0])
    >>> v = pl.get("sigmoid_focal").value(x, y)
    >>> np.round(v, 6).tolist()
    [0.043322, 1.237559]
    """

    name = "sigmoid_focal"
    params = {"alpha": Param(0.25, high=1.0,
                             doc="weight of positives in [0, 1]; negative: no weighting"),
              "gamma": Param(2.0, low=0.0, doc="focusing exponent"),
              "reduction": Param("none", kind="choice", choices=("mean", "sum", "none"),
                                 doc='"none" (default, as torchvision), "mean" or "sum"')}
    param_cases = ({"reduction": "mean"}, {"alpha": -1.0, "gamma": 0.5, "reduction": "sum"},
                   {"alpha": 0.75, "gamma": 0.0})
    formula = (r"\ell = \alpha_t (1 - p_t)^\gamma \mathrm{BCE}(x, y),\ p = \sigma(x),\ "
               r"1 - p_t = y(1-p) + (1-y)p")
    gradient = (r"\partial \ell/\partial x = \alpha_t (1-p_t)^\gamma \big[(p - y) + "
                r"\gamma\,\mathrm{BCE}\,(1-2y)\,p(1-p)/(1-p_t)\big]")
    reference = ("torchvision.ops.sigmoid_focal_loss (default reduction 'none', as there); "
                 "Lin et al., Focal Loss for Dense Object Detection, ICCV (2017)")

    def _pointwise(self, xp, a, order):
        x, y = a["input"], a["target"]
        ce, g_ce, h_ce, s, s_neg = _logit_bce(xp, x, y, max(order, 1))
        miss = y * s_neg + (1.0 - y) * s  # 1 - p_t, each term accurate when small
        focus = miss**self.gamma
        at = 1.0 if self.alpha < 0 else self.alpha * y + (1.0 - self.alpha) * (1.0 - y)
        loss = at * focus * ce
        if order < 1:
            return loss, None, None
        gamma, sign = self.gamma, 1.0 - 2.0 * y
        # r = p (1 - p) / (1 - p_t); where 1 - p_t underflows to 0 so does p (1 - p).
        r = xp.where(miss > 0, s * s_neg / xp.where(miss > 0, miss, 1.0), 0.0)
        d1 = at * focus * (g_ce + gamma * ce * sign * r)
        if order < 2:
            return loss, d1, None
        d2 = at * focus * (h_ce + 2.0 * gamma * g_ce * sign * r
                           + ce * (gamma * (gamma - 1.0) * (sign * r) ** 2 + gamma * sign * r * (s_neg - s)))
        return loss, d1, d2


@register
class Hinge(PointwiseLoss):
    """Binary hinge loss (SVM), optax's ``hinge_loss``.

    Value per element: ``max(0, 1 - y * x)`` for a score ``x`` and a label
    ``y`` in {-1, +1}. PyTorch has no such loss (its ``HingeEmbeddingLoss``
    is a different one, on distances); Keras's ``Hinge`` is the same but
    also maps 0/1 labels to -1/+1, which this does not (labels must be -1 or
    +1).

    Gradient: ``-y`` where ``y x < 1``, else 0 (also 0 at the kink ``y x =
    1``); diagonal Hessian 0. Domain: finite scores.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> x = np.array([0.3, 2.0, -0.5]); y = np.array([1.0, 1.0, 1.0])
    >>> v, g = pl.get("hinge", reduction="none").value_and_grad(x, y)
    >>> v.tolist(), g.tolist()
    ([0.7, 0.0, 1.5], [-1.0, 0.0, -1.0])
    """

    name = "hinge"
    family = _FAMILY
    args = (Arg("input", ("*",), grad=True, doc="score (decision function value)"), _SIGNS)
    param_cases = ({"reduction": "sum"}, {"reduction": "none"})
    formula = r"\ell = \max(0, 1 - y x),\ y \in \{-1, 1\}"
    gradient = r"\partial \ell/\partial x = -y [y x < 1]"
    reference = ("optax.hinge_loss; keras.losses.Hinge (which also maps 0/1 labels to "
                 "-1/+1; here they must be -1/+1); no PyTorch loss; Cortes & Vapnik, "
                 "Mach. Learn. 20, 273 (1995)")

    def nonsmooth_distance(self, name, arrays):
        return np.abs(1.0 - arrays["input"] * arrays["target"])

    def _pointwise(self, xp, a, order):
        x, y = a["input"], a["target"]
        m = 1.0 - y * x
        d1 = xp.where(m > 0, -y, 0.0) if order >= 1 else None
        d2 = xp.zeros_like(x) if order >= 2 else None
        return xp.maximum(m, 0.0), d1, d2


@register
class Exponential(PointwiseLoss):
    """Exponential loss of AdaBoost.

    Value per element: ``exp(-y * x)`` for a score ``x`` and a label ``y``
    in {-1, +1}; boosting with it is AdaBoost (Friedman, Hastie & Tibshirani
    2000). No PyTorch, optax or Keras counterpart; scikit-learn's
    ``GradientBoostingClassifier(loss="exponential")`` uses it with 0/1
    labels mapped to -1/+1 (its raw score is this ``x``).

    Gradient: ``-y exp(-y x)``; diagonal Hessian ``exp(-y x)``. Domain:
    scores in ``[-80, 80]``, so that the exponential (at most 5.5e34) and
    sums of it stay finite in float32.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> x = np.array([0.0, 1.0]); y = np.array([1.0, -1.0])
    >>> v, g = pl.get("exponential", reduction="none").value_and_grad(x, y)
    >>> np.round(v, 6).tolist(), np.round(g, 6).tolist()
    ([1.0, 2.718282], [-1.0, 2.718282])
    """

    name = "exponential"
    family = _FAMILY
    args = (Arg("input", ("*",), low=-_EXP_LIMIT, high=_EXP_LIMIT, grad=True,
                doc="score (boosted ensemble output)"), _SIGNS)
    param_cases = ({"reduction": "sum"},)
    formula = r"\ell = \exp(-y x),\ y \in \{-1, 1\}"
    gradient = (r"\partial \ell/\partial x = -y \exp(-y x),\ "
                r"\partial^2 \ell/\partial x^2 = \exp(-y x)")
    reference = ("Freund & Schapire, J. Comput. Syst. Sci. 55, 119 (1997); Friedman, Hastie & "
                 "Tibshirani, Ann. Statist. 28, 337 (2000); "
                 "sklearn GradientBoostingClassifier(loss='exponential')")

    def _pointwise(self, xp, a, order):
        x, y = a["input"], a["target"]
        e = xp.exp(-y * x)
        return e, (-y * e if order >= 1 else None), (e if order >= 2 else None)
