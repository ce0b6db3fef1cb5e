"""A run's defence: names checked in one place, a cleaning defence on real MNIST dropping mostly poisoned items, and
runs made with other defence settings refused on resume."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
import pytest

import poisonlab as pl
from poisonlab import datasets
from poisonlab.attacks import flips
from poisonlab.errors import PoisonlabError
from poisonlab.studies import defence
from poisonlab.studies.run import RunSpec, prepare
from poisonlab.training import remedies


@pytest.mark.parametrize("name", defence.DEFENCES + ("coteach:35",))
def test_every_listed_defence_is_accepted(name):
    assert defence.check_defence(name) == name
    assert defence.cleans(name) == (":" in name and not name.startswith("coteach"))


@pytest.mark.parametrize("name, words", [("dividemix", "choose one of"), ("clean:svm", "clean:METHOD"),
                                         ("relabel:", "clean:METHOD"), ("coteach:150", "forget rate"),
                                         (None, "choose one of")])
def test_unknown_defences_are_one_line_errors(name, words):
    with pytest.raises(PoisonlabError, match=words) as info:
        defence.check_defence(name)
    assert "\n" not in str(info.value)
    with pytest.raises(PoisonlabError):
        RunSpec(dataset="mnist", defence=name)


@pytest.fixture(scope="module")
def mnist(shared_data):
    return datasets.load("mnist", shared_data, dataset_size=2000)


def test_clean_loss_drops_mostly_poisoned_items_from_both_fit_and_validation(mnist):
    spec = RunSpec(dataset="mnist", dataset_size=2000, percent=30, defence="clean:loss")
    prep = prepare(spec, mnist)
    _, mask = flips.apply("random", mnist.y_train, 10, 30, 0)
    assert np.array_equal(prep.mask, mask)  # the poison record is the attack's, not the cleaning's
    record = prep.cleaning
    assert record["n_kept"] < 2000 and record["detection"]["recall"] > 0.6, record
    assert mask[prep.fit_idx].mean() < 0.6 * mask.mean()  # the items trained on are far cleaner than the poisoned set
    assert len(prep.fit_idx) + len(prep.y_val) == record["n_kept"]


def test_relabel_keeps_every_item_and_changes_flagged_labels(mnist):
    prep = prepare(RunSpec(dataset="mnist", dataset_size=2000, percent=30, defence="relabel:cl"), mnist)
    assert len(prep.fit_idx) + len(prep.y_val) == 2000
    assert (prep.trained != prep.labels).any() and prep.cleaning["action"] == "relabel"
    assert (prep.trained == mnist.y_train).mean() > (prep.labels == mnist.y_train).mean()  # labels more often right


@given(st.text(max_size=20) | st.none() | st.integers() | st.floats())
def test_any_defence_name_is_accepted_or_refused_in_one_line(name):
    try:
        assert defence.check_defence(name) == name
    except PoisonlabError as exc:
        assert "\n" not in str(exc)


@given(st.text(max_size=20))
def test_any_then_is_parsed_or_refused_in_one_line(then):
    from poisonlab.studies.detection import check_then

    try:
        action, remedy = check_then(then)
        assert action in ("none", "clean", "relabel") and defence.check_defence(remedy) == remedy
    except PoisonlabError as exc:
        assert "\n" not in str(exc)


def test_a_run_made_with_other_defence_settings_is_not_reused(tmp_path, monkeypatch):
    data = pl.load_dataset("embedded", size=300)
    first = pl.sweep(data, rates=[0.2], defences=["gce"], epochs=1, out=tmp_path)
    assert pl.sweep(data, rates=[0.2], defences=["gce"], epochs=1, out=tmp_path).records == first.records  # reused
    monkeypatch.setattr(remedies, "GCE_Q", 0.5)
    with pytest.raises(PoisonlabError, match=r"other settings \(defence\.q 0\.7 -> 0\.5\)"):
        pl.sweep(data, rates=[0.2], defences=["gce"], epochs=1, out=tmp_path)
