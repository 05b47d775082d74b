"""loss_params resolved as PtyRAD 1.0 resolves them, from every params format it reads.

The expected values below are PtyRAD 1.0's (its pydantic model
``ptyrad/params/loss_params.py``): the conversion cases were checked once
against that model; these tests do not need PtyRAD installed.
"""

import json
import math
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import ptyloss_xp as pl
from ptyloss_xp.cli import main
from ptyloss_xp.ptycho.params import (
    PTYRAD_LOSS_PARAMS,
    ptyrad_example_loss_params,
    read_params_file,
    resolve_loss_params,
)

ROOT = Path(__file__).resolve().parents[1]

# PtyRAD 1.0's field defaults, as model_dump() gives them (scale_factor a tuple here).
PTYRAD_DEFAULTS = {
    "loss_single": {"state": True, "weight": 1.0, "dp_pow": 0.5},
    "loss_poissn": {"state": False, "weight": 1.0, "dp_pow": 1.0, "eps": 1e-6},
    "loss_pacbed": {"state": False, "weight": 0.5, "dp_pow": 0.2},
    "loss_sparse": {"state": False, "weight": 0.1, "ln_order": 1},
    "loss_simlar": {"state": False, "weight": 0.1, "obj_type": "both",
                    "scale_factor": (1.0, 1.0, 1.0), "blur_std": 1.0},
}

# The other blocks of a PtyRAD params file; ptyloss_xp reads only loss_params.
OTHER_BLOCKS = {
    "init_params": {"probe_kv": 300, "probe_conv_angle": 24.9, "meas_Npix": 128,
                    "pos_N_scan_slow": 64, "pos_N_scan_fast": 64, "meas_source": "file"},
    "model_params": {"obj_preblur_std": 0, "update_params": {"obja": {"start_iter": 1, "lr": 5e-4}}},
    "constraint_params": {"ortho_pmode": {"start_iter": 1, "step": 1}},
    "recon_params": {"NITER": 200, "BATCH_SIZE": {"size": 32}, "SAVE_ITERS": 10},
}

# Like PtyRAD's templates: minimal (no block), standard (a partial block),
# full (every term listed) and an example (loss_sparse on, the rest unlisted).
TEMPLATES = {
    "minimal": (dict(OTHER_BLOCKS), PTYRAD_DEFAULTS),
    "standard": (
        {**OTHER_BLOCKS, "loss_params": {
            "loss_single": {"state": True, "weight": 1.0, "dp_pow": 0.5},
            "loss_poissn": {"state": False, "weight": 1.0, "dp_pow": 1.0, "eps": 1.0e-6},
            "loss_sparse": {"state": False, "weight": 0.1, "ln_order": 1}}},
        PTYRAD_DEFAULTS),
    "full": (
        {**OTHER_BLOCKS, "loss_params": {
            "loss_single": {"state": False, "weight": 2.0, "dp_pow": 0.4},
            "loss_poissn": {"state": True, "weight": 1.5, "dp_pow": 1.0, "eps": 1.0e-4},
            "loss_pacbed": {"state": True, "weight": 0.5, "dp_pow": 0.2},
            "loss_sparse": {"state": True, "weight": 0.1, "ln_order": 2},
            "loss_simlar": {"state": True, "weight": 0.3, "obj_type": "phase",
                            "scale_factor": [1, 0.5, 0.5], "blur_std": 0}}},
        {"loss_single": {"state": False, "weight": 2.0, "dp_pow": 0.4},
         "loss_poissn": {"state": True, "weight": 1.5, "dp_pow": 1.0, "eps": 1e-4},
         "loss_pacbed": {"state": True, "weight": 0.5, "dp_pow": 0.2},
         "loss_sparse": {"state": True, "weight": 0.1, "ln_order": 2},
         "loss_simlar": {"state": True, "weight": 0.3, "obj_type": "phase",
                         "scale_factor": (1.0, 0.5, 0.5), "blur_std": 0.0}}),
    "example": (
        {**OTHER_BLOCKS, "loss_params": {
            "loss_single": {"state": True, "weight": 1.0, "dp_pow": 0.5},
            "loss_sparse": {"state": True, "weight": 0.1, "ln_order": 1}}},
        {**PTYRAD_DEFAULTS, "loss_sparse": {"state": True, "weight": 0.1, "ln_order": 1}}),
}


def _toml(value, top=True):
    """A small TOML writer for the test files: one table per block, inline tables below."""
    if top:
        lines = []
        for block, body in value.items():
            lines.append(f"[{block}]")
            lines += [f"{k} = {_toml(v, False)}" for k, v in body.items()]
        return "\n".join(lines) + "\n"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v, False)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v, False) for v in value) + "]"
    return json.dumps(value)


WRITERS = {
    "yaml": lambda d: yaml.safe_dump(d, sort_keys=False),
    "yml": lambda d: yaml.safe_dump(d, default_flow_style=True),
    "json": lambda d: json.dumps(d, indent=2),
    "toml": _toml,
}


def _write(tmp_path, name, data, fmt):
    path = tmp_path / f"{name}.{fmt}"
    path.write_text(WRITERS[fmt](data), encoding="utf-8")
    return path


# ---------------------------------------------------------------- PtyRAD's defaults and templates

def test_default_is_loss_single_alone():
    assert pl.CombinedLoss().config == PTYRAD_DEFAULTS
    assert resolve_loss_params(None).terms == PTYRAD_DEFAULTS
    assert pl.ptycho.DEFAULT_LOSS_PARAMS == PTYRAD_DEFAULTS


def test_every_term_default_agrees_with_ptyrads_schema():
    # The registered terms' own defaults are PtyRAD 1.0's field defaults.
    for term, schema in PTYRAD_LOSS_PARAMS.items():
        assert {k: p.default for k, p in schema.items()} == PTYRAD_DEFAULTS[term]
        assert pl.get(term).config == {k: v for k, v in PTYRAD_DEFAULTS[term].items() if k != "state"}


@pytest.mark.parametrize("fmt", sorted(WRITERS))
@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_templates_in_every_format_resolve_to_ptyrads_terms(tmp_path, template, fmt):
    data, expected = TEMPLATES[template]
    path = _write(tmp_path, template, data, fmt)
    resolved = resolve_loss_params(path)
    assert resolved.terms == expected
    assert resolved.source == str(path)
    assert resolved.block == ("loss_params" in data)
    assert pl.CombinedLoss(path).config == pl.CombinedLoss.from_yaml(path).config == expected


def test_a_file_without_the_block_says_so(tmp_path):
    path = _write(tmp_path, "minimal", TEMPLATES["minimal"][0], "yaml")
    resolved = resolve_loss_params(path)
    assert resolved.notes == ("no loss_params block: PtyRAD 1.0's defaults",)
    assert all(o == "default" for term in resolved.origin.values() for o in term.values())


def test_partial_block_marks_each_setting_from_the_file_or_the_default(tmp_path):
    path = tmp_path / "partial.yaml"
    path.write_text("loss_params:\n"
                    "  loss_poissn: {state: true, eps: 1.0e-3}\n"
                    "  loss_simlar: {scale_factor: [1, 0.5, 0.5]}\n")
    r = resolve_loss_params(path)
    assert r.terms["loss_single"] == PTYRAD_DEFAULTS["loss_single"]
    assert r.terms["loss_poissn"] == {"state": True, "weight": 1.0, "dp_pow": 1.0, "eps": 1e-3}
    assert r.origin["loss_poissn"] == {"state": "file", "weight": "default", "dp_pow": "default",
                                       "eps": "file"}
    assert r.terms["loss_simlar"]["state"] is False
    assert r.origin["loss_simlar"]["scale_factor"] == "file"
    assert r.origin["loss_single"] == {"state": "default", "weight": "default", "dp_pow": "default"}


@pytest.mark.parametrize("data", [
    {"loss_params": {}},
    {"loss_params": {"loss_single": {}}},
    {},
    {"loss_single": {}},
], ids=["empty-block", "empty-term", "empty-mapping", "bare-block"])
def test_empty_blocks_and_terms_take_the_defaults(data):
    assert pl.CombinedLoss(data).config == PTYRAD_DEFAULTS


def test_the_dict_ptyrad_load_params_returns_is_accepted():
    # ptyrad.params.load_params adds params_path to the validated dict.
    params = {**OTHER_BLOCKS, "hypertune_params": {"if_hypertune": False},
              "loss_params": {"loss_pacbed": {"state": True}}, "params_path": "x.yaml"}
    assert pl.CombinedLoss(params).config["loss_pacbed"]["state"] is True


def test_the_demo_block_is_ptyrads_documented_example():
    r = ptyrad_example_loss_params()
    assert r.terms == {**PTYRAD_DEFAULTS, "loss_sparse": {"state": True, "weight": 0.1, "ln_order": 1}}
    assert all(o == "file" for term in r.origin.values() for o in term.values())


# ---------------------------------------------------------------- pydantic's conversions and ranges

# (term, key, value, what PtyRAD 1.0 resolves it to), each checked against its model.
CONVERTED = [
    ("loss_single", "state", 1, True), ("loss_sparse", "state", 0.0, False),
    ("loss_single", "state", "yes", True), ("loss_pacbed", "state", "Off", False),
    ("loss_single", "state", "T", True), ("loss_single", "weight", 2, 2.0),
    ("loss_single", "weight", "2", 2.0), ("loss_single", "weight", " 3 ", 3.0),
    ("loss_single", "weight", True, 1.0), ("loss_single", "weight", -0.0, -0.0),
    ("loss_single", "dp_pow", "0.25", 0.25), ("loss_poissn", "eps", "1e-6", 1e-6),
    ("loss_sparse", "ln_order", 2.0, 2), ("loss_sparse", "ln_order", "2", 2),
    ("loss_sparse", "ln_order", "2.0", 2), ("loss_sparse", "ln_order", " 3 ", 3),
    ("loss_simlar", "scale_factor", (1, "0.5", 0.5), (1.0, 0.5, 0.5)),
    ("loss_simlar", "scale_factor", [True, 1, 1], (1.0, 1.0, 1.0)),
    ("loss_simlar", "blur_std", 0, 0.0), ("loss_simlar", "blur_std", "0.5", 0.5),
]


@pytest.mark.parametrize(("term", "key", "value", "expected"), CONVERTED)
def test_values_are_converted_as_pydantic_converts_them(term, key, value, expected):
    r = resolve_loss_params({term: {key: value}})
    assert r.terms[term][key] == expected
    assert type(r.terms[term][key]) is type(expected)


def test_yaml_exponent_without_a_dot_is_a_number(tmp_path):
    # YAML 1.1 (yaml.safe_load) reads 1e-6 as a string; PtyRAD's model makes it a float.
    path = tmp_path / "p.yaml"
    path.write_text("loss_params:\n  loss_poissn: {state: true, eps: 1e-6}\n")
    assert resolve_loss_params(path).terms["loss_poissn"]["eps"] == 1e-6


# (term, key, value) that PtyRAD 1.0 refuses too.
REFUSED = [
    ("loss_single", "state", 2), ("loss_single", "state", 0.5), ("loss_single", "state", None),
    ("loss_single", "state", " yes"), ("loss_single", "state", "1.0"),
    ("loss_single", "weight", -1), ("loss_single", "weight", math.nan), ("loss_single", "weight", "abc"),
    ("loss_single", "weight", None), ("loss_single", "weight", [1]), ("loss_single", "weight", 10**400),
    ("loss_poissn", "eps", 0), ("loss_poissn", "eps", -1e-6),
    ("loss_sparse", "ln_order", 0), ("loss_sparse", "ln_order", 2.5), ("loss_sparse", "ln_order", "2.5"),
    ("loss_sparse", "ln_order", "2e0"), ("loss_sparse", "ln_order", 1e300),
    ("loss_sparse", "ln_order", math.inf),
    ("loss_simlar", "obj_type", "Both"), ("loss_simlar", "obj_type", 1),
    ("loss_simlar", "scale_factor", [1, 1]), ("loss_simlar", "scale_factor", [1, 1, 1, 1]),
    ("loss_simlar", "scale_factor", "111"), ("loss_simlar", "scale_factor", None),
    ("loss_simlar", "scale_factor", [None, 1, 1]),
    ("loss_simlar", "blur_std", -1), ("loss_simlar", "blur_std", None),
]


@pytest.mark.parametrize(("term", "key", "value"), REFUSED)
def test_what_ptyrad_refuses_is_refused_naming_term_key_and_value(term, key, value):
    with pytest.raises(ValueError) as info:
        resolve_loss_params({term: {key: value}})
    msg = str(info.value)
    assert f"{term}: '{key}' must be" in msg and repr(value) in msg
    assert "(PtyRAD 1.0 refuses it too)" in msg


# (term, key, value) that PtyRAD 1.0 accepts and ptyloss_xp refuses.
STRICTER = [
    ("loss_single", "dp_pow", 0), ("loss_single", "dp_pow", -1), ("loss_poissn", "dp_pow", math.nan),
    ("loss_pacbed", "dp_pow", math.inf), ("loss_single", "weight", math.inf),
    ("loss_single", "weight", "inf"), ("loss_poissn", "eps", math.inf),
    ("loss_simlar", "scale_factor", [0, 1, 1]), ("loss_simlar", "scale_factor", [-1, 1, 1]),
    ("loss_simlar", "scale_factor", [math.inf, 1, 1]), ("loss_simlar", "blur_std", math.inf),
]


@pytest.mark.parametrize(("term", "key", "value"), STRICTER)
def test_where_ptyloss_xp_is_stricter_the_message_says_so(term, key, value):
    with pytest.raises(ValueError, match=f"{term}: parameter '{key}' must be") as info:
        resolve_loss_params({term: {key: value}})
    assert "PtyRAD 1.0 accepts this value, ptyloss_xp refuses it" in str(info.value)


@pytest.mark.parametrize(("data", "message"), [
    ({"loss_singel": {}}, "unknown loss term 'loss_singel'; valid terms: loss_single"),
    ({"loss_single": {"dp_power": 1}}, r"loss_single: unknown key\(s\) 'dp_power'; valid keys: state, weight, dp_pow"),
    ({"loss_single": None}, "loss_single must be a mapping of its settings, got None"),
    ({"loss_single": [["state", True]]}, "loss_single must be a mapping"),
    ({"loss_single": {"state": False}}, "at least one data-error term"),
    ({"loss_params": []}, "loss_params must be a mapping of loss terms, got list"),
    ({"loss_params": None, "init_params": {}}, "'loss_params' is empty"),
    ({"init_params": {}, "los_params": {}}, "unknown top-level key.*'los_params'"),
    ({"init_params": {}, "loss_single": {}}, "unknown top-level key.*'loss_single'"),
    ([], "expected a mapping"),
])
def test_bad_structure_is_named(data, message):
    with pytest.raises(ValueError, match=message):
        resolve_loss_params(data)


def test_loss_tv_is_accepted_with_a_note():
    r = resolve_loss_params({"loss_tv": {"state": True, "weight": 0.2}})
    assert r.terms["loss_tv"] == {"state": True, "weight": 0.2, "obj_type": "phase", "eps": 1e-3}
    assert "PtyRAD 1.0 refuses a file that lists it" in r.notes[0]
    assert "loss_tv" not in resolve_loss_params({}).terms
    with pytest.raises(ValueError, match="loss_tv: parameter 'weight' must be") as info:
        resolve_loss_params({"loss_tv": {"weight": math.inf}})
    assert "PtyRAD" not in str(info.value)


# ---------------------------------------------------------------- files

@pytest.mark.parametrize(("name", "text", "term"), [
    ("terms.yaml", "loss_params:\n  loss_sparse: {state: true}\n  loss_sparse: {state: false}\n",
     "loss_params: 'loss_sparse'"),
    ("keys.yaml", "loss_params:\n  loss_single: {state: true, weight: 1, weight: 2}\n",
     "loss_single: 'weight'"),
    ("bare.yml", "loss_single: {state: true}\nloss_single: {state: false}\n",
     "loss_params: 'loss_single'"),
    ("block.yaml", "loss_params: {}\nloss_params: {loss_pacbed: {state: true}}\n", "'loss_params'"),
    ("terms.json", '{"loss_params": {"loss_poissn": {"state": true}, "loss_poissn": {}}}',
     "loss_params: 'loss_poissn'"),
    ("keys.json", '{"loss_single": {"state": true, "state": false}}', "loss_single: 'state'"),
])
def test_a_term_or_key_listed_twice_is_refused_naming_it(tmp_path, name, text, term):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match="more than once") as info:
        resolve_loss_params(path)
    assert term in str(info.value) and str(path) in str(info.value)


def test_toml_refuses_a_repeated_key_itself(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("[loss_params.loss_single]\nstate = true\nstate = false\n")
    with pytest.raises(ValueError, match=f"{path}: not valid TOML"):
        resolve_loss_params(path)


def test_duplicates_elsewhere_in_the_file_are_not_ours_to_refuse(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("recon_params: {NITER: 1, NITER: 2}\nloss_params: {loss_single: {}}\n")
    assert resolve_loss_params(path).terms == PTYRAD_DEFAULTS


def test_yaml_merge_keys_are_not_duplicates(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("loss_params:\n  loss_single: &s {state: true, weight: 1.0}\n"
                    "  loss_pacbed: {<<: *s, weight: 0.5}\n")
    assert resolve_loss_params(path).terms["loss_pacbed"] == {"state": True, "weight": 0.5, "dp_pow": 0.2}


def test_a_file_that_is_not_utf8_is_named(tmp_path, capsys):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("loss_params:\n  loss_single: {state: true}  # Odstrčil\n".encode("cp1250"))
    with pytest.raises(ValueError, match=f"{path}: not a UTF-8 text file"):
        resolve_loss_params(path)
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "UTF-8" in err


def test_config_check_on_a_directory_is_one_clear_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ptyloss_xp.cli", "config", "check", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"ptyloss-xp: error: {tmp_path}: is a directory, not a params file"
    with pytest.raises(IsADirectoryError):
        read_params_file(tmp_path)


def test_python_params_files_are_not_executed(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "params.py"
    path.write_text(f"open({str(marker)!r}, 'w').close()\n"
                    "loss_params = {'loss_pacbed': {'state': True}}\n")
    with pytest.raises(ValueError, match="does not execute code from a params file"):
        pl.CombinedLoss(path)
    assert not marker.exists()
    # What the message suggests: run it yourself and pass its names.
    assert pl.CombinedLoss(runpy.run_path(str(path))).config["loss_pacbed"]["state"] is True


def test_python_yaml_tags_stay_refused(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("loss_params: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ValueError, match=f"{path}: not valid YAML"):
        resolve_loss_params(path)


@pytest.mark.parametrize(("name", "text", "message"), [
    ("p.txt", "loss_params: {}", "unknown params file type '.txt'"),
    ("p.YAML", "loss_params: {}", "unknown params file type '.YAML'"),
    ("p.yaml", "", "expected a mapping.*got an empty file"),
    ("p.yaml", "- loss_single\n", "expected a mapping.*got list"),
    ("p.json", "{loss_params: 1}", "not valid JSON"),
    ("p.toml", "loss_params = [", "not valid TOML"),
    ("p.yaml", "loss_params: {loss_single: {state: true}\n", "not valid YAML"),
])
def test_unreadable_files_are_named(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        resolve_loss_params(path)
    assert str(path) in str(info.value)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="loss_params file not found: /no/such.toml"):
        resolve_loss_params("/no/such.toml")


# ---------------------------------------------------------------- the CLI

def test_config_check_prints_every_setting_and_its_origin(tmp_path, capsys):
    data = {**OTHER_BLOCKS, "loss_params": {"loss_sparse": {"state": True, "ln_order": 2}}}
    path = _write(tmp_path, "p", data, "toml")
    assert main(["config", "check", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{path}: valid")
    rows = {line.split()[0]: line for line in out[1:]}
    assert set(rows) == set(PTYRAD_DEFAULTS)
    assert rows["loss_single"].split()[1:3] == ["on", "(default)"]
    assert "ln_order=2 (file)" in rows["loss_sparse"] and "weight=0.1 (default)" in rows["loss_sparse"]


def test_config_check_on_a_file_without_the_block(tmp_path, capsys):
    path = _write(tmp_path, "minimal", TEMPLATES["minimal"][0], "json")
    assert main(["config", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "note: no loss_params block: PtyRAD 1.0's defaults" in out
    assert "loss_sparse   off (default)" in out


def test_config_check_refuses_a_repeated_term_in_one_line(tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text("loss_params:\n  loss_single: {state: true}\n  loss_single: {state: false}\n")
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'loss_single' is listed more than once" in err[0]
