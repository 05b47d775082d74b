"""The ``demo`` subcommand: options, progress bar, figures and summary."""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np
import yaml

from .._backend import BackendError, backend_namespace
from ..ptycho.combined import CombinedLoss, parse_loss_params
from ..ptycho.params import ptyrad_example_loss_params
from .simulate import phase_error, remove_phase_offset, simulate
from .solver import reconstruct

__all__ = ["add_arguments", "run", "Options"]

_PROG = "ptyloss-xp"
_INSTALL_HINT = 'pip install "ptyloss-xp[demo]"'


class _BadOption(Exception):
    """A bad option or a missing requirement: one line on stderr, exit status 2."""


@dataclass
class Options:
    """The demo's settings, checked (see :func:`add_arguments` for each)."""

    config: str | None = None
    dose: float = 1e5
    iters: int = 50
    backend: str = "numpy"
    out: str | None = None
    size: int = 16
    step: int = 3
    batch: int = 32
    seed: int = 0
    dtype: str = "float32"
    probe_start: int = 5
    compare_noise_models: bool = False
    quiet: bool = False

    @classmethod
    def from_args(cls, args) -> Options:
        """Convert and check the parsed options; raises ``_BadOption``."""
        d = cls()
        get = lambda name: getattr(args, name, getattr(d, name))  # noqa: E731
        dose = _number("--dose", get("dose"), float)
        if math.isnan(dose) or dose <= 0:
            raise _BadOption(f"--dose must be a positive number of electrons per pattern "
                             f"(or inf for noise-free patterns), got {get('dose')}")
        ints = {}
        for name, low in (("iters", 1), ("size", 2), ("step", 1), ("batch", 1), ("seed", 0),
                          ("probe_start", 0)):
            flag = "--" + name.replace("_", "-")
            ints[name] = _number(flag, get(name), int)
            if ints[name] < low:
                raise _BadOption(f"{flag} must be an integer >= {low}, got {get(name)}")
        backend = str(get("backend"))
        if backend not in ("numpy", "cupy"):
            raise _BadOption(f"unknown --backend {backend!r}; choose numpy or cupy")
        dtype = str(get("dtype"))
        if dtype not in ("float32", "float64"):
            raise _BadOption(f"unknown --dtype {dtype!r}; choose float32 or float64")
        return cls(config=get("config"), dose=dose, backend=backend, out=get("out"),
                   dtype=dtype, compare_noise_models=bool(get("compare_noise_models")),
                   quiet=bool(get("quiet")), **ints)


def _number(flag, text, kind):
    try:
        return kind(text)
    except (TypeError, ValueError):
        want = "an integer" if kind is int else "a number"
        raise _BadOption(f"{flag} must be {want}, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the demo's options to ``parser`` (an argparse (sub)parser).

    Values stay text until :func:`run` checks them, so that a bad value is
    reported in one line rather than by argparse's usage message.
    """
    d = Options()
    parser.description = ("Simulate a ptychography dataset (a crystal lattice, a defocused "
                          "probe, a raster scan, Poisson noise) and reconstruct it with a "
                          "gradient solver whose every gradient comes from ptyloss_xp.")
    parser.add_argument("--config", metavar="FILE",
                        help="PtyRAD params file or loss_params block, YAML, JSON or TOML "
                             "(default: PtyRAD's documented example block, loss_single and "
                             "loss_sparse on)")
    parser.add_argument("--dose", default=d.dose, metavar="N",
                        help=f"electrons per diffraction pattern; inf: no noise (default {d.dose:g})")
    parser.add_argument("--iters", default=d.iters, metavar="N",
                        help=f"passes over all scan positions (default {d.iters})")
    parser.add_argument("--backend", default=d.backend, metavar="{numpy,cupy}",
                        help="array library of the reconstruction (default numpy)")
    parser.add_argument("--out", metavar="DIR",
                        help="output folder (default: a new ./ptyloss-demo-YYYYmmdd-HHMMSS)")
    parser.add_argument("--size", default=d.size, metavar="N",
                        help=f"scan positions per side, N*N patterns (default {d.size})")
    parser.add_argument("--step", default=d.step, metavar="PX",
                        help=f"scan step in pixels of 0.2 A (default {d.step})")
    parser.add_argument("--batch", default=d.batch, metavar="N",
                        help=f"scan positions per update (default {d.batch})")
    parser.add_argument("--seed", default=d.seed, metavar="N",
                        help="seed of the noise and the batch order (default 0)")
    parser.add_argument("--dtype", default=d.dtype, metavar="{float32,float64}",
                        help="precision of the reconstruction (default float32)")
    parser.add_argument("--probe-start", default=d.probe_start, metavar="N",
                        help=f"first pass that refines the probe (default {d.probe_start})")
    parser.add_argument("--compare-noise-models", action="store_true",
                        help="reconstruct twice, with loss_single and with loss_poissn as the "
                             "data term, and compare the phase errors")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    """Run the demo with parsed options; return the exit status.

    A bad option or a missing requirement prints one line on stderr and
    returns 2; nothing is raised for them.
    """
    try:
        opts = Options.from_args(args)
        _require_matplotlib()
        xp = _namespace(opts.backend)
        config = _load_config(opts.config)
        out = _make_out_dir(opts.out)
    except _BadOption as exc:
        print(f"{_PROG}: error: {exc}", file=sys.stderr)
        return 2
    try:
        if opts.compare_noise_models:
            _compare(opts, xp, config, out)
        else:
            summary = run_demo(opts, xp, config, out)
            print(_result_line(summary, out))
    except KeyboardInterrupt:
        print(f"\n{_PROG}: interrupted; partial files may be in {out}", file=sys.stderr)
        return 130
    return 0


def _require_matplotlib():
    try:
        importlib.import_module("matplotlib")
    except ImportError:
        raise _BadOption(f"the demo draws its figures with matplotlib, which is not installed: "
                         f"{_INSTALL_HINT}") from None


def _namespace(backend):
    try:
        return backend_namespace(backend)
    except BackendError as exc:
        raise _BadOption(f"--backend: {exc}") from None


def _load_config(path):
    if path is None:
        return ptyrad_example_loss_params().terms
    if not os.path.isfile(path):
        raise _BadOption(f"--config: no such file: {path}")
    try:
        return parse_loss_params(path)
    except (OSError, ValueError) as exc:
        raise _BadOption(f"--config: {exc}") from None


def _make_out_dir(path):
    if path is None:
        base = time.strftime("ptyloss-demo-%Y%m%d-%H%M%S")
        path, n = base, 1
        while os.path.exists(path):
            n += 1
            path = f"{base}-{n}"
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise _BadOption(f"--out: cannot create folder {path}: {exc.strerror}") from None
    return path


def _to_host(x):
    # CuPy arrays copy to the host with .get(); NumPy arrays pass through.
    return x.get() if hasattr(x, "get") else np.asarray(x)


class _Progress:
    """A hand-written progress bar on ``stream``: in place on a terminal, else
    about ten lines in all."""

    def __init__(self, total, stream, enabled, label=""):
        self.total, self.stream, self.enabled, self.label = total, stream, enabled, label
        self.tty = enabled and hasattr(stream, "isatty") and stream.isatty()
        self.start = time.perf_counter()

    def __call__(self, it, terms):
        if not self.enabled:
            return
        done = it + 1
        if not self.tty and done % max(1, self.total // 10) and done != self.total:
            return
        width = 20
        fill = round(width * done / self.total)
        losses = "  ".join(f"{k} {v:.4g}" for k, v in terms.items())
        line = (f"{self.label}[{'#' * fill}{'.' * (width - fill)}] {done}/{self.total}  "
                f"{losses}  {time.perf_counter() - self.start:.1f} s")
        self.stream.write(("\r" + line + "\033[K") if self.tty else line + "\n")
        if self.tty and done == self.total:
            self.stream.write("\n")
        self.stream.flush()


def run_demo(opts: Options, xp, config: dict, out: str, *, label="") -> dict:
    """Simulate, reconstruct and write every output file into ``out``.

    Returns the summary that is also written to ``summary.json``.
    """
    t0 = time.perf_counter()
    ds = simulate(n_scan=opts.size, dose=opts.dose, seed=opts.seed, step=opts.step)
    t1 = time.perf_counter()
    complex_dtype = xp.complex64 if opts.dtype == "float32" else xp.complex128
    real = xp.float32 if opts.dtype == "float32" else xp.float64
    obj0 = xp.ones((1,) + ds.obj.shape, dtype=complex_dtype)
    probe0 = xp.asarray(ds.probe_guess[None], dtype=complex_dtype)
    measured = xp.asarray(ds.measured, dtype=real)
    loss = CombinedLoss(config)
    active = [t for t, c in config.items() if c["state"]]
    progress = _Progress(opts.iters, sys.stderr, not opts.quiet, label)
    rec = reconstruct(loss, measured, ds.positions, obj0, probe0, iters=opts.iters,
                      batch=opts.batch, probe_start=opts.probe_start, seed=opts.seed,
                      callback=lambda it, terms: progress(it, {t: terms[t] for t in ["total"] + active}))
    obj, probe = _to_host(rec.obj)[0], _to_host(rec.probe)[0]
    t2 = time.perf_counter()

    e0 = phase_error(_to_host(obj0)[0], ds.obj, ds.region)
    e1 = phase_error(obj, ds.obj, ds.region)
    history = {t: rec.history[t] for t in ["total"] + active}
    with open(os.path.join(out, "loss_params.yaml"), "w", encoding="utf-8") as fh:
        fh.write("# The loss_params of this run, every key resolved (ptyloss-xp demo).\n")
        yaml.safe_dump({"loss_params": _plain(config)}, fh, sort_keys=False)
    figures = _figures(out, ds, obj, probe, history)
    summary = {
        "phase_error_rad": {"initial": e0, "final": e1, "ratio": e1 / e0},
        "phase_error_note": ("RMS of the wrapped phase difference to the ground truth inside "
                             "the scanned area, after removing the global phase offset"),
        "loss_history": history,
        "loss_decreased": history["total"][-1] < history["total"][0],
        "step_history": rec.steps,
        "wall_time_s": {"simulation": t1 - t0, "reconstruction": t2 - t1,
                        "total": time.perf_counter() - t0},
        "backend": opts.backend,
        "options": _options_json(opts),
        "dataset": ds.meta,
        "files": ["summary.json", "loss_params.yaml"] + figures,
    }
    with open(os.path.join(out, "summary.json"), "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=2)
    return summary


def _options_json(opts):
    # JSON has no infinity: a noise-free run records its dose as "inf".
    d = asdict(opts)
    d["dose"] = d["dose"] if math.isfinite(d["dose"]) else "inf"
    return d


def _plain(value):
    """Tuples to lists, so that ``yaml.safe_dump`` writes plain YAML lists."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _figures(out, ds, obj, probe, history):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rs, cs = ds.region
    aligned = remove_phase_offset(obj, ds.obj, ds.region)
    true_phase = np.angle(ds.obj)
    lo, hi = float(true_phase.min()), float(true_phase.max())
    box = dict(xy=(cs.start - 0.5, rs.start - 0.5), width=cs.stop - cs.start,
               height=rs.stop - rs.start)

    fig, axes = plt.subplots(1, 3, figsize=(12, 4), constrained_layout=True)
    panels = [(true_phase, "true phase (rad)", (lo, hi), "viridis"),
              (np.angle(aligned), "reconstructed phase (rad)", (lo, hi), "viridis"),
              (np.angle(aligned * np.conj(ds.obj)), "difference (rad)", (-0.2, 0.2), "RdBu_r")]
    for ax, (img, title, (vmin, vmax), cmap) in zip(axes, panels):
        im = ax.imshow(img, vmin=vmin, vmax=vmax, cmap=cmap)
        ax.add_patch(plt.Rectangle(**box, fill=False, color="w" if cmap == "viridis" else "k",
                                   lw=1, ls="--"))
        ax.set_title(title)
        ax.set_axis_off()
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle("object phase; dashed: scanned area, where the error is measured")
    fig.savefig(os.path.join(out, "object_phase.png"), dpi=100)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6), constrained_layout=True)
    for ax, (img, title) in zip(axes, [(ds.probe, "true probe"), (ds.probe_guess, "initial probe"),
                                       (probe, "reconstructed probe")]):
        ax.imshow(np.abs(img), cmap="magma")
        ax.set_title(f"{title} |P|")
        ax.set_axis_off()
    fig.savefig(os.path.join(out, "probe_amplitude.png"), dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    its = np.arange(1, len(history["total"]) + 1)
    for name, values in history.items():
        ax.plot(its, values, label=name, lw=2 if name == "total" else 1)
    if all(v > 0 for values in history.values() for v in values):
        ax.set_yscale("log")
    ax.set_xlabel("iteration (pass over all positions)")
    ax.set_ylabel("weighted loss (mean over batches)")
    ax.legend()
    fig.savefig(os.path.join(out, "loss_curves.png"), dpi=100)
    plt.close(fig)
    return ["object_phase.png", "probe_amplitude.png", "loss_curves.png"]


def _result_line(summary, out):
    e = summary["phase_error_rad"]
    return (f"phase error {e['initial']:.4f} -> {e['final']:.4f} rad (ratio {e['ratio']:.3f}) "
            f"in {summary['wall_time_s']['total']:.1f} s; files in {out}")


def _noise_model_configs(config):
    """The config with loss_single alone as the data term, and with loss_poissn alone.

    ``config`` is resolved, so both data terms are there with their settings
    (PtyRAD's defaults where the file did not list them); the other terms
    are unchanged.
    """
    out = {}
    for keep, drop in (("loss_single", "loss_poissn"), ("loss_poissn", "loss_single")):
        c = copy.deepcopy(config)
        c[keep] = {**c[keep], "state": True}
        c[drop] = {**c[drop], "state": False}
        out[keep] = c
    return out


def _compare(opts, xp, config, out):
    results = {}
    for term, cfg in _noise_model_configs(config).items():
        sub = os.path.join(out, term)
        os.makedirs(sub, exist_ok=True)
        summary = run_demo(opts, xp, cfg, sub, label=f"{term} ")
        results[term] = {"phase_error_rad": summary["phase_error_rad"],
                         "wall_time_s": summary["wall_time_s"]["total"], "folder": term}
        print(f"{term}: {_result_line(summary, sub)}")
    gauss = results["loss_single"]["phase_error_rad"]["final"]
    poiss = results["loss_poissn"]["phase_error_rad"]["final"]
    compare = {"options": _options_json(opts), "results": results,
               "poissn_over_single": poiss / gauss}
    with open(os.path.join(out, "compare.json"), "w", encoding="utf-8") as fh:
        json.dump(compare, fh, indent=2)
    better = "loss_poissn" if poiss < gauss else "loss_single"
    print(f"final phase error: loss_single {gauss:.4f} rad, loss_poissn {poiss:.4f} rad; "
          f"{better} is lower (ratio poissn/single {poiss / gauss:.3f}); files in {out}")
