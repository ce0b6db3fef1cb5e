"""Backdoor triggers: pure stamping and item choice, and on real MNIST a 3x3 corner patch at 5 % that installs a
backdoor (ASR > 0.8) at almost no cost in clean accuracy while the clean model ignores the trigger; a blend trigger
that installs one too and clean-label stamping that barely does (pl.backdoor); a patch on Fashion-MNIST by class name;
the ASR figure's axis; CLI errors."""

import json
from dataclasses import replace

import numpy as np
import pytest

import poisonlab as pl
from poisonlab import store
from poisonlab.attacks.backdoor import Trigger, attack_success_rate, backdoor, poison_indices, stamp
from poisonlab.errors import PoisonlabError
from poisonlab.studies.run import run_dataset


def test_corner_patch_is_a_checkerboard_one_pixel_in():
    x = np.zeros((2, 28, 28, 1), np.uint8)
    out = stamp(x, Trigger("patch", 3, "corner"))
    assert out[:, 24:27, 24:27, 0].tolist() == [[[255, 0, 255], [0, 255, 0], [255, 0, 255]]] * 2
    assert out.sum() == 2 * 5 * 255 and x.sum() == 0


def test_random_position_and_blend_are_seeded_and_change_every_image():
    x = np.full((20, 16, 16, 3), 100, np.uint8)
    placed = stamp(x, Trigger("patch", 2, "random"), seed=1)
    assert np.array_equal(placed, stamp(x, Trigger("patch", 2, "random"), seed=1))
    assert len({tuple(np.argwhere(img[:, :, 0] != 100).min(0)) for img in placed}) > 1
    blended = stamp(x, Trigger("blend"))
    assert (blended != x).any(axis=(1, 2, 3)).all() and np.abs(blended.astype(int) - 100).max() <= 0.2 * 155 + 1


def test_badnets_stamps_exactly_round_pn_other_class_items_nested():
    labels = np.random.default_rng(0).integers(0, 10, 1000)
    x = np.zeros((1000, 8, 8, 1), np.uint8)
    x_new, new, idx = backdoor(x, labels, trigger=Trigger(size=2), target=3, percent=5, seed=4)
    assert len(idx) == 50 and np.all(labels[idx] != 3) and np.all(new[idx] == 3)
    assert np.flatnonzero((x_new != 0).any(axis=(1, 2, 3))).tolist() == idx.tolist()
    assert set(poison_indices(labels, target=3, percent=2, seed=4)) <= set(idx)


def test_clean_label_stamps_only_target_items_and_keeps_labels():
    labels = np.random.default_rng(0).integers(0, 10, 1000)
    x = np.zeros((1000, 8, 8, 1), np.uint8)
    x_new, new, idx = backdoor(x, labels, trigger=Trigger(size=2), target=3, percent=5, clean_label=True)
    assert len(idx) == 50 and np.all(labels[idx] == 3) and np.array_equal(new, labels)
    assert np.flatnonzero((x_new != 0).any(axis=(1, 2, 3))).tolist() == idx.tolist()
    with pytest.raises(PoisonlabError, match="only .* items are of the target class"):
        backdoor(x, labels, trigger=Trigger(), target=3, percent=50, clean_label=True)


def test_attack_success_rate_counts_only_other_classes():
    assert attack_success_rate(np.array([3, 3, 1, 3]), np.array([3, 1, 2, 0]), 3) == pytest.approx(2 / 3)


def test_the_asr_figure_starts_at_0_percent_and_ticks_the_measured_percents():
    from poisonlab.reporting import backdoorplots

    spread = {"mean": 0.5, "min": 0.4, "max": 0.6}
    doc = {"summary": [{"percent": p, "attack_success_rate": spread, "accuracy": spread} for p in (0, 0.1, 1, 10)],
           "asr_goal": 0.9, "smallest_percent_reaching_goal": None, "dataset": "mnist", "model": "smallcnn",
           "trigger": {"kind": "patch"}, "target_name": "0", "clean_label": False, "n_train": 100, "seeds": [0]}
    ax = backdoorplots.curves_figure(doc).axes[0]
    assert ax.get_xlim()[0] == 0 and ax.get_xlim()[1] > 10
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "0.1", "1", "10"]


@pytest.fixture(scope="module")
def mnist_3000(shared_data):
    """MNIST: the first 3000 training items and the first 2000 test items (a shorter test)."""
    data = pl.load_dataset("mnist", size=3000, data_dir=shared_data)
    return replace(data, x_test=data.x_test[:2000], y_test=data.y_test[:2000])


@pytest.fixture(scope="module")
def badnets(mnist_3000, tmp_path_factory):
    out = tmp_path_factory.mktemp("backdoor")
    return pl.backdoor(mnist_3000, target=0, rates=[0.05], epochs=4, batch_size=64, out=out), out


def test_a_5_percent_corner_patch_installs_a_backdoor_on_mnist(badnets):
    result, out = badnets
    by_percent = {s["percent"]: s for s in result.doc["summary"]}
    clean, attacked = by_percent[0.0], by_percent[5.0]
    assert attacked["n_poisoned"] == 150 and clean["n_poisoned"] == 0
    assert attacked["attack_success_rate"]["mean"] > 0.8, attacked
    assert clean["attack_success_rate"]["mean"] < 0.1, clean
    assert clean["accuracy"]["mean"] > 0.9 and attacked["accuracy"]["mean"] > clean["accuracy"]["mean"] - 0.03
    run = store.read_run(out / result.doc["runs"][1]["run_dir"])
    assert run["poison"]["trigger"]["kind"] == "patch" and len(run["poison"]["indices"]) == 150
    assert run["metrics"]["attack_success_rate"] == attacked["attack_success_rate"]["mean"]
    table = pl.results(out).set_index("percent")
    assert table.loc[5.0, "kind"] == "backdoor" and table.loc[5.0, "attack_success_rate"] > 0.8
    assert {p.name for p in result.files} == {"backdoor.json", "asr_vs_percent.png", "triggered.png"}


def test_a_blend_trigger_installs_a_backdoor_and_clean_label_stamping_barely_does(mnist_3000, badnets, tmp_path):
    blend = pl.backdoor(mnist_3000, target=0, rates=[0.05], trigger="blend", epochs=4, batch_size=64, out=tmp_path)
    quiet = pl.backdoor(mnist_3000, target=0, rates=[0.05], clean_label=True, epochs=4, batch_size=64, out=tmp_path)
    patch = badnets[0].doc["summary"][1]["attack_success_rate"]["mean"]
    blended, clean_label = (r.frame().set_index("percent") for r in (blend, quiet))
    assert blended.loc[5.0, "attack_success_rate_mean"] > 0.8 and blended.loc[0.0, "attack_success_rate_mean"] < 0.1
    assert clean_label.loc[5.0, "attack_success_rate_mean"] < min(0.3, patch - 0.5), clean_label
    assert (blended["accuracy_mean"] > 0.9).all() and (clean_label["accuracy_mean"] > 0.9).all()
    run = store.read_run(tmp_path / quiet.doc["runs"][1]["run_dir"])
    assert run["poison"]["new_labels"] == run["poison"]["original_labels"] == [0] * 150
    kinds = pl.results(tmp_path).groupby("kind").size().to_dict()
    assert kinds == {"backdoor": 2, "backdoor-clean-label": 2}
    assert blend.doc["trigger"]["kind"] == "blend" and quiet.doc["clean_label"]


def test_a_corner_patch_backdoors_fashion_mnist_by_class_name(shared_data, tmp_path):
    data = pl.load_dataset("fashion_mnist", size=2000, data_dir=shared_data)
    data = replace(data, x_test=data.x_test[:1000], y_test=data.y_test[:1000])
    result = pl.backdoor(data, target="Bag", rates=[0.1], epochs=3, batch_size=64, out=tmp_path)
    frame = result.frame().set_index("percent")
    assert result.doc["target"] == 8 and frame.loc[10.0, "n_poisoned"] == 200
    assert frame.loc[10.0, "attack_success_rate_mean"] > 0.8 and frame.loc[0.0, "attack_success_rate_mean"] < 0.2, frame
    assert frame.loc[10.0, "accuracy_mean"] > frame.loc[0.0, "accuracy_mean"] - 0.05


def test_the_backdoor_command_trains_resumes_and_reports(cli, shared_data, tmp_path):
    args = ["backdoor", "--dataset", "digits", "--target", "3", "--percent", "5", "--size", "2", "--clean-label",
            "--epochs", "2", "--out", tmp_path]
    code, out_text, err = cli(*args)
    assert code == 0 and "2 runs trained, 0 already done" in err and "backdoor.json" in out_text, err
    run = store.read_run(tmp_path / "models" / "backdoor_digits_patch2-corner_to3_cleanlabel" / "5" / "seed0")
    stamped = run["poison"]["indices"]
    assert run["poison"]["clean_label"] and set(run["poison"]["original_labels"]) == {3} and len(stamped) == 72
    assert run["poison"]["new_labels"] == run["poison"]["original_labels"]
    rebuilt = run_dataset(run)  # the run's training data: stamped images, labels kept
    assert np.array_equal(rebuilt.x_train[stamped][:, 5:7, 5:7, 0], np.tile([[255, 0], [0, 255]], (len(stamped), 1, 1)))
    assert cli(*args)[0] == 0 and "0 runs trained, 2 already done" in cli.err
    cli.fails("made with other settings .*max_epochs 2 -> 3", *args, "--epochs", "3")


def test_a_backdoor_study_refuses_runs_made_on_other_data(tmp_path):
    digits = pl.load_dataset("digits")
    pl.backdoor(digits, target=3, rates=[0.05], size=2, epochs=1, out=tmp_path)
    fewer = replace(digits, x_train=digits.x_train[:600], y_train=digits.y_train[:600])
    with pytest.raises(PoisonlabError, match=r"made on other data \(n_train 1437 -> 600\)"):
        pl.backdoor(fewer, target=3, rates=[0.05], size=2, epochs=1, out=tmp_path)


@pytest.mark.parametrize("args, message", [
    (["--trigger", "star"], "unknown trigger 'star'"),
    (["--position", "middle"], "unknown trigger position"),
    (["--target", "12"], "unknown class '12'"),
    (["--size", "40"], "does not fit 28x28"),
    (["--percent", "120"], "outside 0..100"),
    (["--percent", "95"], "only .* items are outside the target class"),
    (["--defence", "fineprune", "--model", "logreg"], "fineprune needs a torch model"),
    (["--defence", "strip:0"], r"percent in \(0, 100\]"),
    (["--defence", "abl:100"], "ABL's isolated share"),
])
def test_backdoor_bad_input_is_one_line(cli, shared_data, tmp_path, args, message):
    base = ["--target", "0", "--dataset-size", "500", "--out", tmp_path, "--data-dir", shared_data, "--no-download"]
    cli.fails(message, "backdoor", *base, *args)


def test_the_report_has_a_backdoor_section_and_no_backdoor_curve(badnets, tmp_path):
    from poisonlab.reporting import html

    _, out = badnets
    built = html.build(out, tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text()
    assert built["backdoors"] == 1 and "Backdoor: mnist patch -&gt; 0" in page
    assert "Accuracy vs poison" not in built["sections"]  # backdoor runs are not label-flip curves
    assert "Smallest percent with mean ASR ≥ 90%: 5%." in page and page.count("data:image/png;base64") >= 2


def test_two_jobs_give_the_same_backdoor_study_and_table_as_one(tmp_path, pool_threads):
    data = pl.load_dataset("digits", size=300)
    docs = {jobs: pl.backdoor(data, target=0, rates=(0.1,), size=2, seeds=(0, 1), epochs=1, jobs=jobs,
                              out=tmp_path / str(jobs)).doc for jobs in (1, 2)}
    assert docs[1] == docs[2] and len(docs[2]["runs"]) == 4

    def table(out):
        return [(r["run_dir"], r["kind"], r["percent"], r["test_accuracy"]) for r in store.results(out)]

    assert table(tmp_path / "1") == table(tmp_path / "2") and len(table(tmp_path / "2")) == 4
    again = pl.backdoor(data, target=0, rates=(0.1,), size=2, seeds=(0, 1), epochs=1, jobs=2, out=tmp_path / "2")
    assert again.doc == docs[2] and len(store.results(tmp_path / "2")) == 4


def test_backdoor_defence_clean_correlation_removes_a_ten_percent_backdoor(shared_data, tmp_path, cli):
    common = ["backdoor", "--dataset", "mnist", "--dataset-size", "3000", "--data-dir", shared_data, "--no-download",
              "--target", "0", "--percents", "10", "--epochs", "5", "--out", tmp_path]
    assert cli.code(*common) == 0 and cli.code(*common, "--defence", "clean:correlation") == 0
    plain = json.loads(next(tmp_path.glob("backdoor/*_to0/backdoor.json")).read_text())
    defended = json.loads(next(tmp_path.glob("backdoor/*_to0_clean-correlation/backdoor.json")).read_text())
    asr = lambda doc: doc["summary"][-1]["attack_success_rate"]["mean"]  # noqa: E731
    assert asr(plain) > 0.9 and asr(defended) < 0.1, (asr(plain), asr(defended))
    assert defended["defence"] == "clean:correlation" and plain["defence"] == "none"
    run = json.loads(next(tmp_path.glob("models/*clean-correlation/10/seed0/run.json")).read_text())
    assert run["defence"]["detection"]["recall"] > 0.95 and run["config"]["defence"] == "clean:correlation"
    cli.fails("one --defence per study", *common, "--defence", "none,gce")
    from poisonlab.reporting import html

    sections = html.build(tmp_path, tmp_path / "report.html")["sections"]
    assert "Backdoor: mnist patch -> 0, defence clean:correlation" in sections and "Backdoor: mnist patch -> 0" in sections
    assert "Backdoor defences compared" in sections
    page = (tmp_path / "report.html").read_text().replace(' class="l"', "")
    assert "<td>10%</td><td>none</td>" in page and "<td>10%</td><td>clean:correlation</td>" in page
