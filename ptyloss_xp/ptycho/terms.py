"""PtyRAD's loss terms with analytic gradients, plus total variation.

Notation: ``I`` model diffraction patterns, ``D`` measured ones, both shaped
(N, Ky, Kx); ``p`` = ``dp_pow``; ``w`` = ``weight``; object patches are
shaped (N, omode, Nz, Ny, Nx) and ``omode_occu`` (omode,) weighs the object
modes. Every value is already multiplied by its weight, as in PtyRAD.

The optional ``dp_weight`` (Ky, Kx) of the data terms is a per-pixel weight
or 0/1 detector mask; every mean becomes the weighted mean
``sum(W X) / sum(W)`` over the same elements. Without it the numbers are
PtyRAD's.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from .._backend import power
from .._registry import Loss, register
from .._validate import (Arg, Param, check_arrays, check_values, deferred_checks, require,
                         value_checks_enabled)
from . import _fast
from .operators import apply_adjoint_along, apply_along, axis_bands, axis_operators
from .shards import chunked_finish, chunked_sums, combine_sums, reread

__all__ = ["LossSingle", "LossPoissn", "LossPacbed", "LossSparse", "LossSimlar", "LossTV"]

_PTYRAD = "PtyRAD (Lee et al. 2025, `ptyrad/losses.py`, CombinedLoss)"

_DP = ("N", "Ky", "Kx")
_OBJ = ("N", "O", "Z", "Y", "X")
# Model values start at the dtype's smallest normal number: the gradients
# divide by them (or by their powers), and 1 / 1e-45 is beyond float32.
_MODEL_DP = Arg("model_dp", _DP, low=0.0, low_open=True, normal=True, grad=True,
                doc="model (simulated) diffraction patterns; PtyRAD's forward adds 1e-10")
_MEASURED_DP = Arg("measured_dp", _DP, low=0.0, doc="measured diffraction patterns")
_DP_WEIGHT = Arg("dp_weight", ("Ky", "Kx"), low=0.0, optional=True,
                 doc="per-pixel weight or 0/1 detector mask (not in PtyRAD)")
_OCCU = Arg("omode_occu", ("O",), low=0.0, doc="occupancy of each object mode")
_OBJA = Arg("obja_patches", _OBJ, grad=True, doc="object amplitude patches")
_OBJP = Arg("objp_patches", _OBJ, grad=True, doc="object phase patches")

_WEIGHT = Param(1.0, low=0.0, doc="multiplies the term")


def _pow_and_chain(xp, x, p, pw=power):
    """``x**p`` for ``x > 0`` (by ``pw``) and the chain rule through it, ``g -> g * p x^(p-1)``.

    The chain multiplies ``g`` (already scaled by the term's small constant)
    before dividing by ``x``, so that ``x^(p-1)`` alone, which overflows
    float32 for ``x`` near its smallest value and a small ``p``, is never
    formed.
    """
    if p == 1:
        return x, lambda g: g
    xp_ = pw(xp, x, p)
    if p == 0.5:
        return xp_, lambda g: g * 0.5 / xp_
    return xp_, lambda g: g * (p * xp_) / x


def _model_low(dtype):
    """The ``lo`` for which the fused kernels' test ``x > lo`` is
    ``model_dp``'s declared lower bound in ``dtype`` (its smallest normal
    number, included)."""
    low, low_open, _, _ = _MODEL_DP.bounds(np.dtype(dtype).itemsize * 8)
    return low if low_open else float(np.nextafter(np.asarray(low, dtype), np.asarray(0, dtype)))


def _check_fused(loss, a, bad):
    """The value checks of a fused pass that counted, per large array, the
    elements outside its domain (``bad``: name -> count): the full checks,
    with their messages, run on an array only when its count is not 0, and
    always on the small arrays (``dp_weight``, ``omode_occu``) and on an
    array with no count."""
    if not value_checks_enabled():
        return
    rest = [arg for arg in loss.args if a.get(arg.name) is not None and bad.get(arg.name, 1) > 0]
    if rest:
        check_arrays(loss.name, rest, a, {}, loss.config)


def _nonzero(xp, x):
    """``x`` with zeros replaced by 1, for denominators guarded by a ``where``."""
    return xp.where(x > 0, x, 1.0)


def _wsum(xp, x, w):
    """``sum(W x)`` over all elements, ``sum(x)`` without a weight."""
    return xp.sum(x) if w is None else xp.sum(w * x)


class _ShardedTerm(Loss):
    """A term that is a function of a few sums over scan positions (axis N).

    Besides the one-call API, every term offers the three phases a solver with
    scan positions split over workers runs (see :mod:`.shards`):
    :meth:`partial_sums` on each shard, :meth:`combine` (addition) across
    shards, and :meth:`finish` on each shard. A subclass implements three
    steps, which :meth:`_evaluate` chains for the unsharded call:

    - ``_local(xp, a)``: the elementwise intermediates both phases use;
    - ``_sums(xp, a, loc)``: the shard's partial sums, a dict of arrays
      and numbers that add across shards;
    - ``_finish(xp, a, sums, loc, need_grad)``: the value from the
      combined sums and the shard's gradient.

    These generic steps are the reference. Where :func:`._fast.kernels`
    gives fused kernels for the arrays (NumPy float32/float64 with numba),
    two fused steps run instead, in the one-call API and in the phases
    alike: ``_fused_sums(fast, xp, a)`` gives the same partial sums (in
    float64, under the same keys, so shards of either kind combine) and the
    counts of input elements outside their domains, read in the same pass;
    ``_fused_finish(fast, xp, a, sums, need_grad, out)`` the value and the
    gradient, written into ``out`` (``None`` or a tuple of ``(array, add)``
    as in :meth:`_evaluate`). A term may override ``_evaluate_fused`` where
    one call can share more work between the two (loss_tv and loss_simlar
    take the value and the gradient in one pass).
    """

    family = "ptycho"
    _fills_out = True

    def _checks_values_itself(self, arrays):
        return _fast.kernels(arrays) is not None or _fast.chunk_kernels(arrays) is not None

    def partial_sums(self, *arrays, **kw) -> dict:
        """Phase 1: this shard's partial sums, a dict of numbers, small arrays and ints.

        Takes the term's arrays for a subset of scan positions, checked as
        the one-call API checks them (on Dask, when the sums are computed).
        On NumPy float32/float64 shards the fused kernels take the sums in
        float64 (0-d arrays or floats); elsewhere they are arrays of the
        inputs' namespace and dtype. Both add up under the same keys (once
        in one namespace, as any all-reduce needs). On Dask arrays with
        NumPy chunks the result is a ``dask.delayed`` of that dict (one
        task per chunk, added in a tree), which :meth:`combine` and
        :meth:`finish` take as it is.

        Examples
        --------
        Two shards of four scan positions give the unsharded numbers:

        >>> import numpy as np, ptyloss_xp as pl
        >>> rng = np.random.default_rng(0)
        >>> I = rng.uniform(1, 2, (4, 3, 3)); D = rng.uniform(1, 2, (4, 3, 3))
        >>> loss = pl.get("loss_single")
        >>> sums = loss.combine(loss.partial_sums(I[:1], D[:1]), loss.partial_sums(I[1:], D[1:]))
        >>> (v, g0), (_, g1) = loss.finish(sums, I[:1], D[:1]), loss.finish(sums, I[1:], D[1:])
        >>> v_ref, g_ref = loss.value_and_grad(I, D)
        >>> bool(np.isclose(v, v_ref)), bool(np.allclose(np.concatenate([g0, g1]), g_ref))
        (True, True)
        """
        with deferred_checks() as guard:
            xp, a, _ = self.bind(arrays, kw)
            fast = _fast.kernels(a)
            if fast is not None:
                # bind left the value checks to the fused pass's counts.
                sums, bad = self._fused_sums(fast, xp, a)
                _check_fused(self, a, bad)
                return sums
            if _fast.chunk_kernels(a) is not None:
                return chunked_sums(self, a)
            sums = self._sums(xp, a, self._local(xp, a))
            return dict(zip(sums, guard(tuple(sums.values()))))

    def combine(self, *partials) -> dict:
        """Phase 2: the sums over all shards (an all-reduce by addition)."""
        return combine_sums(partials)

    def finish(self, sums, *arrays, **kw):
        """Phase 3: ``(value, grad)`` with the global value and this shard's gradient.

        ``sums`` is :meth:`combine`'s result; the arrays are the same shard
        :meth:`partial_sums` was given. Checks of the combined sums (a
        positive normaliser) run here; the input values were checked in
        phase 1 and are not read for checks again.
        """
        with deferred_checks() as guard:
            with check_values(False):
                xp, a, _ = self.bind(arrays, kw)
            fast = _fast.kernels(a)
            if fast is not None:
                v, g = self._fused_finish(fast, xp, a, sums, True, None)
            elif _fast.chunk_kernels(a) is not None:
                v, g = chunked_finish(self, a, sums, need_grad=True)
            else:
                v, g = self._finish(xp, a, sums, self._local(xp, a), need_grad=True)
                self._check_result(xp, a, v, g)
                # Sums from the fused kernels are float64; the results keep
                # the data's dtype.
                dtype = a[self.args[0].name].dtype
                v, g = xp.astype(xp.asarray(v), dtype), tuple(xp.astype(gi, dtype) for gi in g)
            v, *g = guard((xp.asarray(v),) + tuple(g))
        return v, (g[0] if len(g) == 1 else tuple(g))

    def _evaluate(self, xp, a, need_grad, out=None):
        fast = _fast.kernels(a)
        if fast is not None:
            # The fused kernels check their own results, from counts made as
            # they write them.
            return self._evaluate_fused(fast, xp, a, need_grad, out)
        if _fast.chunk_kernels(a) is not None:
            sums = chunked_sums(self, a)
            return chunked_finish(self, reread(a, [sums]) if need_grad else a, sums, need_grad)
        loc = self._local(xp, a)
        sums = self._sums(xp, a, loc)
        if need_grad:
            again = reread(a, [sums])
            if again is not a:
                a, loc = again, self._local(xp, again)
        v, g = self._finish(xp, a, sums, loc, need_grad)
        self._check_result(xp, a, v, g)
        return v, g

    def _evaluate_fused(self, fast, xp, a, need_grad, out):
        sums, bad = self._fused_sums(fast, xp, a)
        _check_fused(self, a, bad)
        return self._fused_finish(fast, xp, a, sums, need_grad, out)

    def _check_result(self, xp, a, value, grads, grads_finite=None):
        """A value check on the outputs, for terms whose inputs' domains
        cannot rule out an exact result beyond the dtype's range.
        ``grads_finite``, where given, says whether every gradient element
        is finite (a fused kernel counted them), and ``grads`` is not read."""


class _DataTerm(_ShardedTerm):
    """Shared binding of the three diffraction-pattern terms."""

    args = (_MODEL_DP, _MEASURED_DP, _DP_WEIGHT)
    param_cases = ({"dp_pow": 1.0}, {"dp_pow": 0.5}, {"dp_pow": 0.2})

    def _mask(self, xp, a):
        """``(W, total weight over N*Ky*Kx)``; ``W`` is ``None`` without a mask."""
        w = a.get("dp_weight")
        n = a["model_dp"].shape[0]
        if w is None:
            return None, math.prod(a["model_dp"].shape)
        total = xp.sum(w) * n
        require(xp, total > 0, f"{self.name}: argument 'dp_weight' must have a positive sum, got all zeros")
        return w, total

    def _check_result(self, xp, a, value, grads, grads_finite=None):
        # The data terms are ratios (of mean(D^p), of the weights, of powers
        # of I): inputs each inside its domain can still give an exact value
        # or gradient beyond the dtype's range. Refuse by name, never inf.
        # Skipped with the checks off: the test reads the whole gradient.
        if not value_checks_enabled():
            return
        ok = xp.isfinite(value)
        if grads_finite is not None:
            ok = ok & grads_finite
        for g in grads or ():
            ok = ok & xp.all(xp.isfinite(g))
        require(xp, ok,
                f"{self.name}: the value or gradient for these 'model_dp', 'measured_dp' "
                f"(and 'dp_weight') is beyond the range of {a['model_dp'].dtype}: model values "
                "too small or too large against mean(measured_dp ** dp_pow), or weights "
                "too small; compute in float64 or rescale the patterns")

    def _normaliser(self, xp, a, sum_d, total):
        """``sum(W D^p) / total`` (the fused kernels give the sum), checked to
        be at least the dtype's smallest normal number: every gradient is
        divided by it, and ``1 / 1e-45`` is beyond float32's range."""
        w = a.get("dp_weight")
        mean_d = sum_d / total
        where = " where dp_weight > 0" if w is not None else ""
        tiny = float(xp.finfo(a["measured_dp"].dtype).smallest_normal)
        require(xp, mean_d >= tiny,
                f"{self.name}: argument 'measured_dp' must not be all zero{where}: "
                f"the term is normalised by mean(measured_dp ** dp_pow), which must be "
                f">= {tiny:.3g} (the smallest normal number of the data's dtype)")
        return mean_d


class _PointwiseTerm(_DataTerm):
    """loss_single and loss_poissn: sums of elementwise functions of ``I`` and
    ``D``, and a gradient that is elementwise too (``fast.pointwise_*``)."""

    kind: ClassVar[str] = ""  # the fused kernel's term, "single" or "poissn"
    _sum_key: ClassVar[str] = ""  # its sum's key in the partial sums

    def _evaluate_fused(self, fast, xp, a, need_grad, out):
        """Pass 1 gives the sums, :meth:`_value_and_scale` the scalars, pass 2 the gradient."""
        model = a["model_dp"]
        g, add = _fast.out_for(model, None if out is None else out[0]) if need_grad else (None, False)
        # Pass 1 may write the unscaled gradient (general powers), unless
        # adding to what the combiner's out holds.
        sums, bad, direction = self._fused_pass1(fast, xp, a, None if add else g)
        _check_fused(self, a, bad)
        return self._fused_finish(fast, xp, a, sums, need_grad, ((g, add),), direction)

    def _fused_pass1(self, fast, xp, a, into):
        """``(sums, domain counts, direction)``: see ``fast.pointwise_sums``,
        which may write the unscaled gradient into ``into``."""
        w, total = self._mask(xp, a)
        model, meas = a["model_dp"], a["measured_dp"]
        sum_term, sum_d, bad_i, bad_d, direction = fast.pointwise_sums(
            self.kind, model, meas, w, self.dp_pow, getattr(self, "eps", 0.0),
            _model_low(model.dtype), _MEASURED_DP.low, out=into)
        return ({self._sum_key: sum_term, "sum_d": sum_d, "total": total},
                {"model_dp": bad_i, "measured_dp": bad_d}, direction)

    def _fused_sums(self, fast, xp, a):
        sums, bad, _ = self._fused_pass1(fast, xp, a, None)
        return sums, bad

    def _fused_finish(self, fast, xp, a, sums, need_grad, out, direction=False):
        model, total = a["model_dp"], sums["total"]
        mean_d = self._normaliser(np, a, sums["sum_d"], total)
        value, scale = self._value_and_scale(sums[self._sum_key], mean_d, total)
        value = xp.asarray(value, dtype=model.dtype)
        if not need_grad:
            self._check_result(xp, a, value, None)
            return value, None
        g, add = _fast.out_for(model, None if out is None else out[0])
        g, bad = fast.pointwise_grad(self.kind, model, a["measured_dp"], a.get("dp_weight"),
                                     self.dp_pow, getattr(self, "eps", 0.0), scale, g, add,
                                     direction)
        self._check_result(xp, a, value, None, grads_finite=bad == 0)
        return value, (g,)


@register
class LossSingle(_PointwiseTerm):
    """NRMSE between single model and measured patterns, PtyRAD's ``loss_single``.

    Value: ``w * sqrt(mean((I^p - D^p)^2)) / mean(D^p)``.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> I = np.full((2, 4, 4), 4.0); D = np.full((2, 4, 4), 1.0)
    >>> v, g = pl.get("loss_single", dp_pow=0.5).value_and_grad(I, D)
    >>> float(v)
    1.0
    """

    name = "loss_single"
    params = {"weight": _WEIGHT, "dp_pow": Param(0.5, low=0.0, low_open=True, doc="power p")}
    formula = r"L = w \sqrt{\langle (I^p - D^p)^2 \rangle} / \langle D^p \rangle"
    gradient = (r"\partial L/\partial I = w\,(I^p - D^p)\,p I^{p-1} / "
                r"(M \sqrt{\langle (I^p-D^p)^2\rangle}\,\langle D^p\rangle)"
                "; 0 where the residual is exactly 0 (PyTorch: NaN)")
    reference = _PTYRAD

    kind = "single"
    _sum_key = "sum_sq"

    def _local(self, xp, a):
        w = a.get("dp_weight")
        ip, chain = _pow_and_chain(xp, a["model_dp"], self.dp_pow)
        dp = power(xp, a["measured_dp"], self.dp_pow)
        r = ip - dp
        return {"dp": dp, "r": r, "rw": r if w is None else w * r, "chain": chain}

    def _sums(self, xp, a, loc):
        w, total = self._mask(xp, a)
        return {"sum_sq": xp.sum(loc["rw"] * loc["r"]), "sum_d": _wsum(xp, loc["dp"], w),
                "total": total}

    def _finish(self, xp, a, sums, loc, need_grad):
        total = sums["total"]
        rms = xp.sqrt(sums["sum_sq"] / total)
        mean_d = self._normaliser(xp, a, sums["sum_d"], total)
        value = self.weight * rms / mean_d
        if not need_grad:
            return value, None
        # d sqrt(s)/ds is infinite at a perfect fit; 0 is the subgradient.
        scale = xp.where(rms > 0, self.weight / (mean_d * _nonzero(xp, rms) * total), 0.0)
        return value, (loc["chain"](loc["rw"] * scale),)

    def _value_and_scale(self, sum_sq, mean_d, total):
        """Value and gradient scale (with ``p``) from the fused sums, as in the generic path."""
        rms = (sum_sq / total) ** 0.5
        scale = self.weight * self.dp_pow / (mean_d * rms * total) if rms > 0 else 0.0
        return self.weight * rms / mean_d, scale


@register
class LossPoissn(_PointwiseTerm):
    """Poisson negative log-likelihood, PtyRAD's ``loss_poissn``.

    Value: ``-w * mean(D^p log(I^p + eps) - I^p) / mean(D^p)``; ``eps`` only
    inside the log.

    Domain in float32: model values start at the dtype's smallest normal
    number (1.2e-38; PtyRAD's forward model adds 1e-10) and ``mean(D^p)``
    must be at least that too, so that ``1 / I`` and ``1 / mean(D^p)`` are
    finite. The gradient is formed as ``c D^p/(I^p+eps) - c`` times
    ``I^(p-1)``, with the small constant ``c = w p / (M mean(D^p))``
    entering first, so no intermediate overflows where the gradient itself
    fits float32.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> I = np.full((1, 2, 2), 1.0); D = np.full((1, 2, 2), 1.0)
    >>> round(float(pl.get("loss_poissn", eps=0.0).value(I, D)), 6)
    1.0
    """

    name = "loss_poissn"
    params = {
        "weight": _WEIGHT,
        "dp_pow": Param(1.0, low=0.0, low_open=True, doc="power p"),
        "eps": Param(1e-6, low=0.0, doc="added inside the log"),
    }
    formula = r"L = -w \langle D^p \log(I^p + \epsilon) - I^p \rangle / \langle D^p \rangle"
    gradient = (r"\partial L/\partial I = -w\,(D^p/(I^p+\epsilon) - 1)\,p I^{p-1} "
                r"/ (M \langle D^p \rangle)")
    reference = _PTYRAD + "; Odstrcil et al., Opt. Express 26, 3108 (2018)"

    kind = "poissn"
    _sum_key = "nll"

    def _local(self, xp, a):
        ip, chain = _pow_and_chain(xp, a["model_dp"], self.dp_pow)
        return {"ip": ip, "chain": chain, "dp": power(xp, a["measured_dp"], self.dp_pow),
                "shifted": ip + self.eps}

    def _sums(self, xp, a, loc):
        w, total = self._mask(xp, a)
        terms = loc["dp"] * xp.log(loc["shifted"]) - loc["ip"]
        return {"nll": _wsum(xp, terms, w), "sum_d": _wsum(xp, loc["dp"], w), "total": total}

    def _finish(self, xp, a, sums, loc, need_grad):
        w, total = a.get("dp_weight"), sums["total"]
        mean_d = self._normaliser(xp, a, sums["sum_d"], total)
        value = -self.weight * sums["nll"] / (total * mean_d)
        if not need_grad:
            return value, None
        # c - c D^p / (I^p + eps), not c (1 - D^p / (I^p + eps)): the ratio
        # alone overflows float32 for eps = 0 and I near its smallest value.
        c = self.weight / (total * mean_d)
        g = c - c * loc["dp"] / loc["shifted"]
        if w is not None:
            g = w * g
        return value, (loc["chain"](g),)

    def _value_and_scale(self, nll, mean_d, total):
        """Value and gradient scale from the fused sums; the kernel's factor is
        ``D^p/(I^p+eps) - 1``, so the sign and ``p`` go here."""
        return (-self.weight * nll / (total * mean_d),
                -self.weight * self.dp_pow / (total * mean_d))


@register
class LossPacbed(_DataTerm):
    """NRMSE between model and measured PACBED, PtyRAD's ``loss_pacbed``.

    Value: ``w * sqrt(mean_k(((mean_n I)^p - (mean_n D)^p)^2)) / mean(D^p)``;
    the denominator is the mean of the powered individual patterns.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> I = np.full((3, 2, 2), 1.0); D = np.full((3, 2, 2), 1.0)
    >>> float(pl.get("loss_pacbed").value(I, D))
    0.0
    """

    name = "loss_pacbed"
    params = {"weight": Param(0.5, low=0.0, doc="multiplies the term"),
              "dp_pow": Param(0.2, low=0.0, low_open=True, doc="power p")}
    formula = (r"L = w \sqrt{\langle (\bar I^p - \bar D^p)^2 \rangle_k} / \langle D^p \rangle,"
               r"\ \bar I = \langle I \rangle_n")
    gradient = (r"\partial L/\partial I_n = w\,(\bar I^p - \bar D^p)\,p \bar I^{p-1} / "
                r"(N K \sqrt{\cdot}\,\langle D^p\rangle)"
                "; 0 where the residual is exactly 0 (PyTorch: NaN)")
    reference = _PTYRAD

    def _fused_sums(self, fast, xp, a):
        # One fused read of both inputs gives every full-size sum.
        w, total = self._mask(xp, a)
        model, meas = a["model_dp"], a["measured_dp"]
        sum_i, sum_dn, sum_d, bad_i, bad_d = fast.pacbed_sums(
            model, meas, w, self.dp_pow, _model_low(model.dtype), _MEASURED_DP.low)
        return ({"sum_i": sum_i, "sum_dn": sum_dn, "sum_d": sum_d, "n": model.shape[0],
                 "total": total}, {"model_dp": bad_i, "measured_dp": bad_d})

    def _fused_finish(self, fast, xp, a, sums, need_grad, out):
        # The rest works on (Ky, Kx) arrays, as in the generic path; ``fast``
        # takes their powers, so the value alone needs it too.
        model, n, total = a["model_dp"], sums["n"], sums["total"]
        mean_d = xp.asarray(self._normaliser(np, a, sums["sum_d"], total), dtype=model.dtype)
        value, g = self._from_means(xp, a, xp.astype(sums["sum_i"] / n, model.dtype),
                                    xp.astype(sums["sum_dn"] / n, model.dtype), mean_d, n, total,
                                    need_grad, fast.power)
        # Every pattern's gradient is the (Ky, Kx) plane g: checking it is
        # checking the whole gradient.
        self._check_result(xp, a, value, None if g is None else (g,))
        if g is None:
            return value, None
        o, add = _fast.out_for(model, None if out is None else out[0])
        return value, (fast.broadcast_into(g, o, add),)

    def _local(self, xp, a):
        return {}

    def _sums(self, xp, a, loc):
        w, total = self._mask(xp, a)
        model, meas = a["model_dp"], a["measured_dp"]
        return {"sum_i": xp.sum(model, axis=0), "sum_dn": xp.sum(meas, axis=0),
                "sum_d": _wsum(xp, power(xp, meas, self.dp_pow), w),
                "n": model.shape[0], "total": total}

    def _finish(self, xp, a, sums, loc, need_grad):
        n, total = sums["n"], sums["total"]
        mean_d = self._normaliser(xp, a, sums["sum_d"], total)
        value, g = self._from_means(xp, a, sums["sum_i"] / n, sums["sum_dn"] / n, mean_d, n,
                                    total, need_grad)
        if g is None:
            return value, None
        # Every pattern of the shard gets the same gradient.
        model = a["model_dp"]
        return value, (xp.broadcast_to(g, model.shape) + xp.zeros_like(model),)

    def _from_means(self, xp, a, mean_i, mean_dn, mean_d, n, total, need_grad, pw=power):
        """Value and the (Ky, Kx) gradient of one pattern (``None`` without
        ``need_grad``) from the two PACBEDs of all ``n`` patterns; ``pw``
        takes their powers."""
        w = a.get("dp_weight")
        ip, chain = _pow_and_chain(xp, mean_i, self.dp_pow, pw)
        r = ip - pw(xp, mean_dn, self.dp_pow)
        rw = r if w is None else w * r
        rms = xp.sqrt(xp.sum(rw * r) / (total / n))
        value = self.weight * rms / mean_d
        if not need_grad:
            return value, None
        scale = xp.where(rms > 0, self.weight / (mean_d * _nonzero(xp, rms) * total), 0.0)
        return value, chain(rw * scale)


class _ObjectTerm(_ShardedTerm):
    def _occu(self, xp, a):
        return xp.reshape(a["omode_occu"], (1, -1, 1, 1, 1))

    def _count(self, x):
        """Elements of the mean in each mode: everything but the mode axis."""
        return math.prod(x.shape) // x.shape[1]


class _ChannelTerm(_ObjectTerm):
    """loss_tv and loss_simlar: a mean over the elements of one or two object
    channels, whose gradient needs no sum but the element count. Their fused
    kernel, one per channel, takes the value's sum and, where asked, the
    gradient in one pass: ``_fused_channel(fast, a, x, g, add, need_grad,
    count)`` returns ``(sum, non-finite count of x)`` and writes (or adds)
    the gradient of the mean over ``count`` elements into ``g`` (None
    without ``need_grad``); ``_count(x)`` is the shard's element count."""

    _sum_key: ClassVar[str] = ""

    def _evaluate_fused(self, fast, xp, a, need_grad, out):
        """The value's sum and the gradient from one pass over each channel."""
        value, grads, bad = 0.0, [], {}
        for i, arg in enumerate(self.args[:-1]):
            x = a[arg.name]
            g, add = (_fast.out_for(x, None if out is None else out[i]) if need_grad
                      else (None, False))
            count = self._count(x)
            total, bad[arg.name] = self._fused_channel(fast, a, x, g, add, need_grad, count)
            value += self.weight * total / count
            grads.append(g)
        _check_fused(self, a, bad)
        value = xp.asarray(value, dtype=a[self.args[0].name].dtype)
        return value, (tuple(grads) if need_grad else None)

    def _fused_sums(self, fast, xp, a):
        total, bad = 0.0, {}
        for arg in self.args[:-1]:
            x = a[arg.name]
            t, bad[arg.name] = self._fused_channel(fast, a, x, None, False, False, self._count(x))
            total += t
        return {self._sum_key: total, "count": self._count(a[self.args[0].name])}, bad

    def _fused_finish(self, fast, xp, a, sums, need_grad, out):
        value = xp.asarray(self.weight * sums[self._sum_key] / sums["count"],
                           dtype=a[self.args[0].name].dtype)
        if not need_grad:
            return value, None
        # The pass also takes this shard's sum again; the value is the combined one's.
        grads = []
        for i, arg in enumerate(self.args[:-1]):
            x = a[arg.name]
            g, add = _fast.out_for(x, None if out is None else out[i])
            self._fused_channel(fast, a, x, g, add, True, sums["count"])
            grads.append(g)
        return value, tuple(grads)


@register
class LossSparse(_ObjectTerm):
    """L_n sparsity of the object phase, PtyRAD's ``loss_sparse``.

    Value: ``w * sum_o occu_o * (mean_{n,z,y,x} |objp|^n)^(1/n)`` with
    ``n = ln_order``.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> P = np.full((2, 1, 1, 3, 3), -0.5); occ = np.ones(1)
    >>> float(pl.get("loss_sparse", weight=1.0).value(P, occ))
    0.5
    """

    name = "loss_sparse"
    args = (_OBJP, _OCCU)
    params = {"weight": Param(0.1, low=0.0, doc="multiplies the term"),
              "ln_order": Param(1, kind="int", low=1, doc="order n of the L_n norm")}
    param_cases = ({"ln_order": 2}, {"ln_order": 3})
    formula = r"L = w \sum_o c_o \left(\langle |\phi|^n \rangle_{n,z,y,x}\right)^{1/n}"
    gradient = (r"\partial L/\partial \phi = w\,c_o\,m_o^{1/n-1} |\phi|^{n-1}\mathrm{sign}(\phi)"
                r" / M_o,\ m_o = \langle|\phi|^n\rangle"
                "; sign(0) = 0 as in PyTorch; 0 for a mode that is all zeros (PyTorch: NaN for n > 1)")
    reference = _PTYRAD

    def nonsmooth_distance(self, name, arrays):
        return np.abs(arrays[name]) if self.ln_order == 1 else None

    def _local(self, xp, a):
        return {"abs": xp.abs(a["objp_patches"])}

    def _sums(self, xp, a, loc):
        x, n = a["objp_patches"], self.ln_order
        absx = loc["abs"]
        return {"sum_abs": xp.sum(absx if n == 1 else absx**n, axis=(0, 2, 3, 4)),
                "count": self._count(x)}

    def _finish(self, xp, a, sums, loc, need_grad):
        x, occ = a["objp_patches"], a["omode_occu"]
        n, count = self.ln_order, sums["count"]
        m = sums["sum_abs"] / count
        norm = m if n == 1 else m ** (1.0 / n)
        value = self.weight * xp.sum(occ * norm)
        if not need_grad:
            return value, None
        absx = loc.pop("abs")
        if n == 1:
            coef = occ * (self.weight / count)
        else:
            coef = xp.where(m > 0, occ * _nonzero(xp, m) ** (1.0 / n - 1.0), 0.0)
            coef = coef * (self.weight / count)
        # In place on our own temporaries: the gradient is the only full-size
        # array alive at the end (|x| is released first for n = 1).
        if n == 1:
            del absx
            g = xp.sign(x)
        else:
            g = xp.sign(x)
            g *= absx ** (n - 1)
        g *= xp.reshape(coef, (1, -1, 1, 1, 1))
        return value, (g,)

    def _fused_sums(self, fast, xp, a):
        x = a["objp_patches"]
        sums, bad = fast.sparse_sums(x, self.ln_order)
        return {"sum_abs": sums, "count": self._count(x)}, {"objp_patches": bad}

    def _fused_finish(self, fast, xp, a, sums, need_grad, out):
        """The generic formulas on the per-mode sums, in float64 on the host."""
        x = a["objp_patches"]
        occ = np.asarray(a["omode_occu"], dtype=np.float64)
        n, count = self.ln_order, sums["count"]
        m = np.asarray(sums["sum_abs"], dtype=np.float64) / count
        norm = m if n == 1 else m ** (1.0 / n)
        value = xp.asarray(self.weight * np.dot(occ, norm), dtype=x.dtype)
        if not need_grad:
            return value, None
        if n == 1:
            coef = occ * (self.weight / count)
        else:
            coef = np.where(m > 0, occ * np.where(m > 0, m, 1.0) ** (1.0 / n - 1.0), 0.0)
            coef = coef * (self.weight / count)
        g, add = _fast.out_for(x, None if out is None else out[0])
        return value, (fast.sparse_grad(x, n, coef, g, add),)


_OBJ_TYPE = Param("both", kind="choice", choices=("amplitude", "phase", "both"),
                  doc="which object channel(s) the term acts on")


def _obj_args(obj_type):
    chosen = {"amplitude": (_OBJA,), "phase": (_OBJP,), "both": (_OBJA, _OBJP)}[obj_type]
    return chosen + (_OCCU,)


@register
class LossSimlar(_ChannelTerm):
    """Similarity of object modes, PtyRAD's ``loss_simlar``.

    Value: ``w * [T(obja) + T(objp)]`` (by ``obj_type``), ``T(x)`` = mean over
    (n, z, y, x) of the unbiased std over omode of ``occu_o * zoom(blur(x))``.
    Blur: 5-tap Gaussian over (y, x), mirror padding; zoom: area averaging to
    ``floor(size * scale_factor)``. Needs at least 2 object modes.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> A = np.ones((1, 2, 1, 4, 4)); A[:, 1] = 3.0
    >>> loss = pl.get("loss_simlar", obj_type="amplitude", weight=1.0)
    >>> round(float(loss.value(A, np.ones(2))), 6)
    1.414214
    """

    name = "loss_simlar"
    dims_min = {"O": 2}
    sample_dims_min = {"Z": 2, "Y": 3, "X": 3}
    params = {
        "weight": Param(0.1, low=0.0, doc="multiplies the term"),
        "obj_type": _OBJ_TYPE,
        "scale_factor": Param((1.0, 1.0, 1.0), kind="floats", length=3, low=0.0,
                              low_open=True, doc="(zoom_z, zoom_y, zoom_x)"),
        "blur_std": Param(1.0, low=0.0, allow_none=True,
                          doc="std of the lateral Gaussian blur; None or 0 skips it"),
    }
    param_cases = (
        {"obj_type": "amplitude", "blur_std": None},
        {"obj_type": "phase", "scale_factor": (1.0, 0.5, 0.5)},
        {"obj_type": "both", "scale_factor": (0.5, 0.75, 1.0), "blur_std": 0.7},
    )
    formula = (r"L = w [T(A) + T(\phi)],\ T(x) = \langle \mathrm{std}_o(c_o\,"
               r"\mathcal{Z}\mathcal{B} x)\rangle_{n,z,y,x}")
    gradient = (r"\partial T/\partial x = \mathcal{B}^T\mathcal{Z}^T [c_o (u_o - \bar u) / "
                r"((O-1)\,s\,M)]"
                "; exact adjoints of blur and zoom; 0 where the std is 0 (PyTorch: NaN)")
    reference = _PTYRAD

    def _setup(self):
        self.args = _obj_args(self.obj_type)

    def nonsmooth_distance(self, name, arrays):
        # The std over modes is |u0 - u1| / sqrt(2) for two modes: a kink
        # where the modes agree. The smallest std bounds every step.
        x = arrays[name]
        mats = axis_operators(x.shape[2:], self.scale_factor, self.blur_std, self.name)
        u = arrays["omode_occu"].reshape(1, -1, 1, 1, 1) * apply_along(np, x, mats)
        return float(np.min(np.std(u, axis=1)))

    def _local(self, xp, a):
        """Per channel: the operators, deviations from the mode mean, and the std over modes."""
        occ = self._occu(xp, a)
        channels = []
        for arg in self.args[:-1]:
            x = a[arg.name]
            mats = axis_operators(x.shape[2:], self.scale_factor, self.blur_std, self.name)
            u = occ * apply_along(xp, x, mats)
            d = u - xp.mean(u, axis=1, keepdims=True)
            s = xp.sqrt(xp.sum(d * d, axis=1, keepdims=True) / (u.shape[1] - 1))
            channels.append((mats, d, s))
        return {"channels": channels}

    def _sums(self, xp, a, loc):
        sums = [xp.sum(s) for _, _, s in loc["channels"]]
        total = sums[0] if len(sums) == 1 else sums[0] + sums[1]
        return {"sum_std": total, "count": math.prod(loc["channels"][0][2].shape)}

    def _finish(self, xp, a, sums, loc, need_grad):
        count = sums["count"]
        value = self.weight * sums["sum_std"] / count
        if not need_grad:
            return value, None
        occ = self._occu(xp, a)
        grads = []
        for mats, d, s in loc["channels"]:
            scale = self.weight / (count * (d.shape[1] - 1))
            inv = xp.where(s > 0, scale / _nonzero(xp, s), 0.0)
            grads.append(apply_adjoint_along(xp, occ * d * inv, mats))
        return value, tuple(grads)

    _sum_key = "sum_std"

    def _count(self, x):
        """Elements of the std over modes: N times the zoomed grid."""
        mats = axis_operators(x.shape[2:], self.scale_factor, self.blur_std, self.name)
        return x.shape[0] * math.prod(
            x.shape[2 + j] if m is None else m.shape[0] for j, m in enumerate(mats))

    def _fused_channel(self, fast, a, x, g, add, need_grad, count):
        """Banded blur and zoom fused with the std over modes."""
        mats = axis_operators(x.shape[2:], self.scale_factor, self.blur_std, self.name)
        bands = axis_bands(x.shape[2:], self.scale_factor, self.blur_std, self.name)
        return fast.simlar_value_grad(x, a["omode_occu"], bands, mats[0] is not None,
                                      self.weight / (count * (x.shape[1] - 1)), g, need_grad, add)


@register
class LossTV(_ChannelTerm):
    """Isotropic total variation of the object patches (not in PtyRAD).

    Value: ``w * sum_o occu_o * mean_{n,z,y,x}(sqrt(dy^2 + dx^2 + eps^2) - eps)``
    with forward differences ``dy``, ``dx`` over (Ny, Nx) of every slice, zero
    past the last row and column. Isotropic so that it does not favour edges
    along the scan grid; ``eps`` keeps it differentiable where the object is
    flat, so gradient steps stay bounded; ``- eps`` makes a flat object cost 0.
    An ``eps`` whose square underflows the dtype (float32: ``eps < 1e-19``)
    gives a flat patch a zero gradient (its subgradient), not 0/0.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> P = np.zeros((1, 1, 1, 2, 2)); P[..., 0, 0] = 1.0
    >>> round(float(pl.get("loss_tv", obj_type="phase", weight=1.0).value(P, np.ones(1))), 6)
    0.353303
    """

    name = "loss_tv"
    params = {
        "weight": Param(0.1, low=0.0, doc="multiplies the term"),
        "obj_type": Param("phase", kind="choice", choices=("amplitude", "phase", "both"),
                          doc="which object channel(s) the term acts on"),
        "eps": Param(1e-3, low=0.0, low_open=True, doc="smoothing of the magnitude at zero slope"),
    }
    param_cases = ({"obj_type": "both", "eps": 0.1}, {"obj_type": "amplitude"})
    formula = (r"L = w \sum_o c_o \langle \sqrt{(\Delta_y x)^2 + (\Delta_x x)^2 + "
               r"\epsilon^2} - \epsilon \rangle")
    gradient = r"\partial L/\partial x = -w\,c_o\,\mathrm{div}(\nabla x / m) / M,\ m = \sqrt{|\nabla x|^2+\epsilon^2}"
    reference = "Rudin, Osher & Fatemi, Physica D 60, 259 (1992); smoothed as in Vogel & Oman (1996)"

    def _setup(self):
        self.args = _obj_args(self.obj_type)

    def nonsmooth_distance(self, name, arrays):
        # The smoothed magnitude bends on the scale eps where the slope is small.
        return self.eps

    def _local(self, xp, a):
        """Per channel: the forward differences and the smoothed magnitude."""
        channels = []
        for arg in self.args[:-1]:
            x = a[arg.name]
            dy = xp.concat([x[..., 1:, :] - x[..., :-1, :], xp.zeros_like(x[..., :1, :])], axis=-2)
            dx = xp.concat([x[..., 1:] - x[..., :-1], xp.zeros_like(x[..., :1])], axis=-1)
            channels.append((dy, dx, xp.sqrt(dy * dy + dx * dx + self.eps**2)))
        return {"channels": channels}

    def _sums(self, xp, a, loc):
        occ = self._occu(xp, a)
        sums = [xp.sum(occ * (mag - self.eps)) for _, _, mag in loc["channels"]]
        x = a[self.args[0].name]
        return {"sum_tv": sums[0] if len(sums) == 1 else sums[0] + sums[1],
                "count": self._count(x)}

    def _finish(self, xp, a, sums, loc, need_grad):
        count = sums["count"]
        value = self.weight * sums["sum_tv"] / count
        if not need_grad:
            return value, None
        occ = self._occu(xp, a)
        grads = []
        for dy, dx, mag in loc["channels"]:
            # With a tiny eps, eps^2 underflows and a flat patch has
            # mag = 0: its gradient is 0, not 0/0.
            c = xp.where(mag > 0, occ * (self.weight / count) / _nonzero(xp, mag), 0.0)
            qy, qx = c * dy, c * dx
            zy, zx = xp.zeros_like(qy[..., :1, :]), xp.zeros_like(qx[..., :1])
            # Adjoint of the forward difference: q[i-1] - q[i], with the
            # (zero) difference past the edge contributing nothing.
            gy = xp.concat([zy, qy[..., :-1, :]], axis=-2) - xp.concat([qy[..., :-1, :], zy], axis=-2)
            gx = xp.concat([zx, qx[..., :-1]], axis=-1) - xp.concat([qx[..., :-1], zx], axis=-1)
            grads.append(gy + gx)
        return value, tuple(grads)

    _sum_key = "sum_tv"

    def _fused_channel(self, fast, a, x, g, add, need_grad, count):
        # eps^2 is added in the data's precision, as in the generic path.
        eps2 = float(np.asarray(self.eps**2, dtype=x.dtype))
        return fast.tv_value_grad(x, self.eps, eps2, self.weight / count, a["omode_occu"], g, add)
