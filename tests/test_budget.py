"""Attack budget search: exponential then bisection probes, on a stand-in metric and with real retraining."""

import json


from poisonlab.studies import budget


def probes_of(result: dict) -> list[tuple[str, int]]:
    return [(p["phase"], p["n"]) for p in result["probes"]]


def test_search_is_exponential_then_bisection():
    result = budget.search(lambda n: 1 - n / 100, below=0.70, limit=500)
    assert probes_of(result) == [("clean", 0), *(("exponential", n) for n in (1, 2, 4, 8, 16, 32)),
                                 *(("bisection", n) for n in (24, 28, 30, 31))]
    assert result["found"] == 31 and result["last_not_below"] == 30 and result["reached"]


def test_search_caps_at_the_class_size_and_says_when_unreachable():
    result = budget.search(lambda n: 0.9, below=0.5, limit=5)
    assert [p["n"] for p in result["probes"]] == [0, 1, 2, 4, 5]
    assert result["found"] is None and not result["reached"]


def test_search_stops_at_zero_when_the_clean_model_is_already_below():
    result = budget.search(lambda n: 0.1, below=0.5, limit=100)
    assert result["found"] == 0 and len(result["probes"]) == 1


def test_search_with_coarse_precision_stops_early():
    result = budget.search(lambda n: 1 - n / 100, below=0.70, limit=500, precision=4)
    assert result["found"] == 32 and result["last_not_below"] == 28


def test_real_budget_search_with_retraining(cli, tmp_path):
    out = tmp_path / "budget"
    code, _, err = cli("budget", "--dataset", "digits", "--source", "3", "--target", "8", "--below", "0.5", "--model", "svc",
                       "--out", str(out), "--json", str(tmp_path / "b.json"))
    assert code == 0
    result = json.loads((tmp_path / "b.json").read_text())
    values = {p["n"]: p["value"] for p in result["probes"]}
    found = result["found"]
    assert result["reached"] and values[found] < 0.5 <= values[found - 1]
    phases = [p["phase"] for p in result["probes"]]
    exponential = [p["n"] for p in result["probes"] if p["phase"] == "exponential"]
    assert phases == sorted(phases, key=["clean", "exponential", "bisection"].index)
    assert exponential == [min(2 ** i, 146) for i in range(len(exponential))]
    assert [c["n"] for c in result["curve"]] == sorted(values)
    assert (out / "figures" / "budget_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert f"smallest N found: {found}" in err


def test_unreachable_budget_is_reported_plainly(cli, tmp_path):
    code, _, err = cli("budget", "--dataset", "digits", "--source", "3", "--target", "8", "--below", "0.01", "--metric",
                       "overall-accuracy", "--model", "svc", "--train-size", "300", "--out", str(tmp_path))
    assert code == 0 and "not reached: even all 29 3 labels flipped" in err


def test_unknown_metric_is_one_line(cli, tmp_path):
    cli.fails("unknown metric 'f1'", "budget", "--dataset", "digits", "--metric", "f1", "--out", str(tmp_path))


def test_two_jobs_train_each_probes_seeds_at_once_with_the_same_result(tmp_path):
    import io

    from rich.console import Console

    from poisonlab.studies import flipstudy

    base, data = flipstudy.prepare("digits", "3", "8", [], model="svc", train_size=300)
    quiet = Console(file=io.StringIO())
    one, two = (budget.run_budget(base, data, "source-accuracy", 0.5, [0, 1], tmp_path / str(jobs), quiet,
                                  precision=8, jobs=jobs) for jobs in (1, 2))
    assert [(p["n"], p["per_seed"]) for p in one["probes"]] == [(p["n"], p["per_seed"]) for p in two["probes"]]
    assert one["found"] == two["found"] and two["trained"] == 2 * len(two["probes"])
    again = budget.run_budget(base, data, "source-accuracy", 0.5, [0, 1], tmp_path / "2", quiet, precision=8, jobs=2)
    assert again["trained"] == 0 and again["probes"] == two["probes"]
