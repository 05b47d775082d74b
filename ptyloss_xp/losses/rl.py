"""Reinforcement learning: policy-gradient, value and preference losses.

Conventions:

- A batch holds N transitions (or sequences); per-transition arrays are
  shaped (N,), action scores (N, A) with the A discrete actions on axis 1,
  and actions are integer indices in [0, A). The arrays of one call must
  agree on N.
- Returns, advantages, rewards, targets, reference log-probabilities and
  ``dones`` are data: they get no gradient (the "stop gradient" of autograd
  code is implicit). Each loss states the one or two arrays it
  differentiates, ``wrt``.
- ``dones`` are the terminal flags as floats 0.0 or 1.0 of the data's
  precision (convert boolean flags with ``astype``).
- Every value is a loss to minimise; "mean" (default), "sum" or "none"
  reduce over the batch.
"""

from __future__ import annotations

import numpy as np

from .._registry import Loss, reduce, register
from .._validate import REDUCTION, Arg, Param, require
from .classification import _EXP_LIMIT, _hot, _log_softmax, _sigmoids, _softplus
from .regression import _huber_parts

__all__ = ["Reinforce", "TD0", "DQN", "PPOClip", "DPO"]

_FAMILY = "rl"

_ACTIONS = Arg("actions", ("N",), kind="int", low=0, high="A",
               doc="indices of the actions taken, in [0, A)")
_DONES = Arg("dones", ("N",), kind="choice", values=(0.0, 1.0),
             doc="1.0 where the transition ended the episode (no bootstrap), else 0.0")
_GAMMA = Param(0.99, low=0.0, high=1.0, doc="discount factor in [0, 1]")


def _picked(xp, x, actions):
    """``x[n, actions[n]]`` for (N, A) scores, and the float one-hot that picks it."""
    hot = xp.astype(_hot(xp, actions, x.shape[1]), x.dtype)
    return xp.sum(hot * x, axis=1), hot


# --------------------------------------------------------------------------
# Policy gradient


@register
class Reinforce(Loss):
    """REINFORCE policy-gradient loss from logits, with an optional baseline
    and entropy bonus (Williams 1992).

    Value per transition ``n``, with ``log pi = log_softmax(logits)`` over
    the actions and ``H_n = -sum_a pi log pi`` the policy's entropy::

        loss_n = -(G_n - b_n) * log pi(a_n | s_n) - c * H_n

    ``G`` are the returns (or advantages), ``b`` the baseline (0 if not
    given) and ``c = entropy_coef``. Its gradient is the score-function
    estimate of the negated expected return's gradient: descending it is
    Williams' update. Returns and baseline are constants.

    Gradient with respect to the logits::

        (G_n - b_n) * (pi - onehot(a_n)) + c * pi * (log pi + H_n)

    log-softmax subtracts the row maximum, so logits of +-1e4 give finite
    values and gradients (``pi log pi`` is 0 where ``pi`` underflows).

    Domain: finite logits (N, A); actions (N,) in [0, A); finite returns
    and baseline (N,); ``entropy_coef >= 0``.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> logits = np.zeros((1, 4)); a = np.array([2]); G = np.array([2.0])
    >>> v, g = pl.get("reinforce").value_and_grad(logits, a, G, np.array([1.0]))
    >>> round(float(v), 6), g.tolist()                          # (2 - 1) log 4
    (1.386294, [[0.25, 0.25, -0.75, 0.25]])
    """

    name = "reinforce"
    family = _FAMILY
    args = (Arg("logits", ("N", "A"), grad=True, doc="policy scores of the A actions"),
            _ACTIONS,
            Arg("returns", ("N",), doc="returns G (or advantage estimates) of the actions"),
            Arg("baseline", ("N",), optional=True, doc="baseline b subtracted from the returns"))
    params = {"entropy_coef": Param(0.0, low=0.0, doc="weight c of the entropy bonus"),
              "reduction": REDUCTION}
    param_cases = ({"entropy_coef": 0.1}, {"entropy_coef": 0.5, "reduction": "none"},
                   {"reduction": "sum"})
    formula = (r"\ell_n = -(G_n - b_n) \log \pi(a_n|s_n) - c H_n,\ "
               r"\pi = \mathrm{softmax}(z_n),\ H_n = -\sum_a \pi_a \log \pi_a")
    gradient = (r"\partial \ell_n/\partial z_{na} = (G_n - b_n)(\pi_a - [a = a_n]) + "
                r"c\,\pi_a (\log \pi_a + H_n)")
    reference = ("Williams, Mach. Learn. 8, 229 (1992); Sutton & Barto, Reinforcement "
                 "Learning (2018), section 13.4 (baseline); Mnih et al., ICML (2016) "
                 "(entropy bonus)")

    def _evaluate(self, xp, a, need_grad):
        z = a["logits"]
        adv = a["returns"] if a.get("baseline") is None else a["returns"] - a["baseline"]
        lp = _log_softmax(xp, z)
        lp_a, hot = _picked(xp, lp, a["actions"])
        per = -adv * lp_a
        c = self.entropy_coef
        p = xp.exp(lp) if (need_grad or c) else None
        if c:
            entropy = -xp.sum(p * lp, axis=1)
            per = per - c * entropy
        value, factor = reduce(xp, per, self.reduction)
        if not need_grad:
            return value, None
        g = adv[:, None] * (p - hot)
        if c:
            g = g + c * p * (lp + entropy[:, None])
        return value, (g * factor,)


# --------------------------------------------------------------------------
# Value losses


_LOSS = Param("squared", kind="choice", choices=("squared", "huber"),
              doc='"squared" error (PyTorch\'s mse_loss) or "huber" (huber_loss)')
_DELTA = Param(1.0, low=0.0, low_open=True, doc="Huber threshold (loss='huber')")


class _TDLoss(Loss):
    """A squared or Huber loss of a prediction against a constant target."""

    family = _FAMILY

    def _error(self, xp, r, need_grad):
        """Elementwise loss of the residual ``r`` and its derivative."""
        if self.loss == "huber":
            return _huber_parts(xp, r, self.delta, 1 if need_grad else 0)[:2]
        return r * r, (2.0 * r if need_grad else None)

    def _kink(self, residual):
        if self.loss != "huber":
            return None
        return np.abs(np.abs(residual) - self.delta)


@register
class TD0(_TDLoss):
    """TD(0) value loss: the value against its one-step bootstrapped target.

    Value per transition, with the target treated as a constant (Sutton &
    Barto 2018, semi-gradient TD(0))::

        y_n = r_n + gamma * (1 - done_n) * V(s'_n)
        loss_n = (V(s_n) - y_n)**2            # or Huber(V(s_n) - y_n)

    ``loss="squared"`` is PyTorch's ``mse_loss(values, y.detach())`` (no
    1/2 factor), ``loss="huber"`` its ``huber_loss`` with ``delta``.

    Gradient with respect to ``values`` only: ``2 (V - y)`` or ``clip(V - y,
    -delta, delta)``; ``next_values`` get none, which is what makes it the
    semi-gradient rather than the residual-gradient method.

    Domain: finite arrays of one shape; ``dones`` 0.0 or 1.0; ``gamma`` in
    [0, 1]; ``delta > 0``.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> v = np.array([1.0, 0.5]); r = np.array([0.0, 1.0])
    >>> v_next = np.array([2.0, 9.0]); done = np.array([0.0, 1.0])
    >>> loss, g = pl.get("td0", gamma=0.5).value_and_grad(v, r, v_next, done)
    >>> float(loss), g.tolist()                     # targets 1.0 and 1.0
    (0.125, [0.0, -0.5])
    """

    name = "td0"
    args = (Arg("values", ("*",), grad=True, doc="value estimates V(s) of the states"),
            Arg("rewards", ("*",), doc="rewards r of the transitions"),
            Arg("next_values", ("*",), doc="value estimates V(s') of the next states "
                                           "(a constant target)"),
            Arg("dones", ("*",), kind="choice", values=(0.0, 1.0),
                doc="1.0 where s' is terminal (no bootstrap), else 0.0"))
    params = {"gamma": _GAMMA, "loss": _LOSS, "delta": _DELTA, "reduction": REDUCTION}
    param_cases = ({"loss": "huber", "delta": 0.5}, {"gamma": 0.0, "reduction": "sum"},
                   {"loss": "huber", "reduction": "none"})
    formula = (r"\ell_n = \rho(V(s_n) - y_n),\ y_n = r_n + \gamma (1 - d_n) V(s'_n),\ "
               r"\rho(e) = e^2 \text{ or Huber}_\delta(e)")
    gradient = (r"\partial \ell_n/\partial V(s_n) = \rho'(V(s_n) - y_n);\ "
                r"y_n \text{ constant}")
    reference = ("Sutton, Mach. Learn. 3, 9 (1988); Sutton & Barto, Reinforcement "
                 "Learning (2018), section 9.3 (semi-gradient TD(0)); torch mse_loss / "
                 "huber_loss of values against the detached target")

    def _target(self, a):
        return a["rewards"] + self.gamma * (1.0 - a["dones"]) * a["next_values"]

    def nonsmooth_distance(self, name, arrays):
        return self._kink(arrays["values"] - self._target(arrays))

    def _evaluate(self, xp, a, need_grad):
        loss, d1 = self._error(xp, a["values"] - self._target(a), need_grad)
        value, factor = reduce(xp, loss, self.reduction)
        return value, ((d1 * factor,) if need_grad else None)


@register
class DQN(_TDLoss):
    """DQN loss: Q-values of the actions taken against the target network's
    bootstrapped maximum (Mnih et al. 2015).

    Value per transition::

        y_n = r_n + gamma * (1 - done_n) * max_a' Q_target(s'_n, a')
        loss_n = Huber(Q(s_n, a_n) - y_n)        # or the squared error

    ``Q(s_n, a_n)`` is ``q_values`` gathered at ``actions`` (a masked sum
    over the actions axis); ``next_q_values`` holds ``Q_target(s', .)`` and
    is a constant. The default ``loss="huber"`` with ``delta = 1`` is the
    error clipping of Mnih et al. and PyTorch's DQN tutorial
    (``SmoothL1Loss``); ``"squared"`` is ``mse_loss``.

    Gradient with respect to ``q_values``: ``rho'(Q(s_n, a_n) - y_n)`` at
    the action taken, 0 at the other actions. Double DQN (van Hasselt et al.
    2016) picks ``a'`` with the online network: form ``y`` yourself and use
    ``td0`` with those gathered values.

    Domain: finite Q-values (N, A) of both networks; actions (N,) in [0, A);
    finite rewards and ``dones`` 0.0 or 1.0, (N,); ``gamma`` in [0, 1].

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> q = np.array([[1.0, 2.0], [0.0, 0.5]]); a = np.array([1, 0])
    >>> r = np.array([1.0, 0.0]); q_next = np.array([[0.0, 4.0], [3.0, 1.0]])
    >>> done = np.array([0.0, 1.0])
    >>> loss, g = pl.get("dqn", gamma=0.5).value_and_grad(q, a, r, q_next, done)
    >>> float(loss), g.tolist()                   # targets 3 and 0: errors -1, 0
    (0.25, [[0.0, -0.5], [0.0, 0.0]])
    """

    name = "dqn"
    args = (Arg("q_values", ("N", "A"), grad=True, doc="online network's Q(s, .)"),
            _ACTIONS,
            Arg("rewards", ("N",), doc="rewards r of the transitions"),
            Arg("next_q_values", ("N", "A"), doc="target network's Q(s', .), a constant"),
            _DONES)
    params = {"gamma": _GAMMA, "loss": Param("huber", kind="choice",
                                             choices=("huber", "squared"),
                                             doc=_LOSS.doc),
              "delta": _DELTA, "reduction": REDUCTION}
    param_cases = ({"loss": "squared"}, {"delta": 0.5, "gamma": 0.9, "reduction": "sum"},
                   {"reduction": "none"})
    formula = (r"\ell_n = \rho(Q(s_n, a_n) - y_n),\ y_n = r_n + \gamma (1 - d_n) "
               r"\max_{a'} Q_{\mathrm{target}}(s'_n, a'),\ \rho = \text{Huber}_\delta "
               r"\text{ or } e^2")
    gradient = (r"\partial \ell_n/\partial Q(s_n, a) = \rho'(Q(s_n, a_n) - y_n)\,[a = a_n]")
    reference = ("Mnih et al., Human-level control through deep reinforcement learning, "
                 "Nature 518, 529 (2015); PyTorch's DQN tutorial (SmoothL1Loss = Huber, "
                 "delta 1)")

    def _target(self, a, amax):
        return a["rewards"] + self.gamma * (1.0 - a["dones"]) * amax(a["next_q_values"], axis=1)

    def nonsmooth_distance(self, name, arrays):
        q, act = arrays["q_values"], arrays["actions"]
        residual = q[np.arange(q.shape[0]), act] - self._target(arrays, np.max)
        kink = self._kink(residual)
        if kink is None:
            return None
        # Only the taken action's Q-value moves the loss.
        return np.where(np.arange(q.shape[1]) == act[:, None], kink[:, None], np.inf)

    def _evaluate(self, xp, a, need_grad):
        q_a, hot = _picked(xp, a["q_values"], a["actions"])
        loss, d1 = self._error(xp, q_a - self._target(a, xp.max), need_grad)
        value, factor = reduce(xp, loss, self.reduction)
        if not need_grad:
            return value, None
        return value, (xp.where(hot > 0, (d1 * factor)[:, None], 0.0),)


# --------------------------------------------------------------------------
# Policy optimisation and preferences


@register
class PPOClip(Loss):
    """PPO's clipped surrogate objective, as a loss (Schulman et al. 2017).

    Value per sample, with ``ratio = exp(logp_new - logp_old)`` and ``A``
    the advantages::

        loss_n = -min(ratio_n A_n, clip(ratio_n, 1 - eps, 1 + eps) A_n)

    the negated L^CLIP of the paper, eq. (7). Only the clipped surrogate:
    add a value loss and an entropy bonus yourself.

    Gradient with respect to ``logp_new`` (``logp_old`` and the advantages
    are constants): ``-A ratio`` where the unclipped term is the smaller
    one, 0 where the clipped term is (``ratio > 1 + eps`` with ``A > 0``,
    or ``ratio < 1 - eps`` with ``A < 0``): the clipped branch has zero
    gradient. This is PyTorch's autograd gradient of the same expression
    (inside the clip range both terms are equal and together carry the
    full gradient).

    Domain: finite log-probabilities (or log-densities) of one shape with
    ``|logp_new - logp_old| <= 80``, so that the ratio (at most 5.5e34)
    stays finite in float32 (``ValueError`` naming ``logp_new`` otherwise,
    while value checks are on); finite advantages; ``0 < eps < 1``.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> new = np.log(np.array([0.5, 0.9, 0.1])); old = np.log(np.array([0.25, 0.3, 0.1]))
    >>> adv = np.array([1.0, -1.0, 2.0])                  # ratios 2, 3, 1
    >>> v, g = pl.get("ppo_clip", eps=0.2).value_and_grad(new, old, adv)
    >>> round(float(v), 6), np.round(g, 6).tolist()        # -(1.2 - 3 + 2) / 3
    (-0.066667, [0.0, 1.0, -0.666667])
    """

    name = "ppo_clip"
    family = _FAMILY
    args = (Arg("logp_new", ("*",), grad=True,
                doc="log-probabilities of the actions under the policy being optimised"),
            Arg("logp_old", ("*",), doc="log-probabilities of the same actions under the "
                                        "policy that collected them"),
            Arg("advantages", ("*",), doc="advantage estimates A of the actions"))
    params = {"eps": Param(0.2, low=0.0, high=1.0, low_open=True, high_open=True,
                           doc="clip range: the ratio is clipped to [1 - eps, 1 + eps]"),
              "reduction": REDUCTION}
    param_cases = ({"eps": 0.1, "reduction": "sum"}, {"reduction": "none"})
    formula = (r"\ell_n = -\min\big(\rho_n A_n,\ \mathrm{clip}(\rho_n, 1-\epsilon, 1+\epsilon)"
               r" A_n\big),\ \rho_n = e^{\log\pi_{\mathrm{new}} - \log\pi_{\mathrm{old}}}")
    gradient = (r"\partial \ell_n/\partial \log\pi_{\mathrm{new}} = -A_n \rho_n\ "
                r"\text{unless clipped } (\rho_n > 1+\epsilon, A_n > 0 \text{ or } "
                r"\rho_n < 1-\epsilon, A_n < 0),\ \text{then } 0")
    reference = ("Schulman et al., Proximal Policy Optimization Algorithms, "
                 "arXiv:1707.06347 (2017), eq. (7)")

    def nonsmooth_distance(self, name, arrays):
        d = arrays["logp_new"] - arrays["logp_old"]
        return np.minimum(np.abs(d - np.log1p(self.eps)), np.abs(d - np.log1p(-self.eps)))

    def fix_sample(self, arrays, rng):
        old = arrays["logp_old"]
        return {**arrays, "logp_new": np.clip(arrays["logp_new"], old - _EXP_LIMIT,
                                              old + _EXP_LIMIT)}

    def _evaluate(self, xp, a, need_grad):
        d, adv = a["logp_new"] - a["logp_old"], a["advantages"]
        require(xp, xp.max(xp.abs(d)) <= _EXP_LIMIT,
                f"{self.name}: argument 'logp_new' must stay within {_EXP_LIMIT:g} of "
                f"'logp_old': the ratio exp(logp_new - logp_old) would overflow float32")
        ratio = xp.exp(d)
        eps = self.eps
        clipped = (adv > 0) & (ratio > 1.0 + eps) | (adv < 0) & (ratio < 1.0 - eps)
        surrogate = xp.where(clipped, xp.clip(ratio, 1.0 - eps, 1.0 + eps), ratio) * adv
        value, factor = reduce(xp, -surrogate, self.reduction)
        if not need_grad:
            return value, None
        return value, (xp.where(clipped, 0.0, -adv * ratio) * factor,)


def _logp(name, grad, doc):
    return Arg(name, ("N",), high=0.0, grad=grad, doc=doc)


@register
class DPO(Loss):
    """Direct Preference Optimization loss (Rafailov et al. 2023).

    Value per preference pair, from the four sequence log-probabilities
    (sums over the response tokens) of the chosen (preferred) response
    ``w`` and the rejected one ``l`` under the policy and the frozen
    reference model::

        z_n = beta * ((pi_w - ref_w) - (pi_l - ref_l))
        loss_n = -log sigmoid(z_n) = softplus(-z_n)

    eq. (7) of the paper. With ``label_smoothing = s > 0`` it is the
    conservative DPO of TRL, ``(1 - s) softplus(-z) + s softplus(z)``, for
    preference labels that are flipped with probability ``s``.

    Gradients, with respect to the policy's log-probabilities only (the
    reference's are constants): ``dL/dpi_w = -beta g`` and ``dL/dpi_l =
    beta g`` with ``g = (1 - s) sigmoid(-z) - s sigmoid(z)``; the sigmoids
    are computed without overflow.

    Domain: log-probabilities ``<= 0`` (log-probabilities of discrete
    tokens), all shaped (N,); ``beta > 0``; ``0 <= label_smoothing < 0.5``.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> pw, pl_ = np.array([-10.0]), np.array([-12.0])
    >>> rw, rl = np.array([-11.0]), np.array([-11.0])
    >>> v, (gw, gl) = pl.get("dpo", beta=0.5).value_and_grad(pw, pl_, rw, rl)
    >>> round(float(v), 6), np.round(gw, 6).tolist(), np.round(gl, 6).tolist()  # z = 1
    (0.313262, [-0.134471], [0.134471])
    """

    name = "dpo"
    family = _FAMILY
    args = (_logp("policy_chosen_logps", True, "policy's log-probability of the chosen response"),
            _logp("policy_rejected_logps", True,
                  "policy's log-probability of the rejected response"),
            _logp("reference_chosen_logps", False,
                  "reference model's log-probability of the chosen response"),
            _logp("reference_rejected_logps", False,
                  "reference model's log-probability of the rejected response"))
    params = {"beta": Param(0.1, low=0.0, low_open=True,
                            doc="strength beta of the KL regularisation to the reference"),
              "label_smoothing": Param(0.0, low=0.0, high=0.5, high_open=True,
                                       doc="assumed probability s that a preference label "
                                           "is flipped (conservative DPO)"),
              "reduction": REDUCTION}
    param_cases = ({"beta": 1.0, "label_smoothing": 0.1}, {"reduction": "none"},
                   {"beta": 0.01, "reduction": "sum"})
    formula = (r"\ell_n = (1-s)\,\mathrm{softplus}(-z_n) + s\,\mathrm{softplus}(z_n),\ "
               r"z_n = \beta\big[(\pi_w - \pi^{\mathrm{ref}}_w) - (\pi_l - \pi^{\mathrm{ref}}_l)\big]")
    gradient = (r"\partial \ell_n/\partial \pi_w = -\partial \ell_n/\partial \pi_l = "
                r"-\beta\big((1-s)\sigma(-z_n) - s\,\sigma(z_n)\big)")
    reference = ("Rafailov et al., Direct Preference Optimization, NeurIPS (2023), eq. (7); "
                 "TRL's DPOTrainer loss_type='sigmoid' (label_smoothing: conservative DPO)")

    def _evaluate(self, xp, a, need_grad):
        z = self.beta * ((a["policy_chosen_logps"] - a["reference_chosen_logps"])
                         - (a["policy_rejected_logps"] - a["reference_rejected_logps"]))
        s = self.label_smoothing
        per = _softplus(xp, -z)
        if s:
            per = (1.0 - s) * per + s * _softplus(xp, z)
        value, factor = reduce(xp, per, self.reduction)
        if not need_grad:
            return value, None
        sig, sig_neg = _sigmoids(xp, z)
        g = (1.0 - s) * sig_neg - s * sig
        g = (self.beta * factor) * g
        return value, (-g, g)
