"""The attack x defence matrix: its plan, the recovery arithmetic, and `poisonlab defend` end to end on real MNIST
(resumable, a defence column in the results, the matrix files)."""

import csv
import json
from dataclasses import replace

import pytest

from poisonlab.errors import PoisonlabError
from poisonlab.studies import matrix
from poisonlab.studies.run import RunSpec


BASE = RunSpec(dataset="mnist", dataset_size=1000)


def test_plan_always_has_the_clean_baseline_and_every_cell():
    specs = matrix.plan(BASE, ["random", "informed:margin"], [10, 40], ["none", "gce"], [0, 1])
    assert len(specs) == len(set(specs)) == 2 + 2 * 2 * 2 * 2
    assert {(s.percent, s.defence) for s in specs if s.percent == 0} == {(0, "none")}
    assert {matrix.attack_of(s) for s in specs} == {"clean", "random", "informed:margin"}
    without_none = matrix.plan(BASE, ["random"], [20], ["gce"], [0])
    assert [(s.percent, s.defence) for s in without_none] == [(0, "none"), (20, "none"), (20, "gce")]
    with_zero = matrix.plan(BASE, ["biased"], [0, 20], ["none", "elr"], [0])
    assert {(matrix.attack_of(s), s.defence) for s in with_zero} == {("clean", "none"), ("clean", "elr"),
                                                                    ("biased", "none"), ("biased", "elr")}


@pytest.mark.parametrize("attacks, defences, words", [(["targeted"], ["none"], "poisonlab flip"),
                                                      (["label-noise"], ["none"], "unknown attack"),
                                                      (["random"], ["dividemix"], "unknown defence")])
def test_plan_refuses_what_the_matrix_cannot_run(attacks, defences, words):
    with pytest.raises(PoisonlabError, match=words):
        matrix.plan(BASE, attacks, [20], defences, [0])


def _record(accuracy: float, train_s: float = 10.0, epochs: int = 10, asr: float | None = None) -> dict:
    metrics = {"accuracy": accuracy} if asr is None else {"accuracy": accuracy, "attack_success_rate": asr}
    return {"metrics": metrics, "timings": {"train_s": train_s}, "training": {"epochs_run": epochs}}


def test_a_backdoor_cell_recovers_attack_success_and_keeps_its_accuracy():
    specs = matrix.plan_backdoors(BASE, ["backdoor:patch", "random"], [0, 10], ["strip", "abl"], [0], target=3)
    assert [(matrix.attack_of(s), s.percent, s.defence) for s in specs] == [
        ("backdoor:patch", 0, "none"), ("backdoor:patch", 0, "strip"), ("backdoor:patch", 0, "abl"),
        ("backdoor:patch", 10, "none"), ("backdoor:patch", 10, "strip"), ("backdoor:patch", 10, "abl")]
    assert {s.target for s in specs} == {3} and specs[0].trigger.kind == "patch"
    asr = {(0, "none"): 0.01, (0, "strip"): 0.0, (0, "abl"): 0.01, (10, "none"): 0.91, (10, "strip"): 0.19,
           (10, "abl"): 0.99}
    records = [_record(0.95, asr=asr[(s.percent, s.defence)]) for s in specs]
    cells = {(c["percent"], c["defence"]): c for c in matrix.summarise(specs, records)}
    assert cells[(10, "strip")]["recovered"] == pytest.approx(0.8) and cells[(10, "strip")]["attack_success_rate"] == 0.19
    assert cells[(10, "abl")]["recovered"] < 0 and cells[(0, "strip")]["recovered"] is None
    assert matrix.best(list(cells.values()), "backdoor:patch", 10)["defence"] == "strip"
    with pytest.raises(PoisonlabError, match="backdoor study"):
        matrix.plan(BASE, ["random"], [10], ["strip"], [0])


def test_defend_takes_a_backdoor_and_measures_the_attack_success_removed(shared_data):
    import poisonlab as pl

    data = pl.load_dataset("mnist", size=2000, data_dir=shared_data)
    result = pl.defend(data, attacks=["backdoor:patch"], rates=[0.1], defences=["clean:correlation"], epochs=5)
    cells = {(c["attack"], c["percent"], c["defence"]): c for c in result.doc["cells"]}
    assert len(result.records) == 3 and {r["poison"]["kind"] for r in result.records} == {"backdoor"}
    plain, cleaned = cells[("backdoor:patch", 10, "none")], cells[("backdoor:patch", 10, "clean:correlation")]
    assert plain["attack_success_rate"] > 0.9 and cleaned["attack_success_rate"] < 0.1, (plain, cleaned)
    assert cleaned["recovered"] > 0.9 and cleaned["accuracy"] > plain["accuracy"] - 0.02
    assert list(result.frame()["attack_success_rate"].dropna()) == [r["attack_success_rate"] for r in cells.values()]


def test_recovery_is_the_share_of_the_damage_given_back_per_seed():
    specs = matrix.plan(BASE, ["random"], [40], ["none", "gce"], [0, 1])
    accuracies = {(0, "none", 0): 0.9, (0, "none", 1): 0.8, (40, "none", 0): 0.5, (40, "none", 1): 0.6,
                  (40, "gce", 0): 0.8, (40, "gce", 1): 0.65}
    records = [_record(accuracies[(s.percent, s.defence, s.seed)], 20.0 if s.defence == "gce" else 10.0)
               for s in specs]
    cells = {(c["attack"], c["defence"]): c for c in matrix.summarise(specs, records)}
    gce = cells[("random", "gce")]
    assert gce["recovered_seeds"] == [0.75, 0.25] and gce["recovered"] == 0.5 and gce["seeds"] == 2
    assert gce["time_ratio"] == 2.0 and gce["epoch_time_ratio"] == 2.0
    assert cells[("random", "none")]["recovered"] == 0.0
    assert matrix.best(list(cells.values()), "random", 40)["defence"] == "gce"


def test_no_recovery_figure_where_the_poison_cost_nothing():
    specs = matrix.plan(BASE, ["random"], [10], ["none", "gce"], [0])
    records = [_record(0.9), _record(0.899), _record(0.95)]
    assert [c["recovered"] for c in matrix.summarise(specs, records)] == [None, None, None]


@pytest.fixture(scope="module")
def defended(poisonlab_main, shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("matrix")
    args = ["defend", "--dataset", "mnist", "--dataset-size", "1500", "--data-dir", shared_data, "--no-download",
            "--attacks", "random", "--percents", "50", "--defences", "none,gce,clean:loss", "--epochs", "8",
            "--jobs", "1", "--out", out]
    assert poisonlab_main(*args) == 0
    return out, args


def test_defend_writes_the_matrix_and_a_defence_column(defended):
    out, _ = defended
    rows = list(csv.DictReader((out / "matrix.csv").open()))
    assert [(r["attack"], r["percent"], r["defence"]) for r in rows] == [
        ("clean", "0.0", "none"), ("random", "50.0", "none"), ("random", "50.0", "gce"),
        ("random", "50.0", "clean:loss")]
    runs = list(csv.DictReader((out / "results.csv").open()))
    assert sorted(r["defence"] for r in runs) == ["clean:loss", "gce", "none", "none"]
    doc = json.loads((out / "matrix.json").read_text())
    assert doc["defences"] == ["none", "gce", "clean:loss"] and doc["runs"] == 4
    assert (out / "matrix.png").stat().st_size > 10_000
    cleaned = json.loads(next((out / "models").glob("*clean-loss/50/seed0/run.json")).read_text())
    assert cleaned["defence"]["detection"]["recall"] > 0.5 and cleaned["split"]["n_fit"] < 1350


def test_defend_resumes_and_refuses_bad_input_in_one_line(defended, cli):
    out, args = defended
    code, text = cli.text(*args)
    assert code == 0 and "(0 trained now)" in text
    cli.fails("unknown defence 'dividemix'", *replace_flag(args, "--defences", "none,dividemix"))
    cli.fails("poisonlab flip", *replace_flag(args, "--attacks", "targeted"))
    cli.fails("one --dataset-size", *replace_flag(args, "--dataset-size", "1000,2000"))
    cli.fails("backdoor study", *replace_flag(args, "--defences", "none,strip"))
    stamped = replace_flag(replace_flag(args, "--attacks", "backdoor:patch"), "--defences", "strip")
    cli.fails("unknown class 'eleven'", *stamped, "--target", "eleven")
    at = stamped.index("--jobs")
    cli.fails("backdoor attacks in the matrix train locally", *stamped[:at], *stamped[at + 2:], "--executor", "ray")


def replace_flag(args: list, flag: str, value: str) -> list:
    i = args.index(flag)
    return [*args[: i + 1], value, *args[i + 2 :]]


def test_a_defence_changes_the_run_folder_but_not_older_runs():
    assert replace(BASE, defence="coteach:40").folder().parts[1] == "mnist_1000_coteach-40"
    assert BASE.folder().parts[1] == "mnist_1000"


def test_the_report_shows_the_matrix_and_keeps_defended_runs_on_their_own_curves(defended):
    from poisonlab.reporting import html

    out, _ = defended
    made = html.build(out, out / "report.html")
    page = (out / "report.html").read_text()
    assert made["matrices"] == 1 and "Attack x defence: mnist first 1500" in made["sections"]
    assert "clean:loss" in page and "share of the damage recovered" in page and "data:image/png;base64" in page
    assert "gce defence" in page  # the defended runs' curve is named apart from plain training's
