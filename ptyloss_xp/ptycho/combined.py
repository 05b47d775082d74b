"""``CombinedLoss``: PtyRAD's weighted sum of loss terms, with per-variable gradients."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .._backend import device_of, namespace, real_dtype
from .._registry import loss_class
from .._validate import _is_dask
from .params import TERMS, ResolvedLossParams, resolve_loss_params
from .shards import reread

__all__ = ["CombinedLoss", "CombinedResult", "parse_loss_params", "DEFAULT_LOSS_PARAMS"]

VARIABLES = ("model_dp", "measured_dp", "obja_patches", "objp_patches", "omode_occu", "dp_weight")


@dataclass
class CombinedResult:
    """What :meth:`CombinedLoss.value_and_grad` returns.

    Attributes
    ----------
    total : 0-d array
        Sum of the weighted terms.
    terms : dict
        Term name -> weighted value (0 for switched-off terms), every term of
        the combiner in PtyRAD's order.
    grads : dict
        Variable name (``model_dp``, ``obja_patches``, ``objp_patches``) ->
        summed gradient of ``total``, for each variable an active term reads.
    """

    total: object
    terms: dict = field(default_factory=dict)
    grads: dict = field(default_factory=dict)


def parse_loss_params(source) -> dict:
    """``{term: {"state": bool, **settings}}`` as PtyRAD 1.0 resolves ``source``.

    The ``terms`` of :func:`~ptyloss_xp.ptycho.params.resolve_loss_params`,
    which also says where each setting came from.
    """
    return resolve_loss_params(source).terms


# PtyRAD 1.0's defaults: loss_single alone.
DEFAULT_LOSS_PARAMS = resolve_loss_params().terms


def _value_only(term, loss, arrays):
    return loss.value(**arrays), None


class CombinedLoss:
    """PtyRAD's combined loss with analytic per-variable gradients.

    Parameters
    ----------
    loss_params : mapping, path, ResolvedLossParams or None
        Resolved as PtyRAD 1.0 resolves it (see
        :func:`~ptyloss_xp.ptycho.params.resolve_loss_params`): a ``loss_params``
        block, a whole params dict, or a PtyRAD params file (YAML, JSON,
        TOML). Terms and keys not given take PtyRAD 1.0's defaults; with no
        argument that is ``loss_single`` alone.

    Attributes
    ----------
    resolved : ResolvedLossParams
        Every term's settings and whether each came from the source or is
        PtyRAD's default.
    config : dict
        ``resolved.terms``: ``{term: {"state": bool, **settings}}``.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> rng = np.random.default_rng(0)
    >>> I = rng.uniform(1, 2, (4, 8, 8)); D = rng.uniform(1, 2, (4, 8, 8))
    >>> P = rng.normal(size=(4, 1, 1, 6, 6)); A = np.ones_like(P)
    >>> combo = pl.CombinedLoss({"loss_sparse": {"state": True, "weight": 0.1}})
    >>> res = combo.value_and_grad(model_dp=I, measured_dp=D, obja_patches=A,
    ...                            objp_patches=P, omode_occu=np.ones(1))
    >>> sorted(res.grads)
    ['model_dp', 'objp_patches']
    >>> bool(res.total == res.terms["loss_single"] + res.terms["loss_sparse"])
    True
    >>> [t for t, c in pl.CombinedLoss().config.items() if c["state"]]
    ['loss_single']
    """

    def __init__(self, loss_params=None):
        self.resolved = (loss_params if isinstance(loss_params, ResolvedLossParams)
                         else resolve_loss_params(loss_params))
        self.config = self.resolved.terms
        self.losses = {
            t: loss_class(t)(**{k: v for k, v in c.items() if k != "state"})
            for t, c in self.config.items()
            if c["state"]
        }

    @classmethod
    def from_yaml(cls, path):
        """Build from a PtyRAD params file: YAML, JSON or TOML by its suffix.

        The file holds a bare block, a ``loss_params`` key, or a whole PtyRAD
        params file; the same as ``CombinedLoss(path)``.
        """
        return cls(os.fspath(path))

    def __repr__(self):
        return f"CombinedLoss({', '.join(map(repr, self.losses.values()))})"

    @property
    def wrt(self) -> tuple:
        """Variables the active terms differentiate, in a fixed order."""
        names = {n for loss in self.losses.values() for n in loss.wrt}
        return tuple(v for v in VARIABLES if v in names)

    def describe(self) -> str:
        """Every term's state and settings, each marked ``(file)`` or ``(default)``."""
        return self.resolved.describe()

    def _term_arrays(self, term, loss, arrays):
        """The arrays ``term`` reads, by name; refuses a missing required one."""
        missing = [a.name for a in loss.args if arrays.get(a.name) is None and not a.optional]
        if missing:
            msg = f"CombinedLoss: term {term} is on and needs {', '.join(missing)}, which was not given"
            raise TypeError(msg)
        return {a.name: arrays.get(a.name) for a in loss.args}

    def _collect(self, arrays, evaluate, out=None) -> CombinedResult:
        """Sum ``evaluate(term, loss, term_arrays) -> (value, grad or None)`` over the active terms.

        With ``out`` (a dict by variable) every term's gradient goes into
        ``out`` instead: the first term of a variable writes its array, the
        next ones add to it, so no gradient is allocated per call.
        """
        given = {k: v for k, v in arrays.items() if v is not None}
        xp = namespace(given, "CombinedLoss")
        ref = given.get("model_dp", next(iter(given.values())))
        zero = xp.zeros((), dtype=real_dtype(xp, ref.dtype), device=device_of(ref))
        terms = {t: zero for t in TERMS if t in self.config}
        grads = {}
        total = zero
        for t, loss in self.losses.items():
            kw = self._term_arrays(t, loss, arrays)
            if out is not None:
                add = tuple(name in grads for name in loss.wrt)
                v, _ = loss._value_and_grad((), kw, tuple(out[n] for n in loss.wrt), add)
                grads.update((name, out[name]) for name in loss.wrt)
                g = None
            else:
                v, g = evaluate(t, loss, kw)
            if g is not None:
                g = (g,) if len(loss.wrt) == 1 else g
                for name, gi in zip(loss.wrt, g):
                    grads[name] = gi if name not in grads else grads[name] + gi
            terms[t] = v
            total = total + v
        # NumPy adds two 0-d arrays into a scalar; the contract is a 0-d array.
        return CombinedResult(xp.asarray(total), terms, grads)

    def __call__(self, model_dp, measured_dp, obja_patches=None, objp_patches=None,
                 omode_occu=None, dp_weight=None):
        """``(total, terms)`` like PtyRAD's ``CombinedLoss.forward``."""
        res = self._collect(dict(
            model_dp=model_dp, measured_dp=measured_dp, obja_patches=obja_patches,
            objp_patches=objp_patches, omode_occu=omode_occu, dp_weight=dp_weight), _value_only)
        return res.total, res.terms

    def value(self, **arrays):
        """The total loss as a 0-d array."""
        return self._collect(self._check_names(arrays), _value_only).total

    def value_and_grad(self, out=None, **arrays) -> CombinedResult:
        """Total, weighted terms and per-variable gradients in one pass.

        ``out``, optional: a dict with an array for every name in :attr:`wrt`
        (shaped and typed like that input, sharing no memory with any
        input); the summed gradients are written there and returned in
        ``grads``, so that a solver loop allocates no gradient per call.

        On Dask arrays chunked along the scan positions this builds one graph
        of the two phases of :meth:`partial_sums` and :meth:`finish`: every
        term's few global sums are reduced across the chunks, then each
        gradient chunk is formed from a second read of its own input chunks
        (see ``docs/scaling.md``). Nothing is computed by the call; bad
        input values raise the library's ``ValueError`` when a result is
        computed.
        """
        arrays = self._check_names(arrays)
        dask = any(_is_dask(v) for v in arrays.values())
        if out is not None:
            missing = [n for n in self.wrt if n not in out]
            extra = [n for n in out if n not in self.wrt]
            if missing or extra:
                msg = (f"CombinedLoss: out must have exactly the keys {', '.join(self.wrt)}; "
                       f"missing {missing or 'none'}, not differentiated {extra or 'none'}")
                raise TypeError(msg)
            if dask:
                msg = ("CombinedLoss: out= needs eager arrays; Dask gradients are lazy "
                       "(persist them instead)")
                raise TypeError(msg)
        if dask:
            sums = self.partial_sums(**arrays)
            return self.finish(sums, **reread(arrays, list(sums.values())))
        return self._collect(arrays, lambda t, loss, kw: loss.value_and_grad(**kw), out)

    def partial_sums(self, **arrays) -> dict:
        """Phase 1 for a shard of scan positions: ``{term: partial sums}`` of the active terms.

        The arrays are those of :meth:`value_and_grad` for a subset of scan
        positions (``omode_occu`` and ``dp_weight`` whole). With
        :meth:`combine` and :meth:`finish`, a solver that splits scan
        positions over MPI ranks or GPUs gets the unsharded total and its
        shard's gradients (see ``docs/scaling.md``).

        Examples
        --------
        >>> import numpy as np, ptyloss_xp as pl
        >>> rng = np.random.default_rng(0)
        >>> arrays = dict(model_dp=rng.uniform(1, 2, (5, 4, 4)), measured_dp=rng.uniform(1, 2, (5, 4, 4)),
        ...               objp_patches=rng.normal(size=(5, 1, 1, 3, 3)), omode_occu=np.ones(1))
        >>> def shard(lo, hi):
        ...     return {k: v if k == "omode_occu" else v[lo:hi] for k, v in arrays.items()}
        >>> combo = pl.CombinedLoss({"loss_sparse": {"state": True}})
        >>> sums = combo.combine(combo.partial_sums(**shard(0, 2)), combo.partial_sums(**shard(2, 5)))
        >>> parts = [combo.finish(sums, **shard(0, 2)), combo.finish(sums, **shard(2, 5))]
        >>> whole = combo.value_and_grad(**arrays)
        >>> bool(np.isclose(parts[0].total, whole.total))
        True
        >>> g = np.concatenate([p.grads["model_dp"] for p in parts])
        >>> bool(np.allclose(g, whole.grads["model_dp"]))
        True
        """
        arrays = self._check_names(arrays)
        return {t: loss.partial_sums(**self._term_arrays(t, loss, arrays))
                for t, loss in self.losses.items()}

    def combine(self, *partials) -> dict:
        """Phase 2: the sums over all shards of :meth:`partial_sums` results (by addition)."""
        return {t: loss.combine(*(p[t] for p in partials)) for t, loss in self.losses.items()}

    def finish(self, sums, **arrays) -> CombinedResult:
        """Phase 3: the global total and terms, and this shard's gradients.

        ``sums`` is :meth:`combine`'s result; the arrays are the shard given
        to :meth:`partial_sums`.
        """
        return self._collect(self._check_names(arrays),
                             lambda t, loss, kw: loss.finish(sums[t], **kw))

    @staticmethod
    def _check_names(arrays):
        unknown = [k for k in arrays if k not in VARIABLES]
        if unknown:
            msg = f"CombinedLoss: unknown argument(s) {', '.join(map(repr, unknown))}; valid: {', '.join(VARIABLES)}"
            raise TypeError(msg)
        return arrays
