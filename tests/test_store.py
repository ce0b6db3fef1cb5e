"""Storage: atomic writes, safetensors model round trips (torch and scikit-learn), results table."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from safetensors.numpy import save as save_arrays

from poisonlab import store
from poisonlab.training import models
from poisonlab.errors import PoisonlabError, PoisonlabWarning
from poisonlab.training.fitting import as_features as flatten01
from poisonlab.training.saving import load_model, save_model


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "a" / "f.json"
    store.write_json(path, {"x": 1})
    store.write_json(path, {"x": 2})
    assert json.loads(path.read_text()) == {"x": 2}
    assert [p.name for p in path.parent.iterdir()] == ["f.json"]


def test_atomic_write_keeps_old_content_when_writing_fails(tmp_path):
    path = tmp_path / "f.txt"
    store.atomic_write(path, "old")
    with pytest.raises(TypeError):
        store.atomic_write(path, 42)
    assert path.read_text() == "old" and len(os.listdir(tmp_path)) == 1


def test_unwritable_output_folder_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(PoisonlabError, match="cannot write to output folder .*choose another output folder"):
        store.ensure_writable(blocker / "runs")


@pytest.mark.parametrize("name", ["svc", "logreg"])
def test_sklearn_model_round_trip_without_pickle(tmp_path, name):
    digits = load_digits()
    x = (digits.images * 255 / 16).astype(np.uint8)[..., None]
    model = models.build(name, (8, 8, 1), 10)
    model.fit(flatten01(x[:500]), digits.target[:500])
    save_model(tmp_path, model, {"name": name, "shape": [8, 8, 1], "num_classes": 10})
    loaded = load_model(tmp_path)
    assert np.array_equal(loaded.predict(flatten01(x[500:])), model.predict(flatten01(x[500:])))
    assert b"\x80\x04" not in (tmp_path / store.WEIGHTS_FILE).read_bytes()[:8]  # safetensors header, not a pickle


def test_torch_model_round_trip(tmp_path):
    model = models.build("smallcnn", (28, 28, 1), 10).eval()
    save_model(tmp_path, model, {"name": "smallcnn", "shape": [28, 28, 1], "num_classes": 10})
    loaded = load_model(tmp_path)
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(loaded(x), model(x))


def fake_run(percent: float, accuracy: float) -> dict:
    return {
        "status": "complete", "created": "2026-01-01T00:00:00+00:00",
        "config": {"dataset": "digits", "dataset_size": 0, "kind": "random", "percent": percent, "seed": 0,
                   "model": "smallcnn", "val": "split"},
        "dataset": {"num_classes": 10, "n_train": 100}, "poison": {"n_poisoned": int(percent), "indices": [1, 5]},
        "metrics": {"accuracy": accuracy}, "training": {"best_val_accuracy": 0.5, "epochs_run": 3},
        "timings": {"train_s": 1.0},
    }


def test_results_table_upserts_exports_csv_and_reindexes(tmp_path):
    for percent, acc in [(0, 0.9), (50, 0.6)]:
        run_dir = tmp_path / "models" / "digits" / f"{percent}" / "seed0"
        weights = save_arrays({"w": np.zeros(1)})
        store.write_json(run_dir / store.RUN_FILE, {**fake_run(percent, acc), "weights_sha256": store.weights_digest(weights)})
        (run_dir / store.WEIGHTS_FILE).write_bytes(weights)
        store.write_json(run_dir / store.MODEL_META_FILE, {"name": "smallcnn", "format": "torch"})
        store.record(tmp_path, fake_run(percent, acc), run_dir)
    store.record(tmp_path, fake_run(50, 0.55), tmp_path / "models" / "digits" / "50" / "seed0")
    assert [r["test_accuracy"] for r in store.results(tmp_path)] == [0.9, 0.55]
    assert (tmp_path / store.CSV_FILE).read_text().count("\n") == 3
    (tmp_path / store.DB_FILE).unlink()
    assert store.reindex(tmp_path) == 2
    assert [r["test_accuracy"] for r in store.results(tmp_path)] == [0.9, 0.6]


def test_poison_mask_and_incomplete_runs(tmp_path):
    assert store.poison_mask(fake_run(2, 0.5)).nonzero()[0].tolist() == [1, 5]
    store.write_json(tmp_path / store.RUN_FILE, {**fake_run(2, 0.5), "status": "running"})
    assert store.read_run(tmp_path) is None
    assert store.read_run(Path(tmp_path / "missing")) is None


def test_atomic_write_gives_normal_permissions_unless_asked(tmp_path):
    store.atomic_write(tmp_path / "secret.pem", "k", mode=0o600)
    old = os.umask(0o022)
    try:
        store.atomic_write(tmp_path / "shared.json", "{}")
    finally:
        os.umask(old)
    assert (tmp_path / "shared.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "secret.pem").stat().st_mode & 0o777 == 0o600


def test_the_table_is_an_index_and_the_run_records_are_the_truth(tmp_path, cli):
    """An edited results.sqlite value, or a run folder deleted since, never reaches pl.results, analyse or report."""
    import shutil
    import sqlite3

    import poisonlab as pl

    assert cli.code("train", "--dataset", "digits", "--percents", "0,20,40", "--model", "logreg", "--out", tmp_path) == 0
    truth = pl.results(tmp_path)
    with sqlite3.connect(tmp_path / store.DB_FILE) as db:
        db.execute("UPDATE runs SET test_accuracy = 0.999 WHERE percent = 40")
    shutil.rmtree(tmp_path / truth["run_dir"][1])  # the 20 % run
    with pytest.warns(PoisonlabWarning) as caught:
        frame = pl.results(tmp_path)
    assert frame["percent"].tolist() == [0, 40] and frame["test_accuracy"].tolist() == truth["test_accuracy"][[0, 2]].tolist()
    notes = [str(w.message) for w in caught]
    assert any("lists 1 run(s) with no finished run.json (first: models/digits_logreg/20/seed0); left out" in n for n in notes)
    assert any("disagrees with 1 run record(s) (first: models/digits_logreg/40/seed0: test_accuracy 0.999 ->" in n
               for n in notes)
    code, text = cli.text("analyse", "--out", tmp_path)
    assert code == 0 and "note: the results table of" in text and "the run.json values are used" in " ".join(text.split())
