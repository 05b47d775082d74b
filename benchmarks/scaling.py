"""Scale-out on dask.distributed: wall time, bytes read and peak memory per worker.

The dataset is generated lazily, chunk by chunk, from a seed (a stand-in for
reading patterns from disk): N float32 model and measured patterns of K x K,
chunked by scan position (and, for the example block's loss_sparse, object
phase patches). Nothing is held in memory before the call. For each worker
count, a fresh LocalCluster of single-threaded worker processes runs
``CombinedLoss.value_and_grad`` with the gradients persisted on the workers,
and the table gives:

- ``s``: wall time from building the graph to the persisted results;
- ``CPU s/worker``: CPU time of the busiest worker process in that span
  (on a shared machine the wall time also counts other users' load);
- ``GB read``: bytes of input chunks produced (each generated chunk counted
  once per read), against the inputs' size;
- ``peak/worker``: the largest rise of a worker's resident memory (VmHWM
  after, against VmRSS before, reset per run), in GB and in units of one
  input array's share per worker (the model patterns split over the
  workers); and that peak less the results the worker keeps (its share of
  the persisted gradients), in chunks of all inputs together.

A second table gives the cost of one chunk in memory (NumPy, no Dask): phase
1 and phase 3 of the sharded API with the fused numba kernels (what an MPI
rank's NumPy shard and a Dask task on a NumPy chunk run) and with the
generic kernels (what other chunks, or an install without numba, get),
generating the chunk, and copying it; docs/scaling.md extrapolates from it.

    python benchmarks/scaling.py                     # 6144 x 256 x 256, 3.2 GB; minutes
    python benchmarks/scaling.py --patterns 256 --size 64 --rows 32    # seconds
    python benchmarks/scaling.py --loss example --value-checks      # with loss_sparse

The worker processes import ``ptyloss_xp`` as the parent does (the installed
package, or ``PYTHONPATH``). The test suite runs it once at a tiny size
(tests/test_sharding.py); the figures in docs/scaling.md come from the
default size.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

import ptyloss_xp as pl
from ptyloss_xp.ptycho import _fast
from ptyloss_xp.ptycho.params import ptyrad_example_loss_params

from backends import NumpyBackend

PATCH = 64  # object patch side: the example block's loss_sparse reads (N, 1, 1, 64, 64)


def make_chunk(seed, low, high, block_info=None):
    """One chunk of seeded uniform float32 values: the same on every read."""
    info = block_info[None]
    rng = np.random.default_rng([seed, info["chunk-location"][0]])
    out = rng.random(info["chunk-shape"], dtype=np.float32)
    out *= high - low
    out += low
    try:  # count the bytes this worker produced
        from distributed import get_worker

        worker = get_worker()
        worker.bytes_read = getattr(worker, "bytes_read", 0) + out.nbytes
    except (ImportError, ValueError):  # not on a worker
        pass
    return out


def _bytes_read(dask_worker, reset=False):
    read = getattr(dask_worker, "bytes_read", 0)
    if reset:
        dask_worker.bytes_read = 0
    return read


INPUTS = {  # name: (seed, low, high, trailing shape given K)
    "model_dp": (1, 0.5, 2.0, lambda k: (k, k)),
    "measured_dp": (2, 0.0, 2.0, lambda k: (k, k)),
    "objp_patches": (3, -1.0, 1.0, lambda k: (1, 1, PATCH, PATCH)),
}


def lazy_inputs(n, k, rows, names):
    import dask.array as da

    arrays = {}
    for name in names:
        seed, low, high, tail = INPUTS[name]
        shape = (n,) + tail(k)
        chunks = (tuple(min(rows, n - s) for s in range(0, n, rows)),) + tuple((d,) for d in shape[1:])
        arrays[name] = da.map_blocks(make_chunk, seed, low, high, dtype=np.float32, chunks=chunks,
                                     meta=np.empty((0,) * len(shape), np.float32),
                                     name=f"read-{name}")
    if "objp_patches" in names:
        arrays["omode_occu"] = da.ones(1, dtype=np.float32)
    return arrays


def _worker_memory(reset):
    """(VmRSS, VmHWM, CPU seconds) of this process; ``reset`` first resets VmHWM (Linux)."""
    if reset:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return tuple(int(status[k].split()[0]) * 1024 for k in ("VmRSS", "VmHWM")) + (
        usage.ru_utime + usage.ru_stime,)


def _held(dask_worker):
    """Bytes of results this worker keeps."""
    return dask_worker.state.nbytes


def run_cluster(combo, names, n, k, rows, workers):
    from dask.distributed import Client, LocalCluster, wait

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit=0,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        # Warm-up on a few chunks: imports and caches on every worker.
        warm = lazy_inputs(2 * rows * workers, k, rows, names)
        wait(client.persist(list(combo.value_and_grad(**warm).grads.values())))
        client.run(_bytes_read, reset=True)
        before = client.run(_worker_memory, True)
        t0 = time.perf_counter()
        arrays = lazy_inputs(n, k, rows, names)
        res = combo.value_and_grad(**arrays)
        total, *grads = client.persist([res.total] + list(res.grads.values()))
        wait([total] + grads)
        value = float(total.compute())
        seconds = time.perf_counter() - t0
        after = client.run(_worker_memory, False)
        held = client.run(_held)
        rises = {w: after[w][1] - before[w][0] for w in after}
        cpu = max(after[w][2] - before[w][2] for w in after)
        worst = max(rises, key=rises.get)
        read = sum(client.run(_bytes_read).values())
        holders = {w for g in grads for addrs in client.who_has(g).values() for w in addrs}
    inputs = sum(arrays[name].nbytes for name in names)
    share = arrays["model_dp"].nbytes / workers
    chunk = sum(arrays[name].nbytes / arrays[name].numblocks[0] for name in names)
    peak = rises[worst]
    return {"workers": workers, "s": seconds, "cpu": cpu, "read": read, "inputs": inputs, "peak": peak,
            "peak_share": peak / share, "above": (peak - held[worst]) / chunk,
            "holders": len(holders), "value": value}


def chunk_costs(combo, names, k, rows, repeats=3):
    """Median seconds of phase 1 + phase 3 on one in-memory chunk (fused and
    generic kernels), of generating it, and of copying it (one read and one
    write: the memory roofline)."""
    info = {None: {"chunk-location": (0,), "chunk-shape": None}}

    def generate():
        out = {}
        for name in names:
            seed, low, high, tail = INPUTS[name]
            info[None]["chunk-shape"] = (rows,) + tail(k)
            out[name] = make_chunk(seed, low, high, block_info=info)
        return out

    chunk = generate()
    occu = np.ones(1, np.float32)

    def phases():
        sums = combo.partial_sums(**chunk, omode_occu=occu)
        return combo.finish(sums, **chunk, omode_occu=occu)

    def generic_phases():
        fused = _fast.kernels
        _fast.kernels = lambda arrays: None
        try:
            return phases()
        finally:
            _fast.kernels = fused

    copies = {name: np.empty_like(v) for name, v in chunk.items()}

    def copy():
        for name, v in chunk.items():
            np.copyto(copies[name], v)

    timed = NumpyBackend().timed
    out = {label: timed(fn, 1, repeats) for label, fn in (
        ("copy (memory roofline)", copy), ("generate", generate),
        ("phase 1 + 3, fused kernels (NumPy)", phases),
        ("phase 1 + 3, generic kernels", generic_phases))}
    return out, sum(v.nbytes for v in chunk.values())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patterns", type=int, default=6144, help="N scan positions")
    parser.add_argument("--size", type=int, default=256, help="K: patterns are K x K")
    parser.add_argument("--rows", type=int, default=128, help="scan positions per chunk")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--loss", choices=("default", "example"), default="default",
                        help="CombinedLoss() (PtyRAD 1.0's default: loss_single alone), or "
                             "PtyRAD's documented example block (loss_single and loss_sparse)")
    parser.add_argument("--value-checks", action="store_true",
                        help="keep the library's input value checks on (off in a solver's loop)")
    args = parser.parse_args(argv)

    combo = pl.CombinedLoss(ptyrad_example_loss_params() if args.loss == "example" else None)
    read = {a.name for loss in combo.losses.values() for a in loss.args}
    names = tuple(name for name in INPUTS if name in read)
    gb = 1e9
    n, k, rows = args.patterns, args.size, args.rows
    data_gb = sum(n * (k * k if nm != "objp_patches" else PATCH * PATCH) * 4 for nm in names) / gb
    print(f"# {args.loss}: {n} x {k} x {k} float32, {rows} patterns per chunk, "
          f"inputs {data_gb:.2f} GB, value checks {'on' if args.value_checks else 'off'}\n")
    print("| workers | s | CPU s/worker | GB read | read / inputs | peak/worker GB | peak / input share "
          "| peak above results, chunks | gradient on workers |")
    print("|---|---|---|---|---|---|---|---|---|")
    with pl.check_values(args.value_checks):
        for w in args.workers:
            r = run_cluster(combo, names, n, k, rows, w)
            print(f"| {w} | {r['s']:.1f} | {r['cpu']:.1f} | {r['read'] / gb:.2f} | {r['read'] / r['inputs']:.2f} "
                  f"| {r['peak'] / gb:.2f} | {r['peak_share']:.2f} | {r['above']:.1f} "
                  f"| {r['holders']} |", flush=True)
        costs, chunk_bytes = chunk_costs(combo, names, k, rows)
    print(f"\none chunk in memory ({chunk_bytes / 2**20:.0f} MiB of inputs), NumPy, median of 3:\n")
    print("| step | ms | GB/s of inputs |")
    print("|---|---|---|")
    for label, s in costs.items():
        print(f"| {label} | {s * 1e3:.1f} | {chunk_bytes / s / gb:.2f} |")


if __name__ == "__main__":
    main()
