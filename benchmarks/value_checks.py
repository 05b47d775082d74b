"""What the value checks cost: each PtyRAD case of :mod:`cases` with
``check_values(True)`` and ``(False)``, calls alternated in one process.

Usage::

    python benchmarks/value_checks.py                    # 128x256x256:2, 25 pairs
    python benchmarks/value_checks.py --size 64x128x128:2 --pairs 5

Gradients go into arrays allocated once (``out=``), so that page faults of
a fresh gradient do not hide a difference of a few percent; alternating the
two settings call by call, and which one goes first pair by pair, puts both
under the same machine state. The table gives the medians and ``cost`` =
on / off - 1 (issue 12's target: at most 5 %).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import ptyloss_xp as pl

from cases import cases, make_inputs
from run import parse_size


def measure(case, arrays, pairs):
    """Median seconds ``(on, off)`` over ``pairs`` alternated calls, after one warm-up each."""
    a = {n: arrays[n] for n in case.args}
    out = {n: np.empty_like(a[n]) for n in case.wrt}
    times = {True: [], False: []}
    for i in range(pairs + 1):
        # Which setting goes first swaps every pair, so that an effect of the
        # order falls on both.
        for flag in ((True, False) if i % 2 else (False, True)):
            with pl.check_values(flag):
                t0 = time.perf_counter()
                case.library(a, out=out)
                if i:
                    times[flag].append(time.perf_counter() - t0)
    return float(np.median(times[True])), float(np.median(times[False]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=parse_size, default=parse_size("128x256x256:2"),
                        metavar="NxKxK:O", help="problem size (default 128x256x256:2)")
    parser.add_argument("--pairs", type=int, default=25, help="timed on/off pairs per case")
    args = parser.parse_args(argv)
    n, k, omode = args.size
    inputs = make_inputs(n, k, omode)
    arrays = {name: getattr(inputs, name) for name in inputs.__dataclass_fields__}
    print(f"{n} patterns of {k}x{k}, objects ({n}, {omode}, 1, {k}, {k}), float32, out=; "
          f"{args.pairs} alternated pairs")
    print("\n| case | checks on ms | checks off ms | cost |\n|---|---|---|---|")
    for case in cases():
        on, off = measure(case, arrays, args.pairs)
        print(f"| {case.label} | {1e3 * on:.2f} | {1e3 * off:.2f} | {100 * (on / off - 1):+.1f} % |")


if __name__ == "__main__":
    main()
