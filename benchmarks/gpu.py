"""The GPU check: CuPy contract tests and the GPU benchmark in one run.

Usage (on a machine with an NVIDIA GPU, from the repository root)::

    python benchmarks/gpu.py                 # install CuPy if missing, test, time
    python benchmarks/gpu.py --dry-run       # the same steps on the CPU, NumPy standing in

Steps, each bounded in time so the whole run stays well under 10 minutes:

1. install: import CuPy, else ``pip install cupy-cuda12x`` (the ``cupy``
   extra); a machine without network says so and stops;
2. tests: ``pytest tests/test_backends.py tests/test_contract.py -k cupy``
   (the contract on CuPy arrays);
3. benchmark: one table for float32 128x256x256 with object patches of 2
   modes: the HBM copy roofline, the library on CuPy, PyTorch CUDA autograd
   of the same formula, all timed with CUDA events in this one run
   (:mod:`run`'s ``bench_case``, which first checks that every gradient
   agrees).

``--dry-run`` runs the same code on the CPU (NumPy arrays, wall-clock
timing, a tiny size, the test step collecting only) so that CI keeps this
script working before any session has a GPU (``tests/test_gpu_script.py``).
CuPy fused kernels stay off by default until this script has passed on a
GPU.
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

STEP_TIMEOUT_S = 240


def _step(title):
    print(f"\n== {title} ({time.strftime('%H:%M:%S')})", flush=True)


def ensure_cupy(dry_run):
    """The CuPy module, installed if needed; ``None`` in a dry run."""
    if dry_run:
        print("dry run: NumPy stands in for CuPy")
        return None
    try:
        return importlib.import_module("cupy")
    except ImportError:
        pass
    cmd = [sys.executable, "-m", "pip", "install", "cupy-cuda12x>=13"]
    print("installing:", " ".join(cmd), flush=True)
    try:
        subprocess.run(cmd, check=True, timeout=STEP_TIMEOUT_S)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise SystemExit(f"could not install CuPy ({exc}); install cupy-cuda12x and rerun") from None
    importlib.invalidate_caches()
    return importlib.import_module("cupy")


def run_tests(dry_run):
    """The CuPy tests of the contract; ``--collect-only`` in a dry run."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
           "tests/test_backends.py", "tests/test_contract.py", "-k", "cupy"]
    if dry_run:
        cmd.append("--collect-only")
    print(" ".join(cmd), flush=True)
    try:
        done = subprocess.run(cmd, cwd=ROOT, timeout=STEP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return "timed out"
    # 5: nothing collected (a CPU machine deselects every CuPy test).
    return "passed" if done.returncode in (0, 5) else f"FAILED (pytest exit {done.returncode})"


def benchmark(cp, size, repeats):
    """Rows of :func:`run.bench_case` for every case on CuPy (NumPy in a dry run)."""
    from backends import CupyBackend, NumpyBackend
    from cases import cases, make_inputs
    from run import _torch, bench_case, format_table

    backend = NumpyBackend() if cp is None else CupyBackend(cp)
    torch = _torch()
    n, k, omode = size
    host = make_inputs(n, k, omode)
    arrays = {name: backend.asarray(x) for name, x in vars(host).items()}
    bandwidth = backend.copy_bandwidth(repeats)
    rows = [bench_case(backend, torch, c, arrays, bandwidth, 1, repeats) for c in cases()]
    where = "CuPy, CUDA events" if cp is not None else "NumPy (dry run), wall clock"
    device = "CPU"
    if cp is not None:
        props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
        device = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    torch_line = (f"PyTorch {torch.__version__}" if torch is not None else "PyTorch: not installed")
    return (f"{device}; {where}; copy roofline {bandwidth / 1e9:.0f} GB/s (read + write); "
            f"{torch_line}\n{n} patterns of {k}x{k}, objects ({n}, {omode}, 1, {k}, {k}), "
            f"float32\n\n{format_table(rows)}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="run every step on the CPU with NumPy (for CI)")
    parser.add_argument("--skip-tests", action="store_true", help="benchmark only")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    _step("CuPy")
    cp = ensure_cupy(args.dry_run)
    tests = "skipped"
    if not args.skip_tests:
        _step("CuPy contract tests")
        tests = run_tests(args.dry_run)
    _step("benchmark")
    size = (4, 32, 2) if args.dry_run else (128, 256, 2)
    table = benchmark(cp, size, 3 if args.dry_run else 10)
    print(f"\nCuPy tests: {tests}\n{table}\n\ntotal {time.perf_counter() - start:.0f} s", flush=True)
    return 0 if tests in ("passed", "skipped") else 1


if __name__ == "__main__":
    sys.exit(main())
