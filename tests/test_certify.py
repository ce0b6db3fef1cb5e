"""Certified defence by partition aggregation: the DPA, FA and ROE certificates against brute force over every attack
of a small ensemble, content-keyed partitions and buckets, and the guarantee itself on real MNIST: an attack of r
poisoned items flips a prediction certified below r and no prediction certified at r or above."""

import itertools
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.neighbors import KNeighborsClassifier

import poisonlab as pl
from fuzzing import examples
from poisonlab import datasets
from poisonlab.defences.certify import (ABSTAIN, certificates, certified_accuracy, fa_certificates, model_items,
                                       partitions, roe_certificates, spread, vote_counts)
from poisonlab.studies.certify import CertifySpec, study
from poisonlab.training.loop import TrainConfig


def brute_force_radius(votes: np.ndarray) -> tuple[int, int]:
    """(prediction, radius) by trying every rival and every number of votes moved from the winner to it (the most a
    poisoned item can do: change one partition's vote), ties to the smaller class."""
    winner = int(np.argmax(votes))  # argmax takes the first maximum: the smaller class
    for moved in range(1, int(votes.sum()) + 2):
        for rival in range(len(votes)):
            if rival == winner:
                continue
            after = votes.copy()
            step = min(moved, after[winner])
            after[winner] -= step
            after[rival] += step
            if int(np.argmax(after)) != winner:
                return winner, moved - 1
    return winner, int(votes.sum())


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(st.integers(0, 12), min_size=2, max_size=6))
def test_radius_is_the_brute_force_one(counts):
    votes = np.array([counts])
    predicted, radius = certificates(votes)
    assert (int(predicted[0]), int(radius[0])) == brute_force_radius(np.array(counts))


def plurality(first: np.ndarray, k: int) -> int:
    voted = first[first >= 0]
    return int(np.bincount(voted, minlength=k).argmax())


def run_off(rankings: np.ndarray, k: int) -> int:
    """ROE's winner from (n_models, K) rankings (rows of ABSTAIN abstain), written out plainly."""
    live = [list(r) for r in rankings if r[0] >= 0]
    votes = np.bincount([r[0] for r in live], minlength=k)
    a = int(votes.argmax())
    votes[a] = -1
    b = int(votes.argmax())
    for_a = sum(r.index(a) < r.index(b) for r in live)
    return a if for_a > len(live) - for_a or (for_a == len(live) - for_a and a < b) else b


def attacked_radius(rankings: np.ndarray, buckets: np.ndarray, k: int, roe: bool) -> int:
    """The largest number of buckets an attacker can corrupt (each turning its models into ANY ranking) without
    changing the aggregate's prediction, by trying every set of buckets and every ranking of their models."""
    winner = run_off(rankings, k) if roe else plurality(rankings[:, 0], k)
    orders = [np.array(p) for p in itertools.permutations(range(k))]
    if not roe:  # a plurality vote sees only the top class
        orders = [np.r_[c, np.delete(np.arange(k), c)] for c in range(k)]
    for size in range(1, len(buckets) + 1):
        for chosen in itertools.combinations(range(len(buckets)), size):
            models = sorted(set(buckets[list(chosen)].ravel()))
            for new in itertools.product(orders, repeat=len(models)):
                after = rankings.copy()
                after[models] = np.stack(new)
                if (run_off(after, k) if roe else plurality(after[:, 0], k)) != winner:
                    return size - 1
    return len(buckets)


@settings(max_examples=examples(60), deadline=None)
@given(st.sampled_from([(5, 1), (4, 2), (6, 2), (6, 3)]), st.integers(0, 2**32 - 1), st.booleans())
def test_fa_and_roe_radii_are_sound_against_every_attack(shape, seed, roe):
    """No attack on fewer buckets than the radius + 1 changes the prediction (3 classes; models abstain too)."""
    n, d = shape
    rng = np.random.default_rng(seed)
    rankings = np.stack([rng.permutation(3) if rng.random() < 0.6 else np.array([0, *rng.permutation([1, 2])])
                         for _ in range(n)])
    rankings[rng.random(n) < 0.15] = ABSTAIN
    buckets = spread(n, d, key=seed.to_bytes(4, "little"))
    if roe:
        predicted, radius, _ = roe_certificates(rankings[:, None, :].astype(np.int8), buckets, 3)
        assert predicted[0] == run_off(rankings, 3)
    else:
        predicted, radius = fa_certificates(rankings[:, :1].astype(np.int64), buckets, 3)
        assert predicted[0] == plurality(rankings[:, 0], 3)
    truth = attacked_radius(rankings, buckets, 3, roe)
    assert radius[0] <= truth
    if d == 1 and not roe:  # with one model per bucket, FA is DPA: exact
        assert radius[0] == truth == certificates(vote_counts(rankings[:, :1], 3))[1][0]


def test_the_run_off_certificate_is_tight_on_most_small_ensembles():
    rng = np.random.default_rng(0)
    tight = 0
    for _ in range(30):
        rankings = np.stack([rng.permutation(3) if rng.random() < 0.5 else np.array([0, *rng.permutation([1, 2])])
                             for _ in range(5)])
        buckets = spread(5, 1)
        radius = roe_certificates(rankings[:, None, :].astype(np.int8), buckets, 3)[1][0]
        tight += radius == attacked_radius(rankings, buckets, 3, roe=True)
    assert tight >= 25


def test_buckets_spread_each_item_over_d_models_and_give_each_model_d_buckets():
    buckets = spread(40, 4, key=b"k")
    assert buckets.shape == (40, 4) and all(len(set(row)) == 4 for row in buckets)
    assert np.bincount(buckets.ravel(), minlength=40).tolist() == [4] * 40
    parts = np.random.default_rng(1).integers(0, 40, 4000)
    items = model_items(parts, buckets)
    assert len(items) == 40 and sum(len(i) for i in items) == 4 * 4000
    for model in (0, 17):
        mine = np.flatnonzero((buckets == model).any(1))
        assert np.array_equal(items[model], np.flatnonzero(np.isin(parts, mine)))
    assert np.array_equal(spread(7, 1), np.arange(7)[:, None])


def test_votes_ignore_abstaining_partitions_and_accuracy_counts_only_correct_certified():
    predictions = np.array([[0, 1, 2], [0, ABSTAIN, 2], [1, 1, ABSTAIN]])
    votes = vote_counts(predictions, 3)
    assert votes.tolist() == [[2, 1, 0], [0, 2, 0], [0, 0, 2]]
    predicted, radius = certificates(votes)
    assert predicted.tolist() == [0, 1, 2] and radius.tolist() == [0, 0, 0]  # one move ties, and the smaller class wins
    assert certified_accuracy(predicted, radius, np.array([0, 1, 0]), np.array([0, 1])).tolist() == [2 / 3, 0.0]


def test_partitions_depend_on_each_items_content_alone():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(3000, 8, 8, 1), dtype=np.uint8)
    parts = partitions(x, 30)
    assert parts.min() == 0 and parts.max() == 29 and np.bincount(parts).min() > 50  # about 100 each
    order = rng.permutation(len(x))
    assert np.array_equal(partitions(x[order], 30), parts[order])  # not the index
    changed = x.copy()
    changed[7, 0, 0, 0] ^= 1
    moved = partitions(changed, 30) != parts
    assert moved.sum() <= 1 and not moved[np.arange(len(x)) != 7].any()  # one item's change touches only its own
    assert (partitions(x, 30, key=b"another key") != parts).mean() > 0.9  # the key decides where items land


@pytest.fixture(scope="module")
def mnist(shared_data):
    return datasets.load("mnist", shared_data, dataset_size=2000, download=False, test_size=500)


@pytest.mark.parametrize("spread_", [1, 2])
def test_an_attack_of_r_items_changes_no_prediction_certified_at_r(mnist, tmp_path, spread_):
    """1-NN base models: a copy of a test image (one pixel nudged so that it lands in a chosen bucket), labelled as
    the runner-up class, turns the votes of that bucket's models. r = R + 1 such insertions, aimed at an image DPA
    certifies at R, flip it; every prediction certified at r or more (DPA and ROE; FA and FA+ROE with spread 2) must
    survive them."""
    plain, second = ("dpa", "roe") if spread_ == 1 else ("fa", "fa+roe")
    folder = tmp_path / "before"
    before = pl.certify(mnist, partitions=25, spread=spread_, method=plain, model=KNeighborsClassifier(1), out=folder)
    ranked = pl.certify(mnist, partitions=25, spread=spread_, method=second, model=KNeighborsClassifier(1), out=folder)
    assert before.doc["clean_accuracy"] > 0.8 and before.doc["median_radius"] >= (3 if spread_ == 1 else 1)
    assert set(ranked.doc["methods"]) == {plain, second} and ranked.doc["median_radius"] >= 1
    correct = np.flatnonzero((before.predicted == mnist.y_test) & (before.radius >= 1) & (before.radius <= 4))
    target = int(correct[0])
    radius, winner = int(before.radius[target]), int(before.predicted[target])
    votes = before.votes[target].copy()
    rivals = votes + (np.arange(len(votes)) < winner)
    rivals[winner] = -1
    runner_up = int(rivals.argmax())
    r = radius + 1
    n_models = 25 * spread_
    first = np.stack([np.load(folder / "partitions" / f"{i}.npy")[target, 0] for i in range(n_models)])
    buckets = spread(n_models, spread_)
    image = mnist.x_test[target]
    copies, used = [], set()
    for position in range(image.size):
        nudged = image.copy().reshape(-1)
        nudged[position] = nudged[position] + 1 if nudged[position] < 255 else 254
        nudged = nudged.reshape(image.shape)
        bucket = int(partitions(nudged[None], n_models)[0])
        if (first[buckets[bucket]] == winner).all() and bucket not in used:  # every model of the bucket votes winner
            used.add(bucket)
            copies.append(nudged)
        if len(copies) == r:
            break
    assert len(copies) == r
    attacked = pl.from_arrays(np.concatenate([mnist.x_train, np.stack(copies)]),
                              np.concatenate([mnist.y_train, np.full(r, runner_up)]), mnist.x_test, mnist.y_test,
                              classes=mnist.classes, name="mnist-attacked")
    for result, method in ((before, plain), (ranked, second)):
        after = pl.certify(attacked, partitions=25, spread=spread_, method=method, model=KNeighborsClassifier(1))
        safe = result.radius >= r
        assert safe.sum() > 100 and np.array_equal(after.predicted[safe], result.predicted[safe])  # the guarantee
        if method == "dpa":
            assert after.predicted[target] != winner  # the attack worked where the certificate allowed it


def test_certify_command_writes_resumes_and_refuses_other_settings(tmp_path, cli):
    args = ("certify", "--dataset", "digits", "--partitions", "12", "--model", "logreg", "--out", tmp_path)
    code, text = cli.text(*args)
    assert code == 0 and "median certified radius" in text
    doc = json.loads((tmp_path / "certify.json").read_text())
    assert doc["status"] == "complete" and doc["partitions"] == 12 and doc["certified_accuracy"][0]["budget"] == 0
    assert doc["certified_accuracy"][0]["accuracy"] == doc["clean_accuracy"] > 0.8
    header = (tmp_path / "certify.csv").read_text().splitlines()[0]
    assert header == ",".join([f"votes_{c}" for c in range(10)] + ["predicted", "label", "radius"])
    code, text = cli.text(*args)
    assert code == 0 and "resuming: 12 of 12 base models already trained" in " ".join(text.split())
    cli.fails("holds a certify study with other settings or data", *args[:-2], "--seed", "1", "--out", tmp_path)
    cli.fails(r"--percents needs --poison random, biased, informed or backdoor", *args[:-2], "--percents", "10", "--out", tmp_path / "x")
    cli.fails(r"partitions must be a whole number from 1 to 1437, got 5000", "certify", "--dataset", "digits",
              "--partitions", "5000", "--model", "logreg", "--out", tmp_path / "y")
    assert not (tmp_path / "x").exists()
    code, text = cli.text("report", "--out", tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert code == 0 and "1 certify studies" in text and "Certified: digits, 12 partitions" in html
    assert "certified accuracy vs poisoned training items" in html and "data:image/png;base64," in html


def test_poisoned_labels_shrink_the_certified_accuracy(tmp_path):
    digits = pl.load_dataset("digits")
    clean = pl.certify(digits, partitions=12, model="logreg")
    dirty = pl.certify(digits, partitions=12, model="logreg", kind="random", rate=0.4)
    assert dirty.doc["poison"]["n_poisoned"] == round(0.4 * 1437)
    assert dirty.doc["clean_accuracy"] < clean.doc["clean_accuracy"] and dirty.doc["median_radius"] < clean.doc["median_radius"]
    assert list(clean.frame().columns[-3:]) == ["predicted", "label", "radius"]


def test_a_stacked_partition_trains_as_it_would_alone(mnist):
    """The certificate needs each base model to depend on its own items and seed only: the same partition trained in
    a stack of three (whose members take 4, 4 and 3 steps an epoch: the shorter one is masked) or alone ends with the
    same weights, up to float rounding (grouped vs single convolutions; Adam amplifies it over many steps)."""
    import torch

    from poisonlab.training import fitting
    from poisonlab.training.stacked import fit_on_own_items, rank_each

    x, y = fitting.as_tensor(mnist.x_train), torch.from_numpy(mnist.y_train)
    parts = partitions(mnist.x_train, 20)
    members = [np.flatnonzero(parts == i) for i in (3, 4, 5)]
    assert [len(m) for m in members] == [108, 102, 92]
    config = TrainConfig(max_epochs=3, batch_size=32, precision="fp32")
    for which in (1, 2):  # a model with the most steps, and the one masked at the end of each epoch
        three = [fitting.build("smallcnn", (28, 28, 1), 10, 10 + i) for i in range(3)]
        fit_on_own_items(three, x, members, y, config, [10, 11, 12])
        alone = [fitting.build("smallcnn", (28, 28, 1), 10, 10 + which)]
        fit_on_own_items(alone, x, members[which : which + 1], y, config, [10 + which])
        for a, b in zip(three[which].state_dict().values(), alone[0].state_dict().values()):
            torch.testing.assert_close(a.float(), b.float(), atol=1e-3, rtol=1e-3)
        together, single = rank_each(three, fitting.as_tensor(mnist.x_test))[which], rank_each(alone, fitting.as_tensor(mnist.x_test))[0]
        assert (together[:, 0] == single[:, 0]).mean() > 0.99 and together.shape == (500, 10)


def test_certify_trains_on_informed_flips_and_on_cifar10n_human_labels(shared_data):
    from poisonlab.attacks import humanlabels

    cifar = datasets.load("cifar10", shared_data, dataset_size=600, download=False, test_size=200)
    human = pl.certify(cifar, partitions=3, model=KNeighborsClassifier(1), kind="cifar10n:worse", data_dir=shared_data)
    worse = humanlabels.read(humanlabels.default_path(shared_data), ["worse"])[0]
    assert human.doc["poison"]["n_poisoned"] == int((worse.labels[:600] != cifar.y_train).sum()) > 200
    assert human.doc["settings"]["labels"]["sha256"] == worse.sha256 and human.doc["poison"]["kind"] == "cifar10n:worse"
    digits = pl.load_dataset("digits")
    informed = pl.certify(digits, partitions=6, model="logreg", kind="random", rate=0.2, select="confident")
    assert informed.doc["poison"] == {"kind": "random", "select": "confident", "percent": 20.0, "rate": 0.2,
                                      "n_poisoned": round(0.2 * 1437)}
    assert informed.doc["settings"]["spec"]["select"] == "confident"


def test_certify_command_refuses_mixed_poisonings(cli, tmp_path):
    base = ("certify", "--dataset", "digits", "--partitions", "4", "--model", "logreg", "--out", tmp_path)
    cli.fails(r"--select needs --poison random or biased", *base, "--select", "margin")
    cli.fails(r"CIFAR-10N labels belong to CIFAR-10, not digits", *base, "--labels", "cifar10n:aggre")
    cli.fails(r"human labels replace poisoning; leave out --poison", "certify", "--dataset", "cifar10", "--partitions",
              "4", "--labels", "cifar10n:aggre", "--poison", "random", "--percents", "10")
    cli.fails(r"--method fa needs --spread above 1", *base, "--method", "fa")
    cli.fails(r"--method roe takes no --spread \(got 4\)", *base, "--method", "roe", "--spread", "4")
    cli.fails(r"augmentation 'shift' needs a CNN base model on images", *base, "--augment", "shift")
    cli.fails(r"--target and --trigger set a backdoor: add --poison backdoor", *base, "--target", "3")
    cli.fails(r"a backdoor stamps items of other classes than --target at random: leave --select out", *base,
              "--poison", "backdoor", "--percent", "1", "--select", "margin")
    cli.fails(r"unknown trigger 'star'", *base, "--poison", "backdoor", "--percent", "1", "--trigger", "star")
    assert not any(tmp_path.iterdir())


def test_a_study_saved_before_roe_certifies_by_dpa_and_trains_again_for_roe(tmp_path):
    """Studies made before ROE saved each model's class alone (n_test,) int64: DPA still reads them; ROE, which needs
    the rankings, trains those models again."""
    digits = pl.load_dataset("digits")
    first = pl.certify(digits, partitions=6, model="logreg", out=tmp_path)
    for path in (tmp_path / "partitions").glob("*.npy"):
        np.save(path, np.load(path)[:, 0].astype(np.int64))
    legacy = pl.certify(digits, partitions=6, model="logreg", out=tmp_path)
    assert set(legacy.doc["methods"]) == {"dpa"} and np.array_equal(legacy.radius, first.radius)
    again = pl.certify(digits, partitions=6, model="logreg", method="roe", out=tmp_path)
    assert set(again.doc["methods"]) == {"dpa", "roe"} and np.load(tmp_path / "partitions" / "0.npy").ndim == 2
    assert np.array_equal(again.doc["methods"]["dpa"]["certified_accuracy"], first.doc["methods"]["dpa"]["certified_accuracy"])


def test_jobs_train_groups_of_base_models_in_workers_as_one_thread_would(shared_data, tmp_path):
    """--jobs on a CPU: groups of partitions go to worker processes of one torch thread each, each sent only its
    models' items; every model is the one a single-threaded process trains (same items, same seed)."""
    import torch

    data = datasets.load("mnist", shared_data, dataset_size=600, download=False, test_size=200)
    spec = CertifySpec(partitions=6, model="simplecnn", augment="shift", train=TrainConfig(max_epochs=15, batch_size=16))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        alone = study(data, spec, tmp_path / "alone")
    finally:
        torch.set_num_threads(threads)
    grouped = study(data, spec, tmp_path / "grouped", jobs=2)
    for i in range(6):
        assert np.array_equal(np.load(tmp_path / "alone" / "partitions" / f"{i}.npy"),
                              np.load(tmp_path / "grouped" / "partitions" / f"{i}.npy"))
    assert grouped["doc"]["methods"] == alone["doc"]["methods"]
    assert grouped["doc"]["clean_accuracy"] > 0.3


def test_a_backdoor_cannot_move_a_triggered_prediction_certified_against_its_stamped_items(mnist, tmp_path):
    """--poison backdoor: the base models also rank the triggered test images; where the aggregate's radius there
    covers every stamped item (one removal and one insertion each), its prediction is the one the same aggregate
    gives without the backdoor, on real MNIST."""
    common = dict(partitions=20, model=KNeighborsClassifier(1), method="roe", kind="backdoor", target="7")
    clean = pl.certify(mnist, rate=0.0, out=tmp_path / "clean", **common)
    stamped = pl.certify(mnist, rate=0.001, out=tmp_path / "stamped", **common)
    doc = stamped.doc["backdoor"]
    assert stamped.doc["poison"]["n_poisoned"] == 2 and doc["radius_needed"] == 4 and doc["target"] == 7
    assert doc["n_triggered"] == int((mnist.y_test != 7).sum()) and len(stamped.labels) == len(mnist.y_test)
    assert clean.doc["backdoor"]["radius_needed"] == 0
    for name in ("dpa", "roe"):
        assert 0.3 < doc["methods"][name]["certified_unaffected"] <= 1
        assert 0 <= doc["methods"][name]["attack_success_rate"] <= 1
    from poisonlab.studies.certify import _with_triggered, aggregate, layout, poisoned, saved_rankings

    triggered = {}
    for percent, folder in ((0.0, "clean"), (0.1, "stamped")):
        spec = CertifySpec(partitions=20, method="roe", kind="backdoor", percent=percent, target=7)
        x, _, _ = poisoned(mnist, spec)
        data = _with_triggered(mnist, x, spec)
        saved = saved_rankings(tmp_path / folder / "partitions", range(20), data)
        buckets = layout(data, spec)[0]
        triggered[percent] = {name: (p[len(mnist.y_test):], r[len(mnist.y_test):]) for name, (p, r, _) in
                              aggregate(saved, buckets, 10, ("dpa", "roe")).items()}
    for name in ("dpa", "roe"):
        predicted, radius = triggered[0.1][name]
        sure = radius >= 4
        assert sure.mean() == doc["methods"][name]["certified_unaffected"]
        assert np.array_equal(predicted[sure], triggered[0.0][name][0][sure])


def test_certify_command_certifies_against_a_backdoor_and_reports_it(cli, tmp_path):
    code, text = cli.text("certify", "--dataset", "digits", "--partitions", "6", "--model", "logreg", "--poison",
                          "backdoor", "--percent", "5", "--target", "3", "--trigger", "blend", "--out", tmp_path)
    text = " ".join(text.split())
    assert code == 0 and "backdoor to class 3: one base model's attack success rate (mean)" in text
    doc = json.loads((tmp_path / "certify.json").read_text())
    assert doc["poison"]["kind"] == "backdoor" and doc["poison"]["n_poisoned"] == round(0.05 * 1437)
    assert doc["settings"]["spec"]["trigger"] == "blend" and doc["settings"]["spec"]["target"] == 3
    assert doc["backdoor"]["radius_needed"] == 2 * doc["poison"]["n_poisoned"]
    code, _ = cli.text("report", "--out", tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert code == 0 and "Backdoor: a blend trigger stamped on 72 training items relabelled as class 3" in html
    assert "certified unaffected" in html


def test_certify_command_poison_informed_flips_where_a_surrogate_is_surest(cli, tmp_path):
    code, _ = cli.text("certify", "--dataset", "digits", "--partitions", "4", "--model", "logreg", "--poison",
                       "informed", "--percent", "10", "--out", tmp_path)
    doc = json.loads((tmp_path / "certify.json").read_text())
    assert code == 0 and doc["poison"]["kind"] == "random" and doc["poison"]["select"] == "confident"
    assert doc["poison"]["n_poisoned"] == round(0.1 * 1437)


def test_certify_command_runs_one_study_per_seed_and_summarises_them(cli, tmp_path):
    args = ("certify", "--dataset", "digits", "--partitions", "4", "--model", "logreg", "--poison", "random",
            "--percent", "10", "--out", tmp_path)
    cli.fails(r"give --seed or --seeds, not both", *args, "--seed", "3", "--seeds", "0,1")
    code, text = cli.text(*args, "--seeds", "0,1", "--json", tmp_path / "summary.json")
    summary = json.loads((tmp_path / "seeds.json").read_text())
    assert code == 0 and summary == json.loads((tmp_path / "summary.json").read_text()) and summary["seeds"] == [0, 1]
    docs = [json.loads((tmp_path / f"seed-{s}" / "certify.json").read_text()) for s in (0, 1)]
    assert docs[0]["settings"]["spec"]["seed"] == 0 and docs[1]["settings"]["spec"]["seed"] == 1
    for name in ("dpa", "roe"):
        values = [d["methods"][name]["clean_accuracy"] for d in docs]
        assert summary["methods"][name]["clean_accuracy"] == {"mean": np.mean(values), "std": np.std(values),
                                                               "values": values}
    assert "DPA over seeds 0,1: clean accuracy" in " ".join(text.split())
    code, text = cli.text(*args, "--seeds", "0,1")
    assert code == 0 and text.count("resuming: 4 of 4 base models already trained") == 2


def test_stack_on_trains_the_cnn_base_models_as_one_wide_model_on_a_cpu_too(shared_data, tmp_path, cli):
    """--stack on: 64 partitions at a time as one wide model on a CPU; each model still learns only from its own
    items and seed (simplecnn's dropout masks too: from the stack's shared generator, they made two of three models
    differ), so each model's test predictions match the one trained model by model (in fp32: bf16 rounds
    differently)."""
    data = datasets.load("mnist", shared_data, dataset_size=300, download=False, test_size=200)
    spec = CertifySpec(partitions=3, model="simplecnn", train=TrainConfig(max_epochs=2, batch_size=16, precision="fp32"))
    study(data, spec, tmp_path / "alone", stack="off")
    study(data, spec, tmp_path / "wide", stack="on")
    agree = [np.mean(np.load(tmp_path / "alone" / "partitions" / f"{i}.npy")[:, 0]
                     == np.load(tmp_path / "wide" / "partitions" / f"{i}.npy")[:, 0]) for i in range(3)]
    assert min(agree) > 0.95
    cli.fails(r"base model 'logreg' cannot train stacked", "certify", "--dataset", "digits", "--partitions", "4",
              "--model", "logreg", "--stack", "on", "--out", tmp_path / "x")
    cli.fails(r"unknown stack mode 'wide'", "certify", "--dataset", "digits", "--partitions", "4", "--stack", "wide",
              "--out", tmp_path / "y")


def test_the_local_executor_refuses_cluster_settings():
    with pytest.raises(pl.PoisonlabError, match=r"the local executor takes no cluster address \(head:6379\)"):
        pl.certify("digits", partitions=4, model="logreg", address="head:6379")
