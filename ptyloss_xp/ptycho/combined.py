"""``CombinedLoss``: PtyRAD's weighted sum of loss terms, with per-variable gradients."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources

import yaml

from .._backend import device_of, namespace, real_dtype
from .._registry import loss_class

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

    def _run(self, arrays, need_grad, out=None):
        given = {k: v for k, v in arrays.items() if v is not None}
        xp = namespace(given)
        ref = given.get("model_dp", next(iter(given.values())))
        zero = xp.zeros((), dtype=real_dtype(xp, ref.dtype), device=device_of(ref))
        terms = {t: zero for t in TERMS if t in self.config}
        grads = {}
        total = zero
        for t, loss in self.losses.items():
            names = [a.name for a in loss.args]
            missing = [n for n in names if arrays.get(n) is None and not
                       next(a for a in loss.args if a.name == n).optional]
            if missing:
                msg = f"CombinedLoss: term {t} is on and needs {', '.join(missing)}, which was not given"
                raise TypeError(msg)
            kw = {n: arrays.get(n) for n in names}
            if need_grad and out is not None:
                # The first term of a variable writes its out array, the
                # next ones add to it: no gradient is allocated per call.
                add = tuple(name in grads for name in loss.wrt)
                v, _ = loss._value_and_grad((), kw, tuple(out[n] for n in loss.wrt), add)
                grads.update((name, out[name]) for name in loss.wrt)
            elif need_grad:
                v, g = loss.value_and_grad(**kw)
                g = (g,) if len(loss.wrt) == 1 else g
                for name, gi in zip(loss.wrt, g):
                    grads[name] = gi if name not in grads else grads[name] + gi
            else:
                v = loss.value(**kw)
            terms[t] = v
            total = total + v
        return total, terms, grads

    def __call__(self, model_dp, measured_dp, obja_patches=None, objp_patches=None,
                 omode_occu=None, dp_weight=None):
        """``(total, terms)`` like PtyRAD's ``CombinedLoss.forward``."""
        total, terms, _ = self._run(dict(
            model_dp=model_dp, measured_dp=measured_dp, obja_patches=obja_patches,
            objp_patches=objp_patches, omode_occu=omode_occu, dp_weight=dp_weight), False)
        return total, terms

    def value(self, **arrays):
        """The total loss as a 0-d array."""
        return self._run(self._check_names(arrays), False)[0]

    def value_and_grad(self, out=None, **arrays) -> CombinedResult:
        """Total, weighted terms and per-variable gradients in one pass.

        ``out``, optional: a dict with an array for every name in :attr:`wrt`
        (shaped and typed like that input, sharing no memory with any
        input); the summed gradients are written there and returned in
        ``grads``, so that a solver loop allocates no gradient per call.
        """
        arrays = self._check_names(arrays)
        if out is not None:
            missing = [n for n in self.wrt if n not in out]
            extra = [n for n in out if n not in self.wrt]
            if missing or extra:
                msg = (f"CombinedLoss: out must have exactly the keys {', '.join(self.wrt)}; "
                       f"missing {missing or 'none'}, not differentiated {extra or 'none'}")
                raise TypeError(msg)
        total, terms, grads = self._run(arrays, True, out)
        return CombinedResult(total, terms, grads)

    @staticmethod
    def _check_names(arrays):
        unknown = [k for k in arrays if k not in VARIABLES]
        if unknown:
            msg = f"CombinedLoss: unknown argument(s) {', '.join(map(repr, unknown))}; valid: {', '.join(VARIABLES)}"
            raise TypeError(msg)
        return arrays
