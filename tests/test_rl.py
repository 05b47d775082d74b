"""Reinforcement-learning losses: what the generic contract tests cannot see.

PyTorch autograd of the standard definitions as the reference (float64,
1e-10 relative), logits of +-1e4, the clipped and unclipped PPO branches,
the error messages, and the worked training step of docs/rl.md. (Gradients
against finite differences, dtypes, namespaces and domain edges are
covered for every loss by tests/test_contract.py and tests/test_backends.py.)
"""

import doctest
import pathlib

import numpy as np
import pytest

import ptyloss_xp as pl

from test_generative import _close, _torch_check

RNG = np.random.default_rng(5)
DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"
N, A = 7, 4
LOGITS = RNG.normal(size=(N, A)) * 2
ACTIONS = RNG.integers(0, A, size=N)
RETURNS = RNG.normal(size=N) * 3
BASELINE = RNG.normal(size=N)


def _reduce(per, reduction):
    return {"mean": per.mean(), "sum": per.sum(), "none": per}[reduction]


# --------------------------------------------------------------------------
# REINFORCE


@pytest.mark.parametrize(("entropy_coef", "reduction", "with_baseline"),
                         [(0.0, "mean", False), (0.1, "mean", True), (0.5, "none", True),
                          (0.0, "sum", True)])
def test_reinforce_matches_torch(entropy_coef, reduction, with_baseline):
    arrays = {"logits": LOGITS, "actions": ACTIONS, "returns": RETURNS}
    if with_baseline:
        arrays["baseline"] = BASELINE

    def ref(torch, logits, actions, returns, baseline=None):
        logp = torch.log_softmax(logits, dim=1)
        adv = returns if baseline is None else returns - baseline
        per = -adv * logp.gather(1, actions[:, None])[:, 0]
        per = per - entropy_coef * -(logp.exp() * logp).sum(1)
        return _reduce(per, reduction)

    _torch_check(pl.get("reinforce", entropy_coef=entropy_coef, reduction=reduction),
                 arrays, ref)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_reinforce_logits_of_1e4_stay_finite(dtype):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]], dtype)
    arrays = {"logits": logits, "actions": np.array([1, 2]),
              "returns": np.array([1.0, -2.0], dtype)}
    loss = pl.get("reinforce", entropy_coef=0.3)
    v, g = loss.value_and_grad(**arrays)
    assert v.dtype == dtype and np.isfinite(v) and np.all(np.isfinite(g))
    np.testing.assert_allclose(v, (2e4 - 0.0) / 2, rtol=1e-6)  # -1 * -2e4 and -(-2) * 0
    if dtype == np.float64:
        torch = pytest.importorskip("torch")
        t = torch.tensor(logits, requires_grad=True)
        lp = torch.log_softmax(t, 1)
        per = -torch.tensor(arrays["returns"]) * lp[[0, 1], [1, 2]]
        # torch's p log p at p = 0 is 0 * (-2e4) = 0 as well.
        (per - 0.3 * -(lp.exp() * lp).sum(1)).mean().backward()
        _close(g, t.grad.numpy())


def test_reinforce_bad_inputs_are_named():
    loss = pl.get("reinforce")
    with pytest.raises(ValueError, match=r"^reinforce: argument 'actions' must hold values in \[0, 4\)"):
        loss.value(LOGITS, np.where(ACTIONS == 0, 4, ACTIONS), RETURNS)
    with pytest.raises(ValueError, match=r"^reinforce: argument 'returns' .*dimension N is 7"):
        loss.value(LOGITS, ACTIONS, RETURNS[:5])
    with pytest.raises(TypeError, match=r"^reinforce: argument 'actions' must have an integer dtype"):
        loss.value(LOGITS, ACTIONS.astype(float), RETURNS)
    with pytest.raises(ValueError, match=r"^reinforce: parameter 'entropy_coef' must be a real "
                                         r"number >= 0"):
        pl.get("reinforce", entropy_coef=-0.1)


# --------------------------------------------------------------------------
# TD(0) and DQN

DONES = (RNG.random(N) < 0.3).astype(float)
REWARDS = RNG.normal(size=N)


@pytest.mark.parametrize(("loss", "gamma", "reduction"),
                         [("squared", 0.99, "mean"), ("huber", 0.9, "sum"), ("huber", 0.0, "none")])
def test_td0_matches_torch_with_a_detached_target(loss, gamma, reduction):
    values, next_values = RNG.normal(size=N) * 2, RNG.normal(size=N) * 2

    def ref(torch, values, rewards, next_values, dones):
        target = (rewards + gamma * (1 - dones) * next_values).detach()
        F = torch.nn.functional
        err = (F.mse_loss if loss == "squared" else F.huber_loss)(values, target, reduction="none")
        return _reduce(err, reduction)

    _torch_check(pl.get("td0", loss=loss, gamma=gamma, reduction=reduction),
                 {"values": values, "rewards": REWARDS, "next_values": next_values,
                  "dones": DONES}, ref)


@pytest.mark.parametrize(("loss", "delta", "reduction"),
                         [("huber", 1.0, "mean"), ("squared", 1.0, "sum"), ("huber", 0.3, "none")])
def test_dqn_matches_torch(loss, delta, reduction):
    q, q_next = RNG.normal(size=(N, A)) * 2, RNG.normal(size=(N, A)) * 2
    gamma = 0.9

    def ref(torch, q_values, actions, rewards, next_q_values, dones):
        q_a = q_values.gather(1, actions[:, None])[:, 0]
        target = rewards + gamma * (1 - dones) * next_q_values.max(1).values
        F = torch.nn.functional
        err = (F.huber_loss(q_a, target, reduction="none", delta=delta) if loss == "huber"
               else F.mse_loss(q_a, target, reduction="none"))
        return _reduce(err, reduction)

    _torch_check(pl.get("dqn", loss=loss, delta=delta, gamma=gamma, reduction=reduction),
                 {"q_values": q, "actions": ACTIONS, "rewards": REWARDS, "next_q_values": q_next,
                  "dones": DONES}, ref)


def test_dqn_bad_inputs_are_named():
    q = RNG.normal(size=(N, A))
    loss = pl.get("dqn")
    with pytest.raises(ValueError, match=r"^dqn: argument 'actions' must hold values in \[0, 4\)"):
        loss.value(q, ACTIONS - 1 - ACTIONS.max(), REWARDS, q, DONES)
    with pytest.raises(ValueError, match=r"^dqn: argument 'dones' must hold values in \{0\.0, 1\.0\}"):
        loss.value(q, ACTIONS, REWARDS, q, DONES + 0.5)
    with pytest.raises(ValueError, match=r"^dqn: argument 'next_q_values' .*dimension N is 7"):
        loss.value(q, ACTIONS, REWARDS, q[:3], DONES)
    with pytest.raises(ValueError, match=r"^dqn: parameter 'gamma' must be a real number >= 0 "
                                         r"and <= 1"):
        pl.get("dqn", gamma=1.5)


# --------------------------------------------------------------------------
# PPO


def _torch_ppo(eps, reduction):
    def ref(torch, logp_new, logp_old, advantages):
        ratio = torch.exp(logp_new - logp_old)
        surr = torch.min(ratio * advantages, torch.clamp(ratio, 1 - eps, 1 + eps) * advantages)
        return _reduce(-surr, reduction)
    return ref


@pytest.mark.parametrize(("eps", "reduction"), [(0.2, "mean"), (0.1, "sum"), (0.3, "none")])
def test_ppo_matches_torch_on_both_branches(eps, reduction):
    old = np.log(RNG.uniform(0.05, 1.0, size=40))
    new = old + RNG.normal(size=40) * 0.4  # ratios well inside and outside the clip range
    adv = RNG.normal(size=40)
    d = new - old
    assert np.any(d > np.log1p(eps)) and np.any(d < np.log1p(-eps))
    _torch_check(pl.get("ppo_clip", eps=eps, reduction=reduction),
                 {"logp_new": new, "logp_old": old, "advantages": adv}, _torch_ppo(eps, reduction))


def test_ppo_clipped_branch_has_zero_gradient():
    new, old = np.log(np.array([0.9, 0.1, 0.9, 0.1])), np.log(np.full(4, 0.5))
    adv = np.array([1.0, -1.0, -1.0, 1.0])  # clipped, clipped, unclipped, unclipped
    g = pl.get("ppo_clip", reduction="sum").grad(new, old, adv)
    np.testing.assert_allclose(g, [0.0, 0.0, 1.8, -0.2], rtol=1e-14)


def test_ppo_bad_inputs_are_named():
    x = np.zeros(3)
    with pytest.raises(ValueError, match=r"^ppo_clip: argument 'logp_new' must stay within 80 "
                                         r"of 'logp_old'"):
        pl.get("ppo_clip").value(np.array([0.0, 100.0, 0.0]), x, x)
    with pytest.raises(ValueError, match=r"^ppo_clip: argument 'advantages' must have shape"):
        pl.get("ppo_clip").value(x, x, np.zeros(4))
    for eps in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match=r"^ppo_clip: parameter 'eps' must be a real number "
                                             r"> 0 and < 1"):
            pl.get("ppo_clip", eps=eps)


# --------------------------------------------------------------------------
# DPO

PW, PL_, RW, RL = (-np.abs(RNG.normal(size=N)) * 20 for _ in range(4))


@pytest.mark.parametrize(("beta", "smoothing", "reduction"),
                         [(0.1, 0.0, "mean"), (1.0, 0.1, "sum"), (0.5, 0.0, "none")])
def test_dpo_matches_torch(beta, smoothing, reduction):
    def ref(torch, policy_chosen_logps, policy_rejected_logps, reference_chosen_logps,
            reference_rejected_logps):
        F = torch.nn.functional
        z = beta * ((policy_chosen_logps - reference_chosen_logps)
                    - (policy_rejected_logps - reference_rejected_logps))
        per = -(1 - smoothing) * F.logsigmoid(z) - smoothing * F.logsigmoid(-z)
        return _reduce(per, reduction)

    _torch_check(pl.get("dpo", beta=beta, label_smoothing=smoothing, reduction=reduction),
                 {"policy_chosen_logps": PW, "policy_rejected_logps": PL_,
                  "reference_chosen_logps": RW, "reference_rejected_logps": RL}, ref)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dpo_margins_of_1e4_stay_finite(dtype):
    pw = np.array([0.0, -2e4], dtype)
    pl_ = np.array([-2e4, 0.0], dtype)
    ref = np.zeros(2, dtype)
    v, (gw, gl) = pl.get("dpo", beta=1.0, reduction="none").value_and_grad(pw, pl_, ref, ref)
    np.testing.assert_allclose(v, [0.0, 2e4], rtol=1e-6)
    np.testing.assert_allclose(gw, [0.0, -1.0], rtol=1e-6)
    np.testing.assert_allclose(gl, [0.0, 1.0], rtol=1e-6)


def test_dpo_bad_inputs_are_named():
    loss = pl.get("dpo")
    with pytest.raises(ValueError, match=r"^dpo: argument 'reference_chosen_logps' must be "
                                         r"finite and <= 0"):
        loss.value(PW, PL_, -RW, RL)
    with pytest.raises(ValueError, match=r"^dpo: argument 'policy_rejected_logps' .*dimension N"):
        loss.value(PW, PL_[:3], RW, RL)
    with pytest.raises(ValueError, match=r"^dpo: parameter 'beta' must be a real number > 0"):
        pl.get("dpo", beta=0.0)
    with pytest.raises(ValueError, match=r"^dpo: parameter 'label_smoothing'"):
        pl.get("dpo", label_smoothing=0.5)


# --------------------------------------------------------------------------
# Worked example


def test_docs_worked_training_step_runs():
    result = doctest.testfile(str(DOCS / "rl.md"), module_relative=False,
                              optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
