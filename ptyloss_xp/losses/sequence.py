"""Sequence losses: connectionist temporal classification (CTC).

CTC (Graves et al., 2006) scores an unsegmented label sequence ``l`` of
length ``S_n`` against per-frame class scores of length ``T_n``: every
alignment ``pi`` (one class per frame) that collapses to ``l`` once
repeated classes are merged and blanks removed counts, and

    loss_n = -log sum_{pi -> l} prod_t y[t, n, pi_t].

Conventions are PyTorch's ``torch.nn.functional.ctc_loss``: inputs ``(T, N,
C)`` with time first; ``targets`` padded ``(N, S)`` (entries beyond a
sample's target length are ignored, whatever they hold) or the targets of
all samples concatenated into one 1-D array; ``input_lengths`` and
``target_lengths`` of shape ``(N,)``; ``blank`` any class index;
``reduction="mean"`` divides each sample's loss by its target length
(1 for an empty target) before taking the batch mean; ``zero_infinity``.

Two losses, named for the gradient they give:

- ``ctc`` takes log-probabilities and differentiates with respect to them
  as free variables: ``-gamma`` (the posterior occupation counts).
- ``ctc_logits`` takes logits, applies ``log_softmax`` over the classes
  itself, and differentiates with respect to the logits: ``softmax * occ -
  gamma``. This is the array PyTorch's autograd returns as "the gradient of
  ``ctc_loss`` with respect to ``log_probs``", and the one a training step
  needs.

The kernel is the forward-backward (alpha-beta) recursion in log space over
the extended label sequence ``l'`` (blanks interleaved, ``2 S + 1``
positions), vectorised over the batch and the label positions with a Python
loop over time only: ``O(N T (2S+1))`` memory and work, for every array
namespace (no in-place writes). On Dask each chunk of the batch, rechunked to
whole ``(T, C)`` planes, runs the kernel in one lazy task. NumPy float32 and
float64 arrays go to a compiled numba kernel (:mod:`._ctc_numba`: one loop
per sample, samples in parallel, computed in float64) where numba imports;
``PTYLOSS_XP_NUMBA=0`` in the environment switches it off. The generic
kernel is the reference: the tests compare both.
"""

from __future__ import annotations

import math

import array_api_compat

from .._backend import device_of, is_numpy, namespace
from .._numba import load
from .._registry import Loss, reduce, register
from .._validate import REDUCTION, Arg, Param, _found, require, value_checks_enabled
from .classification import _log_softmax

__all__ = ["CTC", "CTCLogits"]

# The compiled kernel for NumPy float arrays, or None (see _per_sample).
_NUMBA = load(f"{__package__}._ctc_numba")

_TARGETS = Arg("targets", ("N", "S"), kind="int", low=0, high="C",
               doc="labels in [0, C) other than blank, padded to width S (entries beyond "
                   "target_lengths are ignored); or all targets concatenated, 1-D")
_INPUT_LENGTHS = Arg("input_lengths", ("N",), kind="int", low=0, high="T+1",
                     doc="frames of each sample, in [0, T]")
_TARGET_LENGTHS = Arg("target_lengths", ("N",), kind="int", low=0, high="S+1",
                      doc="labels of each sample, in [0, S]")


class _CTC(Loss):
    """Shared validation, test sampling and evaluation of the two CTC losses;
    a subclass says whether its first argument holds log-probabilities or
    logits."""

    family = "sequence"
    params = {
        "blank": Param(0, kind="int", low=0, doc="class index of the blank, in [0, C)"),
        "reduction": REDUCTION,
        "zero_infinity": Param(False, kind="bool",
                               doc="impossible alignments (infinite losses) count as 0"),
    }
    # Four frames and two non-blank classes at least give drawn targets with
    # repeated labels and alignments that need blanks between them.
    sample_dims_min = {"T": 4, "C": 3}
    param_cases = ({"reduction": "sum"}, {"reduction": "none"},
                   {"blank": 2, "zero_infinity": True})
    reference = ("Graves, Fernandez, Gomez and Schmidhuber, Connectionist temporal "
                 "classification, ICML 2006; counterpart torch.nn.functional.ctc_loss (same "
                 "value; an impossible alignment gets gradient 0, not NaN; labels equal to "
                 "blank or out of range are refused)")
    _logits = False

    def _checks_values_itself(self, arrays):
        # Padded targets are checked only within their target lengths, which
        # the per-argument domain checks cannot express; bind() checks all.
        return True

    def bind(self, arrays, kw):
        arrays, kw = self._padded(arrays, kw)
        xp, a, sizes = super().bind(arrays, kw)
        if self.blank >= sizes["C"]:
            msg = (f"{self.name}: parameter 'blank' must be in [0, C) = [0, {sizes['C']}) "
                   f"(C, the classes of {self.args[0].name!r}), got {self.blank}")
            raise ValueError(msg)
        if value_checks_enabled():
            self._check_values(xp, a, sizes)
        return xp, a, sizes

    def _padded(self, arrays, kw):
        """``(arrays, kw)`` with concatenated 1-D ``targets`` made ``(N, S)``."""
        names = [a.name for a in self.args]
        given = {**dict(zip(names, arrays)), **kw}
        flat, lengths = given.get("targets"), given.get("target_lengths")
        if getattr(flat, "ndim", None) != 1 or lengths is None:
            return arrays, kw
        xp = namespace({"targets": flat, "target_lengths": lengths}, self.name)
        if lengths.ndim != 1 or not xp.isdtype(lengths.dtype, "integral") \
                or not xp.isdtype(flat.dtype, "integral"):
            msg = (f"{self.name}: 1-D (concatenated) 'targets' need integer 'targets' and a 1-D "
                   f"integer 'target_lengths', got {flat.dtype} targets and target_lengths of "
                   f"shape {tuple(lengths.shape)} and dtype {lengths.dtype}")
            raise TypeError(msg)
        if value_checks_enabled():
            total = flat.shape[0]
            require(xp, xp.sum(lengths) == total,
                    f"{self.name}: argument 'target_lengths' must sum to {total}, the length "
                    "of the concatenated 1-D 'targets'")
        padded = _pad_concatenated(xp, flat, lengths)
        if "targets" in kw:
            return arrays, {**kw, "targets": padded}
        i = names.index("targets")
        return arrays[:i] + (padded,) + arrays[i + 1:], kw

    def _check_values(self, xp, a, sizes):
        first = self.args[0].name
        x = a[first]
        finite = xp.isfinite(x)
        require(xp, xp.all(finite), f"{self.name}: argument {first!r} must be finite",
                lambda: _found(xp, x, ~finite))
        for name, dim, what in (("input_lengths", "T", f"frames of {first!r}"),
                                ("target_lengths", "S", "width of the padded 'targets'")):
            n, top = a[name], sizes[dim]
            bad = (n < 0) | (n > top)
            require(xp, ~xp.any(bad),
                    f"{self.name}: argument {name!r} must hold values in [0, {top}] "
                    f"({dim} = {top}, the {what})",
                    lambda n=n, bad=bad: _found(xp, n, bad))
        t, c = a["targets"], sizes["C"]
        s = xp.arange(t.shape[1], device=device_of(t))
        inside = s[None, :] < a["target_lengths"][:, None]
        bad = inside & ((t < 0) | (t >= c) | (t == self.blank))
        require(xp, ~xp.any(bad),
                f"{self.name}: argument 'targets' must hold labels in [0, {c}) other than "
                f"blank={self.blank} within each sample's target length",
                lambda: _found(xp, t, bad))

    def fix_sample(self, arrays, rng):
        import numpy as np

        out = dict(arrays)
        t, n, c = out[self.args[0].name].shape
        y = np.where(out["targets"] == self.blank, (out["targets"] + 1) % c, out["targets"])
        frames = out["input_lengths"].copy()
        labels = out["target_lengths"].copy()
        # One sample uses every frame and the widest target that fits.
        frames[0], labels[0] = t, y.shape[1]

        def frames_needed(k, m):
            # A target of m labels with R adjacent repeats needs m + R frames.
            return m + np.sum(y[k, 1:m] == y[k, :m - 1])

        for k in range(n):
            while labels[k] and frames_needed(k, labels[k]) > frames[k]:
                labels[k] -= 1
        out.update(targets=y, input_lengths=frames, target_lengths=labels)
        return out

    def _evaluate(self, xp, a, need_grad):
        x = a[self.args[0].name]
        loss, g = _per_sample(x, a["targets"], a["input_lengths"], a["target_lengths"],
                              self.blank, self._logits, need_grad)
        if self.zero_infinity:
            loss = xp.where(loss == math.inf, 0.0, loss)
        per_label = None
        if self.reduction == "mean":
            per_label = 1.0 / xp.astype(xp.clip(a["target_lengths"], min=1), x.dtype)
            loss = loss * per_label
        value, factor = reduce(xp, loss, self.reduction)
        if not need_grad:
            return value, None
        w = factor if per_label is None else factor * per_label[None, :, None]
        return value, (g * w,)


def _per_sample(x, targets, input_lengths, target_lengths, blank, logits, need_grad):
    """Loss of each sample, ``(N,)``, and with ``need_grad`` the gradient of
    each sample's loss with respect to its scores ``x``, ``(T, N, C)``
    (``None`` otherwise); ``x`` holds logits when ``logits`` is true.

    NumPy float arrays go to the numba kernel where it loads; the generic
    kernel below is the reference it is tested against.
    """
    if _NUMBA is not None and _NUMBA.accepts(x, targets, input_lengths, target_lengths, blank):
        return _NUMBA.per_sample(x, targets, input_lengths, target_lengths, blank, logits,
                                 need_grad)
    if array_api_compat.is_dask_array(x):
        return _per_sample_by_chunk(x, targets, input_lengths, target_lengths, blank, logits,
                                    need_grad)
    xp = array_api_compat.array_namespace(x)
    lp = _log_softmax_classes(xp, x) if logits else x
    ll, gamma, hot = _forward_backward(xp, lp, targets, input_lengths, target_lengths, blank,
                                       need_grad)
    if not need_grad:
        return -ll, None
    # d loss_n / d log_probs[t, n, c] = -sum over positions s holding class c of gamma.
    g = -xp.permute_dims(xp.matmul(gamma, hot), (1, 0, 2))
    if logits:
        # Through log_softmax: g - softmax * sum_c g, and sum_c g = -sum_s gamma.
        g = g + xp.exp(lp) * xp.permute_dims(xp.sum(gamma, axis=2), (1, 0))[..., None]
    return -ll, g


def _per_sample_by_chunk(x, targets, input_lengths, target_lengths, blank, logits, need_grad):
    """:func:`_per_sample` on Dask: one task per chunk of the batch.

    CTC couples all frames and classes of a sample and nothing across
    samples, so each batch chunk, with its whole ``(T, C)`` planes, runs the
    kernel on its NumPy (or other) blocks. The recursion run on Dask arrays
    themselves would make tasks per frame and per chunk: a graph of ``O(T)``
    depth that is slow to build and to schedule.
    """
    import dask.array as da

    x = x.rechunk({0: -1, 2: -1})
    batch = x.chunks[1]
    targets = targets.rechunk((batch, -1))
    input_lengths = input_lengths.rechunk((batch,))
    target_lengths = target_lengths.rechunk((batch,))

    def chunk(xb, tb, ib, lb):
        # apply_gufunc gives the batch axis first.
        loss, g = _per_sample(_swap_batch_time(xb), tb, ib, lb, blank, logits, need_grad)
        return loss if g is None else (loss, _swap_batch_time(g))

    meta = x._meta
    out = da.apply_gufunc(
        chunk, "(t,c),(s),(),()->()" + (",(t,c)" if need_grad else ""),
        x, targets, input_lengths, target_lengths,
        axes=[(0, 2), (1,), (), (), ()] + ([(0, 2)] if need_grad else []),
        meta=(meta.reshape((0,)), meta) if need_grad else meta.reshape((0,)))
    return out if need_grad else (out, None)


def _swap_batch_time(x):
    xp = array_api_compat.array_namespace(x)
    return xp.permute_dims(x, (1, 0, 2))


def _log_softmax_classes(xp, x):
    t, n, c = x.shape
    return xp.reshape(_log_softmax(xp, xp.reshape(x, (t * n, c))), (t, n, c))


def _pad_concatenated(xp, flat, lengths):
    """Concatenated 1-D targets as ``(N, S)``, padded with 0.

    On NumPy ``S`` is the longest target (reading it costs nothing); other
    namespaces would need a device-to-host read or a compute of the lengths,
    so there ``S`` is the total length, a static size that jit and Dask accept
    (the kernel then works on ``2 L + 1`` positions per sample).
    """
    total = flat.shape[0]
    n = lengths.shape[0]
    width = int(xp.max(lengths)) if is_numpy(xp) and n else total
    width = max(width, 1)
    if total == 0:
        return xp.zeros((n, width), dtype=flat.dtype, device=device_of(flat))
    s = xp.arange(width, dtype=lengths.dtype, device=device_of(lengths))
    start = xp.cumulative_sum(lengths) - lengths
    inside = s[None, :] < lengths[:, None]
    index = xp.clip(xp.where(inside, start[:, None] + s[None, :], 0), min=0, max=total - 1)
    picked = xp.reshape(xp.take(flat, xp.reshape(index, (-1,)), axis=0), (n, width))
    return xp.where(inside, picked, 0)


def _logsumexp3(xp, a, b, c):
    """``log(exp(a) + exp(b) + exp(c))``, exactly ``-inf`` where all three are.

    Three SIMD ``exp`` and one ``log`` per element: about 5 times faster
    than two ``logaddexp`` calls in NumPy float32, and as accurate.
    """
    m = xp.maximum(xp.maximum(a, b), c)
    dead = m == -math.inf
    shift = xp.where(dead, 0.0, m)
    total = xp.exp(a - shift) + xp.exp(b - shift) + xp.exp(c - shift)
    return m + xp.log(xp.where(dead, 1.0, total))


def _forward_backward(xp, lp, targets, input_lengths, target_lengths, blank, need_grad):
    """Log-likelihood ``log p(l_n | x_n)`` of each sample, shape ``(N,)``, and
    with ``need_grad`` the posteriors ``gamma[n, t, s]`` of being at extended
    position ``s`` at frame ``t``, with the one-hot ``(N, 2S+1, C)`` of the
    extended labels; ``(ll, None, None)`` otherwise.

    ``alpha[t, n, s]``: log-probability of the prefixes ending at ``s`` at
    frame ``t``, emission included; ``beta[t, n, s]``: of the suffixes from
    ``s`` after frame ``t``. ``-inf`` marks impossible states and stays exact
    (``logaddexp(-inf, -inf) = -inf``), so an impossible alignment gives
    ``ll = -inf`` and zero posteriors, never NaN.
    """
    t_max, n, c = lp.shape
    dev = device_of(lp)
    k = 2 * targets.shape[1] + 1
    targets = xp.astype(targets, xp.int64)
    blanks = xp.full(targets.shape, blank, dtype=xp.int64, device=dev)
    ext = xp.concat([xp.reshape(xp.stack([blanks, targets], axis=2), (n, k - 1)),
                     blanks[:, :1]], axis=1)
    pos = xp.arange(k, dtype=xp.int64, device=dev)[None, :]
    end = 2 * xp.astype(target_lengths, xp.int64)[:, None]
    inside = pos <= end
    ext = xp.where(inside, ext, blank)
    # A label may be reached from two positions back (skipping a blank)
    # unless it repeats the label there; blanks never skip.
    neg2 = xp.full((n, 2), -math.inf, dtype=lp.dtype, device=dev)
    zero2 = xp.zeros((n, 2), dtype=lp.dtype, device=dev)
    skip = xp.concat([neg2, xp.where(ext[:, 2:] != ext[:, :-2], zero2[:, :1], -math.inf)],
                     axis=1)
    # Emissions e[t, n, s] = lp[t, n, ext[n, s]], -inf beyond the target.
    flat_index = xp.reshape(xp.arange(n, dtype=xp.int64, device=dev)[:, None] * c + ext, (-1,))
    e = xp.reshape(xp.take(xp.reshape(lp, (t_max, n * c)), flat_index, axis=1), (t_max, n, k))
    e = xp.where(inside[None, ...], e, -math.inf)

    frames = xp.astype(input_lengths, xp.int64)
    running = xp.arange(t_max, dtype=xp.int64, device=dev)[:, None] < frames[None, :]
    # alpha before the first frame: all mass on position 0, so that the same
    # recursion starts every path at the first blank or the first label.
    alpha = xp.concat([zero2[:, :1], xp.full((n, k - 1), -math.inf, dtype=lp.dtype,
                                             device=dev)], axis=1)
    alphas = []
    for t in range(t_max):
        step = xp.concat([neg2[:, :1], alpha[:, :-1]], axis=1)
        jump = xp.concat([neg2, alpha[:, :-2]], axis=1) + skip
        # Past its last frame a sample keeps its final alpha.
        alpha = xp.where(running[t, :, None], e[t, ...] + _logsumexp3(xp, alpha, step, jump),
                         alpha)
        if need_grad:
            alphas.append(alpha)
    last = (pos == end) | (pos == end - 1)
    ll = xp.logaddexp(xp.max(xp.where(pos == end, alpha, -math.inf), axis=1),
                      xp.max(xp.where(pos == end - 1, alpha, -math.inf), axis=1))
    if not need_grad:
        return ll, None, None

    stop = xp.where(last, 0.0, xp.full((n, k), -math.inf, dtype=lp.dtype, device=dev))
    final = frames - 1
    skip_back = xp.concat([skip[:, 2:], neg2], axis=1)
    beta = xp.where((final == t_max - 1)[:, None], stop, -math.inf)
    betas = [beta]
    for t in range(t_max - 2, -1, -1):
        b = beta + e[t + 1, ...]
        step = xp.concat([b[:, 1:], neg2[:, :1]], axis=1)
        jump = xp.concat([b[:, 2:], neg2], axis=1) + skip_back
        # Frames after a sample's last one keep beta = -inf (no posterior).
        beta = xp.where((final == t)[:, None], stop, _logsumexp3(xp, b, step, jump))
        betas.append(beta)
    betas.reverse()

    finite = xp.isfinite(ll)
    ll_safe = xp.where(finite, ll, math.inf)
    # (N, T, 2S+1), so that the scatter to classes is one batched matmul of
    # contiguous operands.
    gamma = xp.exp(xp.stack(alphas, axis=1) + xp.stack(betas, axis=1) - ll_safe[:, None, None])
    gamma = xp.where(finite[:, None, None], gamma, 0.0)
    classes = xp.arange(c, dtype=xp.int64, device=dev)
    hot = xp.astype(ext[:, :, None] == classes[None, None, :], lp.dtype)
    return ll, gamma, hot


_DOC_COMMON = """
    Parameters
    ----------
    blank : int
        Class index of the blank, any of ``[0, C)`` (default 0).
    reduction : {"mean", "sum", "none"}
        PyTorch's: "mean" divides each sample's loss by its target length
        (1 for an empty target), then averages over the batch; "none" gives
        the ``(N,)`` per-sample losses (the gradient is that of their sum).
    zero_infinity : bool
        Whether an impossible alignment counts as loss 0 (default False:
        ``+inf``). Either way its gradient is 0 (PyTorch's is NaN without
        ``zero_infinity``).

    Notes
    -----
    Inputs: ``{first}`` (T, N, C), ``targets`` (N, S) padded or 1-D concatenated,
    ``input_lengths`` (N,) in [0, T], ``target_lengths`` (N,) in [0, S].
    Targets within their length must be in [0, C) and differ from ``blank``
    (PyTorch does not check this and returns meaningless numbers); padding
    beyond may hold anything. An alignment is impossible when a target of
    ``S_n`` labels with ``R_n`` adjacent repeats gets fewer than ``S_n +
    R_n`` frames. 1-D targets are padded to the longest target on NumPy and
    to their total length elsewhere (no host read of the lengths; pass
    padded targets for speed there).
"""


@register
class CTC(_CTC):
    """Connectionist temporal classification on log-probabilities, with the
    gradient with respect to the log-probabilities as free variables.

    ``loss_n = -log sum_{pi -> l_n} exp(sum_{t < T_n} log_probs[t, n, pi_t])``
    over the alignments ``pi`` of ``T_n`` frames that collapse to the
    target ``l_n``; the value equals ``torch.nn.functional.ctc_loss``.

    The gradient is ``d loss_n / d log_probs[t, n, c] = -sum_{s: l'_s = c}
    gamma[t, n, s]``, ``gamma = exp(alpha + beta - log p)`` the posterior
    occupation of extended position ``s`` at frame ``t`` (0 for ``t >=
    T_n``). Unlike PyTorch's autograd gradient it has no ``exp(log_probs)``
    term: here ``log_probs`` are free variables, not a log-softmax output
    (for that use ``ctc_logits``). The loss is defined for any finite
    ``log_probs``, normalised or not.
    {common}
    optax's ``ctc_loss`` takes logits ``(B, T, K)`` with paddings instead
    of lengths, applies ``log_softmax`` itself (as ``ctc_logits`` does) and
    returns per-sequence losses (the "none" reduction here).
    Log-probabilities must be finite: ``-inf`` to forbid a class is refused
    (use a large negative number).

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(6, 2, 4))
    >>> log_probs = z - np.log(np.exp(z).sum(axis=2, keepdims=True))
    >>> targets = np.array([[1, 1, 3], [2, 0, 0]])     # the second padded
    >>> loss = pl.get("ctc")
    >>> v, g = loss.value_and_grad(log_probs, targets, np.array([6, 4]), np.array([3, 1]))
    >>> g.shape, bool(np.all(g <= 0)), bool(np.all(g[4:, 1] == 0))
    ((6, 2, 4), True, True)
    >>> flat = np.array([1, 1, 3, 2])                   # the same targets, concatenated
    >>> float(loss.value(log_probs, flat, np.array([6, 4]), np.array([3, 1]))) == float(v)
    True
    """

    name = "ctc"
    args = (Arg("log_probs", ("T", "N", "C"), grad=True,
                doc="log-probabilities over C classes (blank included), time first; any finite"),
            _TARGETS, _INPUT_LENGTHS, _TARGET_LENGTHS)
    formula = ("loss_n = -log sum_{pi in B^-1(l_n)} prod_{t < T_n} exp(log_probs[t, n, pi_t]); "
               "mean: mean_n loss_n / max(S_n, 1)")
    gradient = ("d loss_n / d log_probs[t, n, c] = -sum_{s: l'_s = c} exp(alpha_t(s) + beta_t(s) "
                "- log p(l_n)); log_probs as free variables (PyTorch's autograd adds "
                "exp(log_probs): that is ctc_logits' gradient)")


@register
class CTCLogits(_CTC):
    """Connectionist temporal classification on logits, with the gradient
    with respect to the logits: what PyTorch's autograd returns for
    ``ctc_loss(log_softmax(logits), ...)``, and what a training step needs.

    ``log_probs = log_softmax(logits)`` over the classes (axis 2), then the
    value of ``ctc``. The gradient is ``d loss_n / d logits[t, n, c] =
    softmax[t, n, c] * occ[t, n] - sum_{s: l'_s = c} gamma[t, n, s]`` with
    ``occ[t, n] = sum_s gamma[t, n, s]`` (1 for ``t < T_n``, 0 after).
    PyTorch's ``ctc_loss`` backward returns ``exp(log_probs) - gamma`` as the
    gradient "with respect to ``log_probs``" whatever ``log_probs`` are: it
    is this gradient, valid only when ``log_probs`` is a log-softmax.
    {common}
    Examples
    --------
    One gradient step on the logits of a batch:

    >>> import numpy as np, ptyloss_xp as pl
    >>> rng = np.random.default_rng(0)
    >>> logits = rng.normal(size=(8, 2, 5))
    >>> targets = np.array([[1, 2, 2], [4, 3, 0]])
    >>> frames, labels = np.array([8, 6]), np.array([3, 2])
    >>> loss = pl.get("ctc_logits")
    >>> v, g = loss.value_and_grad(logits, targets, frames, labels)
    >>> v2 = loss.value(logits - 0.5 * g, targets, frames, labels)
    >>> bool(v2 < v), np.allclose(g.sum(axis=2), 0)
    (True, True)
    """

    name = "ctc_logits"
    args = (Arg("logits", ("T", "N", "C"), grad=True,
                doc="unnormalised class scores, time first; log_softmax over C is applied"),
            _TARGETS, _INPUT_LENGTHS, _TARGET_LENGTHS)
    formula = "ctc(log_softmax(logits, axis=2), targets, input_lengths, target_lengths)"
    gradient = ("d loss / d logits = softmax(logits) * sum_s gamma - scatter_c(gamma); "
                "gamma the CTC posteriors: the gradient PyTorch's autograd gives")
    _logits = True


for _cls in (CTC, CTCLogits):
    _cls.__doc__ = _cls.__doc__.replace("{common}", _DOC_COMMON.replace(
        "{first}", _cls.args[0].name))
