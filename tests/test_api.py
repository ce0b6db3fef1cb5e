"""The Python API on real data: the README example runs, own arrays and models work, errors speak of values."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression

import poisonlab as pl

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    """The first ```python block of the README's "Use from Python" section."""
    text = README.read_text()
    section = text[text.index("## Use from Python"):]
    return re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)


def test_readme_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_example(), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "400 of 2000 labels poisoned" in out
    assert (tmp_path / "runs" / "notebook" / "results.csv").is_file()
    assert len(pl.results(tmp_path / "runs" / "notebook")) == 6


def test_import_is_light_and_lists_the_api():
    code = "import sys, poisonlab; print(sorted(m for m in ('torch', 'sklearn', 'cleanlab', 'matplotlib') if m in sys.modules)); print(dir(poisonlab))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    heavy, names = done.stdout.splitlines()
    assert heavy == "[]"
    for name in ("poison_labels", "load_dataset", "from_arrays", "from_torch", "train", "sweep", "flip", "detect",
                 "score", "results"):
        assert name in names


def test_poison_labels_takes_fractions():
    labels = np.arange(1000) % 10
    new, mask = pl.poison_labels(labels, kind="random", rate=0.2, seed=3)
    assert mask.sum() == 200 and (new[mask] != labels[mask]).all() and (new[~mask] == labels[~mask]).all()
    new, mask = pl.poison_labels(labels, kind="targeted", source=3, target=8, n=7)
    assert mask.sum() == 7 and set(new[mask]) == {8}
    with pytest.raises(ValueError, match=r"outside \[0, 1\]; rates are fractions: did you mean 0.2\?"):
        pl.poison_labels(labels, rate=20)
    with pytest.raises(pl.PoisonlabError, match="needs source, target and n"):
        pl.poison_labels(labels, kind="targeted", rate=0.1)


def digits_features(scale: float = 1.0):
    """sklearn's digits as float features 0..16 times `scale` (used as given), split 1437 / 360."""
    x, y = load_digits(return_X_y=True)
    x = x * scale  # 1/16: features in [0, 1], where logistic regression converges in a fraction of the iterations
    return pl.from_arrays(x[:1437], y[:1437], x[1437:], y[1437:], name="digits-features")


def test_own_float_features_are_used_as_given_with_an_estimator():
    data = digits_features()
    assert data.x_train.dtype == np.float32 and data.x_train.max() == 16.0  # not divided by 255
    clean = pl.train(data, model=LinearDiscriminantAnalysis())  # fast on raw values (logistic regression: 30 s)
    dirty = pl.train(data, kind="biased", rate=0.6, model=LinearDiscriminantAnalysis())
    assert clean.accuracy > 0.85 and dirty.accuracy < clean.accuracy - 0.3
    assert dirty.mask.sum() == round(0.6 * 1437) and (dirty.labels[dirty.mask] != data.y_train[dirty.mask]).all()


def test_own_torch_factory_and_dataset():
    x, y = load_digits(return_X_y=True)
    images = torch.from_numpy((x * 255 / 16).astype(np.uint8).reshape(-1, 1, 8, 8))

    class Pairs(torch.utils.data.Dataset):
        def __init__(self, lo, hi):
            self.lo, self.hi = lo, hi

        def __len__(self):
            return self.hi - self.lo

        def __getitem__(self, i):
            return images[self.lo + i], int(y[self.lo + i])

    data = pl.from_torch(Pairs(0, 1437), Pairs(1437, 1797))
    assert data.x_train.shape == (1437, 8, 8, 1) and data.x_train.dtype == np.uint8
    factory = lambda shape, k: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(int(np.prod(shape)), k))  # noqa: E731
    result = pl.train(data, model=factory, epochs=15, batch_size=64)
    assert result.accuracy > 0.8 and result.record["config"]["model"] == "<lambda>"
    with pytest.raises(ValueError, match="pass a factory"):
        pl.train(data, model=torch.nn.Linear(64, 10))


def test_detect_with_own_out_of_fold_probabilities():
    data = digits_features(1 / 16)
    labels, mask = pl.poison_labels(data.y_train, rate=0.2, seed=1)
    from sklearn.model_selection import cross_val_predict
    probs = cross_val_predict(LogisticRegression(max_iter=1000), data.x_train, labels, cv=5, method="predict_proba")
    found = pl.detect(data.x_train, labels, methods=["cl", "loss", "knn"], pred_probs=probs)
    for method, detection in found.items():
        scores = pl.score(detection, mask)
        assert scores["roc_auc"] > 0.85, (method, scores)
    assert pl.score(found["cl"], mask)["f1"] > 0.7
    with pytest.raises(ValueError, match="pred_probs must have shape"):
        pl.detect(data.x_train, labels, pred_probs=probs[:10])


def test_sweep_and_flip_return_frames(tmp_path):
    data = digits_features(1 / 16)
    study = pl.sweep(data, rates=[0, 0.5], kinds=["random", "biased"], model="logreg", out=tmp_path / "sweep")
    frame = study.frame()
    assert list(frame["rate"]) == [0, 0.5, 0, 0.5] and frame["test_accuracy"].between(0, 1).all()
    again = pl.sweep(data, rates=[0, 0.5], kinds=["random", "biased"], model="logreg", out=tmp_path / "sweep")
    assert again.frame()["test_accuracy"].tolist() == frame["test_accuracy"].tolist()
    flipped = pl.flip(data, source=3, target=8, n=[50, 140], model="logreg")
    table = flipped.frame()
    assert table["n"].tolist() == [0, 50, 140] and table["source_accuracy"].iloc[-1] < table["source_accuracy"].iloc[0]


def test_precision_and_jobs_in_the_api():
    data = pl.load_dataset("digits")
    run = pl.train(data, rate=0.2, epochs=1, precision="fp32")
    assert run.record["training"]["precision"] == "fp32" and run.record["config"]["train"]["precision"] == "fp32"
    study = pl.sweep(data, rates=[0, 0.2], epochs=1, precision="fp32", jobs=2)  # worker processes, no out folder
    assert study.out is None and [r["config"]["percent"] for r in study.records] == [0, 20]
    with pytest.raises(pl.PoisonlabError, match="unknown precision 'half'"):
        pl.train(data, precision="half")


def test_every_module_the_readme_cites_exists():
    """`poisonlab.a.b[.name]` in the README names a real module (and attribute): it once cited poisonlab.defend."""
    import importlib

    cited = set(re.findall(r"`(poisonlab(?:\.\w+)+)`", README.read_text()))
    assert len(cited) >= 4
    for dotted in sorted(cited):
        parts = dotted.split(".")
        for cut in range(len(parts), 0, -1):  # the longest importable prefix, the rest attributes
            try:
                target = importlib.import_module(".".join(parts[:cut]))
            except ModuleNotFoundError:
                continue
            for name in parts[cut:]:
                target = getattr(target, name)
            break
        else:
            raise AssertionError(f"README cites {dotted}, which does not exist")


def test_defend_measures_the_damage_each_defence_recovers(shared_data, tmp_path):
    data = pl.load_dataset("mnist", data_dir=shared_data, size=1000)
    result = pl.defend(data, attacks=["random"], rates=[0.5], defences=["none", "gce"], epochs=3, out=tmp_path)
    frame = result.frame()
    assert list(zip(frame["attack"], frame["defence"])) == [("clean", "none"), ("random", "none"), ("random", "gce")]
    gce = frame[frame["defence"] == "gce"].iloc[0]
    assert gce["recovered"] == pytest.approx((gce["accuracy"] - frame["accuracy"][1]) / (frame["accuracy"][0]
                                                                                         - frame["accuracy"][1]), abs=1e-3)
    assert (tmp_path / "matrix.csv").is_file() and len(result.records) == 3
    assert pl.defend(data, attacks=["random"], rates=[0.5], defences=["none", "gce"], epochs=3,
                     out=tmp_path).doc["trained"] == 0  # resumed
    with pytest.raises(pl.PoisonlabError, match="command line"):
        pl.defend(data, attacks=["cifar10n:worse"])
