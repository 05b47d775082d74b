"""Time ``value_and_grad`` of the PtyRAD terms against the memory roofline,
PyTorch autograd and a naive transcription.

Usage::

    python benchmarks/run.py                  # default sizes
    python benchmarks/run.py --quick          # one small size, few repeats
    python benchmarks/run.py --sizes 128x256x256:2 512x128x128:4 --markdown out.md

A size ``NxKyxKx:O`` means N patterns of Ky x Kx and object patches of
(N, O, 1, Ky, Kx), all float32. For every backend present (NumPy; CuPy
when a GPU answers) and every case in :mod:`cases`, the table gives:

- ``ms``: median time of the library's ``value_and_grad`` after warm-up,
  with value checks off (``ptyloss_xp.check_values(False)``, a solver's
  inner loop) unless ``--value-checks`` is given;
- ``roof ms``: bytes that must move (inputs read once, gradients written
  once) over the bandwidth of a large copy measured in the same run, and
  ``x roof`` = ms / roof ms;
- ``torch ms`` and ``torch/lib``: PyTorch autograd forward + backward of the
  same formula on the same device (skipped without torch);
- ``naive ms`` and ``naive/lib``: the naive transcription on the same
  namespace;
- ``extra MiB`` (``x in``): peak memory allocated during the call beyond
  its inputs and returned gradients (``tracemalloc`` for NumPy, the memory
  pool for CuPy), and that as a multiple of the largest input.

Then, where PyTorch is installed, the catalogue's rows of
:mod:`catalogue` (CTC against PyTorch's own ``ctc_loss`` kernel, NT-Xent,
SupCon and SSIM against autograd; ``--no-catalogue`` skips them).

Every comparison's value and gradients are checked against the library's
before they are timed; a disagreement stops the run.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys

import numpy as np

import ptyloss_xp as pl

from backends import available
from cases import cases, make_inputs

DEFAULT_SIZES = ("128x256x256:2", "512x128x128:4")
QUICK_SIZES = ("64x128x128:2",)
# Relative L2 distance allowed between float32 gradients of differently
# ordered sums; the check is that every column computes the same formula.
AGREEMENT = 1e-3


def parse_size(text):
    """``"NxKyxKx:O"`` -> ``(N, K, O)``; patterns are square."""
    try:
        dims, omode = text.split(":")
        n, ky, kx = (int(v) for v in dims.split("x"))
        omode = int(omode)
    except ValueError:
        msg = f"size {text!r} is not of the form NxKyxKx:O, e.g. 128x256x256:2"
        raise argparse.ArgumentTypeError(msg) from None
    if ky != kx or ky % 2 or n < 1 or omode < 2:
        msg = (f"size {text!r}: patterns must be square with an even side (the naive zoom "
               "halves it) and O >= 2 (loss_simlar needs 2 modes)")
        raise argparse.ArgumentTypeError(msg)
    return n, ky, omode


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def machine(torch):
    """One line per fact about where the numbers come from."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return [
        f"CPU: {cpu}, {os.cpu_count()} cores",
        f"Python {platform.python_version()}, NumPy {np.__version__}, ptyloss_xp {pl.__version__}",
        (f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads)" if torch
         else "PyTorch: not installed (its columns are empty)"),
    ]


def _grads_dict(case, g):
    if isinstance(g, dict):
        return g
    g = g if isinstance(g, tuple) else (g,)
    return dict(zip(case.wrt, g))


def _host(x):
    """A NumPy copy of a NumPy, CuPy (``.get()``) or PyTorch array."""
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return x.get() if hasattr(x, "get") else np.asarray(x)


def _check(label, what, ref, other):
    """Stop the run unless ``other``'s gradients match the library's ``ref``."""
    for name, r in ref.items():
        r, o = _host(r), _host(other[name])
        # A norm, not the largest element: where loss_simlar's std over two
        # modes is ~0 its gradient flips sign with the last bit of rounding.
        err = float(np.linalg.norm(o - r) / max(float(np.linalg.norm(r)), 1e-30))
        if not err <= AGREEMENT:
            msg = f"{label}: {what} gradient of {name} differs from the library's by {err:.2e}"
            raise SystemExit(msg)


def _torch_call(torch, backend, case, tensors):
    """Forward + backward; returns the gradients as a dict."""
    leaves = {n: (t.detach().requires_grad_() if n in case.wrt else t)
              for n, t in tensors.items()}
    loss = case.torch(torch, leaves)
    loss.backward()
    backend.torch_sync(torch)
    return {n: leaves[n].grad for n in case.wrt}


def bench_case(backend, torch, case, arrays, bandwidth, warmup, repeats, into=False):
    """One row of the table as a dict; with ``into`` the library writes its
    gradients into arrays allocated once (``out=``)."""
    xp = backend.xp
    a = {n: arrays[n] for n in case.args}
    out = {n: xp.empty_like(a[n]) for n in case.wrt} if into else None
    lib = lambda: case.library(a, out=out)  # noqa: E731
    naive = lambda: case.naive(xp, a)[1]  # noqa: E731
    ref = _grads_dict(case, lib())
    _check(case.label, "naive", ref, naive())
    row = {"case": case.label}
    row["ms"] = 1e3 * backend.timed(lib, warmup, repeats)
    row["roof ms"] = 1e3 * case.moved(a) / bandwidth
    row["naive ms"] = 1e3 * backend.timed(naive, warmup, repeats)
    if torch is not None and backend.torch_ok(torch):
        tensors = {n: backend.to_torch(torch, x) for n, x in a.items()}
        run = lambda: _torch_call(torch, backend, case, tensors)  # noqa: E731
        _check(case.label, "PyTorch", ref, run())
        row["torch ms"] = 1e3 * backend.timed(run, warmup, repeats)
    g, peak = backend.peak_extra(lib)
    grads = 0 if into else sum(arrays[n].nbytes for n in case.wrt)
    row["extra MiB"] = (peak - grads) / 2**20
    row["x in"] = (peak - grads) / max(a[n].nbytes for n in case.args)
    del g
    return row


def compile_seconds():
    """Seconds of the first float32 call of every fused term on a tiny problem:
    the numba compile, or the load from its cache."""
    import time

    tiny = make_inputs(2, 8, 2)
    start = time.perf_counter()
    for case in cases():
        case.library({n: getattr(tiny, n) for n in case.args})
    return time.perf_counter() - start


def format_table(rows):
    """Markdown table of the rows (one backend, one size)."""
    head = ["case", "ms", "roof ms", "x roof", "torch ms", "torch/lib", "naive ms",
            "naive/lib", "extra MiB", "x in"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        torch_ms = r.get("torch ms")
        cells = [
            r["case"], f"{r['ms']:.1f}", f"{r['roof ms']:.1f}", f"{r['ms'] / r['roof ms']:.1f}",
            "-" if torch_ms is None else f"{torch_ms:.1f}",
            "-" if torch_ms is None else f"{torch_ms / r['ms']:.1f}",
            f"{r['naive ms']:.1f}", f"{r['naive ms'] / r['ms']:.1f}",
            f"{r['extra MiB']:.1f}", f"{r['x in']:.2f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"sizes {', '.join(QUICK_SIZES)}, 1 warm-up, 3 repeats")
    parser.add_argument("--sizes", nargs="+", type=parse_size, metavar="NxKxK:O",
                        help=f"problem sizes (default {' '.join(DEFAULT_SIZES)})")
    parser.add_argument("--repeats", type=int, help="timed calls per measurement (default 7)")
    parser.add_argument("--cases", nargs="+", metavar="TEXT",
                        help="only the cases whose label contains one of these")
    parser.add_argument("--out", action="store_true",
                        help="the library writes its gradients into arrays allocated once "
                             "(out=), as a solver loop does")
    parser.add_argument("--value-checks", action="store_true",
                        help="time the library with its input value checks on")
    parser.add_argument("--generic-path", action="store_true",
                        help="switch the numba kernels off (PtyRAD terms and CTC): time the "
                             "generic array API kernels on NumPy (the before of a before/after)")
    parser.add_argument("--torch-threads", type=int, metavar="N",
                        help="PyTorch intra-op threads (default: PyTorch's own choice)")
    parser.add_argument("--no-catalogue", action="store_true",
                        help="skip the catalogue rows (CTC, NT-Xent, SupCon, SSIM against "
                             "PyTorch CPU; benchmarks/catalogue.py) that follow the table")
    parser.add_argument("--markdown", metavar="PATH", help="also write the report to PATH")
    args = parser.parse_args(argv)
    sizes = args.sizes or [parse_size(s) for s in (QUICK_SIZES if args.quick else DEFAULT_SIZES)]
    warmup = 1 if args.quick else 2
    repeats = args.repeats or (3 if args.quick else 7)
    chosen = [c for c in cases() if not args.cases or any(t in c.label for t in args.cases)]
    torch = _torch()
    if torch is not None and args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    from ptyloss_xp.ptycho import _fast

    if args.generic_path:
        # The PtyRAD terms dispatch on _fast.kernels and CTC on its module's
        # kernel handle; the generic kernels are the reference the fast
        # paths are tested against.
        from ptyloss_xp.losses import sequence

        _fast.kernels = lambda arrays: None
        sequence._NUMBA = None

    report = [f"Run {datetime.datetime.now():%Y-%m-%d %H:%M}, command: "
              f"`python benchmarks/run.py {' '.join(sys.argv[1:] if argv is None else argv)}`"]
    report += [f"- {fact}" for fact in machine(torch)]
    fused = _fast.kernels({"x": np.zeros(1, np.float32)}) is not None
    report.append(f"- library value checks: {'on' if args.value_checks else 'off'}; "
                  f"fused numba kernels: {'on' if fused else 'off'}; "
                  f"gradients into out=: {'yes' if args.out else 'no'}")
    if fused:
        report.append(f"- first call (numba compile or cache load), every fused term: "
                      f"{compile_seconds():.2f} s")
    report.append(f"- load average at start: {os.getloadavg()[0]:.2f}")
    print("\n".join(report), flush=True)
    with pl.check_values(args.value_checks):
        for backend in available():
            bandwidth = backend.copy_bandwidth(repeats)
            line = (f"\n### {backend.name}: copy bandwidth {bandwidth / 1e9:.1f} GB/s "
                    "(read + write)")
            report.append(line)
            print(line, flush=True)
            for n, k, omode in sizes:
                host = make_inputs(n, k, omode)
                arrays = {name: backend.asarray(x) for name, x in vars(host).items()}
                rows = [bench_case(backend, torch, c, arrays, bandwidth, warmup, repeats,
                                   args.out) for c in chosen]
                text = (f"\n{n} patterns of {k}x{k}, objects ({n}, {omode}, 1, {k}, {k}), "
                        f"float32\n\n{format_table(rows)}")
                report.append(text)
                print(text, flush=True)
    tail = f"\n- load average at end: {os.getloadavg()[0]:.2f}"
    report.append(tail)
    print(tail)
    if torch is not None and not args.no_catalogue:
        import catalogue

        report += catalogue.main((["--quick"] if args.quick else [])
                                 + (["--repeats", str(args.repeats)] if args.repeats else []))
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as fh:
            fh.write("\n".join(report) + "\n")


if __name__ == "__main__":
    main()
