"""``CombinedLoss``: PtyRAD's weighted sum of loss terms, with per-variable gradients."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources

import yaml

from .._backend import device_of, namespace, real_dtype
from .._registry import loss_class
from .._validate import _is_dask
from .shards import reread

__all__ = ["CombinedLoss", "CombinedResult", "parse_loss_params", "DEFAULT_LOSS_PARAMS"]

DATA_TERMS = ("loss_single", "loss_poissn", "loss_pacbed")
TERMS = DATA_TERMS + ("loss_sparse", "loss_simlar", "loss_tv")
VARIABLES = ("model_dp", "measured_dp", "obja_patches", "objp_patches", "omode_occu", "dp_weight")


def _default_text() -> str:
    return resources.files(__package__).joinpath("default_loss_params.yaml").read_text()


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
    """Resolve a ``loss_params`` block into ``{term: {"state": bool, **params}}``.

    ``source`` is a mapping or a YAML file path: a bare block, a mapping with
    a top-level ``loss_params`` key, or a whole PtyRAD parameter file whose
    other blocks are ignored. Every listed term and key is validated; terms
    not listed are off. At least one data term must be on.
    """
    where = "loss_params"
    if isinstance(source, (str, os.PathLike)):
        where = os.fspath(source)
        try:
            with open(source, encoding="utf-8") as fh:
                source = yaml.safe_load(fh)
        except FileNotFoundError:
            msg = f"loss_params file not found: {where}"
            raise FileNotFoundError(msg) from None
        except yaml.YAMLError as exc:
            msg = f"{where}: not valid YAML for a loss_params block ({exc})".replace("\n", " ")
            raise ValueError(msg) from None
    if not isinstance(source, dict):
        msg = f"{where}: expected a mapping of loss terms, got {type(source).__name__}"
        raise ValueError(msg)
    if "loss_params" in source:
        block = source["loss_params"]
    elif source and all(str(k).startswith("loss_") for k in source):
        block = source
    else:
        msg = (f"{where}: no loss_params block found; expected a top-level 'loss_params' key "
               f"or a mapping of the terms {', '.join(TERMS)}")
        raise ValueError(msg)
    if not isinstance(block, dict):
        msg = f"{where}: loss_params must be a mapping of loss terms, got {type(block).__name__}"
        raise ValueError(msg)
    resolved = {}
    for term, spec in block.items():
        if term not in TERMS:
            msg = f"{where}: unknown loss term {term!r}; valid terms: {', '.join(TERMS)}"
            raise ValueError(msg)
        if not isinstance(spec, dict):
            msg = f"{where}: {term} must be a mapping of its settings, got {spec!r}"
            raise ValueError(msg)
        cls = loss_class(term)
        keys = ("state",) + tuple(cls.params)
        unknown = [k for k in spec if k not in keys]
        if unknown:
            msg = f"{where}: {term}: unknown key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(keys)}"
            raise ValueError(msg)
        if not isinstance(spec.get("state"), bool):
            msg = f"{where}: {term}: 'state' must be true or false, got {spec.get('state')!r}"
            raise ValueError(msg)
        params = {k: v for k, v in spec.items() if k != "state"}
        try:
            built = cls(**params)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from None
        resolved[term] = {"state": spec["state"], **built.config}
    if not any(resolved.get(t, {}).get("state") for t in DATA_TERMS):
        msg = (f"{where}: at least one data-error term ({', '.join(DATA_TERMS)}) must have "
               "state: true")
        raise ValueError(msg)
    return resolved


DEFAULT_LOSS_PARAMS = parse_loss_params(yaml.safe_load(_default_text()))


def _value_only(term, loss, arrays):
    return loss.value(**arrays), None


class CombinedLoss:
    """PtyRAD's combined loss with analytic per-variable gradients.

    Parameters
    ----------
    loss_params : dict, optional
        A ``loss_params`` block (see :func:`parse_loss_params`); PtyRAD's
        default when omitted.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> rng = np.random.default_rng(0)
    >>> I = rng.uniform(1, 2, (4, 8, 8)); D = rng.uniform(1, 2, (4, 8, 8))
    >>> P = rng.normal(size=(4, 1, 1, 6, 6)); A = np.ones_like(P)
    >>> combo = pl.CombinedLoss()
    >>> res = combo.value_and_grad(model_dp=I, measured_dp=D, obja_patches=A,
    ...                            objp_patches=P, omode_occu=np.ones(1))
    >>> sorted(res.grads)
    ['model_dp', 'objp_patches']
    >>> bool(res.total == res.terms["loss_single"] + res.terms["loss_sparse"])
    True
    """

    def __init__(self, loss_params=None):
        self.config = DEFAULT_LOSS_PARAMS if loss_params is None else parse_loss_params(loss_params)
        self.losses = {
            t: loss_class(t)(**{k: v for k, v in c.items() if k != "state"})
            for t, c in self.config.items()
            if c["state"]
        }

    @classmethod
    def from_yaml(cls, path):
        """Build from a YAML file (bare block, ``loss_params:`` key, or a whole PtyRAD file)."""
        return cls(parse_loss_params(os.fspath(path)))

    def __repr__(self):
        return f"CombinedLoss({', '.join(map(repr, self.losses.values()))})"

    @property
    def wrt(self) -> tuple:
        """Variables the active terms differentiate, in a fixed order."""
        names = {n for loss in self.losses.values() for n in loss.wrt}
        return tuple(v for v in VARIABLES if v in names)

    def describe(self) -> str:
        """A table of every term's state and resolved settings."""
        lines = []
        for t in TERMS:
            c = self.config.get(t)
            if c is None:
                lines.append(f"{t:12s}  off  (not listed)")
                continue
            settings = ", ".join(f"{k}={v!r}" for k, v in c.items() if k != "state")
            lines.append(f"{t:12s}  {'on ' if c['state'] else 'off'}  {settings}")
        return "\n".join(lines)

    def _term_arrays(self, term, loss, arrays):
        """The arrays ``term`` reads, by name; refuses a missing required one."""
        missing = [a.name for a in loss.args if arrays.get(a.name) is None and not a.optional]
        if missing:
            msg = f"CombinedLoss: term {term} is on and needs {', '.join(missing)}, which was not given"
            raise TypeError(msg)
        return {a.name: arrays.get(a.name) for a in loss.args}

    def _collect(self, arrays, evaluate) -> CombinedResult:
        """Sum ``evaluate(term, loss, term_arrays) -> (value, grad or None)`` over the active terms."""
        given = {k: v for k, v in arrays.items() if v is not None}
        xp = namespace(given, "CombinedLoss")
        ref = given.get("model_dp", next(iter(given.values())))
        zero = xp.zeros((), dtype=real_dtype(xp, ref.dtype), device=device_of(ref))
        terms = {t: zero for t in TERMS if t in self.config}
        grads = {}
        total = zero
        for t, loss in self.losses.items():
            v, g = evaluate(t, loss, self._term_arrays(t, loss, arrays))
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

    def value_and_grad(self, **arrays) -> CombinedResult:
        """Total, weighted terms and per-variable gradients in one pass.

        On Dask arrays chunked along the scan positions this builds one graph
        of the two phases of :meth:`partial_sums` and :meth:`finish`: every
        term's few global sums are reduced across the chunks, then each
        gradient chunk is formed from a second read of its own input chunks
        (see ``docs/scaling.md``). Nothing is computed by the call; bad
        input values raise the library's ``ValueError`` when a result is
        computed.
        """
        arrays = self._check_names(arrays)
        if any(_is_dask(v) for v in arrays.values()):
            sums = self.partial_sums(**arrays)
            return self.finish(sums, **reread(arrays, list(sums.values())))
        return self._collect(arrays, lambda t, loss, kw: loss.value_and_grad(**kw))

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
        >>> combo = pl.CombinedLoss()
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
