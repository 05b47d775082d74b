"""Floors of the PtyRAD data terms on this machine: memory passes and float32 math.

Issue 12's targets are ratios to the copy roofline of ``benchmarks/run.py``
(inputs read once and gradients written once, at the bandwidth of a 256 MiB
copy). Some terms cannot reach a given ratio however they are written: this
script measures, in one run and against that same roofline, the loops that
bound them, with no loss arithmetic in them:

- ``stream``: ``G = I - D`` in one pass (read two arrays, write one with
  ordinary stores, which also read the gradient's lines first);
- ``two passes``: the sums of ``I`` and ``D``, then ``G = I - D``: the least
  memory traffic of a term whose gradient needs a global sum first
  (``loss_single``, ``loss_poissn``);
- ``sum D^p``: the float32 power of :mod:`ptyloss_xp.ptycho._float32_math`
  over every measured pixel (``loss_pacbed``'s denominator; ``loss_single``
  and ``loss_poissn`` at ``p`` other than 1 and 1/2 take two per pixel);
- ``sum D log I``: the float32 log over every pixel (``loss_poissn``);

each with every thread and with one (the second vCPU of a shared host does
not always add a core's throughput), then the library's ``value_and_grad``
of the three terms (gradients into ``out=``, value checks off) for
comparison. The roof's copy is NumPy's, on one thread, so a loop on every
thread can read below 1x.

    python benchmarks/floors.py                    # 128 x 256 x 256, float32
    python benchmarks/floors.py --size 32x64x64 --repeats 3

Needs numba (the fast kernels' dependency).
"""

from __future__ import annotations

import argparse
import datetime

import numba
import numpy as np
from numba import njit, prange

import ptyloss_xp as pl
from ptyloss_xp.ptycho._float32_math import log, pow  # noqa: A004

from backends import NumpyBackend
from cases import make_inputs

_FAST = {"cache": True, "error_model": "numpy", "fastmath": {"reassoc"}}
# Sums over blocks of this many float32 terms, then float64, as the kernels do.
_BLOCK = 256


@njit(parallel=True, **_FAST)
def _stream(x2, d2, g2):
    for i in prange(x2.shape[0]):
        x, d, g = x2[i], d2[i], g2[i]
        for k in range(x.shape[0]):
            g[k] = x[k] - d[k]


# What _block_sum adds up: I + D, D^p, D log I.
_PLUS, _POW, _LOG = 0, 1, 2


@njit(parallel=True, **_FAST)
def _block_sum(kind, x2, d2, p):
    """The sum over every pixel of one of the three terms, one loop per term
    (a branch inside the loop would keep it scalar)."""
    rows = np.empty(x2.shape[0])
    for i in prange(x2.shape[0]):
        x, d = x2[i], d2[i]
        t = 0.0
        for k0 in range(0, x.shape[0], _BLOCK):
            k1 = min(k0 + _BLOCK, x.shape[0])
            xb, db = x[k0:k1], d[k0:k1]
            tb = np.float32(0)
            if kind == _PLUS:
                for k in range(k1 - k0):
                    tb += xb[k] + db[k]
            elif kind == _POW:
                for k in range(k1 - k0):
                    tb += pow(db[k], p)
            else:
                for k in range(k1 - k0):
                    tb += db[k] * log(xb[k])
            t += np.float64(tb)
        rows[i] = t
    return rows.sum()


def _threads(n, fn):
    """``fn`` run with ``n`` numba threads."""
    def run():
        before = numba.get_num_threads()
        numba.set_num_threads(n)
        try:
            return fn()
        finally:
            numba.set_num_threads(before)
    return run


def rows(inputs, backend, repeats):
    """``[(label, seconds)]``: the floors, then the library's three terms."""
    model, meas = inputs.model_dp, inputs.measured_dp
    x2, d2 = model.reshape(model.shape[0], -1), meas.reshape(meas.shape[0], -1)
    g = np.empty_like(model)
    g2 = g.reshape(x2.shape)
    p = np.float32(0.2)
    loops = [
        ("stream: G = I - D", lambda: _stream(x2, d2, g2)),
        ("two passes: sums, then G = I - D",
         lambda: (_block_sum(_PLUS, x2, d2, p), _stream(x2, d2, g2))),
        ("sum D^p (float32 pow, p=0.2)", lambda: _block_sum(_POW, x2, d2, p)),
        ("sum D log I (float32 log)", lambda: _block_sum(_LOG, x2, d2, p)),
    ]
    out = []
    for label, fn in loops:
        out.append((label, backend.timed(fn, 2, repeats)))
        if numba.get_num_threads() > 1:
            out.append((label + ", 1 thread", backend.timed(_threads(1, fn), 2, repeats)))
    for name, params in (("loss_single", {"dp_pow": 0.5}), ("loss_poissn", {"dp_pow": 1.0}),
                         ("loss_pacbed", {"dp_pow": 0.2})):
        loss = pl.get(name, **params)
        label = f"library {name} p={params['dp_pow']:g}"
        out.append((label, backend.timed(lambda: loss.value_and_grad(model, meas, out=(g,)),
                                         2, repeats)))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="128x256x256", help="NxKyxKx (default 128x256x256)")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    n, ky, kx = (int(v) for v in args.size.split("x"))
    if ky != kx:
        parser.error(f"--size needs square patterns (Ky == Kx), got {args.size!r}")
    backend = NumpyBackend()
    inputs = make_inputs(n, ky, 1)
    bandwidth = backend.copy_bandwidth(args.repeats)
    roof = 3 * inputs.model_dp.nbytes / bandwidth
    print(f"Run {datetime.datetime.now():%Y-%m-%d %H:%M}, command: "
          f"`python benchmarks/floors.py --size {args.size} --repeats {args.repeats}`")
    print(f"- {numba.get_num_threads()} numba threads; copy bandwidth {bandwidth / 1e9:.1f} GB/s; "
          f"roof (read I and D, write G) {1e3 * roof:.2f} ms\n")
    print("| loop | ms | x roof |\n|---|---|---|")
    with pl.check_values(False):
        for label, seconds in rows(inputs, backend, args.repeats):
            print(f"| {label} | {1e3 * seconds:.3g} | {seconds / roof:.2f} |")


if __name__ == "__main__":
    main()
