"""TensorBoard logs read back with TensorBoard's own event reader, and a real MLflow file store; single and stacked
runs log the same."""

import importlib.util
import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import poisonlab as pl
from poisonlab.reporting.tracking import Tracking


def scalars(folder):
    """tag -> [(step, value)] of the event files in `folder`, read by TensorBoard's reader."""
    reader = EventAccumulator(str(folder))
    reader.Reload()
    return {tag: [(e.step, e.value) for e in reader.Scalars(tag)] for tag in reader.Tags()["scalars"]}


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, poisonlab_main):
    """The same two-run sweep trained one run at a time and stacked, each logged to TensorBoard and MLflow."""
    root = tmp_path_factory.mktemp("tracked")
    for stack in ("off", "on"):
        assert poisonlab_main("train", "--dataset", "embedded", "--dataset-size", "1000", "--percents", "0,50",
                              "--epochs", "2", "--stack", stack,
                              "--out", root / stack, "--tensorboard", root / f"tb-{stack}",
                              "--mlflow", f"file:{root / 'mlruns'}") == 0
    return root


def test_tensorboard_events_read_back_with_tensorboards_reader(tracked):
    run_dir = tracked / "off" / "models" / "embedded_1000" / "50" / "seed0"
    record = json.loads((run_dir / "run.json").read_text())
    history = record["training"]["history"]
    logged = tracked / "tb-off" / "embedded_1000" / "50" / "seed0"
    train, validation, test = (scalars(logged / sub) for sub in ("train", "validation", "test"))
    assert set(train) == {"epoch_loss", "epoch_accuracy", "epoch_lr"} and set(validation) == {"epoch_accuracy"}
    assert [step for step, _ in train["epoch_loss"]] == [row["epoch"] for row in history]
    assert [v for _, v in validation["epoch_accuracy"]] == pytest.approx([row["val_accuracy"] for row in history])
    assert [v for _, v in train["epoch_accuracy"]] == pytest.approx([row["train_accuracy"] for row in history])
    assert test["accuracy"] == [(len(history), pytest.approx(record["metrics"]["accuracy"]))]


def test_stacked_runs_log_the_same_as_single_runs(tracked):
    for percent in ("0", "50"):
        single = {sub: scalars(tracked / "tb-off" / "embedded_1000" / percent / "seed0" / sub) for sub in ("train", "validation", "test")}
        stacked = {sub: scalars(tracked / "tb-on" / "embedded_1000" / percent / "seed0" / sub) for sub in ("train", "validation", "test")}
        assert {s: sorted(t) for s, t in single.items()} == {s: sorted(t) for s, t in stacked.items()}
        assert [step for step, _ in single["train"]["epoch_loss"]] == [step for step, _ in stacked["train"]["epoch_loss"]]
        record = json.loads((tracked / "on" / "models" / "embedded_1000" / percent / "seed0" / "run.json").read_text())
        assert record["training"]["path"] == "stacked"


def test_mlflow_file_store_holds_params_metrics_and_artifacts(tracked, monkeypatch):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"file:{tracked / 'mlruns'}")
    experiment = client.get_experiment_by_name("poisonlab")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 4  # two runs, each trained alone and stacked
    run = next(r for r in runs if r.data.tags["poisonlab.run_folder"].endswith("off/models/embedded_1000/50/seed0"))
    record = json.loads((tracked / "off" / "models" / "embedded_1000" / "50" / "seed0" / "run.json").read_text())
    assert run.data.params["train.max_epochs"] == "2" and run.data.params["percent"] == "50.0"
    assert run.data.metrics["test_accuracy"] == pytest.approx(record["metrics"]["accuracy"])
    history = client.get_metric_history(run.info.run_id, "val_accuracy")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == \
        [(row["epoch"], pytest.approx(row["val_accuracy"])) for row in record["training"]["history"]]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert artifacts == {"run.json", "training_curve.png"}
    assert run.info.status == "FINISHED"


def test_api_tracking_and_its_errors(tmp_path, monkeypatch):
    data = pl.load_dataset("digits")
    result = pl.sweep(data, rates=[0.1], model="logreg", tracking={"tensorboard": tmp_path / "tb"})
    logged = tmp_path / "tb" / "digits_logreg" / "10" / "seed0"
    assert scalars(logged / "test")["accuracy"][0][1] == pytest.approx(result.records[0]["metrics"]["accuracy"])
    with pytest.raises(pl.PoisonlabError, match="tracking must be a Tracking or a dict"):
        pl.sweep(data, rates=[0.1], model="logreg", tracking={"wandb": "x"})
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(pl.PoisonlabError, match=r"needs the tensorboard package.*poisonlab\[tracking\]"):
        Tracking(tensorboard=tmp_path / "tb2").check()


def test_missing_tracker_package_is_one_line(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    cli.fails(r"MLflow tracking needs the mlflow package, which is not installed; pip install 'poisonlab\[tracking\]'",
              "train", "--dataset", "digits", "--model", "logreg", "--percents", "0", "--mlflow", "file:./x",
              "--out", tmp_path / "runs")
    assert not (tmp_path / "runs").exists()
