"""Experiment trackers: each trained run's history and results as TensorBoard logs and as an MLflow run.

Both are optional extras (``pip install 'poisonlab[tracking]'``) and are written from the finished run's record, in
the process that records results, so single, stacked, parallel and Ray runs log the same."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from poisonlab import store
from poisonlab.errors import PoisonlabError
from poisonlab.files import check_output_folder

EXTRA = "pip install 'poisonlab[tracking]'"
EPOCH_SCALARS = {"train": (("epoch_loss", "train_loss"), ("epoch_accuracy", "train_accuracy"), ("epoch_lr", "lr")),
                 "validation": (("epoch_accuracy", "val_accuracy"),)}  # subfolder -> (tag, history key), as Keras logs
MLFLOW_BATCH = 1000  # MLflow takes at most 1000 metrics per logging call


@dataclass(frozen=True)
class Tracking:
    """Where finished runs are also logged: a TensorBoard log folder and/or an MLflow tracking URI.

    Parameters
    ----------
    tensorboard : path, optional
        Run `models/<series>/<percent>/seed<S>` is logged under `<tensorboard>/<series>/<percent>/seed<S>`, with
        ``train/`` (epoch_loss, epoch_accuracy, epoch_lr), ``validation/`` (epoch_accuracy) and ``test/`` (the test
        metrics) event files, as Keras' TensorBoard callback lays them out.
    mlflow : str, optional
        A tracking URI, e.g. ``file:./mlruns`` (a local file store) or ``http://host:5000``.
    experiment : str
        The MLflow experiment the runs go to.
    """

    tensorboard: Path | None = None
    mlflow: str | None = None
    experiment: str = "poisonlab"

    def __bool__(self) -> bool:
        return self.tensorboard is not None or self.mlflow is not None

    def check(self) -> None:
        """Refuse, before any training, a tracker whose package is missing or whose destination cannot be used."""
        if self.tensorboard is not None:
            _need("tensorboard", "TensorBoard logging")
            check_output_folder(Path(self.tensorboard))
        if self.mlflow is not None:
            _need("mlflow", "MLflow tracking")
            if not isinstance(self.mlflow, str) or not self.mlflow.strip():
                raise PoisonlabError(f"MLflow tracking URI {self.mlflow!r} is empty; give one such as file:./mlruns")
            if self.mlflow.startswith("file:"):
                check_output_folder(Path(self.mlflow.removeprefix("file:").removeprefix("//")))

    def log(self, record: dict, folder: Path, name: str) -> list[str]:
        """Log one finished run (its run.json `record`, saved in run folder `folder`, shown as `name`); returns a
        note per tracker that failed (the run itself is saved whatever happens here)."""
        notes = []
        for enabled, write, what in ((self.tensorboard, _tensorboard, "TensorBoard"), (self.mlflow, _mlflow, "MLflow")):
            if enabled is None:
                continue
            try:
                write(self, record, folder, name)
            except Exception as exc:  # noqa: BLE001 - a tracker's failure must not lose or stop the study
                notes.append(f"note: {name} is saved but not logged to {what} ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:200]})")
        return notes


def _need(module: str, what: str) -> None:
    """One line naming the extra to install when `module` cannot be imported."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise PoisonlabError(f"{what} needs the {module} package, which is not installed; {EXTRA}")


def relative(folder: Path) -> Path:
    """A run folder's path below `models/`: <series>/<percent>/seed<S>."""
    parts = Path(folder).parts
    return Path(*parts[parts.index("models") + 1:]) if "models" in parts else Path(*parts[-3:])


def test_scalars(record: dict) -> dict[str, float]:
    """The run's scalar test metrics (accuracy, attack success rate, ...)."""
    return {k: float(v) for k, v in record["metrics"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _tensorboard(tracking: Tracking, record: dict, folder: Path, name: str) -> None:
    """Write the run's event files into a new folder, then put it in place of any older log of the same run."""
    from torch.utils.tensorboard import SummaryWriter

    root = Path(tracking.tensorboard)
    final = root / relative(folder)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        history = record["training"].get("history") or []
        for sub, tags in EPOCH_SCALARS.items():
            writer = SummaryWriter(str(tmp / sub))
            for row in history:
                for tag, key in tags:
                    if row.get(key) is not None:
                        writer.add_scalar(tag, row[key], row["epoch"])
            writer.close()
        writer = SummaryWriter(str(tmp / "test"))
        last = len(history)
        for key, value in test_scalars(record).items():
            writer.add_scalar(key, value, last)
        writer.add_text("run", f"{name}: {record['config']}", last)
        writer.close()
        if final.is_dir():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def flat_params(config: dict, prefix: str = "") -> dict[str, str]:
    """A nested config as MLflow params: {"train.max_epochs": "100", ...}."""
    out: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flat_params(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = str(value)
    return out


def _mlflow(tracking: Tracking, record: dict, folder: Path, name: str) -> None:
    """One MLflow run: the config as params, the history as step-wise metrics, the test metrics, run.json and the
    training curve as artifacts."""
    if tracking.mlflow.startswith("file:"):  # MLflow 3 keeps its file store behind this switch; the user chose it
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking.mlflow)
    experiment = client.get_experiment_by_name(tracking.experiment)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(tracking.experiment)
    run = client.create_run(experiment_id, run_name=name, tags={"poisonlab.run_folder": str(folder)})
    run_id, now = run.info.run_id, int(time.time() * 1000)
    params = [Param(k, v[:6000]) for k, v in flat_params(record["config"]).items()]
    metrics = [Metric(key, float(row[key]), now, row["epoch"]) for row in record["training"].get("history") or []
               for key in ("train_loss", "train_accuracy", "lr", "val_accuracy") if row.get(key) is not None]
    metrics += [Metric(f"test_{key}", value, now, 0) for key, value in test_scalars(record).items()]
    for i in range(0, max(len(params), len(metrics)), MLFLOW_BATCH):
        client.log_batch(run_id, metrics=metrics[i : i + MLFLOW_BATCH], params=params[i : i + MLFLOW_BATCH])
    client.log_artifact(run_id, str(folder / store.RUN_FILE))
    with tempfile.TemporaryDirectory() as tmp:
        curve = Path(tmp) / "training_curve.png"
        curve.write_bytes(training_curve(record, name))
        client.log_artifact(run_id, str(curve))
    client.set_terminated(run_id)


def training_curve(record: dict, name: str) -> bytes:
    """PNG of a run's training loss, training and validation accuracy per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = record["training"].get("history") or []
    epochs = [row["epoch"] for row in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    left.plot(epochs, [row["train_loss"] for row in history], color="tab:blue")
    left.set(xlabel="epoch", ylabel="training loss", title=name)
    for key, color in (("train_accuracy", "tab:blue"), ("val_accuracy", "tab:orange")):
        points = [(row["epoch"], row[key]) for row in history if row.get(key) is not None]
        if points:
            right.plot(*zip(*points), color=color, label=key.replace("_", " "))
    right.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02))
    right.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
