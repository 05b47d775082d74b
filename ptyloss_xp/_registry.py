"""The loss base class, the registry, and name lookup.

Every loss is a :class:`Loss` subclass decorated with :func:`register`. The
registry is the single list that the combiner, the generic tests, the docs
index and the command line read.
"""

from __future__ import annotations

import math
from typing import ClassVar

import array_api_compat

from ._validate import REDUCTION, check_arrays, deferred_checks

__all__ = ["Loss", "PointwiseLoss", "register", "get", "available", "loss_class", "reduce"]

_REGISTRY: dict[str, type[Loss]] = {}


def register(cls):
    """Class decorator: add a :class:`Loss` subclass to the registry under ``cls.name``."""
    if not cls.name:
        msg = f"{cls.__qualname__} has no name"
        raise TypeError(msg)
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        msg = f"a loss named {cls.name!r} is already registered"
        raise ValueError(msg)
    for p in cls.params:
        if hasattr(Loss, p):
            msg = f"{cls.name}: parameter name {p!r} clashes with a Loss attribute"
            raise TypeError(msg)
    _REGISTRY[cls.name] = cls
    return cls


def available(family: str | None = None) -> tuple:
    """Names of all registered losses, sorted; only one family's if given.

    >>> import ptyloss_xp as pl
    >>> "loss_single" in pl.available("ptycho")
    True
    """
    _load_all()
    if family is not None:
        families = {c.family for c in _REGISTRY.values()}
        if family not in families:
            msg = f"unknown family {family!r}; valid families: {', '.join(sorted(families))}"
            raise ValueError(msg)
    return tuple(sorted(n for n, c in _REGISTRY.items() if family in (None, c.family)))


def loss_class(name: str) -> type[Loss]:
    """The registered class for ``name``."""
    _load_all()
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        msg = f"unknown loss {name!r}; valid names: {', '.join(sorted(_REGISTRY))}"
        raise KeyError(msg) from None


def get(name: str, **params) -> Loss:
    """Build the loss registered as ``name`` with validated ``params``.

    >>> import ptyloss_xp as pl
    >>> pl.get("loss_single", dp_pow=0.5)
    loss_single(weight=1.0, dp_pow=0.5)
    """
    return loss_class(name)(**params)


def _load_all():
    # Importing the families registers their classes; done lazily so that
    # `import ptyloss_xp._registry` itself has no import cycle.
    from . import losses, ptycho  # noqa: F401


def reduce(xp, per_item, reduction: str, count=None):
    """Reduce per-item losses; return ``(value, factor)``.

    ``factor`` is what each per-item gradient must be multiplied by: ``1 /
    count`` for ``"mean"`` (``count`` defaults to the number of items and may
    be an array, e.g. a sum of class weights), 1 otherwise. With ``"none"`` the
    per-item losses are returned and the gradient is that of their sum.
    """
    if reduction == "none":
        return per_item, 1
    total = xp.sum(per_item)
    if reduction == "sum":
        return total, 1
    n = math.prod(per_item.shape) if count is None else count
    return total / n, 1 / n


class Loss:
    """Base class of every loss.

    A subclass declares ``name``, ``family``, ``args`` (a tuple of
    :class:`~ptyloss_xp._validate.Arg`), ``params`` (name -> :class:`Param`),
    and implements :meth:`_evaluate`. Documentation strings ``formula``,
    ``gradient`` and ``reference`` feed the generated catalogue.

    ``param_cases`` lists parameter sets that the generic tests run besides
    the defaults; ``dims_min`` gives minimum sizes of named dimensions;
    ``sample_dims_min`` raises those minima for drawn test inputs only.
    """

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    args: tuple = ()
    params: ClassVar[dict] = {}
    dims_min: ClassVar[dict] = {}
    sample_dims_min: ClassVar[dict] = {}
    param_cases: ClassVar[tuple] = ()
    formula: ClassVar[str] = ""
    gradient: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    # Whether ``_evaluate`` takes ``out=`` (a tuple of ``(array, add)`` in
    # ``wrt`` order) and writes the gradient there itself.
    _fills_out: ClassVar[bool] = False

    def __init__(self, **params):
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            valid = ", ".join(self.params) or "none"
            msg = f"{self.name}: unknown parameter(s) {', '.join(map(repr, unknown))}; valid: {valid}"
            raise TypeError(msg)
        self.config = {}
        for key, spec in self.params.items():
            value = spec.validate(self.name, key, params.get(key, spec.default))
            self.config[key] = value
            setattr(self, key, value)
        self._setup()

    def _setup(self):
        """Hook for checks across parameters and parameter-dependent ``args``."""

    def __repr__(self):
        inner = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{self.name}({inner})"

    @property
    def wrt(self) -> tuple:
        """Names of the arguments the gradient is taken with respect to."""
        return tuple(a.name for a in self.args if a.grad)

    def bind(self, arrays, kw):
        """Match positional and keyword arrays to ``args``; validate them.

        Returns ``(xp, arrays_by_name, dimension_sizes)``.
        """
        names = [a.name for a in self.args]
        if len(arrays) > len(names):
            msg = (f"{self.name}: takes at most {len(names)} arrays "
                   f"({', '.join(map(repr, names))}), got {len(arrays)}")
            raise TypeError(msg)
        bound = dict(zip(names, arrays))
        for k, v in kw.items():
            if k not in names:
                msg = f"{self.name}: unknown argument {k!r}; valid: {', '.join(map(repr, names))}"
                raise TypeError(msg)
            if k in bound:
                msg = f"{self.name}: argument {k!r} given twice"
                raise TypeError(msg)
            bound[k] = v
        xp, sizes = check_arrays(self.name, self.args, bound, self.dims_min, self.config,
                                 values=not self._checks_values_itself(bound))
        return xp, bound, sizes

    def _checks_values_itself(self, arrays) -> bool:
        """Whether ``_evaluate`` checks the input domains itself, in the pass
        that reads the data (a fused fast path), for these arrays; ``bind``
        then checks metadata only. False here."""
        return False

    def value(self, *arrays, **kw):
        """The loss value: a 0-d array (per-item array for ``reduction="none"``)."""
        with deferred_checks() as guard:
            xp, a, _ = self.bind(arrays, kw)
            v, _ = self._evaluate(xp, a, need_grad=False)
            return guard(xp.asarray(v))

    def grad(self, *arrays, out=None, **kw):
        """Gradient of the value with respect to ``wrt``: one array, or a tuple in ``wrt`` order.

        ``out`` as in :meth:`value_and_grad`.
        """
        return self.value_and_grad(*arrays, out=out, **kw)[1]

    def value_and_grad(self, *arrays, out=None, **kw):
        """``(value, grad)``, sharing the work between them.

        ``out``, optional: the array (a tuple in ``wrt`` order when ``wrt``
        has several names) that receives the gradient and is returned as
        it, so that a solver loop allocates no gradient per call. Each must
        have its input's type, shape and dtype, be writable (not JAX), and
        share no memory with any input; the fused NumPy kernels write into
        it directly.
        """
        return self._value_and_grad(arrays, kw, out, add=False)

    def _value_and_grad(self, arrays, kw, out, add):
        """:meth:`value_and_grad`; with ``add`` (a bool, or one per ``wrt``
        name) the gradient is added to ``out`` (the combiner's sum over terms)."""
        with deferred_checks() as guard:
            xp, a, _ = self.bind(arrays, kw)
            outs = None if out is None else self._bind_out(a, out, add)
            if outs is not None and self._fills_out:
                v, g = self._evaluate(xp, a, need_grad=True, out=outs)
            else:
                v, g = self._evaluate(xp, a, need_grad=True)
            if outs is not None:
                g = tuple(_write_into(o, gi, add_i) for (o, add_i), gi in zip(outs, g))
            v, *g = guard((xp.asarray(v),) + tuple(g))
        return v, (g[0] if len(g) == 1 else tuple(g))

    def _bind_out(self, a, out, add):
        """``out`` as a tuple of ``(array, add)`` in ``wrt`` order, checked."""
        wrt = self.wrt
        outs = (out,) if len(wrt) == 1 and not isinstance(out, tuple) else out
        if not isinstance(outs, tuple) or len(outs) != len(wrt):
            msg = (f"{self.name}: out must be {'one array' if len(wrt) == 1 else 'a tuple of'} "
                   f"for {', '.join(map(repr, wrt))}, got {type(out).__name__}")
            raise TypeError(msg)
        for name, o in zip(wrt, outs):
            x = a[name]
            if type(o) is not type(x) or tuple(o.shape) != tuple(x.shape) or o.dtype != x.dtype:
                msg = (f"{self.name}: out for {name!r} must be a {type(x).__name__} of shape "
                       f"{tuple(x.shape)} and dtype {x.dtype}, got {type(o).__name__} of shape "
                       f"{tuple(getattr(o, 'shape', ()))} and dtype {getattr(o, 'dtype', None)}")
                raise TypeError(msg)
            if array_api_compat.is_jax_array(o):
                msg = f"{self.name}: out= needs writable arrays; JAX arrays are immutable"
                raise TypeError(msg)
            others = [y for y in a.values() if y is not None] + [p for p in outs if p is not o]
            if any(_shares_memory(o, y) for y in others):
                msg = (f"{self.name}: out for {name!r} shares memory with an input or another "
                       "out; the inputs are never modified, so give a separate array")
                raise ValueError(msg)
        adds = add if isinstance(add, tuple) else (add,) * len(outs)
        return tuple(zip(outs, adds))

    def nonsmooth_distance(self, name: str, arrays: dict):
        """Distance from each element of argument ``name`` to the nearest
        point where the loss is not smooth (a kink such as ``|x|`` at 0, or
        the width of a smoothing such as TV's ``eps``); ``None`` if smooth.

        ``arrays`` are float64 NumPy copies of the inputs. Finite-difference
        checks keep their steps well inside this distance.
        """
        return None

    def fix_sample(self, arrays: dict, rng):
        """Adjust randomly drawn NumPy test inputs to rules that ``args``
        cannot state (e.g. at least one label not ignored). Identity here."""
        return arrays

    def _evaluate(self, xp, a: dict, need_grad: bool):
        """Return ``(value, grads)``; ``grads`` is a tuple in ``wrt`` order, or
        ``None`` when ``need_grad`` is false."""
        raise NotImplementedError


def _shares_memory(o, x):
    if o is x:
        return True
    if array_api_compat.is_numpy_array(o) and array_api_compat.is_numpy_array(x):
        import numpy as np

        return np.may_share_memory(o, x)
    if array_api_compat.is_cupy_array(o) and array_api_compat.is_cupy_array(x):
        import cupy

        return cupy.may_share_memory(o, x)
    if array_api_compat.is_torch_array(o) and array_api_compat.is_torch_array(x):
        return o.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()
    return False


def _write_into(o, g, add):
    """``o`` holding ``g`` (or ``o + g`` with ``add``); nothing to do when the kernel wrote ``o``."""
    if g is not o:
        o[...] = (o + g) if add else g
    return o


class PointwiseLoss(Loss):
    """A loss that is a reduction of an elementwise function of its inputs.

    Subclasses implement :meth:`_pointwise`, returning the elementwise loss
    and its first and second derivatives with respect to the single
    differentiable argument. They also get :meth:`gradient_hessian`.
    """

    params: ClassVar[dict] = {"reduction": REDUCTION}

    def _pointwise(self, xp, a: dict, order: int):
        """Return ``(loss, d1, d2)``; ``d1`` is ``None`` when ``order < 1``
        and ``d2`` when ``order < 2``."""
        raise NotImplementedError

    def _reduce(self, xp, loss):
        """``(value, gradient factor)``; a loss with its own reductions
        (``kl_div``'s "batchmean") overrides this."""
        return reduce(xp, loss, self.reduction)

    def _evaluate(self, xp, a, need_grad):
        loss, d1, _ = self._pointwise(xp, a, 1 if need_grad else 0)
        value, factor = self._reduce(xp, loss)
        return value, ((d1 * factor,) if need_grad else None)

    def gradient_hessian(self, *arrays, **kw):
        """Gradient and diagonal Hessian of the reduced value with respect to
        the prediction: the ``(grad, hess)`` pair a LightGBM/XGBoost custom
        objective takes (use ``reduction="sum"`` for per-sample values).

        Examples
        --------
        A custom objective for gradient boosting from the registered Huber
        loss:

        >>> import numpy as np, ptyloss_xp as pl
        >>> huber = pl.get("huber", delta=1.0, reduction="sum")
        >>> def objective(preds, labels):      # LightGBM's / XGBoost's signature
        ...     return huber.gradient_hessian(preds, labels)
        >>> g, h = objective(np.array([0.5, 3.0]), np.array([0.0, 0.0]))
        >>> g.tolist(), h.tolist()
        ([0.5, 1.0], [1.0, 0.0])
        """
        with deferred_checks() as guard:
            xp, a, _ = self.bind(arrays, kw)
            loss, d1, d2 = self._pointwise(xp, a, 2)
            _, factor = self._reduce(xp, loss)
            return guard((d1 * factor, d2 * factor))

