"""Bad arguments to the Python API: each is a `PoisonlabError` naming the argument (checked once, at the boundary,
before any data is loaded or model trained), never a raw TypeError/IndexError from deep inside, never silence."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import poisonlab as pl
from poisonlab import checks
from poisonlab.defences.detectors import Detection


@pytest.fixture(scope="module")
def digits():
    """sklearn's digits as 8x8 uint8 images (real data), 600 training and 200 test items."""
    x, y = load_digits(return_X_y=True)
    images = (x.reshape(-1, 8, 8) * 15).astype(np.uint8)
    return pl.from_arrays(images[:600], y[:600], images[600:800], y[600:800], name="digits-small")


@pytest.fixture(scope="module")
def detection(digits):
    x = digits.x_train[:200]
    return pl.detect(x, digits.y_train[:200], methods=["knn"], pred_probs=np.full((200, 10), 0.1))["knn"]


LABELS = np.arange(100) % 10


def tiny_factory(shape, k):
    """A model whose output has 3 classes whatever the data's."""
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(int(np.prod(shape)), 3))


CASES = {
    # detect
    "detect pred_probs 1-d": (lambda d: pl.detect(d.x_train[:200], d.y_train[:200], pred_probs=np.full(200, 0.1)),
                              r"pred_probs must have shape \(200, K\)"),
    "detect pred_probs scalar": (lambda d: pl.detect(d.x_train[:200], d.y_train[:200], pred_probs=0.5),
                                 r"pred_probs must have shape"),
    "detect pred_probs strings": (lambda d: pl.detect(d.x_train[:200], d.y_train[:200],
                                                      pred_probs=np.full((200, 10), "a")), r"pred_probs must be an array"),
    "detect pred_probs scores": (lambda d: pl.detect(d.x_train[:200], d.y_train[:200],
                                                     pred_probs=np.full((200, 10), 3.0)), r"pred_probs must hold probabilities"),
    "detect num_classes too small": (lambda d: pl.detect(d.x_train[:200], d.y_train[:200], num_classes=5),
                                     r"labels reach 9 but num_classes is 5"),
    "detect num_classes negative": (lambda d: pl.detect(d.x_train[:200], d.y_train[:200], num_classes=-3),
                                    r"num_classes must be a whole number from 2 to \d+, got -3"),
    "detect num_classes float": (lambda d: pl.detect(d.x_train[:200], d.y_train[:200], num_classes=10.5),
                                 r"num_classes must be a whole number .*got 10.5"),
    "detect methods None": (lambda d: pl.detect(d.x_train[:200], d.y_train[:200], methods=None),
                            r"methods must be a list of values, got None"),
    "detect methods empty": (lambda d: pl.detect(d.x_train[:200], d.y_train[:200], methods=[]), r"methods is empty"),
    "detect k float": (lambda d: pl.detect(d.x_train[:200], d.y_train[:200], k=2.5), r"k must be a whole number .*2.5"),
    "detect folds 1": (lambda d: pl.detect(d.x_train[:200], d.y_train[:200], folds=1), r"folds must be a whole number"),
    "detect model": (lambda d: pl.detect(d.x_train[:200], d.y_train[:200], model="resnet"), r"unknown detector model"),
    # score
    "score mask length": (lambda d, det: pl.score(det, np.zeros(5, bool)), r"mask must be a boolean array with one "
                                                                           r"entry per item \(200\), got shape \(5,\)"),
    "score mask string": (lambda d, det: pl.score(det, "abc"), r"mask must be a boolean array"),
    "score mask values": (lambda d, det: pl.score(det, np.full(200, 2)), r"mask must be booleans"),
    "score detection": (lambda d, det: pl.score("cl", np.zeros(200, bool)), r"detection must be a Detection .*got str"),
    # load_dataset
    "load_dataset size float": (lambda d: pl.load_dataset("digits", size=1.5), r"size must be a whole number .*1.5"),
    "load_dataset size str": (lambda d: pl.load_dataset("digits", size="100"), r"size must be a whole number .*'100'"),
    "load_dataset size negative": (lambda d: pl.load_dataset("digits", size=-1), r"size must be a whole number"),
    "load_dataset name int": (lambda d: pl.load_dataset(123), r"name must be a dataset name .*got 123"),
    "load_dataset name empty": (lambda d: pl.load_dataset(""), r"name must be a dataset name"),
    # train
    "train batch_size 0": (lambda d: pl.train(d, batch_size=0), r"batch_size must be a whole number of 1 or more, got 0"),
    "train batch_size -1": (lambda d: pl.train(d, batch_size=-1), r"batch_size must be a whole number of 1 or more"),
    "train epochs 0": (lambda d: pl.train(d, epochs=0), r"epochs must be a whole number of 1 or more, got 0"),
    "train epochs float": (lambda d: pl.train(d, epochs=2.5), r"epochs must be a whole number"),
    "train kind": (lambda d: pl.train(d, kind="targeted"), r"unknown kind 'targeted'; choose one of random, biased"),
    "train val": (lambda d: pl.train(d, val="holdout"), r"unknown val 'holdout'"),
    "train precision": (lambda d: pl.train(d, precision="fp16"), r"unknown precision 'fp16'"),
    "train rate str": (lambda d: pl.train(d, rate="0.2"), r"rate must be a number in \[0, 1\] such as 0.2, got '0.2'"),
    "train factory too few classes": (lambda d: pl.train(d, model=tiny_factory, epochs=1),
                                      r"the model factory's output has 3 class scores per item, but the data has 10 "
                                      r"classes"),
    # poison_labels
    "poison_labels rate str": (lambda d: pl.poison_labels(LABELS, rate="0.2"), r"rate must be a number in \[0, 1\]"),
    "poison_labels seed -1": (lambda d: pl.poison_labels(LABELS, rate=0.2, seed=-1), r"seed -1 is negative"),
    "poison_labels labels 2-d": (lambda d: pl.poison_labels(LABELS.reshape(10, 10), rate=0.2),
                                 r"labels must hold a 1-d array of labels"),
    "poison_labels num_classes": (lambda d: pl.poison_labels(LABELS, rate=0.2, num_classes=1.5),
                                  r"num_classes must be a whole number"),
    "poison_labels targeted source": (lambda d: pl.poison_labels(LABELS, "targeted", source=12, target=1, n=1),
                                      r"source must be a whole number from 0 to 9, got 12"),
    # from_arrays
    "from_arrays label 1e8": (lambda d: pl.from_arrays(d.x_train, np.r_[d.y_train[:-1], 10**8], d.x_test, d.y_test),
                              r"y_train holds class 100000000; labels must be class numbers 0..K-1 with K at most"),
    "from_arrays label 1e300": (lambda d: pl.from_arrays(d.x_train, np.r_[d.y_train[:-1], 1e300], d.x_test, d.y_test),
                                r"y_train holds class 1.0000000000000000525e\+300"),
    "from_arrays label uint64 max": (lambda d: pl.from_arrays(d.x_train, np.r_[d.y_train[:-1].astype(np.uint64),
                                                                                 np.iinfo(np.uint64).max],
                                                                d.x_test, d.y_test), r"y_train holds class 18446744073709551615"),
    "from_arrays label fraction": (lambda d: pl.from_arrays(d.x_train, d.y_train + 0.5, d.x_test, d.y_test),
                                   r"y_train must be whole class numbers, got fractions such as"),
    "from_arrays labels bool": (lambda d: pl.from_arrays(d.x_train, d.y_train > 4, d.x_test, d.y_test),
                                r"y_train must be whole class numbers, got bool"),
    "from_arrays duplicate classes": (lambda d: pl.from_arrays(d.x_train, d.y_train, d.x_test, d.y_test,
                                                               classes=["a"] * 10), r"classes names 'a' twice"),
    "from_arrays empty class": (lambda d: pl.from_arrays(d.x_train, d.y_train, d.x_test, d.y_test,
                                                         classes=[*"abcdefghi", " "]), r"classes holds an empty class name"),
    "from_arrays classes str": (lambda d: pl.from_arrays(d.x_train, d.y_train, d.x_test, d.y_test, classes="abc"),
                                r"classes must be a list of class names"),
    "from_arrays name empty": (lambda d: pl.from_arrays(d.x_train, d.y_train, d.x_test, d.y_test, name=""),
                               r"dataset name '' is not a plain name"),
    "from_arrays name escape": (lambda d: pl.from_arrays(d.x_train, d.y_train, d.x_test, d.y_test, name="../../evil"),
                                r"dataset name '../../evil' is not a plain name"),
    # sweep, flip, backdoor
    "sweep rates empty": (lambda d: pl.sweep(d, rates=[]), r"rates is empty; give at least one value"),
    "sweep kinds empty": (lambda d: pl.sweep(d, kinds=[]), r"kinds is empty"),
    "sweep kinds unknown": (lambda d: pl.sweep(d, kinds=["random", "evil"]), r"unknown kind 'evil'"),
    "sweep seeds empty": (lambda d: pl.sweep(d, seeds=[]), r"seeds is empty"),
    "sweep rates percent": (lambda d: pl.sweep(d, rates=[0, 20]), r"rate 20 is outside \[0, 1\]; rates are fractions"),
    "flip n empty": (lambda d: pl.flip(d, source=3, target=8, n=[]), r"n is empty"),
    "flip n negative": (lambda d: pl.flip(d, source=3, target=8, n=[-1]), r"n must be a whole number of 0 or more"),
    "flip n float": (lambda d: pl.flip(d, source=3, target=8, n=[2.5]), r"n must be a whole number"),
    "backdoor rates empty": (lambda d: pl.backdoor(d, target=0, rates=[]), r"rates is empty"),
    "backdoor rates percent": (lambda d: pl.backdoor(d, target=0, rates=[5]), r"rates 5 is outside \[0, 1\]; rates are fractions: did you mean 0.05"),
    "backdoor rates and percents": (lambda d: pl.backdoor(d, target=0, rates=[0.1], percents=[10]), r"not both"),
    # saved models
    "load_model missing": (lambda d: pl.load_model("no/such/run"), r"no/such/run"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_argument_is_one_poisonlab_error_naming_it(case, digits, detection):
    call, message = CASES[case]
    with pytest.raises(pl.PoisonlabError, match=message):
        call(digits, detection) if case.startswith("score") else call(digits)


def test_detect_and_score_still_work_on_good_arguments(digits, detection):
    assert isinstance(detection, Detection) and detection.scores.shape == (200,)
    result = pl.score(detection, np.arange(200) % 7 == 0)
    assert result["true_poisoned"] == 29 and 0 <= result["roc_auc"] <= 1
    assert pl.score(detection, (np.arange(200) % 7 == 0).astype(int))["true_poisoned"] == 29  # 0/1 numbers


def test_nested_estimators_are_refused_before_training_and_leave_no_claim(digits, tmp_path):
    for model in (make_pipeline(StandardScaler(), LogisticRegression()), RandomForestClassifier(n_estimators=3)):
        with pytest.raises(pl.PoisonlabError, match=r"cannot be saved without pickle .*pass out=None"):
            pl.sweep(digits, rates=[0.1], model=model, out=tmp_path / "runs")
        assert not list(tmp_path.rglob(".claim")) and not list(tmp_path.rglob("run.json"))
    with pytest.raises(pl.PoisonlabError, match=r"cannot be saved without pickle"):
        pl.flip(digits, source=3, target=8, n=[5], model=RandomForestClassifier(n_estimators=3))
    kept = pl.sweep(digits, rates=[0.1], model=RandomForestClassifier(n_estimators=10, random_state=0))  # in memory
    assert kept.records[0]["metrics"]["accuracy"] > 0.5


def test_one_class_labels_with_biased_poisoning(digits):
    one = pl.from_arrays(digits.x_train, np.zeros(600, np.int64), digits.x_test, np.zeros(200, np.int64), name="one")
    with pytest.raises(pl.PoisonlabError, match=r"needs at least 2 classes"):
        pl.train(one, kind="biased", rate=0.2, epochs=1)


def test_two_datasets_of_one_name_never_share_runs(digits, tmp_path):
    first = pl.sweep(digits, rates=[0.1], model=LogisticRegression(max_iter=200), out=tmp_path)
    other = pl.from_arrays(digits.x_train[::-1], digits.y_train[::-1], digits.x_test, digits.y_test, name=digits.name)
    assert other.sources != digits.sources  # the fingerprint of the arrays
    with pytest.raises(pl.PoisonlabError, match=r"holds a run made on other data \(sources.arrays sha256:"):
        pl.sweep(other, rates=[0.1], model=LogisticRegression(max_iter=200), out=tmp_path)
    again = pl.sweep(digits, rates=[0.1], model=LogisticRegression(max_iter=200), out=tmp_path)  # same data: reused
    assert again.records[0]["created"] == first.records[0]["created"]


def test_load_model_takes_a_string_path(digits, tmp_path):
    pl.sweep(digits, rates=[0.0], model="logreg", out=tmp_path)
    run_dir = next(p.parent for p in tmp_path.rglob("run.json"))
    model = pl.load_model(str(run_dir))
    assert (model.predict(digits.x_test.reshape(200, -1) / 255.0) == digits.y_test).mean() > 0.8
    (run_dir / "model.json").write_text('{"name": "logreg", "format": "sklearn", "shape": [100000, 100000, 3], '
                                        '"num_classes": 10, "attributes": {}}')
    with pytest.raises(pl.PoisonlabError, match=r"model.json declares items of shape \[100000, 100000, 3\] with 10 classes"):
        pl.load_model(run_dir)  # a hostile shape: refused before anything is allocated
    (run_dir / "model.json").write_text('{"name": "logreg", "for')
    with pytest.raises(pl.PoisonlabError, match=r"cannot read model description .*model.json \(.*\); train the run"):
        pl.load_model(run_dir)


@pytest.mark.parametrize("value, low, high, expected", [(3, 0, None, 3), (np.int64(7), 1, 9, 7)])
def test_check_int_accepts_whole_numbers(value, low, high, expected):
    assert checks.check_int(value, "x", low=low, high=high) == expected


@pytest.mark.parametrize("value", [True, 2.0, "2", None, 1 + 0j])
def test_check_int_refuses_other_types(value):
    with pytest.raises(pl.PoisonlabError, match=r"^x must be a whole number"):
        checks.check_int(value, "x", low=0)


def test_backdoor_percents_are_deprecated_for_rates(digits):
    with pytest.warns(FutureWarning, match=r"pass rates= as fractions \(percents=\[5\] is rates=\[0.05\]\)"), \
            pytest.raises(pl.PoisonlabError, match=r"percents must be numbers from 0 to 100"):
        pl.backdoor(digits, target=0, percents=[500])
    with pytest.warns(FutureWarning), pytest.raises(pl.PoisonlabError, match=r"percents is empty"):
        pl.backdoor(digits, target=0, percents=[])
