"""Divergences between probability distributions: KL in PyTorch's form, KL
and reverse KL on probabilities, and Jensen-Shannon.

Two conventions live here, on purpose:

- ``kl_div`` is PyTorch's ``KLDivLoss``: ``input`` holds log-probabilities
  (the model's ``log_softmax``), ``target`` probabilities, and the loss is
  elementwise with torch's reductions, "batchmean" included.
- ``kl_divergence``, ``reverse_kl`` and ``jensen_shannon`` take two arrays of
  probabilities ``p`` and ``q`` in the mathematical order of KL(P || Q),
  rows on the last axis (shape (*, K)), and give one divergence per row,
  reduced over the leading (batch) axes by ``reduction`` ("mean", "sum", or
  "none": one value per row). ``p`` is the reference (target) distribution
  and ``q`` the model's; the KL losses differentiate with respect to ``q``,
  the symmetric Jensen-Shannon divergence with respect to both.

Rows are neither renormalised nor checked to sum to 1 (a host sync); the
formulas are then those of the given non-negative vectors. The natural log
is used throughout (nats). ``0 log 0 = 0`` wherever a probability that
multiplies a log may be 0; a probability inside a log whose zero would make
the value or the gradient infinite is declared ``> 0``.
"""

from __future__ import annotations

from .._registry import Loss, PointwiseLoss, reduce, register
from .._validate import REDUCTION, Arg, Param

__all__ = ["KLDiv", "KLDivergence", "ReverseKL", "JensenShannon"]


def _xlogy(xp, x, y):
    """``x log y`` with ``0 log y = 0`` (also for ``y = 0``): the 0 log 0 rule."""
    pos = x > 0
    return xp.where(pos, x * xp.log(xp.where(pos, y, 1.0)), 0.0)


def _rel_entr(xp, x, y):
    """``x log(x / y)`` elementwise, 0 where ``x = 0`` (``scipy.special.rel_entr``).

    Two logs rather than the log of the ratio, so that a tiny ``y`` cannot
    overflow ``x / y``.
    """
    return _xlogy(xp, x, x) - _xlogy(xp, x, y)


# ---------------------------------------------------------------------------
# PyTorch's KLDivLoss


_LOGPROB_INPUT = Arg("input", ("N", "*"), high=0.0, grad=True,
                     doc="log-probabilities of the model (e.g. log_softmax output)")
_PROB_TARGET = Arg("target", ("N", "*"), low=0.0, high=1.0, simplex=True,
                   doc="target probabilities, same shape as input")
_LOGPROB_TARGET = Arg("target", ("N", "*"), high=0.0,
                      doc="target log-probabilities (log_target=True), same shape as input")


@register
class KLDiv(PointwiseLoss):
    r"""Kullback-Leibler divergence in PyTorch's form, ``torch.nn.KLDivLoss``.

    Value elementwise: ``target * (log(target) - input)`` with ``input``
    the model's log-probabilities and ``target`` probabilities (``0`` where
    ``target = 0``: the 0 log 0 rule, as torch's ``xlogy``); with
    ``log_target=True`` the target is given as log-probabilities ``t`` and
    the element is ``exp(t) * (t - input)``.

    Reduction, as in torch: "mean" (the default) divides the sum by the
    number of *elements*, which is not the KL divergence but KL / C for
    rows of C classes; "batchmean" divides by ``input.shape[0]`` and is the
    true KL per sample averaged over the batch (what torch's documentation
    recommends; it announces that "mean" will eventually behave so);
    "sum"; "none" (elementwise, input's shape; the gradient is then that
    of the sum).

    Gradient with respect to ``input``: ``-target`` (``-exp(t)`` with
    ``log_target``), times the reduction's factor; the target gets none.
    Linear in ``input``: the diagonal Hessian is 0.

    Domain: ``input <= 0`` (log-probabilities; torch does not check this),
    ``target`` in [0, 1], or ``<= 0`` with ``log_target`` (a zero
    probability is then ``-inf``, which is refused: pass probabilities).
    Same shape (N, ...) for both, no broadcasting. optax's
    ``kl_divergence(log_predictions, targets)`` is this loss summed over
    the last axis (per-row values); Keras's ``KLDivergence`` takes
    probabilities, see ``kl_divergence``.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> t = np.array([[0.5, 0.5, 0.0, 0.0]]); x = np.log(np.full((1, 4), 0.25))
    >>> round(float(pl.get("kl_div", reduction="batchmean").value(x, t)), 6)  # log 2
    0.693147
    >>> round(float(pl.get("kl_div").value(x, t)), 6)                         # / 4 classes
    0.173287
    >>> pl.get("kl_div", reduction="sum").grad(x, t).tolist()
    [[-0.5, -0.5, -0.0, -0.0]]
    """

    name = "kl_div"
    family = "divergence"
    args = (_LOGPROB_INPUT, _PROB_TARGET)
    params = {
        "reduction": Param("mean", kind="choice", choices=("mean", "batchmean", "sum", "none"),
                           doc='"mean" (over elements, torch\'s default), "batchmean" '
                               '(true KL per sample), "sum", or "none"'),
        "log_target": Param(False, kind="bool", doc="target holds log-probabilities"),
    }
    param_cases = (
        {"reduction": "batchmean"},
        {"reduction": "sum", "log_target": True},
        {"reduction": "none"},
        {"reduction": "batchmean", "log_target": True},
    )
    formula = (r"\ell = y (\log y - x);\ \ell = e^{t} (t - x)\ (\text{log\_target}),"
               r"\ 0 \log 0 = 0")
    gradient = (r"\partial \ell/\partial x = -y\ (\text{or}\ -e^{t}),\ "
                r"\partial^2 \ell/\partial x^2 = 0"
                '; "batchmean" divides by N, "mean" by the number of elements')
    reference = ("torch.nn.KLDivLoss; Kullback and Leibler, On information and "
                 "sufficiency, Ann. Math. Statist. 22, 79 (1951)")

    def _setup(self):
        self.args = (_LOGPROB_INPUT, _LOGPROB_TARGET if self.log_target else _PROB_TARGET)

    def _reduce(self, xp, loss):
        if self.reduction == "batchmean":
            return reduce(xp, loss, "mean", count=loss.shape[0])
        return reduce(xp, loss, self.reduction)

    def _pointwise(self, xp, a, order):
        x, t = a["input"], a["target"]
        if self.log_target:
            prob = xp.exp(t)
            loss = prob * (t - x)
        else:
            prob = t
            loss = _xlogy(xp, t, t) - t * x
        d1 = -prob if order >= 1 else None
        d2 = xp.zeros_like(x) if order >= 2 else None
        return loss, d1, d2


# ---------------------------------------------------------------------------
# Divergences of probability rows


def _prob(name, positive, grad, doc, normal=False):
    return Arg(name, ("*", "K"), low=0.0, high=1.0, low_open=positive, simplex=True,
               grad=grad, normal=normal, doc=doc)


_P_TARGET = _prob("p", False, False, "reference (target) distribution P, rows on the last axis")
_P_POSITIVE = _prob("p", True, False, "reference (target) distribution P (> 0), rows on the last axis")
_Q_MODEL = _prob("q", True, True, "model distribution Q (> 0), same shape as p")
# -p/q of a subnormal q overflows: kl_divergence's q starts at the smallest normal number.
_Q_NORMAL = _prob("q", True, True, "model distribution Q (> 0, normal), same shape as p",
                  normal=True)


class _RowDivergence(Loss):
    """A sum over the last axis of an elementwise term, reduced over rows.

    Subclasses implement :meth:`_terms`, returning the elementwise terms and
    (when asked) their derivatives with respect to ``wrt``.
    """

    family = "divergence"
    params = {"reduction": REDUCTION}
    param_cases = ({"reduction": "sum"}, {"reduction": "none"})

    def _terms(self, xp, p, q, need_grad):
        raise NotImplementedError

    def _evaluate(self, xp, a, need_grad):
        terms, grads = self._terms(xp, a["p"], a["q"], need_grad)
        value, factor = reduce(xp, xp.sum(terms, axis=-1), self.reduction)
        if not need_grad:
            return value, None
        return value, tuple(g * factor for g in grads)


@register
class KLDivergence(_RowDivergence):
    r"""Kullback-Leibler divergence KL(P || Q) of probability rows.

    Value per row: ``sum_k p_k log(p_k / q_k)`` (the seed catalogue's
    formula), with ``0 log(0 / q) = 0``; reduced over the leading axes.

    Gradient with respect to ``q`` only: ``-p / q``. ``p`` is the fixed
    target, as in every library's KL loss; its gradient ``log(p / q) + 1``
    is infinite at ``p = 0``, which one-hot targets need. The gradient is the
    unconstrained one (not projected onto the simplex): compose with the
    softmax's Jacobian for logits.

    Domain: ``p`` in [0, 1], ``q`` in (0, 1] (a zero ``q`` under a positive
    ``p`` makes KL infinite), both shaped (*, K); ``q`` at least the
    smallest normal number of its dtype (1.2e-38 in float32, 2.2e-308 in
    float64), since ``p / q`` of a subnormal ``q`` exceeds the dtype's
    range.

    Differences: ``scipy.special.rel_entr(p, q).sum(-1)`` gives the same
    numbers (``scipy.stats.entropy(p, q)`` also normalises the rows).
    ``keras.losses.KLDivergence(y_true, y_pred)`` is the same order and
    formula but clips both to [1e-7, 1]. PyTorch's ``KLDivLoss`` and optax's
    ``kl_divergence`` take the model's *log*-probabilities first: that is
    ``kl_div`` here (``kl_div(log q, p, reduction="batchmean")`` equals this
    loss's "mean" for 2-D inputs).

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> p = np.array([[1.0, 0.0]]); q = np.array([[0.5, 0.5]])
    >>> v, g = pl.get("kl_divergence").value_and_grad(p, q)
    >>> round(float(v), 6), g.tolist()                       # log 2
    (0.693147, [[-2.0, -0.0]])
    """

    name = "kl_divergence"
    args = (_P_TARGET, _Q_NORMAL)
    formula = r"D = \sum_k p_k \log(p_k / q_k),\ 0 \log 0 = 0"
    gradient = r"\partial D/\partial q_k = -p_k / q_k"
    reference = ("Kullback and Leibler, On information and sufficiency, "
                 "Ann. Math. Statist. 22, 79 (1951); counterparts scipy.special.rel_entr, "
                 "keras.losses.KLDivergence (clips to [1e-7, 1])")

    def _terms(self, xp, p, q, need_grad):
        return _rel_entr(xp, p, q), ((-p / q,) if need_grad else None)


@register
class ReverseKL(_RowDivergence):
    r"""Reverse Kullback-Leibler divergence KL(Q || P) of probability rows.

    Value per row: ``sum_k q_k log(q_k / p_k)``, the arguments in the same
    order as ``kl_divergence`` (``reverse_kl(p, q) == kl_divergence(q, p)``):
    ``p`` is the reference, ``q`` the model. Minimising it over ``q`` is
    mode seeking (``q`` avoids where ``p`` is small), against the mass
    covering forward KL.

    Gradient with respect to ``q`` only: ``log(q / p) + 1`` (unconstrained,
    not projected onto the simplex).

    Domain: ``p`` in (0, 1] (a zero ``p`` under a positive ``q`` makes the
    value infinite) and ``q`` in (0, 1] (the gradient's log), shape (*, K).
    No PyTorch, optax or Keras loss of this name; it is
    ``scipy.special.rel_entr(q, p).sum(-1)``.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> p = np.array([[0.5, 0.5]]); q = np.array([[0.5, 0.5]])
    >>> v, g = pl.get("reverse_kl").value_and_grad(p, q)
    >>> float(v), g.tolist()
    (0.0, [[1.0, 1.0]])
    """

    name = "reverse_kl"
    args = (_P_POSITIVE, _Q_MODEL)
    formula = r"D = \sum_k q_k \log(q_k / p_k)"
    gradient = r"\partial D/\partial q_k = \log(q_k / p_k) + 1"
    reference = ("Kullback and Leibler (1951); Minka, Divergence measures and message "
                 "passing, MSR-TR-2005-173 (mode seeking of the reverse KL)")

    def _terms(self, xp, p, q, need_grad):
        terms = _rel_entr(xp, q, p)
        if not need_grad:
            return terms, None
        return terms, (xp.log(q) - xp.log(p) + 1.0,)


@register
class JensenShannon(_RowDivergence):
    r"""Jensen-Shannon divergence of probability rows (Lin 1991).

    Value per row: ``JS = (KL(P || M) + KL(Q || M)) / 2`` with ``M = (P +
    Q) / 2``, natural log: symmetric, bounded by ``log 2``, 0 only for
    ``P = Q``.

    Gradient with respect to both: ``dJS/dp = log(p / m) / 2`` and
    ``dJS/dq = log(q / m) / 2`` (the ``+1`` terms cancel through ``M``);
    unconstrained, not projected onto the simplex.

    Domain: ``p`` and ``q`` in (0, 1], shape (*, K). The value is finite
    with zeros (``0 log 0 = 0``), but the gradient at a zero entry is
    ``-inf``, so zeros are refused.

    ``scipy.spatial.distance.jensenshannon`` returns the square root of
    this (the Jensen-Shannon *distance*) and normalises the rows first;
    this loss squares nothing and normalises nothing. No PyTorch, optax or
    Keras loss of this name.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> p = np.array([[0.5, 0.5]]); q = np.array([[0.9, 0.1]])
    >>> v, (gp, gq) = pl.get("jensen_shannon").value_and_grad(p, q)
    >>> round(float(v), 6)
    0.101749
    >>> bool(np.allclose(pl.get("jensen_shannon").value(q, p), v))   # symmetric
    True
    """

    name = "jensen_shannon"
    args = (_prob("p", True, True, "first distribution P (> 0), rows on the last axis"),
            _prob("q", True, True, "second distribution Q (> 0), same shape as p"))
    formula = (r"JS = \tfrac12 \sum_k \left[p_k \log\frac{p_k}{m_k} + q_k \log\frac{q_k}{m_k}"
               r"\right],\ m = (p + q)/2")
    gradient = (r"\partial JS/\partial p_k = \tfrac12 \log(p_k / m_k),\ "
                r"\partial JS/\partial q_k = \tfrac12 \log(q_k / m_k)")
    reference = ("Lin, Divergence measures based on the Shannon entropy, "
                 "IEEE Trans. Inf. Theory 37, 145 (1991); scipy.spatial.distance.jensenshannon "
                 "is its square root")

    def _terms(self, xp, p, q, need_grad):
        m = 0.5 * (p + q)
        terms = 0.5 * (_rel_entr(xp, p, m) + _rel_entr(xp, q, m))
        if not need_grad:
            return terms, None
        log_m = xp.log(m)
        return terms, (0.5 * (xp.log(p) - log_m), 0.5 * (xp.log(q) - log_m))
