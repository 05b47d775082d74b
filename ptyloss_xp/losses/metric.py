"""Metric learning: losses on embeddings, differentiated with respect to each one.

Two kinds of loss live here.

*Pair and triplet losses* take rows that are already matched: ``input1[n]``
with ``input2[n]`` (and a ``target`` saying whether the pair is similar),
or ``anchor[n]``, ``positive[n]`` and ``negative[n]``. Each row gives one
loss; ``reduction`` is "mean", "sum" or "none", as in PyTorch. The
gradient is returned for every embedding argument, in argument order.

*Batch losses* (``n_pairs``, ``lifted_structure``, ``nt_xent``,
``supcon``) take one batch ``embeddings`` of shape (N, D) and integer class
``labels`` of shape (N,): samples with equal labels form the positive pairs
(a sample is never paired with itself), samples with different labels the
negative pairs. They follow pytorch-metric-learning's classes of the same
names with their default distances and reducers, and every one of them
works on the N x N similarity (or distance) matrix: a matrix product, masks
and row-wise log-sum-exps, O(N^2 D) work and a few N x N temporaries, no
loop over samples. On NumPy, ``nt_xent`` and ``supcon`` hold their positive
pairs as index arrays built from the sorted labels instead of N x N masks
while they are few (N pairs for SimCLR's batch; up to a fifth of the N x N
entries), so that the N x N work is the Gram products and the row-wise
log-sum-exp alone; other namespaces (lazy or traced ones cannot size an
array from the labels) and batches of few labels use the masks, with the
same numbers. Their value is always pytorch-metric-learning's mean (stated per
loss); they have no ``reduction``.

Labels are class ids, integers in ``[0, 2**31 - 1)``; only their equality
matters. A batch loss averages over positive pairs or over anchors that
have one, so a batch in which no two samples share a label is refused
(pytorch-metric-learning returns 0 there); with value checks off
(:func:`ptyloss_xp.check_values`) such a batch gives 0 and a zero gradient.

Cosine similarities divide by norms: the batch losses normalise each row as
``torch.nn.functional.normalize`` does, ``x / max(||x||, 1e-12)``, and the
pair losses use PyTorch's ``cosine_embedding_loss`` form, ``x1.x2 /
sqrt((||x1||^2 + eps)(||x2||^2 + eps))`` with PyTorch's ``eps``, 1e-12 held
in a float32 (9.99999996e-13), so zero embeddings give finite
values and gradients (large ones, as PyTorch's: the direction of a zero
vector is undefined).
"""

from __future__ import annotations

import numpy as np

from .._backend import device_of, is_numpy
from .._registry import Loss, register, reduce
from .._validate import REDUCTION, Arg, Param, require

__all__ = [
    "Contrastive", "TripletMargin", "TripletSquared", "CosineEmbedding", "CosineContrastive",
    "MarginRanking", "NPairs", "LiftedStructure", "NTXent", "SupCon",
]

_FAMILY = "metric"
# torch.nn.functional.normalize's clamp of the norm.
_NORM_EPS = 1e-12
# The term PyTorch's cosine_embedding_loss adds to each squared norm: 1e-12
# held in a C float, 9.99999996e-13 (it decides the gradient at a zero vector).
_COS_EPS = float(np.float32(1e-12))
# Stands for log(0), the log-sum-exp of no terms, where -inf would give
# inf - inf = NaN in later differences; finite in float32 too.
_LOG_ZERO = -1e30
_LABEL_LIMIT = 2**31 - 1

_LABELS = Arg("labels", ("N",), kind="int", low=0, high=_LABEL_LIMIT,
              doc="class ids; equal labels make positive pairs")
_EMBEDDINGS = Arg("embeddings", ("N", "D"), grad=True, doc="one embedding per row")
_SIGNS = Arg("target", ("N",), kind="choice", values=(-1.0, 1.0),
             doc="1: similar pair, -1: dissimilar pair")
_SIMILAR = Arg("target", ("N",), kind="choice", values=(0.0, 1.0),
               doc="1: similar pair, 0: dissimilar pair")
_PAIR = (Arg("input1", ("N", "D"), grad=True, doc="first embedding of each pair"),
         Arg("input2", ("N", "D"), grad=True, doc="second embedding of each pair"))
_TRIPLET = (Arg("anchor", ("N", "D"), grad=True, doc="anchor embeddings"),
            Arg("positive", ("N", "D"), grad=True, doc="embeddings similar to the anchors"),
            Arg("negative", ("N", "D"), grad=True, doc="embeddings dissimilar to the anchors"))

_NORMALIZE = Param(True, kind="bool",
                   doc="L2-normalise each embedding first (pytorch-metric-learning's default); "
                       "False uses the raw embeddings, as the original paper")
_PML = "pytorch_metric_learning.losses"


# --------------------------------------------------------------------------
# Shared pieces


def _row_norm(xp, v):
    return xp.sqrt(xp.sum(v * v, axis=1, keepdims=True))


def _normalize(xp, x):
    """``(x / c, c, ||x||)`` with ``c = max(||x||, 1e-12)`` per row."""
    n = _row_norm(xp, x)
    c = xp.maximum(n, _NORM_EPS)
    return x / c, c, n


def _normalize_back(xp, g, xn, c, n):
    """Gradient with respect to ``x`` of a function of ``xn = x / max(||x||, eps)``
    whose gradient with respect to ``xn`` is ``g``: the tangential part of ``g``
    over ``||x||``, and ``g / eps`` where the clamp is active."""
    tangential = g - xn * xp.sum(xn * g, axis=1, keepdims=True)
    return xp.where(n > _NORM_EPS, tangential, g) / c


def _row_lse(xp, terms):
    """Row-wise log-sum-exp of ``terms`` (N, N), ``-inf`` marking the
    entries left out, with the shifted exponentials ``e`` (0 at those) and
    their row sums ``total`` (N, 1): the softmax is ``e / total``, left to
    the caller to fold into its own row factor (one N x N pass less). A row
    with no terms gets ``_LOG_ZERO``, zero terms and ``total = 1``.

    ``terms`` is the caller's own temporary and is used up: the shift is
    subtracted in place where the namespace writes in place (NumPy, PyTorch;
    JAX and Dask rebind), one fresh N x N buffer less, whose page faults
    cost NumPy as much as the subtraction."""
    top = xp.max(terms, axis=1, keepdims=True)
    top = xp.where(top > -xp.inf, top, 0.0)
    terms -= top
    e = xp.exp(terms)
    total = xp.sum(e, axis=1, keepdims=True)
    some = total > 0
    total = xp.where(some, total, 1.0)
    return xp.where(some, top + xp.log(total), _LOG_ZERO), e, total


def _pair_masks(xp, labels):
    """``(positive, negative)`` N x N masks: same label and not the diagonal;
    different label."""
    same = labels[:, None] == labels[None, :]
    idx = xp.arange(labels.shape[0], device=device_of(labels))
    return same & (idx[:, None] != idx[None, :]), ~same


class _DensePairs:
    """The ordered positive pairs of a batch (same label, ``i != k``) as an
    N x N mask: the form every array API namespace holds, lazy and traced
    ones too, whose arrays cannot take a size from their data.

    Values at the pairs come from :meth:`pick` and :meth:`by_row`; here they
    are N x N with arbitrary values off the pairs until :meth:`keep` sets 0
    there. :meth:`row_sums` and :meth:`minus` take them back to rows and to
    N x N."""

    def __init__(self, xp, labels, dtype):
        self._same = labels[:, None] == labels[None, :]
        self._off = ~xp.eye(labels.shape[0], dtype=xp.bool, device=device_of(labels))
        self._mask = xp.astype(self._same & self._off, dtype)

    def per_row(self, xp):
        """The number of pairs ``(i, k)`` of each row ``i``, (N, 1), in the
        floating dtype given."""
        return xp.sum(self._mask, axis=1, keepdims=True)

    def pick(self, xp, s):
        """``s`` (N, N) at the pairs."""
        return s

    def by_row(self, xp, col):
        """``col[i]`` (``col`` shaped (N, 1)) at each pair ``(i, k)``."""
        return col

    def keep(self, xp, v):
        """``v`` (finite) at the pairs, 0 elsewhere."""
        # A product with the 0/1 mask: a fraction of where's time in PyTorch.
        return v * self._mask

    def row_sums(self, xp, v):
        """Per row ``i``, the sum of ``v`` over the pairs ``(i, k)``, (N, 1)."""
        return xp.sum(v, axis=1, keepdims=True)

    def minus(self, xp, g, v):
        """The N x N ``g`` less ``v`` at the pairs; ``g`` is the caller's own."""
        return g - v

    # The N x N ``s`` with -inf where a row's log-sum-exp leaves a term out.
    # ``s`` is the caller's own and not read afterwards: it may be overwritten.

    def negatives(self, xp, s):
        """Terms of the samples with another label."""
        return xp.where(self._same, -xp.inf, s)

    def others(self, xp, s):
        """Terms of all samples but the row's own."""
        return xp.where(self._off, s, -xp.inf)


class _IndexedPairs(_DensePairs):
    """The same pairs as index arrays ``(rows, cols)``, on NumPy: SimCLR's
    batch (one positive per row) has N of them, so that the functions of
    the pairs cost nothing beside the N x N exponentials, and no N x N mask
    is built (the diagonal and the pairs are written over in place). The
    arrays' length comes from the labels, which NumPy reads for free.

    ``groups`` is :func:`_label_groups`' answer. In sorted order, each
    label's members pair with every other member."""

    def __init__(self, xp, groups, dtype):
        order, first, others = groups
        n = order.shape[0]
        at = np.repeat(np.arange(n), others)
        slot = np.arange(at.shape[0]) - np.repeat(np.cumsum(others) - others, others)
        # The slot-th other member: the members' ranks, skipping at's own.
        rank = slot + (slot >= (at - first[at]))
        self._rows, self._cols = order[at], order[first[at] + rank]
        self._per_row = np.empty((n, 1), dtype=dtype)
        self._per_row[order, 0] = others

    def per_row(self, xp):
        return self._per_row

    def pick(self, xp, s):
        return s[self._rows, self._cols]

    def by_row(self, xp, col):
        return col[self._rows, 0]

    def keep(self, xp, v):
        return v

    def row_sums(self, xp, v):
        sums = np.bincount(self._rows, weights=v, minlength=self._per_row.shape[0])
        return sums.astype(v.dtype, copy=False)[:, None]

    def minus(self, xp, g, v):
        g[self._rows, self._cols] -= v
        return g

    def negatives(self, xp, s):
        s[self._rows, self._cols] = -np.inf
        return self.others(xp, s)

    def others(self, xp, s):
        np.fill_diagonal(s, -np.inf)
        return s


# The largest share of the N x N entries that NumPy takes as index arrays:
# gathering and scattering that many costs more than the masks' passes
# (crossover at N = 1024: about 0.3 of the entries for nt_xent, 0.2 for supcon).
_INDEXED_SHARE = 0.2


def _label_groups(labels):
    """``(order, first, others)``: the stable sort of ``labels`` (NumPy), and
    per sorted position where its label's run starts and how many other
    samples share the label."""
    order = np.argsort(labels, kind="stable")
    ordered = labels[order]
    first = np.searchsorted(ordered, ordered, side="left")
    return order, first, np.searchsorted(ordered, ordered, side="right") - first - 1


def _pairs(xp, labels, dtype):
    """The positive pairs: index arrays on NumPy while they are few, else masks."""
    if is_numpy(xp):
        groups = _label_groups(labels)
        n = labels.shape[0]
        if np.sum(groups[2]) <= _INDEXED_SHARE * n * n:
            return _IndexedPairs(xp, groups, dtype)
    return _DensePairs(xp, labels, dtype)


def _count(xp, mask, like):
    return xp.sum(xp.astype(mask, like.dtype))


def _need_positive_pair(loss, xp, count, labels):
    n = labels.shape[0]
    require(xp, count > 0,
            f"{loss.name}: argument 'labels' must give at least one positive pair (two "
            "samples with the same label): the loss averages over them",
            lambda: f"; got {n} samples with {n} distinct labels")


def _fix_labels(arrays, rng):
    """Drawn labels from a few classes, the first two samples sharing one,
    so that every batch has a positive pair (and, mostly, negatives)."""
    out = dict(arrays)
    y = rng.integers(0, 3, size=out["labels"].shape)
    if y.size >= 2:
        y[1] = y[0]
    out["labels"] = y
    return out


def _pnorm(xp, v, p):
    """Row-wise p-norm of ``v`` (N, D) and its gradient with respect to ``v``
    (0 on rows where the norm is 0). General ``p`` scales by the row's
    largest magnitude so that ``|v|**p`` cannot overflow."""
    if p == 2:
        d = _row_norm(xp, v)
        return d, v / xp.where(d > 0, d, 1.0)
    a = xp.abs(v)
    sign = xp.sign(v)
    if p == 1:
        return xp.sum(a, axis=1, keepdims=True), sign
    top = xp.max(a, axis=1, keepdims=True)
    r = a / xp.where(top > 0, top, 1.0)
    d = top * xp.sum(r**p, axis=1, keepdims=True) ** (1.0 / p)
    return d, sign * (a / xp.where(d > 0, d, 1.0)) ** (p - 1)


class _Rows(Loss):
    """A loss with one value per row of matched embeddings, reduced by
    ``reduction``."""

    family = _FAMILY

    def _rows(self, xp, a, need_grad):
        """``(per_row (N,), grads)``: ``grads`` the gradients of the rows' sum
        with respect to ``wrt``, or ``None``."""
        raise NotImplementedError

    def _evaluate(self, xp, a, need_grad):
        per, grads = self._rows(xp, a, need_grad)
        value, factor = reduce(xp, per, self.reduction)
        return value, (tuple(g * factor for g in grads) if need_grad else None)


def _broadcast_rows(near, shape):
    return np.broadcast_to(near.reshape(-1, 1), shape)


# --------------------------------------------------------------------------
# Pairs and triplets


@register
class Contrastive(_Rows):
    """Contrastive pair loss on Euclidean distances (Hadsell, Chopra & LeCun 2006).

    With ``d = ||input1 - input2||`` and ``y = 1`` for a similar pair, 0 for a
    dissimilar one::

        loss_n = c * (y d**2 + (1 - y) max(0, margin - d)**2),

    ``c = 1``, or ``1/2`` with ``half=True`` (Hadsell et al.'s factors).
    Label convention: 1 = similar. The two seed formulas disagree: one
    (``y D^2 + (1 - y) max(0, m - D)^2``) is this one; the other writes
    ``(1 - Y) D^2 / 2 + Y max(0, m - D)^2 / 2`` and says Y = 1 means
    similar, which only works with Y = 0 similar (Hadsell et al.'s own
    convention); with ``half=True`` and the labels flipped it is this loss.
    PyTorch has no contrastive loss. The distance is the plain norm (no
    ``eps`` as in ``torch.pairwise_distance``).

    Gradient with respect to ``input1`` (``input2``: the negative), ``v =
    input1 - input2``: ``c (2 y v - 2 (1 - y) max(0, margin - d) v / d)``; at
    ``d = 0`` the dissimilar term's direction is undefined and its gradient
    is taken as 0. Domain: finite embeddings (N, D); ``margin >= 0``.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> x1 = np.array([[0.0, 0.0], [0.0, 0.0]]); x2 = np.array([[3.0, 4.0], [0.3, 0.4]])
    >>> y = np.array([1.0, 0.0])
    >>> loss = pl.get("contrastive", margin=1.0, reduction="none")
    >>> loss.value(x1, x2, y).tolist()      # 5**2 and (1 - 0.5)**2
    [25.0, 0.25]
    >>> g1, g2 = loss.grad(x1, x2, y)
    >>> g1.tolist()
    [[-6.0, -8.0], [0.6, 0.8]]
    """

    name = "contrastive"
    args = _PAIR + (_SIMILAR,)
    params = {"margin": Param(1.0, low=0.0, doc="distance beyond which dissimilar pairs cost nothing"),
              "half": Param(False, kind="bool", doc="multiply both terms by 1/2 (Hadsell et al.)"),
              "reduction": REDUCTION}
    param_cases = ({"half": True, "margin": 2.0}, {"reduction": "none"})
    formula = (r"\ell_n = c\,[y_n d_n^2 + (1 - y_n) \max(0, m - d_n)^2],\ "
               r"d_n = \lVert x^{(1)}_n - x^{(2)}_n \rVert_2,\ c \in \{1, \tfrac12\}")
    gradient = (r"\partial \ell_n/\partial x^{(1)}_n = 2c\,[y_n - (1 - y_n) \max(0, m - d_n)/d_n]"
                r"\,(x^{(1)}_n - x^{(2)}_n) = -\partial \ell_n/\partial x^{(2)}_n")
    reference = ("Hadsell, Chopra & LeCun, Dimensionality reduction by learning an invariant "
                 "mapping, CVPR 2006 (1/2 factors; there y = 0 marks similar pairs); no "
                 "PyTorch loss")

    def nonsmooth_distance(self, name, arrays):
        d = np.linalg.norm(arrays["input1"] - arrays["input2"], axis=1)
        near = np.where(arrays["target"] == 1.0, np.inf, np.minimum(d, np.abs(d - self.margin)))
        return _broadcast_rows(near, arrays[name].shape)

    def _rows(self, xp, a, need_grad):
        v = a["input1"] - a["input2"]
        y = a["target"][:, None]
        d = _row_norm(xp, v)
        gap = xp.maximum(self.margin - d, 0.0)
        c = 0.5 if self.half else 1.0
        per = c * xp.squeeze(y * d * d + (1.0 - y) * gap * gap, axis=1)
        if not need_grad:
            return per, None
        g = (2.0 * c) * (y - (1.0 - y) * gap / xp.where(d > 0, d, 1.0)) * v
        g = xp.where(d > 0, g, 0.0)
        return per, (g, -g)


class _Triplet(_Rows):
    """Triplet hinge ``max(0, margin + d(a, p) - d(a, n))``: subclasses give
    the distances and their gradients."""

    args = _TRIPLET

    def _distance(self, xp, x, y):
        """``(d (N, 1), dd/dx (N, D))``; ``dd/dy`` is ``-dd/dx``."""
        raise NotImplementedError

    def _host_distance(self, x, y):
        raise NotImplementedError

    def _host_z(self, arrays):
        """The hinge argument per row, with the swap decision, on NumPy."""
        anc, pos, neg = arrays["anchor"], arrays["positive"], arrays["negative"]
        d_an = self._host_distance(anc, neg)
        d_pn = self._host_distance(pos, neg) if getattr(self, "swap", False) else d_an
        return self.margin + self._host_distance(anc, pos) - np.minimum(d_an, d_pn), d_an, d_pn

    def _rows(self, xp, a, need_grad):
        anc, pos, neg = a["anchor"], a["positive"], a["negative"]
        d_ap, n_ap = self._distance(xp, anc, pos)
        d_an, n_an = self._distance(xp, anc, neg)
        swapped = None
        d_neg = d_an
        if getattr(self, "swap", False):
            d_pn, n_pn = self._distance(xp, pos, neg)
            d_neg = xp.minimum(d_an, d_pn)
            # The share of d(p, n) in the minimum: PyTorch splits ties evenly.
            swapped = (xp.astype(d_pn < d_an, d_an.dtype)
                       + 0.5 * xp.astype(d_pn == d_an, d_an.dtype))
        z = self.margin + d_ap - d_neg
        per = xp.squeeze(xp.maximum(z, 0.0), axis=1)
        if not need_grad:
            return per, None
        # PyTorch's clamp_min passes the gradient at z = 0 too.
        active = xp.astype(z >= 0, z.dtype)
        if swapped is None:
            return per, (active * (n_ap - n_an), -active * n_ap, active * n_an)
        g_an = (1.0 - swapped) * n_an
        g_pn = swapped * n_pn
        return per, (active * (n_ap - g_an), -active * (n_ap + g_pn), active * (g_an + g_pn))


@register
class TripletMargin(_Triplet):
    """Triplet margin loss, PyTorch's ``triplet_margin_loss``.

    Per row::

        loss_n = max(0, margin + d(a, p) - d(a, n)),   d(x, y) = ||x - y + eps||_p,

    with PyTorch's ``eps`` added to every component of the difference before
    the p-norm (``torch.pairwise_distance``). With ``swap=True``
    (Balntas et al. 2016) ``d(a, n)`` is replaced by ``min(d(a, n), d(p,
    n))``; at a tie the gradient is split evenly between the two, as
    PyTorch's ``minimum`` does. The seed's squared-distance FaceNet
    form is :class:`TripletSquared`.

    Gradient: with ``u = v / ||v||_p`` taken componentwise as ``sign(v)
    (|v| / ||v||_p)**(p - 1)`` for ``v = a - p + eps``, and likewise for the
    negative, ``d loss/d a = u_ap - u_an``, ``d loss/d p = -u_ap``, ``d
    loss/d n = u_an`` where ``margin + d(a, p) - d(a, n) >= 0`` (PyTorch's
    convention at 0), else 0. Domain: finite embeddings (N, D); ``margin >
    0`` (PyTorch's rule), ``p >= 1``, ``eps >= 0``.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> a = np.array([[0.0, 0.0]]); p = np.array([[1.0, 0.0]]); n = np.array([[0.0, 1.5]])
    >>> loss = pl.get("triplet_margin", eps=0.0)
    >>> float(loss.value(a, p, n))          # 1 + 1 - 1.5
    0.5
    >>> [g.tolist() for g in loss.grad(a, p, n)]
    [[[-1.0, 1.0]], [[1.0, -0.0]], [[0.0, -1.0]]]
    """

    name = "triplet_margin"
    params = {"margin": Param(1.0, low=0.0, low_open=True, doc="required gap d(a, n) - d(a, p)"),
              "p": Param(2.0, low=1.0, doc="order of the norm"),
              "eps": Param(1e-6, low=0.0, doc="added to each component of the difference"),
              "swap": Param(False, kind="bool", doc="use min(d(a, n), d(p, n)) (distance swap)"),
              "reduction": REDUCTION}
    param_cases = ({"swap": True, "margin": 2.0}, {"p": 1.5, "reduction": "sum"},
                   {"p": 1.0, "eps": 0.0, "reduction": "none"}, {"p": 3.0, "swap": True})
    formula = (r"\ell_n = \max(0,\ m + d(a_n, p_n) - d(a_n, n_n)),\ "
               r"d(x, y) = \lVert x - y + \epsilon \rVert_p")
    gradient = (r"\partial \ell_n/\partial a_n = u(a_n - p_n) - u(a_n - n_n),\ "
                r"u(v) = \mathrm{sign}(v) (|v| / \lVert v + \epsilon \rVert_p)^{p-1}"
                r"\text{ (at } v + \epsilon\text{)},\ \text{where the hinge is} \ge 0")
    reference = ("torch.nn.functional.triplet_margin_loss (eps inside the norm, swap); "
                 "Schroff et al., FaceNet, CVPR 2015; Balntas et al., BMVC 2016 (swap)")

    def _distance(self, xp, x, y):
        return _pnorm(xp, x - y + self.eps, self.p)

    def _host_distance(self, x, y):
        return np.linalg.norm(x - y + self.eps, ord=self.p, axis=1)

    def nonsmooth_distance(self, name, arrays):
        # One component moves each p-norm by at most its step, the hinge
        # argument by at most twice that.
        z, d_an, d_pn = self._host_z(arrays)
        near = np.abs(z) / 2
        if self.swap:
            near = np.minimum(near, np.abs(d_an - d_pn) / 2)
        pairs = [("anchor", "positive"), ("anchor", "negative"), ("positive", "negative")]
        for x, y in pairs:
            v = arrays[x] - arrays[y] + self.eps
            near = np.minimum(near, np.linalg.norm(v, ord=self.p, axis=1))
            if self.p < 2:  # |v_i|**(p - 1) bends (p > 1) or jumps (p = 1) at 0
                near = np.minimum(near, np.min(np.abs(v), axis=1))
        return _broadcast_rows(near, arrays[name].shape)


@register
class TripletSquared(_Triplet):
    """Triplet loss on squared Euclidean distances, the FaceNet form of the seeds.

    Per row::

        loss_n = max(0, ||a - p||**2 - ||a - n||**2 + margin),

    as in Schroff et al. (2015), whose margin (alpha) of 0.2 is the default;
    no ``eps``. :class:`TripletMargin` is PyTorch's form (plain, not
    squared, distances with ``eps``).

    Gradient where the hinge is ``>= 0`` (else 0): ``d loss/d a = 2 (n -
    p)``, ``d loss/d p = -2 (a - p)``, ``d loss/d n = 2 (a - n)``. Domain:
    finite embeddings (N, D); ``margin > 0``.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> a = np.array([[0.0, 0.0]]); p = np.array([[0.5, 0.0]]); n = np.array([[0.0, 0.5]])
    >>> loss = pl.get("triplet_squared")
    >>> round(float(loss.value(a, p, n)), 12)   # 0.25 - 0.25 + 0.2
    0.2
    >>> [g.tolist() for g in loss.grad(a, p, n)]
    [[[-1.0, 1.0]], [[1.0, -0.0]], [[0.0, -1.0]]]
    """

    name = "triplet_squared"
    params = {"margin": Param(0.2, low=0.0, low_open=True,
                              doc="required gap ||a - n||^2 - ||a - p||^2"),
              "reduction": REDUCTION}
    param_cases = ({"margin": 1.0, "reduction": "sum"},)
    formula = (r"\ell_n = \max(0,\ \lVert a_n - p_n \rVert_2^2 - "
               r"\lVert a_n - n_n \rVert_2^2 + \alpha)")
    gradient = (r"\partial \ell_n/\partial (a_n, p_n, n_n) = "
                r"(2 (n_n - p_n),\ -2 (a_n - p_n),\ 2 (a_n - n_n))\text{ where the hinge is} \ge 0")
    reference = ("Schroff, Kalenichenko & Philbin, FaceNet, CVPR 2015, eq. (1); "
                 "no PyTorch loss (triplet_margin_loss uses plain distances)")

    def _distance(self, xp, x, y):
        v = x - y
        return xp.sum(v * v, axis=1, keepdims=True), 2.0 * v

    def _host_distance(self, x, y):
        return np.sum((x - y) ** 2, axis=1)

    def nonsmooth_distance(self, name, arrays):
        # A step h in one component changes the hinge argument by at most
        # 2 h (|a_i - p_i| + |a_i - n_i|) + 2 h**2.
        z, _, _ = self._host_z(arrays)
        spread = np.max(np.abs(arrays["anchor"] - arrays["positive"]), axis=1) + np.max(
            np.abs(arrays["anchor"] - arrays["negative"]), axis=1)
        return _broadcast_rows(np.abs(z) / (4.0 * (1.0 + spread)), arrays[name].shape)


class _Cosine(_Rows):
    """A loss of the cosine similarity of each pair, in PyTorch's
    ``cosine_embedding_loss`` form ``x1.x2 / sqrt((|x1|^2 + eps)(|x2|^2 + eps))``."""

    args = _PAIR

    def _of_cosine(self, xp, c, y):
        """Per-row loss and its derivative with respect to the cosine."""
        raise NotImplementedError

    def _host_cosine(self, arrays):
        x1, x2 = arrays["input1"], arrays["input2"]
        n1 = np.sum(x1 * x1, axis=1) + _COS_EPS
        n2 = np.sum(x2 * x2, axis=1) + _COS_EPS
        return np.sum(x1 * x2, axis=1) / np.sqrt(n1 * n2), n1, n2

    def nonsmooth_distance(self, name, arrays):
        """Component steps that keep a dissimilar pair's cosine short of
        ``margin``, where its hinge (or the squared hinge's curvature) jumps;
        ``inf`` on similar rows (target 1), which are smooth. The cosine
        moves by at most about 2 h / ||x|| for a step h of x."""
        c, n1, n2 = self._host_cosine(arrays)
        n = n1 if name == "input1" else n2
        near = _broadcast_rows(np.abs(c - self.margin) * np.sqrt(n) / 4.0, arrays[name].shape)
        return np.where(arrays["target"][:, None] == 1.0, np.inf, near)

    def _rows(self, xp, a, need_grad):
        x1, x2 = a["input1"], a["input2"]
        y = a["target"][:, None]
        n1 = xp.sum(x1 * x1, axis=1, keepdims=True) + _COS_EPS
        n2 = xp.sum(x2 * x2, axis=1, keepdims=True) + _COS_EPS
        den = xp.sqrt(n1 * n2)
        c = xp.sum(x1 * x2, axis=1, keepdims=True) / den
        per, slope = self._of_cosine(xp, c, y)
        per = xp.squeeze(per, axis=1)
        if not need_grad:
            return per, None
        return per, (slope * (x2 / den - c * x1 / n1), slope * (x1 / den - c * x2 / n2))


@register
class CosineEmbedding(_Cosine):
    """Cosine embedding loss, PyTorch's ``cosine_embedding_loss``.

    Per row, with ``cos`` the cosine similarity of ``input1[n]`` and
    ``input2[n]`` (PyTorch's form, ``eps`` = 1e-12 in float32 added to each
    squared norm)::

        loss_n = 1 - cos                   for y = 1,
        loss_n = max(0, cos - margin)      for y = -1.

    The margin plays no part for similar pairs, and the dissimilar hinge is
    not squared (the seeds' cosine contrastive loss squares it:
    :class:`CosineContrastive`).

    Gradient: ``s (x2 / den - cos x1 / (|x1|^2 + eps))`` with respect to
    ``x1`` (symmetric for ``x2``), ``den = sqrt((|x1|^2 + eps)(|x2|^2 +
    eps))``, ``s = -1`` for y = 1 and ``s = [cos - margin >= 0]`` for y = -1
    (PyTorch's convention at the kink). Domain: finite embeddings (N, D),
    targets -1 or 1 (PyTorch also takes 0, which contributes nothing);
    ``margin`` in [-1, 1].

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> x1 = np.array([[1.0, 0.0], [1.0, 0.0]]); x2 = np.array([[1.0, 1.0], [1.0, 1.0]])
    >>> loss = pl.get("cosine_embedding", reduction="none")
    >>> np.round(loss.value(x1, x2, np.array([1.0, -1.0])), 6).tolist()
    [0.292893, 0.707107]
    """

    name = "cosine_embedding"
    args = _PAIR + (_SIGNS,)
    params = {"margin": Param(0.0, low=-1.0, high=1.0,
                              doc="cosine below which dissimilar pairs cost nothing"),
              "reduction": REDUCTION}
    param_cases = ({"margin": 0.3, "reduction": "sum"}, {"margin": -0.5, "reduction": "none"})
    formula = (r"\ell_n = 1 - \cos_n\ (y_n = 1),\ \max(0, \cos_n - m)\ (y_n = -1),\ "
               r"\cos_n = \frac{x^{(1)}_n \cdot x^{(2)}_n}"
               r"{\sqrt{(\lVert x^{(1)}_n \rVert^2 + \epsilon)(\lVert x^{(2)}_n \rVert^2 + \epsilon)}}")
    gradient = (r"\partial \ell_n/\partial x^{(1)}_n = s_n \big(x^{(2)}_n / \mathrm{den}_n - "
                r"\cos_n x^{(1)}_n / (\lVert x^{(1)}_n \rVert^2 + \epsilon)\big),\ "
                r"s_n = -1\ (y_n = 1),\ [\cos_n \ge m]\ (y_n = -1)")
    reference = ("torch.nn.functional.cosine_embedding_loss (eps = float32(1e-12) in each "
                 "squared norm)")

    def _of_cosine(self, xp, c, y):
        similar = y == 1.0
        per = xp.where(similar, 1.0 - c, xp.maximum(c - self.margin, 0.0))
        return per, xp.where(similar, -1.0, xp.astype(c - self.margin >= 0, c.dtype))


@register
class CosineContrastive(_Cosine):
    """Cosine contrastive loss of the seeds: a squared hinge on the cosine of dissimilar pairs.

    Per row, ``y = 1`` for a similar pair, 0 for a dissimilar one::

        loss_n = y (1 - cos) + (1 - y) max(0, cos - margin)**2,

    ``cos`` as in :class:`CosineEmbedding`. The seed doubted the square; it
    is kept, because it is what tells this loss from PyTorch's
    ``cosine_embedding_loss`` (unsquared hinge, labels -1/1). The default
    margin 0.5 matches sentence-transformers' ``ContrastiveLoss`` with its
    cosine distance ``1 - cos`` and margin 0.5 on the dissimilar side (that
    loss also squares ``1 - cos`` for similar pairs and halves both terms).

    Gradient: ``s (x2 / den - cos x1 / (|x1|^2 + eps))`` with respect to
    ``x1`` (symmetric for ``x2``), ``s = -y + 2 (1 - y) max(0, cos -
    margin)``. Domain: finite embeddings (N, D), targets 0 or 1; ``margin``
    in [-1, 1].

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> x1 = np.array([[1.0, 0.0], [1.0, 0.0]]); x2 = np.array([[1.0, 1.0], [1.0, 1.0]])
    >>> loss = pl.get("cosine_contrastive", reduction="none")
    >>> np.round(loss.value(x1, x2, np.array([1.0, 0.0])), 6).tolist()
    [0.292893, 0.042893]
    """

    name = "cosine_contrastive"
    args = _PAIR + (_SIMILAR,)
    params = {"margin": Param(0.5, low=-1.0, high=1.0,
                              doc="cosine below which dissimilar pairs cost nothing"),
              "reduction": REDUCTION}
    param_cases = ({"margin": 0.0, "reduction": "sum"},)
    formula = r"\ell_n = y_n (1 - \cos_n) + (1 - y_n) \max(0, \cos_n - m)^2"
    gradient = (r"\partial \ell_n/\partial x^{(1)}_n = s_n \big(x^{(2)}_n / \mathrm{den}_n - "
                r"\cos_n x^{(1)}_n / (\lVert x^{(1)}_n \rVert^2 + \epsilon)\big),\ "
                r"s_n = -y_n + 2 (1 - y_n) \max(0, \cos_n - m)")
    reference = ("seed 'Cosine Contrastive Loss'; cf. sentence_transformers.losses."
                 "ContrastiveLoss; no PyTorch loss")

    def _of_cosine(self, xp, c, y):
        gap = xp.maximum(c - self.margin, 0.0)
        return y * (1.0 - c) + (1.0 - y) * gap * gap, -y + 2.0 * (1.0 - y) * gap


@register
class MarginRanking(_Rows):
    """Margin ranking loss, PyTorch's ``margin_ranking_loss``.

    Per element, for scores ``x1``, ``x2`` and ``y = 1`` when ``x1`` should
    rank higher (``-1``: ``x2`` higher)::

        loss = max(0, -y (x1 - x2) + margin).

    Gradient: ``-y`` with respect to ``x1`` and ``y`` with respect to
    ``x2`` where ``-y (x1 - x2) + margin >= 0`` (PyTorch's convention at
    the kink), else 0. Domain: finite scores of any one shape; targets -1 or
    1; ``margin`` any real.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> x1 = np.array([0.8, 0.1]); x2 = np.array([0.5, 0.4]); y = np.array([1.0, 1.0])
    >>> loss = pl.get("margin_ranking", margin=0.5, reduction="none")
    >>> np.round(loss.value(x1, x2, y), 6).tolist()
    [0.2, 0.8]
    """

    name = "margin_ranking"
    args = (Arg("input1", ("*",), grad=True, doc="scores that should rank higher where y = 1"),
            Arg("input2", ("*",), grad=True, doc="scores that should rank higher where y = -1"),
            Arg("target", ("*",), kind="choice", values=(-1.0, 1.0),
                doc="1: input1 ranks higher, -1: input2 ranks higher"))
    params = {"margin": Param(0.0, doc="required gap between the two scores"),
              "reduction": REDUCTION}
    param_cases = ({"margin": 0.5, "reduction": "sum"}, {"margin": -0.2, "reduction": "none"})
    formula = r"\ell = \max(0,\ -y (x_1 - x_2) + m)"
    gradient = r"\partial \ell/\partial x_1 = -y [\ell\text{'s argument} \ge 0] = -\partial \ell/\partial x_2"
    reference = "torch.nn.functional.margin_ranking_loss"

    def nonsmooth_distance(self, name, arrays):
        return np.abs(self.margin - arrays["target"] * (arrays["input1"] - arrays["input2"]))

    def _rows(self, xp, a, need_grad):
        y = a["target"]
        z = self.margin - y * (a["input1"] - a["input2"])
        per = xp.maximum(z, 0.0)
        if not need_grad:
            return per, None
        g = xp.where(z >= 0, y, 0.0)
        return per, (-g, g)


# --------------------------------------------------------------------------
# Losses over the whole batch


class _Batch(Loss):
    """A loss over all pairs of one batch of labelled embeddings."""

    family = _FAMILY
    args = (_EMBEDDINGS, _LABELS)
    dims_min = {"N": 2}

    def fix_sample(self, arrays, rng):
        return _fix_labels(arrays, rng)

    def _embed(self, xp, x):
        """The embeddings the similarities are taken of, and the map of
        their gradient back to ``x``."""
        if not getattr(self, "normalize", True):
            return x, lambda g: g
        xn, c, n = _normalize(xp, x)
        return xn, lambda g: _normalize_back(xp, g, xn, c, n)

    def _scaled_gram(self, xp, x, temperature):
        """``S = e e^T / temperature`` of the embeddings ``e`` (:meth:`_embed`),
        and the map of a gradient with respect to ``S`` back to ``x``."""
        xn, back = self._embed(xp, x)
        scaled = xn / temperature
        return scaled @ xn.T, lambda g: back(_through_gram(xp, g, scaled))

    def _evaluate(self, xp, a, need_grad):
        return self._batch(xp, a["embeddings"], a["labels"], need_grad)


def _through_gram(xp, g, scaled):
    """Gradient with respect to ``xn`` of a function of ``S = c xn xn^T``
    whose gradient with respect to ``S`` is ``g``, given ``scaled = c xn``.

    Two products rather than ``(g + g.T) @ scaled``: BLAS reads a transposed
    operand at full speed, an elementwise add with one does not (on NumPy
    the add cost three times a product)."""
    return g @ scaled + g.T @ scaled


def _temperature(default):
    # 1/temperature scales the similarities and every gradient term, and an
    # embedding whose norm is under the 1e-12 clamp multiplies its gradient
    # by 1e12: from 1e-20 on (1e32 against float32's 3.4e38) both stay finite.
    return Param(default, low=1e-20,
                 doc="divides the cosine similarities (>= 1e-20, so that float32 holds "
                     "them and their gradient, also for embeddings under the norm clamp)")


@register
class NTXent(_Batch):
    """NT-Xent, the normalised temperature-scaled cross entropy of SimCLR,
    as pytorch-metric-learning's ``NTXentLoss``.

    With ``s_ik = cos(x_i, x_k) / temperature`` (rows normalised), ``P``
    the ordered positive pairs (same label, ``i != k``) and ``Neg(i)`` the
    samples with a label other than ``i``'s::

        loss = mean over (i, p) in P of
               -log( exp(s_ip) / (exp(s_ip) + sum_{k in Neg(i)} exp(s_ik)) ).

    SimCLR (Chen et al. 2020) is the case of two views per image: stack the
    views as ``(2B, D)`` with labels ``[0..B-1, 0..B-1]``; then the
    denominator is the sum over all ``k != i`` and the mean is over the 2B
    anchors, as in the paper. The seed's formula sums over all ``2N``
    samples, ``k = i`` included; this one excludes ``k = i`` (as SimCLR).
    With more than two samples per label every positive gets its own term
    and the *other* positives stay out of its denominator
    (pytorch-metric-learning's convention; SupCon puts them in). A sample
    whose label no other sample has is no anchor but still a negative of the
    others. The default temperature 0.07 is pytorch-metric-learning's
    (SimCLR used 0.1 to 0.5).

    Gradient: with ``z_ip = lse_{k in Neg(i)} s_ik - s_ip`` each term is
    ``softplus(z_ip)``; ``dL/ds_ip = -sigmoid(z_ip) / |P|`` and ``dL/ds_ik =
    softmax_{Neg(i)}(s_i)_k sum_p sigmoid(z_ip) / |P|`` for negatives, then
    through ``S = X_n X_n^T / temperature`` and the row normalisation.
    Domain: finite embeddings (N >= 2, D); at least one positive pair.
    Differences from pytorch-metric-learning: a batch without a positive
    pair is an error (PML: 0); PML adds the smallest normal number inside
    its log (a change below 1e-300 relative).

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> views = np.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.2, 1.0]])
    >>> labels = np.array([0, 1, 0, 1])
    >>> v, g = pl.get("nt_xent", temperature=0.5).value_and_grad(views, labels)
    >>> round(float(v), 6), g.shape
    (0.325526, (4, 2))
    """

    name = "nt_xent"
    params = {"temperature": _temperature(0.07)}
    param_cases = ({"temperature": 0.5},)
    formula = (r"L = \frac{1}{|P|} \sum_{(i,p) \in P} -\log \frac{e^{s_{ip}}}"
               r"{e^{s_{ip}} + \sum_{k \in \mathrm{Neg}(i)} e^{s_{ik}}},\ "
               r"s_{ik} = \cos(x_i, x_k)/\tau")
    gradient = (r"\partial L/\partial s_{ip} = -\sigma(z_{ip})/|P|,\ \partial L/\partial s_{ik} = "
                r"\mathrm{softmax}_{\mathrm{Neg}(i)}(s_i)_k \sum_p \sigma(z_{ip})/|P|,\ "
                r"z_{ip} = \mathrm{lse}_{k \in \mathrm{Neg}(i)} s_{ik} - s_{ip}")
    reference = (f"{_PML}.NTXentLoss (defaults: CosineSimilarity, MeanReducer over positive "
                 "pairs); Chen et al., SimCLR, ICML 2020; Sohn, NeurIPS 2016")

    def _batch(self, xp, x, labels, need_grad):
        s, to_x = self._scaled_gram(xp, x, self.temperature)
        pairs = _pairs(xp, labels, x.dtype)
        count = xp.sum(pairs.per_row(xp))
        _need_positive_pair(self, xp, count, labels)
        count = xp.maximum(count, 1.0)
        positive = pairs.pick(xp, s)
        neg_lse, e_neg, total = _row_lse(xp, pairs.negatives(xp, s))
        # softplus(z) = max(z, 0) + log1p(e) and sigmoid(z) share e =
        # exp(-|z|). In the N x N form z is 0 off the pairs and e is set to
        # 0 there after the exponential (PyTorch's exp is slow on -inf);
        # then sigmoid's where(z > 0, 1, e) / (1 + e) is 0 there too.
        z = pairs.keep(xp, pairs.by_row(xp, neg_lse) - positive)
        e = pairs.keep(xp, xp.exp(-xp.abs(z)))
        value = (xp.sum(xp.maximum(z, 0.0)) + xp.sum(xp.log1p(e))) / count
        if not need_grad:
            return value, None
        u = xp.where(z > 0, 1.0, e) / ((1.0 + e) * count)
        e_neg *= pairs.row_sums(xp, u) / total  # in place: no new N x N buffer
        g = pairs.minus(xp, e_neg, u)
        return value, (to_x(g),)


@register
class SupCon(_Batch):
    """Supervised contrastive loss L_out (Khosla et al. 2020), as
    pytorch-metric-learning's ``SupConLoss``.

    With ``s_ik = cos(x_i, x_k) / temperature``, ``P(i)`` the other samples
    with ``i``'s label and ``A(i)`` all samples but ``i``::

        L_i  = -1/|P(i)| sum_{p in P(i)} ( s_ip - log sum_{a in A(i)} exp(s_ia) ),
        loss = mean of L_i over the anchors with |P(i)| > 0.

    This is Khosla et al.'s L_out (the 1/|P(i)| outside the log), averaged
    over anchors instead of summed. The authors' code also multiplies by
    ``temperature / base_temperature`` (0.07); pytorch-metric-learning and
    this loss do not. Default temperature 0.1 (pytorch-metric-learning's).

    Gradient: ``dL/ds_ik = (softmax_{A(i)}(s_i)_k - [k in P(i)] / |P(i)|) /
    M`` on anchor rows, ``M`` the number of anchors, then through ``S =
    X_n X_n^T / temperature`` and the row normalisation. Domain: finite
    embeddings (N >= 2, D); at least one positive pair. Differences from
    pytorch-metric-learning: its ``AvgNonZeroReducer`` also leaves out
    anchors whose loss is exactly 0 (only where a loss underflows to 0); a
    batch of one class gives PML 0 (it requires a negative pair) and gives
    this loss Khosla et al.'s value; a batch without a positive pair is an
    error (PML: 0).

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.8], [0.5, 0.5]])
    >>> labels = np.array([0, 0, 1, 1, 2])
    >>> v, g = pl.get("supcon", temperature=0.5).value_and_grad(x, labels)
    >>> round(float(v), 6)   # pytorch-metric-learning: 0.6737106...
    0.673711
    """

    name = "supcon"
    params = {"temperature": _temperature(0.1)}
    param_cases = ({"temperature": 0.5},)
    formula = (r"L = \frac{1}{M} \sum_{i: |P(i)| > 0} \frac{-1}{|P(i)|} \sum_{p \in P(i)} "
               r"\log \frac{e^{s_{ip}}}{\sum_{a \ne i} e^{s_{ia}}},\ s_{ik} = \cos(x_i, x_k)/\tau")
    gradient = (r"\partial L/\partial s_{ik} = \big(\mathrm{softmax}_{a \ne i}(s_i)_k - "
                r"[k \in P(i)]/|P(i)|\big)/M")
    reference = (f"{_PML}.SupConLoss (defaults: CosineSimilarity, AvgNonZeroReducer); "
                 "Khosla et al., Supervised contrastive learning, NeurIPS 2020, eq. (2)")

    def _batch(self, xp, x, labels, need_grad):
        s, to_x = self._scaled_gram(xp, x, self.temperature)
        pairs = _pairs(xp, labels, x.dtype)
        per_anchor = pairs.per_row(xp)
        anchors = per_anchor > 0
        count = _count(xp, anchors, x)
        _need_positive_pair(self, xp, count, labels)
        count = xp.maximum(count, 1.0)
        # w_i = 1 / (|P(i)| M) on each positive pair (i, p); an anchor's sum to 1 / M.
        w = 1.0 / (xp.maximum(per_anchor, 1.0) * count)
        positive = xp.sum(w * pairs.row_sums(xp, pairs.keep(xp, pairs.pick(xp, s))))
        lse, e, total = _row_lse(xp, pairs.others(xp, s))
        value = xp.sum(xp.where(anchors, lse, 0.0)) / count - positive
        if not need_grad:
            return value, None
        e *= xp.astype(anchors, x.dtype) / (total * count)  # in place, as in nt_xent
        g = pairs.minus(xp, e, pairs.keep(xp, pairs.by_row(xp, w)))
        return value, (to_x(g),)


@register
class NPairs(_Batch):
    """Multi-class N-pair loss (Sohn 2016), as pytorch-metric-learning's ``NPairsLoss``.

    From each label with at least two samples, the first sample (lowest
    index) is an anchor ``a_c`` and the second its positive ``p_c``; with
    ``K`` such labels and ``s(x, y)`` the inner product (of the normalised
    rows by default)::

        loss = 1/K sum_c -log( exp(s(a_c, p_c)) / sum_{c'} exp(s(a_c, p_c')) )
             = 1/K sum_c log(1 + sum_{c' != c} exp(s(a_c, p_c') - s(a_c, p_c))),

    Sohn's form: the other labels' positives are the negatives. Further
    samples of a label are not used (as in pytorch-metric-learning).
    ``normalize=True`` is pytorch-metric-learning's default (its
    ``DotProductSimilarity`` normalises); Sohn used raw inner products with
    an L2 penalty on the embeddings, which ``normalize=False`` gives
    without the penalty.

    Gradient: ``dL/dS_{a_c p_c'} = (softmax_c'(S_{a_c p}) - [c' = c]) / K``,
    then through ``S = X X^T`` and, by default, the normalisation. Domain:
    finite embeddings (N >= 2, D); at least one label shared by two
    samples. Difference from pytorch-metric-learning: a batch without such
    a label is an error (PML: 0).

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> x = np.array([[1.0, 0.0], [0.0, 1.0], [0.8, 0.2], [0.1, 0.9]])
    >>> labels = np.array([0, 1, 0, 1])
    >>> round(float(pl.get("n_pairs").value(x, labels)), 6)
    0.369703
    """

    name = "n_pairs"
    params = {"normalize": _NORMALIZE}
    param_cases = ({"normalize": False},)
    formula = (r"L = \frac{1}{K} \sum_c \Big(\log \sum_{c'} e^{s(a_c, p_{c'})} - "
               r"s(a_c, p_c)\Big)")
    gradient = (r"\partial L/\partial s(a_c, p_{c'}) = "
                r"\big(\mathrm{softmax}_{c'} s(a_c, p_{\cdot}) - [c' = c]\big)/K")
    reference = (f"{_PML}.NPairsLoss (DotProductSimilarity, normalised by default; "
                 "MeanReducer); Sohn, Improved deep metric learning with multi-class N-pair "
                 "loss objective, NeurIPS 2016")

    def _batch(self, xp, x, labels, need_grad):
        xn, back = self._embed(xp, x)
        s = xn @ xn.T
        same = labels[:, None] == labels[None, :]
        idx = xp.arange(labels.shape[0], device=device_of(labels))
        earlier = xp.sum(xp.astype(same & (idx[None, :] < idx[:, None]), x.dtype), axis=1)
        size = xp.sum(xp.astype(same, x.dtype), axis=1)
        anchor = ((earlier == 0) & (size >= 2))[:, None]
        second = (earlier == 1)[None, :]
        lse, e, total = _row_lse(xp, xp.where(second, s, -xp.inf))
        own = anchor & second & same
        count = _count(xp, anchor, x)
        _need_positive_pair(self, xp, count, labels)
        count = xp.maximum(count, 1.0)
        value = (xp.sum(xp.where(anchor, lse, 0.0)) - xp.sum(xp.where(own, s, 0.0))) / count
        if not need_grad:
            return value, None
        g = (e * (xp.astype(anchor, x.dtype) / (total * count))
             - xp.astype(own, x.dtype) / count)
        return value, (back(_through_gram(xp, g, xn)),)


@register
class LiftedStructure(_Batch):
    """Lifted structured loss, the smooth form of Song et al. (2016), as
    pytorch-metric-learning's ``LiftedStructureLoss``.

    With ``D_ij`` the Euclidean distances between the (by default
    normalised) embeddings, for every ordered positive pair ``(i, j)``::

        J_ij = log( sum_{k in Neg(i)} exp(m_neg - D_ik) + sum_{l in Neg(j)} exp(m_neg - D_jl) )
               + D_ij - m_pos,
        loss = mean over ordered positive pairs of max(0, J_ij)**2 / 2,

    which is Song et al.'s ``1/(2|P|) sum max(0, J)^2`` over unordered
    pairs (``J`` is symmetric). Their paper has ``m_pos = 0`` and raw
    embeddings (``normalize=False``); ``normalize=True`` is
    pytorch-metric-learning's default (``LpDistance`` normalises).
    pytorch-metric-learning's ``GeneralizedLiftedStructureLoss`` is another
    loss (Hermans et al. 2017: one log-sum-exp over each anchor's positives
    and one over its negatives, per anchor) and is not this one. A batch of
    one label has no negatives: every ``J`` is ``-inf`` and the loss 0
    (pytorch-metric-learning also returns 0).

    Gradient: with ``w_ij = max(0, J_ij) / |P|``, ``dL/dD_ij = w_ij`` on
    positive pairs and ``dL/dD_ik = -q_ik (sum_j w_ij sigma_ij + sum_j
    w_ji sigma_ji)`` on negative ones, ``q_i`` the softmax of ``m_neg - D_i.``
    over ``Neg(i)`` and ``sigma_ij = r_i / (r_i + r_j)`` the share of ``i``'s
    sum in ``J_ij``'s log; then ``dL/dx_i = sum_j (G_ij + G_ji) (x_i - x_j) /
    D_ij``. Domain: finite embeddings (N >= 2, D); at least one positive
    pair. Difference from pytorch-metric-learning: a batch without a
    positive pair is an error (PML: 0); distances come from ``|x_i|^2 +
    |x_j|^2 - 2 x_i.x_j`` (as ``torch.cdist`` for more than 25 rows), so
    distances far below the embeddings' norms lose relative precision.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> x = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]])
    >>> labels = np.array([0, 0, 1, 1])
    >>> round(float(pl.get("lifted_structure").value(x, labels)), 6)
    1.432825
    """

    name = "lifted_structure"
    params = {"neg_margin": Param(1.0, doc="margin of the negative pairs (alpha in Song et al.)"),
              "pos_margin": Param(0.0, doc="subtracted from the positive pairs' distances"),
              "normalize": _NORMALIZE}
    param_cases = ({"normalize": False, "neg_margin": 2.0}, {"pos_margin": 0.3})
    formula = (r"L = \frac{1}{|P|} \sum_{(i,j) \in P} \tfrac12 \max(0, J_{ij})^2,\ "
               r"J_{ij} = \log\big(\sum_{k \in \mathrm{Neg}(i)} e^{m - D_{ik}} + "
               r"\sum_{l \in \mathrm{Neg}(j)} e^{m - D_{jl}}\big) + D_{ij} - m_+")
    gradient = (r"\partial L/\partial D_{ij} = w_{ij}\ ((i,j) \in P),\ "
                r"-q_{ik} \textstyle\sum_j (w_{ij} \sigma_{ij} + w_{ji} \sigma_{ji})\ "
                r"(k \in \mathrm{Neg}(i)),\ w = \max(0, J)/|P|")
    reference = (f"{_PML}.LiftedStructureLoss (LpDistance, normalised by default; "
                 "MeanReducer over positive pairs); Song, Xiang, Jegelka & Savarese, Deep "
                 "metric learning via lifted structured feature embedding, CVPR 2016, eq. (4)")

    def nonsmooth_distance(self, name, arrays):
        # max(0, J)**2 bends at J = 0 and D at 0; a step h of one component
        # moves every distance by at most h / |x| (normalised) or h, and J
        # by twice that.
        x = arrays["embeddings"]
        scale = 1.0
        if self.normalize:
            scale = np.min(np.linalg.norm(x, axis=1))
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), _NORM_EPS)
        d = np.linalg.norm(x[:, None, :] - x[None, :, :], axis=2)
        y = arrays["labels"]
        same = y[:, None] == y[None, :]
        off = ~np.eye(len(y), dtype=bool)
        with np.errstate(divide="ignore"):
            r = np.log(np.sum(np.where(same, 0.0, np.exp(self.neg_margin - d)), axis=1))
        j = np.logaddexp(r[:, None], r[None, :]) + d - self.pos_margin
        near = scale * min(np.min(np.abs(j[same & off])) / 2, np.min(d[off]))
        return np.full(arrays[name].shape, near / 2)

    def _batch(self, xp, x, labels, need_grad):
        xn, back = self._embed(xp, x)
        gram = xn @ xn.T
        sq = xp.sum(xn * xn, axis=1)
        d = xp.sqrt(xp.maximum(sq[:, None] + sq[None, :] - 2.0 * gram, 0.0))
        pos, neg = _pair_masks(xp, labels)
        lse, e, total = _row_lse(xp, xp.where(neg, self.neg_margin - d, -xp.inf))
        row, col = lse, lse.T
        top = xp.maximum(row, col)
        both = top + xp.log1p(xp.exp(-xp.abs(row - col)))
        j = both + d - self.pos_margin
        hinge = xp.where(pos, xp.maximum(j, 0.0), 0.0)
        count = _count(xp, pos, x)
        _need_positive_pair(self, xp, count, labels)
        count = xp.maximum(count, 1.0)
        value = xp.sum(hinge * hinge) / (2.0 * count)
        if not need_grad:
            return value, None
        w = hinge / count
        pull = (xp.sum(w * xp.exp(row - both), axis=1, keepdims=True)
                + xp.sum(w * xp.exp(col - both), axis=0)[:, None])
        g = w - e * (pull / total)
        h = g + g.T
        h = xp.where(d > 0, h / xp.where(d > 0, d, 1.0), 0.0)
        return value, (back(xp.sum(h, axis=1, keepdims=True) * xn - h @ xn),)
