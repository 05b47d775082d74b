"""The demo's ptychography dataset, simulated on the fly.

A thin specimen ``O = A exp(i phi)``: a rotated square lattice of Gaussian
phase peaks of two heights (a binary crystal seen down a zone axis), with an
amplitude that absorbs a little where the phase is large. A probe formed by a
circular condenser aperture with defocus is scanned over it on a raster grid
with large overlap. Exit waves ``psi = P * O_patch`` go through PtyRAD's
far-field model (:func:`ptyloss_xp.farfield_intensity`), and the patterns get
Poisson counting noise at a chosen dose (electrons per pattern, the total
intensity of the probe).

The simulation runs on the host in float64 with NumPy whatever backend the
reconstruction uses, so that one seed gives the same data on NumPy and CuPy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ptycho import farfield_intensity

__all__ = ["Dataset", "simulate", "probe_from_aperture", "wavelength", "phase_error", "remove_phase_offset"]


def wavelength(energy_kev: float) -> float:
    """Relativistic electron wavelength in angstrom.

    >>> round(wavelength(200.0), 5)
    0.02508
    """
    volts = energy_kev * 1e3
    return float(12.2643 / np.sqrt(volts * (1.0 + 0.978476e-6 * volts)))


def probe_from_aperture(size, pixel, energy_kev, semiangle_mrad, defocus, intensity):
    """A probe from a circular aperture with defocus, centred in its window.

    Parameters
    ----------
    size : int
        Window side in pixels.
    pixel : float
        Real-space pixel size in angstrom.
    energy_kev, semiangle_mrad : float
        Beam energy and convergence semi-angle.
    defocus : float
        Defocus in angstrom; it spreads the probe so that neighbouring scan
        positions overlap.
    intensity : float
        ``sum |P|^2``: the electrons per pattern.

    Returns
    -------
    complex128 array, shape (size, size)

    Examples
    --------
    >>> P = probe_from_aperture(32, 0.2, 200.0, 20.0, 50.0, 1000.0)
    >>> round(float((abs(P) ** 2).sum()), 6)
    1000.0
    """
    lam = wavelength(energy_kev)
    k = np.fft.fftfreq(size, d=pixel)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    kmax = semiangle_mrad * 1e-3 / lam
    pupil = (k2 <= kmax**2) * np.exp(-1j * np.pi * lam * defocus * k2)
    probe = np.fft.fftshift(np.fft.ifft2(pupil))
    return probe * np.sqrt(intensity / np.sum(np.abs(probe) ** 2))


@dataclass
class Dataset:
    """A simulated ptychography dataset (NumPy arrays on the host).

    Attributes
    ----------
    obj : complex128 array, shape (H, W)
        Ground-truth transmission function.
    probe : complex128 array, shape (K, K)
        Ground-truth probe; ``sum |probe|^2`` is the dose.
    probe_guess : complex128 array, shape (K, K)
        The starting probe a user would build from the nominal optics: the
        same aperture with a defocus 25 % off, scaled to the mean measured
        counts.
    positions : int array, shape (N, 2)
        Top-left (row, column) of each probe window in the object.
    measured : float64 array, shape (N, K, K)
        Diffraction patterns (counts), zero frequency at the centre.
    region : tuple of slice
        The scanned area, the rectangle spanned by the probe centres: where
        phase errors are measured.
    meta : dict
        The simulation settings, for the summary.
    """

    obj: np.ndarray
    probe: np.ndarray
    probe_guess: np.ndarray
    positions: np.ndarray
    measured: np.ndarray
    region: tuple
    meta: dict = field(default_factory=dict)


def _lattice_phase(shape, pixel, spacing, sigma, heights, rotation):
    """Sum of Gaussian peaks on a rotated square lattice, alternating heights."""
    yy, xx = np.meshgrid(np.arange(shape[0]) * pixel, np.arange(shape[1]) * pixel,
                         indexing="ij")
    c, s = np.cos(rotation), np.sin(rotation)
    # Lattice coordinates of every pixel; peaks sit at integer (u, v).
    u = (c * yy + s * xx) / spacing
    v = (-s * yy + c * xx) / spacing
    phase = np.zeros(shape)
    span = int(np.ceil(max(shape) * pixel / spacing)) + 2
    for i in range(-span, span + 1):
        for j in range(-span, span + 1):
            d2 = ((u - i) ** 2 + (v - j) ** 2) * spacing**2
            if d2.min() > (4 * sigma) ** 2:
                continue
            phase += heights[(i + j) % 2] * np.exp(-d2 / (2 * sigma**2))
    return phase


def simulate(n_scan=10, dose=1e5, seed=0, *, probe_size=48, step=4, pixel=0.2,
             energy_kev=200.0, semiangle_mrad=20.0, defocus=80.0, spacing=1.9,
             peak_sigma=0.3, peak_phases=(0.6, 0.3), absorption=0.1):
    """Simulate a dataset.

    Parameters
    ----------
    n_scan : int
        Scan positions per side (``n_scan**2`` patterns).
    dose : float
        Electrons per pattern (``sum |P|^2``); ``inf`` gives noise-free
        patterns.
    seed : int
        Seed of the counting noise.
    probe_size : int
        Probe window (and detector) side in pixels.
    step : int
        Scan step in pixels. With the defaults the probe is about 16 pixels
        across, so neighbouring positions overlap by about 75 %.
    pixel : float
        Real-space pixel size in angstrom.
    energy_kev, semiangle_mrad, defocus : float
        Beam energy, convergence semi-angle (mrad) and defocus (angstrom).
    spacing, peak_sigma : float
        Lattice constant and peak width (angstrom).
    peak_phases : (float, float)
        Peak phases (rad) of the two sublattices.
    absorption : float
        ``A = exp(-absorption * phi)``: a weak amplitude contrast.

    Returns
    -------
    Dataset

    Examples
    --------
    >>> ds = simulate(n_scan=3, dose=1e4, probe_size=16, step=4)
    >>> ds.measured.shape, ds.obj.shape, ds.positions.shape
    ((9, 16, 16), (24, 24), (9, 2))
    """
    size = (n_scan - 1) * step + probe_size
    phase = _lattice_phase((size, size), pixel, spacing, peak_sigma, peak_phases, 0.2)
    obj = np.exp(-absorption * phase) * np.exp(1j * phase)
    probe = probe_from_aperture(probe_size, pixel, energy_kev, semiangle_mrad, defocus,
                                1.0 if np.isinf(dose) else dose)
    grid = np.arange(n_scan) * step
    positions = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(-1, 2)
    rows = positions[:, :1, None] + np.arange(probe_size)[None, :, None]
    cols = positions[:, None, 1:] + np.arange(probe_size)[None, None, :]
    psi = (probe * obj[rows, cols])[:, None, None]
    intensity, _ = farfield_intensity(psi)
    if np.isinf(dose):
        measured = intensity
    else:
        measured = np.random.default_rng(seed).poisson(intensity).astype(np.float64)
    guess = probe_from_aperture(probe_size, pixel, energy_kev, semiangle_mrad, 0.75 * defocus,
                                float(measured.sum(axis=(1, 2)).mean()))
    lo, hi = probe_size // 2, (n_scan - 1) * step + probe_size // 2 + 1
    meta = {
        "object_shape": [size, size], "probe_shape": [probe_size, probe_size],
        "positions": int(n_scan**2), "scan": [n_scan, n_scan], "step_px": step,
        "pixel_A": pixel, "energy_keV": energy_kev, "semiangle_mrad": semiangle_mrad,
        "defocus_A": defocus, "probe_guess_defocus_A": 0.75 * defocus,
        "lattice_A": spacing, "peak_phases_rad": list(peak_phases), "absorption": absorption,
        "dose_per_pattern": dose if np.isfinite(dose) else "noise-free",
        "mean_counts_per_pattern": float(measured.sum(axis=(1, 2)).mean()),
        "scanned_area_px": [lo, hi, lo, hi], "noise_seed": seed,
    }
    return Dataset(obj, probe, guess, positions, measured, (slice(lo, hi), slice(lo, hi)), meta)


def phase_error(obj, truth, region):
    """RMS phase difference (rad) inside ``region`` after removing the global offset.

    The offset is the circular mean of the phase difference, so that phase
    wrapping does not bias it; each pixel's difference is wrapped into
    ``(-pi, pi]`` before the RMS.

    Parameters
    ----------
    obj, truth : complex NumPy arrays of one shape
    region : tuple of slice

    Examples
    --------
    >>> t = np.exp(1j * np.linspace(0, 1, 5))
    >>> round(phase_error(t * np.exp(2j), t, (slice(None),)), 12)
    0.0
    """
    aligned = remove_phase_offset(obj, truth, region)
    return float(np.sqrt(np.mean(np.angle(aligned[region] * np.conj(truth[region])) ** 2)))


def remove_phase_offset(obj, truth, region):
    """``obj`` times ``exp(-1j offset)``, the offset being the circular mean
    of the phase difference to ``truth`` inside ``region``."""
    diff = np.angle(obj[region] * np.conj(truth[region]))
    return obj * np.exp(-1j * np.angle(np.mean(np.exp(1j * diff))))
