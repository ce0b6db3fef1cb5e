"""Why poisonlab has no SPECTRE-style robust spectral detector: at 10 % stamped the triggered items are half of the
target class, and a robust covariance fitted to the class's majority fits them.

    .venv/bin/python bench/spectral_high_rates.py [N_ITEMS]

MNIST first N_ITEMS (default 3000), 3x3 corner patch (and a blend at 10 %) to class 0, seed 0, the activation
model of `detect` (smallcnn). Within class 0: ROC AUC of spectral signatures' score, of the top-eigenvector score
after whitening with a robust covariance (minimum covariance determinant on 16 PCA dimensions, SPECTRE's
robust-estimation step), and of the robust Mahalanobis distance itself."""

import sys
from pathlib import Path

import numpy as np
from sklearn.covariance import MinCovDet
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score

import poisonlab as pl
from poisonlab.attacks.backdoor import Trigger, backdoor
from poisonlab.defences.activations import penultimate_pass, spectral_scores
from poisonlab.defences.folds import DetectorConfig

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    data = pl.load_dataset("mnist", size=n, data_dir=DATA)
    config = DetectorConfig().for_items(data.x_train)
    print("| trigger | % stamped | share of class 0 stamped | spectral | robust-whitened spectral | robust Mahalanobis |")
    print("|---|---|---|---|---|---|")
    for kind, percent in (("patch", 1), ("patch", 5), ("patch", 10), ("patch", 20), ("blend", 10)):
        x, labels, idx = backdoor(data.x_train, data.y_train, trigger=Trigger(kind=kind), target=0, percent=percent, seed=0)
        mask = np.zeros(len(labels), bool)
        mask[idx] = True
        features = penultimate_pass(x, labels, data.num_classes, 0, config).features
        spectral = spectral_scores(features, labels)[0]
        target = np.flatnonzero(labels == 0)
        reduced = PCA(16, random_state=0).fit_transform(features[target])
        robust = MinCovDet(random_state=0).fit(reduced)
        whitened = (reduced - robust.location_) @ np.linalg.cholesky(np.linalg.inv(robust.covariance_))
        centred = whitened - whitened.mean(0)
        top = np.linalg.svd(centred, full_matrices=False)[2][0]
        auc = [roc_auc_score(mask[target], s) for s in (spectral[target], (centred @ top) ** 2,
                                                         robust.mahalanobis(reduced))]
        print(f"| {kind} | {percent} | {mask[target].mean():.2f} | " + " | ".join(f"{a:.3f}" for a in auc) + " |",
              flush=True)


if __name__ == "__main__":
    main()
