"""benchmarks/value_checks.py keeps working: a tiny size, one pair per case."""

import importlib.util
import pathlib

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


def test_value_checks_script_prints_every_case(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("value_checks", BENCHMARKS / "value_checks.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.main(["--size", "4x16x16:2", "--pairs", "1"])
    out = capsys.readouterr().out
    from cases import cases

    for case in cases():
        assert f"| {case.label} |" in out
