"""Trained models on disk as safetensors (torch weights or fitted scikit-learn arrays) plus JSON metadata; no pickle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load as np_load
from safetensors.numpy import save as np_save
from safetensors.torch import load as torch_load
from safetensors.torch import save as torch_save
from torch import nn

from poisonlab.checks import check_item_shape
from poisonlab.errors import PoisonlabError, decoding
from poisonlab.files import MAX_RECORD_BYTES, MAX_WEIGHTS_BYTES, read_limited
from poisonlab.store import MODEL_META_FILE, RUN_FILE, WEIGHTS_FILE, atomic_write, read_run, weights_digest, write_json
from poisonlab.training import MODELS, models


def _json_value(value):
    """A fitted scikit-learn attribute as a JSON value, or raise TypeError."""
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)) and all(isinstance(v, (int, float, str)) for v in value):
        return {"tuple": list(value)} if isinstance(value, tuple) else list(value)
    raise TypeError(type(value).__name__)


def save_model(run_dir: Path, model, meta: dict) -> str:
    """Save weights (torch) or fitted arrays (scikit-learn) as safetensors, and metadata as JSON; never pickle.

    Returns the weights file's "sha256:<hex>"."""
    if isinstance(model, nn.Module):
        data = torch_save({k: v.contiguous().cpu() for k, v in model.state_dict().items()})
        atomic_write(run_dir / WEIGHTS_FILE, data)
        write_json(run_dir / MODEL_META_FILE, {**meta, "format": "torch"})
        return weights_digest(data)
    arrays, attrs = {}, {}
    for key, value in vars(model).items():
        if isinstance(value, np.ndarray) and value.dtype != object:
            arrays[key] = np.ascontiguousarray(value)
        else:
            attrs[key] = _json_value(value)
    data = np_save(arrays)
    atomic_write(run_dir / WEIGHTS_FILE, data)
    write_json(run_dir / MODEL_META_FILE, {**meta, "format": "sklearn", "attributes": attrs})
    return weights_digest(data)


def check_savable(model, x: np.ndarray, y: np.ndarray) -> None:
    """Refuse, before any real training, a scikit-learn estimator whose fitted state is more than arrays and plain
    values (a Pipeline, a forest of trees): it cannot be saved without pickle. A clone is fitted on a few items of
    (`x`, `y`) (features as the run gives them) to find out."""
    from sklearn.base import clone

    if not (hasattr(model, "fit") and hasattr(model, "get_params")):  # a name or a factory: saved as torch weights
        return
    picked = np.concatenate([np.flatnonzero(y == c)[:3] for c in np.unique(y)])
    trial = clone(model)
    try:
        trial.fit(x[picked], y[picked])
    except Exception:  # noqa: BLE001 - too few items for this estimator: the real fit will say what is wrong
        return
    for key, value in vars(trial).items():
        if isinstance(value, np.ndarray) and value.dtype != object:
            continue
        try:
            _json_value(value)
        except TypeError:
            raise PoisonlabError(f"{type(model).__name__} cannot be saved without pickle (its fitted '{key}' holds "
                                 f"{type(value).__name__} objects); pass out=None to keep the results in memory, or "
                                 "use an estimator whose fitted state is arrays (LogisticRegression, SVC, ...)") from None


_FIX = "train the run again or restore the run folder from a copy"


def load_model(run_dir: str | Path):
    """Rebuild the model of a saved run (torch module in eval mode, or fitted scikit-learn estimator).

    Weights that do not match the `weights_sha256` of the run's run.json (or a run.json without it) are refused; a
    folder without run.json loads unverified (a model saved by `save_model` alone); a damaged model.json or
    weights file is one `PoisonlabError`, its declared shape bounded before any model is built.

    Parameters
    ----------
    run_dir : str or Path
        A run folder (holding model.json and model.safetensors).

    Returns
    -------
    torch.nn.Module or estimator
        The trained model, ready to predict.
    """
    run_dir = Path(run_dir)
    meta_file = run_dir / MODEL_META_FILE
    if not meta_file.is_file():
        raise PoisonlabError(f"{run_dir} holds no saved model ({MODEL_META_FILE} not found); give the folder of a "
                             "finished run, such as runs/models/<name>/<percent>/seed0")
    with decoding(f"model description {meta_file}", _FIX):
        meta = json.loads(read_limited(meta_file, f"model description {meta_file}", MAX_RECORD_BYTES, _FIX))
    name, shape, k, kind = _described(meta, meta_file)
    data = read_limited(run_dir / WEIGHTS_FILE, f"weights {run_dir / WEIGHTS_FILE}", MAX_WEIGHTS_BYTES, _FIX)
    run = read_run(run_dir, weights=False)
    if run is not None and run.get("weights_sha256") != weights_digest(data):
        cause = "records no SHA-256 of them" if run.get("weights_sha256") is None else "records (damaged or replaced)"
        raise PoisonlabError(f"{run_dir / WEIGHTS_FILE} does not match the SHA-256 its {RUN_FILE} {cause}; "
                             "train the run again or restore the file")
    model = models.build(name, shape, k, meta.get("seed", 0) if isinstance(meta.get("seed"), int) else 0)
    with decoding(f"weights {run_dir / WEIGHTS_FILE}", _FIX):
        if kind == "torch":
            model.load_state_dict(torch_load(data))
            return model.eval()
        for key, value in meta["attributes"].items():
            setattr(model, key, tuple(value["tuple"]) if isinstance(value, dict) else value)
        for key, value in np_load(data).items():
            setattr(model, key, value)
    return model


def _described(meta: object, path: Path) -> tuple[str, tuple[int, ...], int, str]:
    """(name, shape, num_classes, format) of a model.json, each checked and bounded, else a one-line error."""
    ok = isinstance(meta, dict) and meta.get("name") in MODELS and meta.get("format") in ("torch", "sklearn") \
        and (meta["format"] == "torch" or isinstance(meta.get("attributes"), dict))
    if not ok:
        raise PoisonlabError(f"{path} does not describe a poisonlab model (name one of {', '.join(MODELS)}, format "
                             f"torch or sklearn); {_FIX}")
    shape, k = check_item_shape(meta.get("shape"), meta.get("num_classes"), str(path))
    return meta["name"], shape, k, meta["format"]
