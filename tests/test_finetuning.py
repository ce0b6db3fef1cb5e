"""Post-training backdoor defences: fine-tuning and fine-pruning on a trusted share, and STRIP at test time, on a
real 10 % corner-patch backdoor of MNIST (first 3000); ABL on a 10 % blend backdoor."""

import copy
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

import poisonlab as pl
from poisonlab.attacks.backdoor import Trigger, backdoor, triggered
from poisonlab.defences import finetuning, strip
from poisonlab.errors import PoisonlabError
from poisonlab.reporting import backdoorplots
from poisonlab.studies import backdoor as study, defence
from poisonlab.studies.backdoor import BackdoorSpec
from poisonlab.training.loop import TrainConfig

TRAIN = TrainConfig(max_epochs=12, batch_size=64)


@pytest.fixture(scope="module")
def mnist(shared_data):
    data = pl.load_dataset("mnist", size=3000, data_dir=shared_data)
    return replace(data, x_test=data.x_test[:2000], y_test=data.y_test[:2000])


@pytest.fixture(scope="module")
def patched(mnist):
    """The undefended 10 % patch run: (spec, record, model, stamped training items, labels, mask, triggered test)."""
    spec = BackdoorSpec("mnist", 0, percent=10, dataset_size=3000, train=TRAIN)
    record, model = study.run(spec, mnist)
    x, labels, idx = backdoor(mnist.x_train, mnist.y_train, trigger=spec.trigger, target=0, percent=10, seed=0)
    mask = np.zeros(len(labels), bool)
    mask[idx] = True
    x_trig, y_trig = triggered(mnist.x_test, mnist.y_test, trigger=spec.trigger, target=0, seed=1)
    return spec, record, model, x, labels, mask, (x_trig, y_trig)


def test_the_trusted_set_is_a_seeded_share_of_untouched_items():
    mask = np.zeros(1000, bool)
    mask[:100] = True
    items = defence.trusted_items(mask, 0.05, seed=3)
    assert len(items) == 50 and not mask[items].any() and (np.diff(items) > 0).all()
    assert (items == defence.trusted_items(mask, 0.05, seed=3)).all()
    assert not (items == defence.trusted_items(mask, 0.05, seed=4)).all()


def test_defence_names_for_the_trusted_set():
    assert defence.check_defence("fineprune:10", backdoor=True) == "fineprune:10"
    assert defence.settings("strip:10")["trusted_share"] == 0.1 and defence.remedy("finetune") == "none"
    with pytest.raises(PoisonlabError, match="backdoor study"):
        defence.check_defence("finetune")
    with pytest.raises(PoisonlabError, match=r"percent in \(0, 100\]"):
        defence.check_defence("strip:x", backdoor=True)
    with pytest.raises(PoisonlabError, match="trusted"):
        defence.check_defence("finetun", backdoor=True)


def test_the_api_takes_trusted_set_defences_for_backdoors(mnist):
    with pytest.raises(PoisonlabError, match=r"percent in \(0, 100\]"):  # checked as a backdoor defence
        pl.backdoor(mnist, target=0, rates=[0.1], defence="fineprune:x")


def test_fineprune_prunes_the_least_active_units_and_keeps_them_at_zero():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.copy_(torch.tensor([5.0, 0.1, 4.0, 0.2, 3.0, 2.0]))  # units 1 and 3 the least active
    x = np.random.default_rng(0).normal(size=(30, 2, 2, 1)).astype(np.float32)
    assert list(finetuning.dormant(model, x)[:2]) == [1, 3]
    done = finetuning.fineprune(model, x, np.arange(30) % 3, share=1 / 3, epochs=2)
    assert done["pruned"] == [1, 3] and done["units"] == 6
    assert (model[-1].weight[:, [1, 3]] == 0).all() and (model[-1].weight[:, [0, 2]] != 0).all()
    with pytest.raises(PoisonlabError, match="Sequential model ending in a Linear"):
        finetuning.fineprune(nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU()), x, np.zeros(30, int))


@pytest.mark.parametrize("name, accuracy_loss", [("fineprune", 0.02), ("finetune", 0.05)])
def test_a_repair_on_a_five_percent_trusted_set_removes_a_ten_percent_backdoor(patched, mnist, name, accuracy_loss):
    spec, record, model, x, labels, mask, (x_trig, y_trig) = patched
    before = record["metrics"]
    assert before["attack_success_rate"] > 0.9
    repaired = copy.deepcopy(model)
    done = defence.repair(name, repaired, x, labels, mask, seed=0)
    after = study.measure(repaired, mnist, x_trig, y_trig, 0)
    assert after["attack_success_rate"] < 0.1, after["attack_success_rate"]
    assert after["accuracy"] > before["accuracy"] - accuracy_loss, (before["accuracy"], after["accuracy"])
    assert done["n_trusted"] == 150 and done["method"] == name


def test_strip_flags_most_triggered_inputs_and_few_clean_ones(patched, mnist, tmp_path):
    spec, record, model, x, labels, mask, (x_trig, y_trig) = patched
    trusted = x[defence.trusted_items(mask, 0.05, seed=0)]
    clean = strip.entropy(model, mnist.x_test, trusted, 10)
    stamped = strip.entropy(model, x_trig, trusted, 10)
    found = strip.scores(clean, stamped)
    assert found["auc"] > 0.95 and found["far"] < 0.5, found
    assert (clean < found["threshold"]).mean() <= 0.011
    assert [row["frr"] for row in found["curve"]] == sorted(row["frr"] for row in found["curve"])
    assert found["curve"][-1]["far"] <= found["curve"][0]["far"]
    guarded = study.run(replace(spec, defence="strip"), mnist)[0]
    assert guarded["defence"]["before"] == {k: record["metrics"][k] for k in ("accuracy", "attack_success_rate")}
    assert guarded["metrics"]["attack_success_rate"] < record["metrics"]["attack_success_rate"] - 0.5
    assert guarded["defence"]["rejected_clean"] <= 0.011 * len(mnist.y_test) and guarded["defence"]["n_trusted"] == 150
    doc = study.document(replace(spec, defence="strip"), mnist, [guarded])
    assert doc["summary"][0]["before"]["attack_success_rate"]["mean"] > 0.9 and len(doc["summary"][0]["strip_curve"]) == 6
    figures = backdoorplots.write_all(doc, mnist.x_train[:4], mnist.x_train[:4], tmp_path)
    assert (tmp_path / "strip.png") in figures


def test_abl_unlearns_a_ten_percent_blend_backdoor(mnist):
    plain = BackdoorSpec("mnist", 0, percent=10, dataset_size=3000, trigger=Trigger(kind="blend"), train=TRAIN)
    before = study.run(plain, mnist)[0]["metrics"]
    after = study.run(replace(plain, defence="abl"), mnist)[0]
    assert before["attack_success_rate"] > 0.9
    assert after["metrics"]["attack_success_rate"] < 0.1, after["metrics"]
    assert after["metrics"]["accuracy"] > before["accuracy"] - 0.02
    assert after["defence"]["isolated_share"] == 0.1 and after["config"]["defence"] == "abl"


def test_the_backdoor_command_fineprunes_and_the_report_shows_before_and_after(cli, shared_data, tmp_path):
    common = ["backdoor", "--dataset", "mnist", "--dataset-size", "3000", "--data-dir", shared_data, "--no-download",
              "--target", "0", "--percents", "10", "--epochs", "8", "--out", tmp_path]
    assert cli.code(*common, "--defence", "fineprune") == 0
    run = json.loads(next(tmp_path.glob("models/*_fineprune/10/seed0/run.json")).read_text())
    assert run["defence"]["n_trusted"] == 150 and run["defence"]["before"]["attack_success_rate"] > 0.9
    assert run["metrics"]["attack_success_rate"] < 0.2 and len(run["defence"]["pruned"]) == 19
    cli.fails("backdoor study", "train", "--dataset", "embedded", "--defence", "strip")
    from poisonlab.reporting import html

    html.build(tmp_path, tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text()
    assert "defence fineprune" in page
    assert "ASR before" in page and "attack success rate after" in page
