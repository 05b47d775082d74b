"""The ptyloss-xp command: gradcheck, config check, list, docs."""

import subprocess
import sys
from pathlib import Path

import pytest

import ptyloss_xp as pl
from ptyloss_xp.cli import catalogue_markdown, main

ROOT = Path(__file__).resolve().parents[1]


def test_gradcheck_passes_for_every_loss(capsys):
    assert main(["gradcheck", "--family", "ptycho"]) == 0
    out = capsys.readouterr().out
    for name in pl.available("ptycho"):
        assert name in out
    assert " 0 failed" in out


def test_gradcheck_single_precision_on_strict_namespace(capsys):
    pytest.importorskip("array_api_strict")
    assert main(["gradcheck", "--backend", "array_api_strict", "--dtype", "float32",
                 "--loss", "loss_single"]) == 0
    assert "4 passed, 0 failed" in capsys.readouterr().out


def test_config_check_prints_resolved_terms(tmp_path, capsys):
    f = tmp_path / "p.yaml"
    f.write_text("loss_params:\n  loss_poissn: {state: true, dp_pow: 1}\n")
    assert main(["config", "check", str(f)]) == 0
    out = capsys.readouterr().out
    assert "valid" in out
    assert "loss_poissn   on (file)        weight=1.0 (default), dp_pow=1.0 (file), eps=1e-06 (default)" in out
    assert "loss_single   on (default)" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["config", "check", "/no/such/file.yaml"], "loss_params file not found"),
    (["gradcheck", "--backend", "cupy"], None),
])
def test_bad_input_is_one_line_and_nonzero_exit(argv, message):
    proc = subprocess.run([sys.executable, "-m", "ptyloss_xp.cli", *argv],
                          capture_output=True, text=True, cwd=ROOT)
    if argv[1] == "--backend":
        try:
            import cupy  # noqa: F401
            pytest.skip("CuPy is installed here")
        except ImportError:
            message = "backend cupy needs CuPy and a CUDA GPU"
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert message in proc.stderr


def test_bad_yaml_content_is_one_line(tmp_path, capsys):
    f = tmp_path / "p.yaml"
    f.write_text("loss_params:\n  loss_single: {state: true, weight: -2}\n")
    assert main(["config", "check", str(f)]) == 2
    err = capsys.readouterr().err
    assert "'weight' must be a real number >= 0, got -2" in err


def test_list_names_every_loss(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in pl.available())


def test_catalogue_in_docs_matches_the_registry():
    on_disk = (ROOT / "docs" / "catalogue.md").read_text(encoding="utf-8")
    assert on_disk == catalogue_markdown(), (
        "docs/catalogue.md is stale: run `ptyloss-xp docs --out docs/catalogue.md`")
