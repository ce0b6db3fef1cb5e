"""Attack budget search: the fewest source->target flips that push a metric below a threshold."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.console import Console

from poisonlab import store
from poisonlab.datasets import Dataset
from poisonlab.checks import check_choice
from poisonlab.errors import PoisonlabError
from poisonlab.reporting import flipplots
from poisonlab.studies import BUDGET_METRICS as METRICS
from poisonlab.studies.flip import FlipSpec
from poisonlab.studies.flipstudy import Runner


def metric_value(record: dict, metric: str) -> float:
    """The named metric of one run record."""
    cfg, scores = record["config"], record["metrics"]
    if metric == "overall-accuracy":
        return scores["overall_accuracy"]
    check_choice(metric, METRICS, "metric")
    value = scores["per_class_accuracy"][cfg["source" if metric == "source-accuracy" else "target"]]
    if value is None:
        raise PoisonlabError(f"the test set has no items of the {metric.split('-')[0]} class, so {metric} is undefined; "
                             "use more test items or another metric")
    return value


def search(evaluate: Callable[[int], float], below: float, limit: int, precision: int = 1) -> dict:
    """Probe N = 0, 1, 2, 4, ... (capped at `limit`) until evaluate(N) < below, then bisect to within `precision`."""
    probes: list[dict] = []

    def passes(n: int, phase: str) -> bool:
        value = evaluate(n)
        probes.append({"order": len(probes) + 1, "phase": phase, "n": n, "value": value, "below": value < below})
        return value < below

    if passes(0, "clean"):
        return {"found": 0, "last_not_below": None, "reached": True, "probes": probes}
    low, n = 0, 1
    while not passes(n, "exponential"):
        low = n
        if n == limit:
            return {"found": None, "last_not_below": limit, "reached": False, "probes": probes}
        n = min(2 * n, limit)
    high = n
    while high - low > precision:
        mid = (low + high) // 2
        if passes(mid, "bisection"):
            high = mid
        else:
            low = mid
    return {"found": high, "last_not_below": low, "reached": True, "probes": probes}


def run_budget(base: FlipSpec, data: Dataset, metric: str, below: float, seeds: list[int], out: Path,
               console: Console | None = None, *, overwrite: bool = False, precision: int = 1,
               json_path: Path | None = None, jobs: int = 1) -> dict:
    """Search the budget with retraining (each N trained once per seed, seed-mean metric); writes JSON and the curve.

    The probes run one after another (each depends on the last); the seeds of one probe train `jobs` at a time."""
    check_choice(metric, METRICS, "metric")
    if not 0.0 < below <= 1.0:
        raise PoisonlabError(f"threshold {below:g} is outside (0, 1]; give a fraction such as 0.30")
    if precision < 1:
        raise PoisonlabError(f"precision must be 1 or more, got {precision}")
    limit = int((data.y_train == base.source).sum())
    if limit == 0:
        raise PoisonlabError(f"class '{data.classes[base.source]}' has no training items to flip")
    per_seed: dict[int, list[float]] = {}
    with Runner(base, data, out, console, overwrite, jobs=jobs) as runner:
        def evaluate(n: int) -> float:
            per_seed[n] = [metric_value(record, metric) for record in runner.get_all([(n, seed) for seed in seeds])]
            return float(np.mean(per_seed[n]))

        result = search(evaluate, below, limit, precision)
    for probe in result["probes"]:
        probe["per_seed"] = per_seed[probe["n"]]
    result.update({"dataset": data.name, "model": base.model, "source": data.classes[base.source],
                   "target": data.classes[base.target], "metric": metric, "below": below, "seeds": seeds,
                   "source_class_size": limit, "precision": precision, "n_train": len(data.y_train),
                   "n_test": len(data.y_test), "trained": runner.trained, "reused": runner.reused,
                   "curve": [{"n": p["n"], "value": p["value"]} for p in sorted(result["probes"], key=lambda p: p["n"])]})
    for path in (out / "budget.json", json_path):
        if path is not None:
            store.write_json(path, result)
    result["figure"] = str(flipplots.budget_curve(result, out / "figures" / "budget_curve.png"))
    return result
