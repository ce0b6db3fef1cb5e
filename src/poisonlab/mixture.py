"""Two-component Gaussian mixtures that split values (losses, suspicion scores) into a low and a high group."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture


def low_share(values: np.ndarray) -> np.ndarray:
    """Each value's probability of the low component of a two-component Gaussian mixture fitted to its row's min-max
    scaled values, per row of `values` (M, N) (one row per model's losses, or a detector's scores; a 1-D array is
    one row); returns (M, N)."""
    shares = []
    for row in np.atleast_2d(np.asarray(values, dtype=np.float64)):
        scaled = ((row - row.min()) / max(float(row.max() - row.min()), 1e-12)).reshape(-1, 1)
        with warnings.catch_warnings():  # ten steps are enough to split; a degenerate row need not converge
            warnings.simplefilter("ignore", ConvergenceWarning)
            gmm = GaussianMixture(2, max_iter=10, tol=1e-2, reg_covar=5e-4, random_state=0).fit(scaled)
        shares.append(gmm.predict_proba(scaled)[:, int(gmm.means_.argmin())])
    return np.stack(shares)
