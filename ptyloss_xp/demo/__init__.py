"""``ptyloss-xp demo``: simulate a ptychography dataset and reconstruct it with
a solver that takes every gradient from ptyloss_xp.

- :mod:`.simulate`: the dataset (lattice object, defocused probe, raster
  scan, PtyRAD's far field, Poisson noise) and the phase-error metric;
- :mod:`.solver`: the reference minibatch solver;
- :mod:`.command`: the command's options, progress bar and output files.

The command line calls :func:`add_arguments` on its ``demo`` subparser and
:func:`run` with the parsed options. Importing this package does not import
matplotlib.
"""

from .command import add_arguments, run

__all__ = ["add_arguments", "run"]
