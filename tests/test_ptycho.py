"""PtyRAD parity, the combiner and the far-field bridge.

The reference implementations here are written straight from the formulas
of DESIGN.md section 4 with plain NumPy (np.pad, np.std(ddof=1), explicit
loops), independently of the library's kernels.
"""

import math

import numpy as np
import pytest
import yaml

import ptyloss_xp as pl
from ptyloss_xp.testing import sample_inputs

RNG = np.random.default_rng(42)


def _dps(n=5, k=6, rng=RNG):
    return rng.uniform(0.1, 3.0, (n, k, k)), rng.poisson(2.0, (n, k, k)).astype(float)


# ---------------------------------------------------------------- references

def ref_single(I, D, w=1.0, p=0.5):
    return w * np.sqrt(np.mean((I**p - D**p) ** 2)) / np.mean(D**p)


def ref_poissn(I, D, w=1.0, p=1.0, eps=1e-6):
    return -w * np.mean(D**p * np.log(I**p + eps) - I**p) / np.mean(D**p)


def ref_pacbed(I, D, w=0.5, p=0.2):
    return w * np.sqrt(np.mean((I.mean(0) ** p - D.mean(0) ** p) ** 2)) / np.mean(D**p)


def ref_sparse(P, occ, w=0.1, n=1):
    return w * sum(occ[o] * np.mean(np.abs(P[:, o]) ** n) ** (1 / n) for o in range(P.shape[1]))


def ref_blur(x, sigma):
    t = np.arange(-2, 3)
    k = np.exp(-(t**2) / (2 * sigma**2))
    k /= k.sum()
    for axis in (-2, -1):
        pad = [(0, 0)] * x.ndim
        pad[axis] = (2, 2)
        xp_ = np.pad(x, pad, mode="reflect")
        n = x.shape[axis]
        x = sum(k[j] * np.take(xp_, np.arange(j, j + n), axis=axis) for j in range(5))
    return x


def ref_zoom(x, scale):
    for axis, s in zip((-3, -2, -1), scale):
        if s == 1:
            continue
        n = x.shape[axis]
        m = math.floor(n * s)
        bins = [np.take(x, np.arange((i * n) // m, math.ceil((i + 1) * n / m)), axis=axis)
                .mean(axis=axis, keepdims=True) for i in range(m)]
        x = np.concatenate(bins, axis=axis)
    return x


def ref_simlar(A, P, occ, w=0.1, obj_type="both", scale=(1, 1, 1), blur=1.0):
    def T(x):
        if blur:
            x = ref_blur(x, blur)
        x = ref_zoom(x, scale)
        return np.mean(np.std(occ[None, :, None, None, None] * x, axis=1, ddof=1))

    chosen = {"amplitude": [A], "phase": [P], "both": [A, P]}[obj_type]
    return w * sum(T(x) for x in chosen)


# ---------------------------------------------------------------- parity

@pytest.mark.parametrize("p", [0.5, 1.0, 0.2, 2.0])
def test_data_terms_equal_ptyrads_formulas(p):
    I, D = _dps()
    assert pl.get("loss_single", dp_pow=p, weight=0.7).value(I, D) == pytest.approx(
        ref_single(I, D, 0.7, p), rel=1e-12)
    assert pl.get("loss_poissn", dp_pow=p, eps=1e-6).value(I, D) == pytest.approx(
        ref_poissn(I, D, 1.0, p), rel=1e-12)
    assert pl.get("loss_pacbed", dp_pow=p).value(I, D) == pytest.approx(
        ref_pacbed(I, D, 0.5, p), rel=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_sparse_equals_ptyrads_formula(n):
    P = RNG.normal(size=(3, 2, 2, 5, 4))
    occ = np.array([0.7, 0.3])
    assert pl.get("loss_sparse", ln_order=n).value(P, occ) == pytest.approx(
        ref_sparse(P, occ, 0.1, n), rel=1e-12)


@pytest.mark.parametrize(("obj_type", "scale", "blur"), [
    ("both", (1, 1, 1), 1.0),
    ("amplitude", (1, 0.5, 0.5), None),
    ("phase", (1, 0.5, 0.75), 0.8),
    ("both", (0.5, 0.6, 1), 0),
])
def test_simlar_equals_ptyrads_formula(obj_type, scale, blur):
    A = RNG.uniform(0.5, 1.0, (2, 3, 2, 7, 6))
    P = RNG.normal(size=(2, 3, 2, 7, 6))
    occ = np.array([0.5, 0.3, 0.2])
    loss = pl.get("loss_simlar", obj_type=obj_type, scale_factor=scale, blur_std=blur)
    arrays = {"obja_patches": A, "objp_patches": P, "omode_occu": occ}
    arrays = {a.name: arrays[a.name] for a in loss.args}
    assert loss.value(**arrays) == pytest.approx(
        ref_simlar(A, P, occ, 0.1, obj_type, scale, blur), rel=1e-12)


def test_blur_and_zoom_adjoints_are_exact():
    from ptyloss_xp.ptycho.operators import apply_adjoint_along, apply_along, axis_operators

    x = RNG.normal(size=(2, 3, 4, 9, 7))
    mats = axis_operators(x.shape[2:], (0.5, 0.7, 0.6), 1.3)
    y = RNG.normal(size=apply_along(np, x, mats).shape)
    lhs = np.vdot(apply_along(np, x, mats), y)
    rhs = np.vdot(x, apply_adjoint_along(np, y, mats))
    assert lhs == pytest.approx(rhs, rel=1e-12)


def test_gradient_at_zero_std_and_perfect_fit_is_finite_and_zero():
    A = np.ones((1, 2, 1, 4, 4))
    v, (g,) = (lambda r: (r[0], (r[1],)))(
        pl.get("loss_simlar", obj_type="amplitude").value_and_grad(A, np.ones(2)))
    assert float(v) == 0.0 and np.all(g == 0)
    I = np.full((2, 3, 3), 2.0)
    for name in ("loss_single", "loss_pacbed"):
        v, g = pl.get(name).value_and_grad(I, I.copy())
        assert float(v) == 0.0 and np.all(g == 0)


def test_simlar_with_one_object_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="dimension O .* must have size >= 2, got 1"):
        pl.get("loss_simlar", obj_type="phase").value(np.ones((1, 1, 1, 4, 4)), np.ones(1))


def test_zoom_to_nothing_is_a_clear_error():
    loss = pl.get("loss_simlar", obj_type="phase", scale_factor=(1, 0.1, 1))
    with pytest.raises(ValueError, match="scale_factor 0.1 shrinks an axis of size 4"):
        loss.value(np.ones((1, 2, 1, 4, 4)), np.ones(2))


# ---------------------------------------------------------------- detector mask

@pytest.mark.parametrize("name", ["loss_single", "loss_poissn", "loss_pacbed"])
def test_unit_mask_changes_nothing_and_binary_mask_selects_pixels(name):
    I, D = _dps()
    loss = pl.get(name)
    np.testing.assert_allclose(loss.value(I, D, dp_weight=np.ones(I.shape[1:])),
                               loss.value(I, D), rtol=1e-13)
    mask = np.ones(I.shape[1:])
    mask[2, 3] = mask[0, :] = 0
    keep = mask.astype(bool)
    # The masked term equals the term on the kept pixels alone.
    sub_I, sub_D = I[:, keep][:, :, None], D[:, keep][:, :, None]
    np.testing.assert_allclose(loss.value(I, D, dp_weight=mask), loss.value(sub_I, sub_D),
                               rtol=1e-12)
    g_full = loss.grad(I, D, dp_weight=mask)
    assert np.all(g_full[:, ~keep] == 0)
    np.testing.assert_allclose(g_full[:, keep], loss.grad(sub_I, sub_D)[:, :, 0], rtol=1e-12)


def test_mask_of_zeros_and_zero_measurement_are_clear_errors():
    I, D = _dps()
    with pytest.raises(ValueError, match="'dp_weight' must have a positive sum"):
        pl.get("loss_single").value(I, D, dp_weight=np.zeros(I.shape[1:]))
    with pytest.raises(ValueError, match="'measured_dp' must not be all zero"):
        pl.get("loss_poissn").value(I, np.zeros_like(D))


def test_bad_data_inputs_name_the_argument():
    I, D = _dps()
    loss = pl.get("loss_single")
    with pytest.raises(ValueError, match="'measured_dp' must be finite and >= 0"):
        loss.value(I, -D - 1)
    with pytest.raises(ValueError, match="'model_dp' must be finite and > 0"):
        loss.value(np.zeros_like(I), D)
    with pytest.raises(ValueError, match="'measured_dp' must have shape"):
        loss.value(I, D[:, :-1])
    with pytest.raises(TypeError, match="dtype float32 or float64"):
        loss.value(I.astype(np.int64), D)
    with pytest.raises(TypeError, match="one precision"):
        loss.value(I.astype(np.float32), D)


# ---------------------------------------------------------------- combiner

def _objects(n=5, omode=2, rng=RNG):
    A = rng.uniform(0.5, 1.0, (n, omode, 1, 6, 6))
    P = rng.normal(size=(n, omode, 1, 6, 6))
    return A, P, np.full(omode, 1.0 / omode)


ALL_ON = {
    "loss_single": {"state": True, "weight": 1.0, "dp_pow": 0.5},
    "loss_poissn": {"state": True, "weight": 0.5, "dp_pow": 1.0, "eps": 1e-6},
    "loss_pacbed": {"state": True, "weight": 0.5, "dp_pow": 0.2},
    "loss_sparse": {"state": True, "weight": 0.1, "ln_order": 1},
    "loss_simlar": {"state": True, "weight": 0.1, "obj_type": "both",
                    "scale_factor": [1, 0.5, 0.5], "blur_std": 1},
    "loss_tv": {"state": True, "weight": 0.05, "obj_type": "both"},
}


def test_combined_total_terms_and_gradients_are_sums_of_the_terms():
    I, D = _dps()
    A, P, occ = _objects()
    combo = pl.CombinedLoss(ALL_ON)
    res = combo.value_and_grad(model_dp=I, measured_dp=D, obja_patches=A,
                               objp_patches=P, omode_occu=occ)
    expected = {
        "loss_single": ref_single(I, D, 1.0, 0.5),
        "loss_poissn": ref_poissn(I, D, 0.5, 1.0),
        "loss_pacbed": ref_pacbed(I, D, 0.5, 0.2),
        "loss_sparse": ref_sparse(P, occ, 0.1, 1),
        "loss_simlar": ref_simlar(A, P, occ, 0.1, "both", (1, 0.5, 0.5), 1.0),
    }
    for t, v in expected.items():
        assert res.terms[t] == pytest.approx(v, rel=1e-12), t
    assert res.total == pytest.approx(sum(float(v) for v in res.terms.values()), rel=1e-14)
    g_dp = sum(pl.get(t, **{k: v for k, v in ALL_ON[t].items() if k != "state"}).grad(I, D)
               for t in ("loss_single", "loss_poissn", "loss_pacbed"))
    np.testing.assert_allclose(res.grads["model_dp"], g_dp, rtol=1e-14)
    assert sorted(res.grads) == ["model_dp", "obja_patches", "objp_patches"]
    total, terms = combo(I, D, A, P, occ)
    assert float(total) == pytest.approx(float(res.total), rel=1e-15)


def test_combined_gradient_matches_finite_differences_of_the_total():
    # Its own data: the module's RNG gave other data when the test ran alone.
    data = np.random.default_rng(11)
    I, D = _dps(3, 4, data)
    A, P, occ = _objects(3, rng=data)
    combo = pl.CombinedLoss(ALL_ON)
    args = dict(model_dp=I, measured_dp=D, obja_patches=A, objp_patches=P, omode_occu=occ)
    res = combo.value_and_grad(**args)
    rng = np.random.default_rng(1)
    for var in ("model_dp", "obja_patches", "objp_patches"):
        v = rng.normal(size=args[var].shape)
        # The objects' step stays well inside loss_tv's smoothing (eps =
        # 1e-3): a step of 1e-4 across a slope near 0 missed by 6e-6 for
        # some data.
        t = 5e-6 if var == "model_dp" else 1e-5
        f = [float(combo.value(**{**args, var: args[var] + c * t * v})) for c in (2, 1, -1, -2)]
        fd = (-f[0] + 8 * f[1] - 8 * f[2] + f[3]) / (12 * t)
        assert fd == pytest.approx(np.vdot(res.grads[var], v), rel=1e-6), var


def test_switched_off_terms_are_zero_and_their_arrays_may_be_left_out():
    I, D = _dps()
    combo = pl.CombinedLoss({"loss_single": {"state": True}, "loss_sparse": {"state": False}})
    res = combo.value_and_grad(model_dp=I, measured_dp=D)
    assert float(res.terms["loss_sparse"]) == 0.0
    assert list(res.grads) == ["model_dp"]
    assert float(res.total) == pytest.approx(ref_single(I, D), rel=1e-12)


def test_missing_array_for_an_active_term_is_named():
    I, D = _dps()
    with pytest.raises(TypeError, match="loss_sparse is on and needs objp_patches, omode_occu"):
        pl.CombinedLoss({"loss_sparse": {"state": True}}).value_and_grad(model_dp=I, measured_dp=D)


def test_default_is_ptyrad_1_0s_default_loss_params():
    cfg = pl.CombinedLoss().config
    assert {t: c["state"] for t, c in cfg.items()} == {
        "loss_single": True, "loss_poissn": False, "loss_pacbed": False,
        "loss_sparse": False, "loss_simlar": False}
    assert cfg["loss_single"]["dp_pow"] == 0.5 and cfg["loss_pacbed"]["dp_pow"] == 0.2
    assert cfg["loss_simlar"]["scale_factor"] == (1.0, 1.0, 1.0)


SEED_BLOCK = """
loss_params : {
    'loss_single': {'state': true, 'weight': 1.0, 'dp_pow': 0.5}, # NRMSE
    'loss_poissn': {'state': false, 'weight': 1.0, 'dp_pow': 1.0, 'eps': 1.0e-6}, # NLL
    'loss_pacbed': {'state': false, 'weight': 0.5, 'dp_pow': 0.2},
    'loss_sparse': {'state': true, 'weight': 0.1, 'ln_order': 1},
    'loss_simlar': {'state': false, 'weight': 0.1, 'obj_type': 'both', 'scale_factor': [1,1,1], 'blur_std': 1}
}
"""


def test_yaml_forms_bare_keyed_and_whole_ptyrad_file(tmp_path):
    keyed = tmp_path / "keyed.yaml"
    keyed.write_text(SEED_BLOCK)
    bare = tmp_path / "bare.yaml"
    bare.write_text(yaml.safe_dump(yaml.safe_load(SEED_BLOCK)["loss_params"]))
    whole = tmp_path / "whole.yaml"
    whole.write_text("init_params: {probe_kv: 300}\nrecon_params: {NITER: 50}\n" + SEED_BLOCK)
    configs = [pl.CombinedLoss.from_yaml(p).config for p in (keyed, bare, whole)]
    assert configs[0] == configs[1] == configs[2] == pl.ptycho.ptyrad_example_loss_params().terms


@pytest.mark.parametrize(("block", "message"), [
    ({"loss_singel": {"state": True}}, "unknown loss term 'loss_singel'; valid terms: loss_single"),
    ({"loss_single": {"state": True, "dp_power": 1}}, "unknown key.*'dp_power'.*valid keys: state, weight, dp_pow"),
    ({"loss_single": {"state": False}, "loss_sparse": {"state": True}}, "at least one data-error term"),
    ({"loss_single": {"state": True, "weight": -1.0}}, "'weight' must be a real number >= 0, got -1.0"),
    ({"loss_single": {"state": True}, "loss_sparse": {"state": True, "ln_order": 1.5}}, "'ln_order' must be an integer"),
    ({"loss_single": {"state": True}, "loss_simlar": {"state": True, "obj_type": "amp"}}, "'obj_type' must be one of"),
    ({"loss_single": {"state": True}, "loss_simlar": {"state": True, "scale_factor": [1, 1]}}, "'scale_factor' must be a sequence of 3"),
    ({"loss_single": {"state": None}}, "'state' must be true or false"),
    ({"model_params": {}, "los_params": {}}, "unknown top-level key.*'los_params'"),
])
def test_bad_loss_params_are_named(block, message):
    with pytest.raises(ValueError, match=message):
        pl.CombinedLoss(block)


def test_yaml_is_loaded_safely(tmp_path):
    bad = tmp_path / "evil.yaml"
    bad.write_text("loss_params: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        pl.CombinedLoss.from_yaml(bad)


# ---------------------------------------------------------------- bridge

def _waves(n=2, pm=2, om=2, k=6, dtype=np.complex128):
    psi = RNG.normal(size=(n, pm, om, k, k)) + 1j * RNG.normal(size=(n, pm, om, k, k))
    return psi.astype(dtype)


def test_farfield_intensity_is_ptyrads_forward_model():
    psi = _waves()
    occ = np.array([0.6, 0.4])
    I, Psi = pl.farfield_intensity(psi, occ)
    F = np.fft.fft2(psi, norm="ortho")
    expected = np.fft.fftshift(np.sum(occ[None, None, :, None, None] * np.abs(F) ** 2,
                                      axis=(1, 2)), axes=(-2, -1)) + 1e-10
    np.testing.assert_allclose(I, expected, rtol=1e-13)
    np.testing.assert_allclose(Psi, F, rtol=1e-13)


@pytest.mark.parametrize("p", [0.5, 1.0, 0.2])
def test_farfield_adjoint_matches_finite_differences_through_a_loss(p):
    psi = _waves()
    occ = np.array([0.6, 0.4])
    D = RNG.poisson(3.0, (2, 6, 6)).astype(float)
    loss = pl.get("loss_single", dp_pow=p)

    def f(w):
        return float(loss.value(pl.farfield_intensity(w, occ)[0], D))

    I, Psi = pl.farfield_intensity(psi, occ)
    g = pl.farfield_adjoint(loss.grad(I, D), Psi, occ)
    for _ in range(3):
        v = RNG.normal(size=psi.shape) + 1j * RNG.normal(size=psi.shape)
        t = 1e-4
        fd = (-f(psi + 2 * t * v) + 8 * f(psi + t * v) - 8 * f(psi - t * v)
              + f(psi - 2 * t * v)) / (12 * t)
        assert fd == pytest.approx(np.real(np.vdot(g, v)), rel=1e-7)


def test_gradient_at_zero_intensity_is_finite_for_dp_pow_half():
    psi = np.zeros((1, 1, 1, 4, 4), dtype=np.complex128)
    psi[..., 0, 0] = 1.0  # far field is flat; add a dark pixel through a second wave
    psi2 = np.concatenate([psi, np.zeros_like(psi)], axis=0)
    I, Psi = pl.farfield_intensity(psi2)
    D = np.ones_like(I)
    g = pl.farfield_adjoint(pl.get("loss_single", dp_pow=0.5).grad(I, D), Psi)
    assert np.all(np.isfinite(g))


def test_half_step_on_the_amplitude_loss_is_the_epie_modulus_projection():
    psi = _waves(n=3, pm=1, om=1, k=8)
    D = RNG.uniform(0.5, 4.0, (3, 8, 8))
    I, Psi = pl.farfield_intensity(psi, floor=0.0)
    # L = sum((sqrt(I) - sqrt(D))^2)  =>  dL/dI = (sqrt(I) - sqrt(D)) / sqrt(I)
    dl_dI = (np.sqrt(I) - np.sqrt(D)) / np.sqrt(I)
    stepped = psi - 0.5 * pl.farfield_adjoint(dl_dI, Psi)
    F = np.fft.fft2(psi, norm="ortho")
    projected = np.fft.ifft2(np.sqrt(np.fft.ifftshift(D, axes=(-2, -1)))[:, None, None]
                             * F / np.abs(F), norm="ortho")
    np.testing.assert_allclose(stepped, projected, rtol=1e-12, atol=1e-14)


def test_bridge_keeps_single_precision():
    psi = _waves(dtype=np.complex64)
    occ = np.array([0.5, 0.5], dtype=np.float32)
    I, Psi = pl.farfield_intensity(psi, occ)
    assert I.dtype == np.float32 and Psi.dtype == np.complex64
    g = pl.farfield_adjoint(np.ones_like(I), Psi, occ)
    assert g.dtype == np.complex64


def test_amplitude_phase_gradients_round_trip_and_match_finite_differences():
    obj = RNG.uniform(0.5, 1.5, (4, 5)) * np.exp(1j * RNG.normal(size=(4, 5)))
    target = RNG.normal(size=(4, 5)) + 1j * RNG.normal(size=(4, 5))

    def f(o):  # a real loss of the complex object
        return float(np.sum(np.abs(o - target) ** 2))

    g = 2 * (obj - target)  # dL/dRe + 1j dL/dIm
    ga, gp = pl.amp_phase_grad_from_object(g, obj)
    amp, ph = np.abs(obj), np.angle(obj)
    t = 1e-5
    fd_a = (f((amp + t) * np.exp(1j * ph)) - f((amp - t) * np.exp(1j * ph))) / (2 * t)
    fd_p = (f(amp * np.exp(1j * (ph + t))) - f(amp * np.exp(1j * (ph - t)))) / (2 * t)
    assert fd_a == pytest.approx(np.sum(ga), rel=1e-8)
    assert fd_p == pytest.approx(np.sum(gp), rel=1e-8)
    np.testing.assert_allclose(pl.object_grad_from_amp_phase(ga, gp, obj), g, rtol=1e-12)


def test_bridge_errors_name_the_argument():
    with pytest.raises(TypeError, match="'psi' must have dtype complex64 or complex128"):
        pl.farfield_intensity(np.ones((1, 1, 1, 2, 2)))
    with pytest.raises(ValueError, match="'psi' must have shape"):
        pl.farfield_intensity(np.ones((2, 2), dtype=complex))
    with pytest.raises(ValueError, match="dimension O is 1 in 'psi' but 3 here"):
        pl.farfield_intensity(np.ones((1, 1, 1, 2, 2), dtype=complex), np.ones(3))
    with pytest.raises(TypeError, match="farfield_intensity: missing required array argument"):
        pl.farfield_intensity(None)
    for floor in (float("nan"), float("inf"), -1.0, "1e-10", None):
        with pytest.raises((TypeError, ValueError), match="farfield_intensity: parameter 'floor'"):
            pl.farfield_intensity(np.ones((1, 1, 1, 2, 2), dtype=complex), floor=floor)
    with pytest.raises(ValueError, match="farfield_adjoint: argument 'Psi' must be finite"):
        psi = np.ones((1, 1, 1, 2, 2), dtype=complex)
        pl.farfield_adjoint(np.ones((1, 2, 2)), psi * np.nan)


def test_strict_namespace_runs_the_bridge_and_the_terms():
    strict = pytest.importorskip("array_api_strict")
    psi = _waves()
    I, Psi = pl.farfield_intensity(strict.asarray(psi))
    I0, _ = pl.farfield_intensity(psi)
    np.testing.assert_allclose(np.from_dlpack(I), I0, rtol=1e-13)
    loss = pl.get("loss_single")
    arrays = sample_inputs(loss, xp=strict, seed=0)
    assert loss.value(**arrays).dtype == strict.float64
