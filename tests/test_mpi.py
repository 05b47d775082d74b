"""The MPI example runs under ``mpiexec -n 2`` and gives the unsharded numbers.

Skips cleanly where mpi4py or an ``mpiexec`` launcher is missing (the
``[test]`` extra installs both: mpi4py and the MPICH wheel).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mpi4py")

ROOT = Path(__file__).resolve().parents[1]


def _mpiexec():
    # The MPICH wheel puts mpiexec beside the interpreter, which need not be on PATH.
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


@pytest.mark.skipif(_mpiexec() is None, reason="no mpiexec launcher")
def test_example_on_two_ranks_matches_the_unsharded_loss():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    run = subprocess.run(
        [_mpiexec(), "-n", "2", sys.executable, str(ROOT / "examples" / "mpi_shards.py")],
        capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ranks=2 " in run.stdout and "max_rel_err=" in run.stdout
