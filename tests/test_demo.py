"""The demo: the solver's gradients, a tiny end-to-end run, and bad options."""

import argparse
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

import ptyloss_xp as pl
from ptyloss_xp.demo import add_arguments, run
from ptyloss_xp.demo.simulate import phase_error, simulate
from ptyloss_xp.demo.solver import object_probe_grad, reconstruct

TINY = ["--size", "5", "--iters", "10", "--quiet"]


def _args(*argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def _loss_of(combo, obj, probe, measured, positions, occu):
    """The combined loss of object and probe, with its own forward model."""
    k = probe.shape[-1]
    rows = positions[:, :1, None] + np.arange(k)[None, :, None]
    cols = positions[:, None, 1:] + np.arange(k)[None, None, :]
    patches = np.moveaxis(obj[:, rows, cols], 0, 1)  # (N, omode, K, K)
    psi = probe[None, :, None] * patches[:, None]
    model, _ = pl.farfield_intensity(psi, occu)
    return float(combo.value(model_dp=model, measured_dp=measured,
                             obja_patches=np.abs(patches)[:, :, None],
                             objp_patches=np.angle(patches)[:, :, None], omode_occu=occu))


def _central_difference(f, x, h=1e-5):
    """4th-order central differences, real and imaginary parts, as dL/dRe + 1j dL/dIm."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        for unit in (1.0, 1j):
            def at(t):
                y = x.copy()
                y[i] += t * h * unit
                return f(y)
            d = (-at(2) + 8 * at(1) - 8 * at(-1) + at(-2)) / (12 * h)
            grad[i] += d * unit
    return grad


def test_object_and_probe_gradients_match_finite_differences():
    rng = np.random.default_rng(3)
    omode, pmode, k = 2, 2, 5
    # Phases away from 0 (loss_sparse's kink) and from +-pi (the branch cut).
    sign = rng.choice([-1.0, 1.0], (omode, 9, 9))
    obj = rng.uniform(0.6, 1.4, (omode, 9, 9)) * np.exp(1j * sign * rng.uniform(0.2, 1.5, (omode, 9, 9)))
    probe = rng.normal(size=(pmode, k, k)) + 1j * rng.normal(size=(pmode, k, k))
    positions = np.array([[0, 0], [0, 4], [4, 0], [4, 4], [2, 3]])
    measured = rng.uniform(0.5, 3.0, (len(positions), k, k))
    occu = np.array([0.6, 0.4])
    combo = pl.CombinedLoss({
        "loss_single": {"state": True, "dp_pow": 0.5},
        "loss_poissn": {"state": True, "weight": 0.5},
        "loss_pacbed": {"state": True},
        "loss_sparse": {"state": True, "weight": 0.3},
        "loss_simlar": {"state": True, "weight": 0.2, "obj_type": "both"},
        "loss_tv": {"state": True, "obj_type": "both", "eps": 0.1},
    })
    kept = (obj.copy(), probe.copy(), measured.copy())
    res, g_obj, g_probe = object_probe_grad(combo, obj, probe, measured, positions, occu)
    for before, after in zip(kept, (obj, probe, measured)):
        np.testing.assert_array_equal(before, after)
    assert float(res.total) == pytest.approx(_loss_of(combo, obj, probe, measured, positions, occu))

    fd_obj = _central_difference(lambda o: _loss_of(combo, o, probe, measured, positions, occu), obj)
    fd_probe = _central_difference(lambda p: _loss_of(combo, obj, p, measured, positions, occu), probe)
    for fd, an in ((fd_obj, g_obj), (fd_probe, g_probe)):
        assert np.max(np.abs(fd - an)) <= 1e-7 * np.max(np.abs(fd))


def test_reconstruct_lowers_the_phase_error_and_leaves_inputs_alone():
    ds = simulate(n_scan=5, dose=1e5, step=3)
    obj0 = np.ones((1,) + ds.obj.shape, np.complex64)
    probe0 = ds.probe_guess[None].astype(np.complex64)
    measured = ds.measured.astype(np.float32)
    copies = (obj0.copy(), probe0.copy(), measured.copy())
    rec = reconstruct(pl.CombinedLoss(), measured, ds.positions, obj0, probe0, iters=8)
    for before, after in zip(copies, (obj0, probe0, measured)):
        np.testing.assert_array_equal(before, after)
    assert rec.obj.dtype == np.complex64 and rec.probe.dtype == np.complex64
    assert rec.history["total"][-1] < rec.history["total"][0]
    assert phase_error(rec.obj[0], ds.obj, ds.region) < 0.5 * phase_error(obj0[0], ds.obj, ds.region)


def test_demo_writes_its_files_and_lowers_the_phase_error(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(_args(*TINY, "--out", str(out))) == 0
    names = {"summary.json", "loss_params.yaml", "object_phase.png", "probe_amplitude.png",
             "loss_curves.png"}
    assert names <= set(os.listdir(out))
    summary = json.loads((out / "summary.json").read_text())
    err = summary["phase_error_rad"]
    assert err["final"] < 0.5 * err["initial"]
    assert err["ratio"] == pytest.approx(err["final"] / err["initial"])
    assert set(summary["loss_history"]) == {"total", "loss_single", "loss_sparse"}
    assert summary["loss_history"]["total"][-1] < summary["loss_history"]["total"][0]
    assert summary["backend"] == "numpy" and summary["wall_time_s"]["total"] > 0
    # The YAML written is the exact configuration: it reads back to PtyRAD's
    # documented example block, which the demo runs by default.
    written = yaml.safe_load((out / "loss_params.yaml").read_text())
    assert pl.parse_loss_params(written) == pl.ptycho.ptyrad_example_loss_params().terms
    assert "phase error" in capsys.readouterr().out


def test_progress_bar_shows_iteration_and_terms_on_stderr(tmp_path, capsys):
    cfg = tmp_path / "params.yaml"
    cfg.write_text("loss_params:\n  loss_single: {state: false}\n  loss_poissn: {state: true}\n")
    assert run(_args("--size", "3", "--iters", "4", "--config", str(cfg),
                     "--out", str(tmp_path / "o"))) == 0
    err = capsys.readouterr().err
    assert "4/4" in err and "loss_poissn" in err and "loss_single" not in err
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["options"]["config"] == str(cfg)


def test_compare_noise_models_runs_both_data_terms(tmp_path, capsys):
    assert run(_args("--size", "3", "--iters", "2", "--quiet", "--compare-noise-models",
                     "--dose", "300", "--out", str(tmp_path))) == 0
    compare = json.loads((tmp_path / "compare.json").read_text())
    assert set(compare["results"]) == {"loss_single", "loss_poissn"}
    for term in ("loss_single", "loss_poissn"):
        params = yaml.safe_load((tmp_path / term / "loss_params.yaml").read_text())["loss_params"]
        other = "loss_poissn" if term == "loss_single" else "loss_single"
        assert params[term]["state"] and not params[other]["state"]
    assert "loss_poissn" in capsys.readouterr().out


def test_default_output_folder_is_new_and_under_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run(_args("--size", "3", "--iters", "1", "--quiet")) == 0
    assert run(_args("--size", "3", "--iters", "1", "--quiet")) == 0
    folders = sorted(p.name for p in tmp_path.iterdir())
    assert len(folders) == 2 and all(f.startswith("ptyloss-demo-") for f in folders)


@pytest.mark.parametrize("argv, words", [
    (["--dose", "-5"], "--dose"),
    (["--dose", "abc"], "--dose"),
    (["--iters", "0"], "--iters"),
    (["--size", "2.5"], "--size"),
    (["--backend", "jax"], "--backend"),
    (["--dtype", "float16"], "--dtype"),
    (["--config", "/no/such/loss_params.yaml"], "no such file"),
])
def test_bad_options_give_one_line_and_status_2(argv, words, tmp_path, capsys):
    assert run(_args(*argv, "--out", str(tmp_path / "o"))) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in captured.err
    assert not (tmp_path / "o").exists()


def test_invalid_config_gives_one_line(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("loss_params:\n  loss_single: {state: true, dp_pow: -1}\n")
    assert run(_args("--config", str(cfg))) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "dp_pow" in lines[0]


def test_cupy_without_a_gpu_gives_one_line(capsys):
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            pytest.skip("a GPU is present")
    except Exception:  # noqa: BLE001  (no CuPy or no device: the case under test)
        pass
    assert run(_args("--backend", "cupy")) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "cupy" in lines[0].lower()


def test_missing_matplotlib_names_the_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    assert run(_args()) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and 'pip install "ptyloss-xp[demo]"' in lines[0]


def test_command_line_runs_and_reports_bad_options_without_traceback(tmp_path):
    cmd = [sys.executable, "-m", "ptyloss_xp.cli", "demo"]
    ok = subprocess.run(cmd + ["--size", "3", "--iters", "2", "--out", str(tmp_path / "o")],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "o" / "summary.json").exists()
    bad = subprocess.run(cmd + ["--dose", "-1"], capture_output=True, text=True)
    assert bad.returncode != 0
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
