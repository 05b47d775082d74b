"""PtyRAD's combined loss over scan positions split across MPI ranks.

Run with ``mpiexec -n 2 python examples/mpi_shards.py`` (any number of
ranks). Each rank holds only its shard of the diffraction patterns and
object patches; the ranks exchange the few partial sums of each term and
nothing else, then each forms the gradient of its own scan positions. Rank 0
checks the result against the unsharded call on the whole dataset, which
this small example can afford to build.

This is the data-parallel layout of PtyPy and tike (scan positions over MPI
ranks); see docs/scaling.md.
"""

import numpy as np
from mpi4py import MPI

import ptyloss_xp as pl


def whole_dataset(n=37, k=16, omode=2):
    """The same arrays on every rank (a seeded stand-in for a file of patterns)."""
    rng = np.random.default_rng(0)
    return {
        "model_dp": rng.uniform(0.5, 2.0, (n, k, k)),
        "measured_dp": rng.poisson(1.5, (n, k, k)).astype(float),
        "obja_patches": rng.uniform(0.8, 1.2, (n, omode, 1, 8, 8)),
        "objp_patches": rng.normal(0.0, 0.3, (n, omode, 1, 8, 8)),
        "omode_occu": np.array([0.7, 0.3]),
    }


def main():
    comm = MPI.COMM_WORLD
    combo = pl.CombinedLoss({
        "loss_single": {"state": True, "dp_pow": 0.5},
        "loss_poissn": {"state": True, "weight": 0.5},
        "loss_pacbed": {"state": True},
        "loss_sparse": {"state": True},
        "loss_simlar": {"state": True},
    })
    data = whole_dataset()
    # Uneven contiguous shards of the scan positions, one per rank.
    lo, hi = np.array_split(np.arange(data["model_dp"].shape[0]), comm.size)[comm.rank][[0, -1]]
    shard = {k: v if k == "omode_occu" else v[lo:hi + 1] for k, v in data.items()}

    partial = combo.partial_sums(**shard)        # phase 1: local sums
    sums = combo.combine(*comm.allgather(partial))   # phase 2: a few numbers per term
    result = combo.finish(sums, **shard)         # phase 3: this shard's gradients

    grads = comm.gather(result.grads, root=0)
    if comm.rank == 0:
        whole = combo.value_and_grad(**data)
        err = abs(float(result.total) - float(whole.total)) / abs(float(whole.total))
        for name, g in whole.grads.items():
            joined = np.concatenate([part[name] for part in grads])
            err = max(err, float(np.max(np.abs(joined - g)) / np.max(np.abs(g))))
        print(f"ranks={comm.size} total={float(result.total):.12g} max_rel_err={err:.2e}")
        if err > 1e-12:
            raise SystemExit("sharded result differs from the unsharded one")


if __name__ == "__main__":
    main()
