"""benchmarks/floors.py keeps working: a tiny size, one repeat."""

import importlib.util
import pathlib
import re

import pytest

pytest.importorskip("numba")

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def floors(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("floors", BENCHMARKS / "floors.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    import backends

    monkeypatch.setattr(backends, "COPY_BYTES", 2**20)  # the bandwidth copy: 1 MiB, not 256
    return script


def test_floors_script_prints_every_row(floors, capsys):
    floors.main(["--size", "4x16x16", "--repeats", "1"])
    out = capsys.readouterr().out
    rows = re.findall(r"^\| ([^|]+) \| ([0-9.e-]+) \| ([0-9.]+) \|$", out, re.M)
    labels = [label for label, _, _ in rows]
    for label in ("stream: G = I - D", "two passes: sums, then G = I - D",
                  "sum D^p (float32 pow, p=0.2)", "sum D log I (float32 log)",
                  "library loss_single p=0.5", "library loss_poissn p=1",
                  "library loss_pacbed p=0.2"):
        assert label in labels
    assert all(float(ms) > 0 for _, ms, _ in rows)


def test_floors_script_refuses_non_square_patterns(floors):
    with pytest.raises(SystemExit):
        floors.main(["--size", "4x16x8"])
