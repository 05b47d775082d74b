"""Time the catalogue's heavier losses against their PyTorch counterparts.

Usage::

    python benchmarks/catalogue.py                 # every family module
    python benchmarks/catalogue.py --quick         # small sizes, few repeats
    python benchmarks/catalogue.py --families sequence metric --markdown out.md

Each family with heavy losses has a module ``benchmarks/catalogue_<family>.py``
with a function ``cases(torch, quick)`` returning a list of :class:`Case`.
For every case the table gives:

- ``ms``: median time of the library's ``value_and_grad`` (NumPy, value
  checks off as in a training loop);
- ``ref ms`` and ``ref/lib``: the PyTorch reference on the CPU, forward plus
  backward (autograd, or PyTorch's own kernel where it has one), and how many
  times slower than the library it is;
- ``extra MiB`` (``x in``): peak NumPy allocation during the library call
  beyond its returned gradients (``tracemalloc``), and that as a multiple of
  the largest input.

The reference's value and gradients are checked against the library's before
anything is timed; a disagreement stops the run.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import pkgutil
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np

import ptyloss_xp as pl

from backends import NumpyBackend
from run import machine

# Relative L2 distance allowed between the float32 results of differently
# ordered computations; the check is that both sides compute the same thing.
AGREEMENT = 1e-3


@dataclass
class Case:
    """One benchmarked loss call.

    ``library()`` and ``reference()`` take no arguments and return
    ``(value, grads)``, ``grads`` a dict name -> array (NumPy for the library,
    NumPy or torch tensors for the reference); the inputs are made before,
    outside the timed calls. ``input_bytes`` is the size of the largest input.
    """

    label: str
    library: Callable
    reference: Callable
    reference_name: str
    input_bytes: int


def _host(x):
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _rel(a, b):
    a, b = _host(a).astype(np.float64), _host(b).astype(np.float64)
    return float(np.linalg.norm(a - b) / max(float(np.linalg.norm(b)), 1e-30))


def check(case):
    """Stop the run unless the reference computes the library's numbers."""
    v, g = case.library()
    rv, rg = case.reference()
    errs = {"value": _rel(rv, v)}
    errs.update({n: _rel(rg[n], g[n]) for n in g})
    bad = {k: e for k, e in errs.items() if not e <= AGREEMENT}
    if bad:
        msg = f"{case.label}: the reference differs from the library: {bad}"
        raise SystemExit(msg)
    return g


def bench(case, backend, warmup, repeats):
    g = check(case)
    row = {"case": case.label, "reference": case.reference_name}
    row["ms"] = 1e3 * backend.timed(case.library, warmup, repeats)
    row["ref ms"] = 1e3 * backend.timed(case.reference, warmup, repeats)
    _, peak = backend.peak_extra(case.library)
    out = sum(np.asarray(x).nbytes for x in g.values())
    row["extra MiB"] = (peak - out) / 2**20
    row["x in"] = (peak - out) / case.input_bytes
    return row


def format_table(rows):
    head = ["case", "ms", "ref ms", "ref/lib", "extra MiB", "x in", "reference"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["case"], f"{r['ms']:.1f}", f"{r['ref ms']:.1f}",
                 f"{r['ref ms'] / r['ms']:.2f}", f"{r['extra MiB']:.1f}", f"{r['x in']:.2f}",
                 r["reference"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def families():
    here = os.path.dirname(os.path.abspath(__file__))
    return sorted(m.name[len("catalogue_"):] for m in pkgutil.iter_modules([here])
                  if m.name.startswith("catalogue_"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 warm-up, 3 repeats")
    parser.add_argument("--families", nargs="+", choices=families(), metavar="FAMILY",
                        help=f"only these ({', '.join(families())})")
    parser.add_argument("--repeats", type=int, help="timed calls per measurement (default 7)")
    parser.add_argument("--markdown", metavar="PATH", help="also write the report to PATH")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        raise SystemExit("the catalogue benchmark compares with PyTorch: pip install torch") from None
    warmup, repeats = (1, args.repeats or 3) if args.quick else (2, args.repeats or 7)
    report = [f"Run {datetime.datetime.now():%Y-%m-%d %H:%M}, command: "
              f"`python benchmarks/catalogue.py {' '.join(sys.argv[1:] if argv is None else argv)}`"]
    report += [f"- {fact}" for fact in machine(torch)]
    report.append(f"- load average at start: {os.getloadavg()[0]:.2f}")
    print("\n".join(report), flush=True)
    backend = NumpyBackend()
    with pl.check_values(False):
        for family in args.families or families():
            module = importlib.import_module(f"catalogue_{family}")
            rows = [bench(c, backend, warmup, repeats) for c in module.cases(torch, args.quick)]
            text = f"\n### {family}\n\n{format_table(rows)}"
            report.append(text)
            print(text, flush=True)
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as fh:
            fh.write("\n".join(report) + "\n")
    return report


if __name__ == "__main__":
    main()
