"""Sequence family for benchmarks/catalogue.py: CTC against PyTorch's C++ kernel.

Two cases on the same float32 batch (varied input and target lengths,
labels drawn from the non-blank classes):

- ``ctc`` on log-probabilities against ``torch.nn.functional.ctc_loss``
  forward plus backward on a leaf ``log_probs`` tensor: PyTorch's own C++
  kernel and nothing else. PyTorch's gradient is that of the logits
  (``exp(log_probs) - gamma``); the reference subtracts the input-only term
  ``exp(log_probs)`` (computed before timing) to give the free-variable
  gradient the library returns.
- ``ctc_logits`` on logits against PyTorch's ``log_softmax`` then
  ``ctc_loss``, autograd back to the logits: one training step's loss.
"""

from __future__ import annotations

import numpy as np

import ptyloss_xp as pl

from catalogue import Case


def _batch(t, n, c, s, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(t, n, c)).astype(np.float32)
    targets = rng.integers(1, c, (n, s))
    frames = t - rng.integers(0, t // 10 + 1, n)
    frames[0] = t
    labels = rng.integers(s // 2, s + 1, n)
    labels[0] = s
    return logits, targets, frames, labels


def cases(torch, quick):
    t, n, c, s = (50, 8, 20, 12) if quick else (200, 32, 40, 50)
    logits, targets, frames, labels = _batch(t, n, c, s)
    z = logits - logits.max(axis=2, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=2, keepdims=True))
    size = f"T={t} N={n} C={c} S={s} float32"
    tt, tf, tl = (torch.from_numpy(a) for a in (targets, frames, labels))
    counted = (np.arange(t)[:, None] < frames[None, :]) / (n * np.maximum(labels, 1))
    softmax_term = torch.from_numpy(np.exp(log_probs) * counted[..., None].astype(np.float32))
    free_loss, logit_loss = pl.get("ctc"), pl.get("ctc_logits")

    def lib_free():
        v, g = free_loss.value_and_grad(log_probs, targets, frames, labels)
        return v, {"log_probs": g}

    def ref_free():
        x = torch.from_numpy(log_probs).requires_grad_()
        v = torch.nn.functional.ctc_loss(x, tt, tf, tl)
        (g,) = torch.autograd.grad(v, x)
        return v, {"log_probs": g - softmax_term}

    def lib_logits():
        v, g = logit_loss.value_and_grad(logits, targets, frames, labels)
        return v, {"logits": g}

    def ref_logits():
        x = torch.from_numpy(logits).requires_grad_()
        v = torch.nn.functional.ctc_loss(torch.log_softmax(x, dim=2), tt, tf, tl)
        (g,) = torch.autograd.grad(v, x)
        return v, {"logits": g}

    return [
        Case(f"ctc {size}", lib_free, ref_free, "torch ctc_loss (C++) fwd+bwd", log_probs.nbytes),
        Case(f"ctc_logits {size}", lib_logits, ref_logits,
             "torch log_softmax + ctc_loss fwd+bwd", logits.nbytes),
    ]
