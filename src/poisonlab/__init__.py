"""poisonlab: how much does poisoned training data hurt a model, and can we catch it?

The public API (imported on first use, so that ``import poisonlab`` stays fast)::

    import poisonlab as pl
    data = pl.load_dataset("mnist", size=1000)
    labels, mask = pl.poison_labels(data.y_train, kind="random", rate=0.2, seed=0)
    result = pl.train(data, kind="random", rate=0.2, epochs=5)
"""

from __future__ import annotations

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "load_dataset": "poisonlab.api", "from_arrays": "poisonlab.datasets", "from_torch": "poisonlab.datasets",
    "Dataset": "poisonlab.datasets", "poison_labels": "poisonlab.attacks.flips",
    "train": "poisonlab.api", "sweep": "poisonlab.api", "flip": "poisonlab.api", "detect": "poisonlab.api",
    "score": "poisonlab.api", "results": "poisonlab.api", "backdoor": "poisonlab.api", "BackdoorResult": "poisonlab.api", "RunResult": "poisonlab.api", "SweepResult": "poisonlab.api",
    "FlipResult": "poisonlab.api", "Detection": "poisonlab.defences.detectors", "TrainConfig": "poisonlab.training.loop",
    "load_model": "poisonlab.training.saving", "PoisonlabError": "poisonlab.errors",
    "certify": "poisonlab.api", "CertifyResult": "poisonlab.api", "defend": "poisonlab.api",
    "DefendResult": "poisonlab.api", "Tracking": "poisonlab.reporting.tracking",
}
__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    """Import a public name from its module on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'poisonlab' has no attribute '{name}'")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
