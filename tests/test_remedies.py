"""Training remedies: each loss against its formula, co-teaching's exchange of small-loss items, and on real MNIST
at 40 % random flips, robust training beating plain training."""

import math

import numpy as np
import pytest
import torch

from poisonlab import datasets
from poisonlab.errors import PoisonlabError
from poisonlab.mixture import low_share
from poisonlab.studies.run import RunSpec, run
from poisonlab.training import remedies


@pytest.fixture()
def batch():
    g = torch.Generator().manual_seed(0)
    out = torch.randn(3, 16, 10, generator=g) * 3
    labels = torch.randint(0, 10, (3, 16), generator=g)
    return out, labels, torch.arange(16)


def _p_label(out, labels):
    return out.softmax(-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)


def test_cross_entropy_gce_and_sce_follow_their_formulas(batch):
    out, labels, items = batch
    p = _p_label(out, labels)
    ce = remedies.make("none")(out, labels, items, 1)
    assert ce.shape == (3, 16) and torch.allclose(ce, -p.log(), atol=1e-5)
    gce = remedies.make("gce")(out, labels, items, 1)
    assert torch.allclose(gce, (1 - p ** remedies.GCE_Q) / remedies.GCE_Q, atol=1e-5)
    sce = remedies.make("sce")(out, labels, items, 1)
    reverse = -math.log(1e-4) * (1 - p)
    assert torch.allclose(sce, remedies.SCE_ALPHA * -p.log() + remedies.SCE_BETA * reverse, atol=1e-4)
    assert (gce <= 1 / remedies.GCE_Q).all()  # bounded, unlike cross-entropy: a wrong label's pull is limited


def test_elr_keeps_a_running_target_per_model_and_item(batch):
    out, labels, items = batch
    elr = remedies.make("elr", n_models=3, n_items=40)
    first = elr(out, labels, items + 10, 1)
    p = out.softmax(-1).clamp(1e-4, 1 - 1e-4)
    target = (1 - remedies.ELR_BETA) * p / p.sum(-1, keepdim=True)
    assert torch.allclose(elr.targets[:, 10:26], target, atol=1e-6)
    assert (elr.targets[:, :10] == 0).all() and (elr.targets[:, 26:] == 0).all()
    regulariser = (1 - (target * p).sum(-1)).log()
    assert torch.allclose(first, -_p_label(out, labels).log() + remedies.ELR_LAMBDA * regulariser, atol=1e-4)
    elr.keep(torch.tensor([2]))
    assert elr.targets.shape == (1, 40, 10)


def test_coteaching_trains_each_model_on_its_peers_easiest_items():
    g = torch.Generator().manual_seed(1)
    out, labels = torch.randn(2, 20, 10, generator=g), torch.randint(0, 10, (2, 20), generator=g)
    coteach = remedies.make("coteach:50")
    ce = remedies.make("none")(out, labels, torch.arange(20), 1)
    assert torch.allclose(coteach(out, labels, torch.arange(20), 0), ce)  # epoch 0: nothing forgotten yet
    late = coteach(out, labels, torch.arange(20), remedies.COTEACH_WARMUP)
    for me, peer in ((0, 1), (1, 0)):
        easiest = set(ce[peer].argsort()[:10].tolist())
        assert set(late[me].nonzero().flatten().tolist()) == easiest
        assert torch.isclose(late[me].mean(), ce[me, sorted(easiest)].mean())  # the mean over the kept half


def test_semi_splits_items_by_their_losses_and_teaches_suspected_ones_its_confident_guess():
    losses = np.concatenate([np.linspace(0, 0.2, 80), np.linspace(2, 2.5, 20)])  # 80 easy items, 20 hard ones
    assert (low_share(losses)[0] > 0.5).tolist() == [True] * 80 + [False] * 20
    semi = remedies.make("semi", n_models=1, n_items=4)
    out = torch.tensor([[[9.0, 0, 0], [0, 9.0, 0], [0, 0, -5.0], [9.0, 0, 0]]])  # item 2 unsure, 3 sure of class 0
    labels = torch.tensor([[0, 1, 2, 2]])
    seen = []
    view = lambda: seen.append(1) or out.flip(-1)  # noqa: E731  (the shifted copy: other outputs)
    for epoch in range(1, remedies.SEMI_WARMUP + 1):
        warm = semi(out, labels, torch.arange(4), epoch, view)
    assert not seen and torch.allclose(warm, remedies.make("none")(out, labels, torch.arange(4), 1))
    late = semi(out, labels, torch.arange(4), remedies.SEMI_WARMUP + 1, view)
    assert seen and late[0, 2] == 0  # suspected and unsure: left out
    expected = torch.nn.functional.cross_entropy(out.flip(-1)[0, 3:], torch.tensor([0]))
    assert torch.isclose(late[0, 3], expected)  # suspected and sure: its shifted copy taught its own guess
    assert torch.allclose(late[0, :2], warm[0, :2])  # clean items keep their labels


@pytest.mark.parametrize("name", ["coteach:100", "coteach:x", "coteach:-1", "focal", 3])
def test_unknown_remedies_are_one_line_errors(name):
    with pytest.raises(PoisonlabError) as info:
        remedies.check_remedy(name)
    assert "\n" not in str(info.value)


def test_settings_are_recorded_per_remedy():
    assert remedies.settings("coteach:40") == {"name": "coteach", "forget_rate": 0.4,
                                               "warmup_epochs": remedies.COTEACH_WARMUP}
    assert remedies.settings("gce")["q"] == remedies.GCE_Q
    assert remedies.peers("coteach") == 2 and remedies.peers("elr") == 1


@pytest.fixture(scope="module")
def mnist(shared_data):
    return datasets.load("mnist", shared_data, dataset_size=2000)


@pytest.fixture(scope="module")
def at_40(mnist) -> dict[str, dict]:
    """run.json of plain training, GCE and co-teaching on MNIST-2000 with 40 % random flips."""
    return {name: run(RunSpec(dataset="mnist", dataset_size=2000, percent=40, defence=name), mnist)[0]
            for name in ("none", "gce", "coteach:40", "semi")}


@pytest.mark.parametrize("name", ["gce", "coteach:40", "semi"])
def test_a_remedy_beats_plain_training_at_40_percent_random_flips_on_real_mnist(at_40, name):
    plain, defended = at_40["none"]["metrics"]["accuracy"], at_40[name]["metrics"]["accuracy"]
    assert defended >= plain + 0.01, (name, plain, defended)
    assert at_40[name]["config"]["defence"] == name and at_40[name]["defence"]["name"] == name.split(":")[0]
    assert "defence" not in at_40["none"]["config"]  # older runs' configs stay equal


@pytest.fixture(scope="module")
def biased_20(mnist) -> dict[str, float]:
    """Test accuracy of plain training, SCE and ELR on MNIST-2000 with 20 % biased flips."""
    return {name: run(RunSpec(dataset="mnist", dataset_size=2000, kind="biased", percent=20, defence=name),
                      mnist)[0]["metrics"]["accuracy"] for name in ("none", "sce", "elr")}


@pytest.mark.parametrize("name", ["sce", "elr"])
def test_sce_and_elr_beat_plain_training_at_20_percent_biased_flips_on_real_mnist(biased_20, name):
    assert biased_20[name] >= biased_20["none"] + 0.015, biased_20


def test_coteaching_runs_stack_in_pairs(mnist):
    from poisonlab.training import fitting
    from poisonlab.training.loop import TrainConfig

    models = [fitting.build("smallcnn", mnist.x_train.shape[1:], 10, 0) for _ in range(2)]
    ys = [mnist.y_train[:600], np.roll(mnist.y_train[:600], 1)]
    seen = []
    records = fitting.fit_stacked(models, mnist.x_train[:600], ys, mnist.x_train[600:800],
                                  [mnist.y_train[600:800]] * 2, config=TrainConfig(max_epochs=2), seed=0,
                                  remedy="coteach", on_epoch=lambda i, row: seen.append(i))
    assert len(records) == 2 and all(r["stack_size"] == 4 for r in records)  # two runs, each beside its peer
    assert sorted(set(seen)) == [0, 1]  # the peers' epochs are not reported as runs
    assert records[0]["best_val_accuracy"] > records[1]["best_val_accuracy"]  # true labels beat shifted ones


def test_abl_holds_the_loss_at_its_floor_then_unlearns_the_lowest_loss_items():
    abl = remedies.make("abl:25", 1, 8)
    labels, items = torch.zeros(1, 8, dtype=torch.long), torch.arange(8)
    confident = torch.zeros(1, 8, 3)
    confident[0, :, 0] = torch.arange(8, dtype=torch.float32)  # item 7 is the most confident of its label
    first = abl(confident, labels, items, 1)
    ce = remedies.make("none")(confident, labels, items, 1)
    assert ce.mean() < remedies.ABL_GAMMA and torch.allclose(first, -ce)  # below the floor: gradient ascent
    assert torch.allclose(abl(-confident, labels, items, 1), remedies.make("none")(-confident, labels, items, 1))
    abl(confident, labels, items, remedies.ABL_ISOLATE)  # the last isolation epoch's losses decide
    after = abl(confident, labels, items, remedies.ABL_ISOLATE + 1)
    p = confident.softmax(-1)[0, :, 0]
    isolated = -remedies.ABL_UNLEARN * torch.log1p(-p)
    assert torch.allclose(after[0, 6:], isolated[6:]) and torch.allclose(after[0, :6], ce[0, :6])  # 25 % of 8 = 2
    assert remedies.settings("abl:25")["isolated_share"] == 0.25
    with pytest.raises(PoisonlabError, match="ABL's isolated share"):
        remedies.check_remedy("abl:150")
