"""benchmarks/gpu.py keeps working before any session has a GPU: its dry run
(NumPy standing in for CuPy, a tiny size) runs every step on the CPU."""

import importlib.util
import pathlib

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"


def test_gpu_script_dry_run(capsys):
    pytest.importorskip("numba")
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    gpu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu)
    assert gpu.main(["--dry-run", "--skip-tests"]) == 0
    out = capsys.readouterr().out
    assert "NumPy (dry run)" in out
    for label in ("loss_single p=0.5", "loss_tv phase", "CombinedLoss example"):
        assert f"| {label} |" in out
