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

from poisonlab.errors import PoisonlabError
from poisonlab.store import MODEL_META_FILE, RUN_FILE, WEIGHTS_FILE, atomic_write, read_run, weights_digest, write_json
from poisonlab.training import models


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


def load_model(run_dir: Path):
    """Rebuild the model of a saved run (torch module in eval mode, or fitted scikit-learn estimator).

    Weights that do not match the `weights_sha256` of the run's run.json are refused."""
    meta = json.loads((run_dir / MODEL_META_FILE).read_text())
    model = models.build(meta["name"], tuple(meta["shape"]), meta["num_classes"], meta.get("seed", 0))
    data = (run_dir / WEIGHTS_FILE).read_bytes()
    run = read_run(run_dir, weights=False)
    if run is not None and run.get("weights_sha256") not in (None, weights_digest(data)):
        raise PoisonlabError(f"{run_dir / WEIGHTS_FILE} does not match the SHA-256 its {RUN_FILE} records (damaged "
                             "or replaced); train the run again or restore the file")
    if meta["format"] == "torch":
        model.load_state_dict(torch_load(data))
        return model.eval()
    for key, value in meta["attributes"].items():
        setattr(model, key, tuple(value["tuple"]) if isinstance(value, dict) else value)
    for key, value in np_load(data).items():
        setattr(model, key, value)
    return model
