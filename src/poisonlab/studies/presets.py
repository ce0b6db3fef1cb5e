"""Named sets of run settings: `original` is the published Keras experiment that poisonlab grew out of, exactly."""

from __future__ import annotations

from poisonlab.checks import check_choice
from poisonlab.studies import PRESET_NAMES
from poisonlab.studies.run import RunSpec
from poisonlab.training.loop import TrainConfig

PRESETS: dict[str, dict] = {
    "original": {
        "model": "original",  # its network, inputs /255, Glorot-uniform kernels, zero biases
        "select": "last",  # the last round(N * p / 100) training items are poisoned
        "biased_rule": "code",  # biased: class 0 or 1 with equal odds (0 and 1 swapped), as its code does
        "val": "test",  # the test set is the validation data (early stopping, plateau cuts, best epoch)
        "train": {"max_epochs": 100, "batch_size": 256, "lr": 1e-3, "patience": 10, "lr_patience": 5,
                  "lr_factor": 0.1, "plateau": "keras", "adam": "keras"},
    },
}
"""Preset name -> the RunSpec settings it sets (train: the TrainConfig ones)."""
assert tuple(PRESETS) == PRESET_NAMES

DEFAULTS = {"model": RunSpec.model, "select": RunSpec.select, "biased_rule": RunSpec.biased_rule, "val": RunSpec.val}


def resolve(preset: str | None, *, model: str | None = None, select: list[str] | None = None,
            biased_rule: str | None = None, val: str | None = None, epochs: int | None = None,
            batch_size: int | None = None, precision: str = "auto") -> tuple[RunSpec, list[str]]:
    """The base RunSpec of a sweep (dataset left empty, kind biased so that it keeps the biased rule; `sweep.plan`
    sets both per run) and its item selections: each setting given (not None) wins,
    else the preset's, else poisonlab's default; `preset` is recorded in the spec."""
    if preset is not None:
        check_choice(preset, PRESET_NAMES, "preset")
    chosen = PRESETS.get(preset, {"train": {}})
    pick = lambda name, value: value if value is not None else chosen.get(name, DEFAULTS[name])  # noqa: E731
    train = {**chosen["train"], "precision": precision}
    train.update({k: v for k, v in (("max_epochs", epochs), ("batch_size", batch_size)) if v is not None})
    spec = RunSpec(dataset="", kind="biased", model=pick("model", model), val=pick("val", val),  # kind: keeps the rule
                   biased_rule=pick("biased_rule", biased_rule), train=TrainConfig(**train), preset=preset)
    return spec, select if select is not None else [chosen.get("select", DEFAULTS["select"])]
