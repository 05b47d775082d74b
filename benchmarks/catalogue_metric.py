"""Metric-learning cases for ``benchmarks/catalogue.py``: the batch losses
NT-Xent and SupCon on N = 1024 embeddings of D = 128 (float32).

References, forward plus backward on the CPU:

- PyTorch autograd of the loss written as matrix operations (normalise,
  ``z @ z.T``, masked ``logsumexp``): the fastest way to write it in PyTorch;
- for SupCon also pytorch-metric-learning's ``SupConLoss`` (autograd). Its
  ``NTXentLoss`` is left out: it builds a (positive pairs) x (negative
  pairs) mask, 1024 x 1046528 here (4 GiB in float32).

NT-Xent gets SimCLR's batch (two views of 512 images, labels ``[0..511,
0..511]``); SupCon 1024 samples of 64 classes.
"""

from __future__ import annotations

import numpy as np

import ptyloss_xp as pl

from catalogue import Case


def _embeddings(n, d, seed):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def _torch_masks(torch, labels):
    y = torch.from_numpy(labels)
    same = y[:, None] == y[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool)
    return same & ~eye, ~same, ~eye


def _nt_xent_torch(torch, x, labels, temperature):
    pos, neg, _ = _torch_masks(torch, labels)
    f = torch.nn.functional

    def run():
        t = torch.from_numpy(x).requires_grad_(True)
        z = f.normalize(t, dim=1)
        s = z @ z.T / temperature
        neg_lse = torch.logsumexp(s.masked_fill(~neg, -torch.inf), dim=1, keepdim=True)
        loss = f.softplus(neg_lse - s)[pos].mean()
        loss.backward()
        return loss, {"embeddings": t.grad}

    return run


def _supcon_torch(torch, x, labels, temperature):
    pos, _, off = _torch_masks(torch, labels)
    posf = pos.to(torch.float32)
    count = posf.sum(1)
    anchors = count > 0

    def run():
        t = torch.from_numpy(x).requires_grad_(True)
        z = torch.nn.functional.normalize(t, dim=1)
        s = z @ z.T / temperature
        lse = torch.logsumexp(s.masked_fill(~off, -torch.inf), dim=1, keepdim=True)
        per = -((s - lse) * posf).sum(1) / count.clamp_min(1)
        loss = per[anchors].mean()
        loss.backward()
        return loss, {"embeddings": t.grad}

    return run


def _supcon_pml(torch, x, labels, temperature):
    try:
        from pytorch_metric_learning.losses import SupConLoss
    except ImportError:
        return None
    loss_fn = SupConLoss(temperature=temperature)
    y = torch.from_numpy(labels)

    def run():
        t = torch.from_numpy(x).requires_grad_(True)
        loss = loss_fn(t, y)
        loss.backward()
        return loss, {"embeddings": t.grad}

    return run


def _library(loss, x, labels):
    def run():
        v, g = loss.value_and_grad(x, labels)
        return v, {"embeddings": g}

    return run


def cases(torch, quick):
    n, d = (256, 64) if quick else (1024, 128)
    out = []
    x = _embeddings(n, d, seed=0)
    views = np.concatenate([np.arange(n // 2), np.arange(n // 2)]).astype(np.int64)
    nt = pl.get("nt_xent", temperature=0.1)
    out.append(Case(f"nt_xent N={n} D={d}", _library(nt, x, views),
                    _nt_xent_torch(torch, x, views, 0.1), "torch autograd", x.nbytes))
    classes = np.random.default_rng(1).integers(0, 64, size=n).astype(np.int64)
    sc = pl.get("supcon", temperature=0.1)
    out.append(Case(f"supcon N={n} D={d}", _library(sc, x, classes),
                    _supcon_torch(torch, x, classes, 0.1), "torch autograd", x.nbytes))
    pml = _supcon_pml(torch, x, classes, 0.1)
    if pml is not None:
        out.append(Case(f"supcon N={n} D={d}", _library(sc, x, classes), pml,
                        "pytorch-metric-learning SupConLoss", x.nbytes))
    return out
