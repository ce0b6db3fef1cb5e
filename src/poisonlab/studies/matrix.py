"""The attack x defence matrix: every (attack, percent, defence, seed) run of one dataset (label flips through the
sweep engine, backdoors through the backdoor study's), and the share of the damage each defence recovers.

A cell's recovery, per seed, is (defended - poisoned) / (clean - poisoned): the poisoned run is the same attack and
percent with no defence, the clean run percent 0 with no defence (the baseline every matrix has; a backdoor's own
percent-0 run for a backdoor). The damage is measured in test accuracy for label flips and in attack success rate for
backdoors (the formula is the same: 1 means the defence undid all the damage, 0 nothing, below 0 it made things
worse)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import numpy as np

from poisonlab import datasets
from poisonlab.attacks import informed
from poisonlab.attacks.backdoor import Trigger
from poisonlab.attacks.humanlabels import HumanLabels
from poisonlab.checks import check_choice
from poisonlab.errors import PoisonlabError
from poisonlab.studies import backdoor, defence, sweep
from poisonlab.studies.backdoor import BackdoorSpec
from poisonlab.studies.run import RunSpec

FLIP_ATTACKS = {"random": ("random", "random"), "biased": ("biased", "random"),
                **{f"informed:{s}": ("random", s) for s in informed.INFORMED}}  # attack -> (kind, select)
BACKDOOR_ATTACKS = {"backdoor:patch": "patch", "backdoor:blend": "blend"}  # attack -> trigger (BadNets, dirty label)
CLEAN = "clean"  # the attack name of percent-0 label-flip runs
MIN_DAMAGE = 0.005  # a poison costing less test accuracy than this leaves nothing to recover: no recovery figure


def check_attack(name: str) -> str:
    """`name` when it names a matrix attack: a label-flip attack of FLIP_ATTACKS, a human label set cifar10n:KEY or a
    backdoor of BACKDOOR_ATTACKS."""
    if isinstance(name, str) and (name.startswith("cifar10n:") or name in BACKDOOR_ATTACKS):
        return name
    if name == "targeted":
        raise PoisonlabError("targeted flips are not in the matrix yet (they are a flip study); run `poisonlab flip` "
                             "for them and leave targeted out of the attacks")
    check_choice(name, (*FLIP_ATTACKS, *BACKDOOR_ATTACKS), "attack")
    return name


def is_backdoor(attack: str) -> bool:
    """Whether matrix attack `attack` is a backdoor (its damage is the attack success rate)."""
    return attack in BACKDOOR_ATTACKS


def attack_of(spec: RunSpec | BackdoorSpec) -> str:
    """The matrix attack a run belongs to (CLEAN for percent 0 label-flip runs)."""
    if isinstance(spec, BackdoorSpec):
        return next(name for name, kind in BACKDOOR_ATTACKS.items() if kind == spec.trigger.kind)
    if spec.kind.startswith("cifar10n:"):
        return spec.kind
    if spec.percent == 0:
        return CLEAN
    return next(name for name, (kind, select) in FLIP_ATTACKS.items() if (kind, select) == (spec.kind, spec.select))


def plan(base: RunSpec, attacks: Iterable[str], percents: Iterable[float], defences: Iterable[str],
         seeds: Iterable[int], human: Iterable[HumanLabels] = ()) -> list[RunSpec]:
    """Every run of the matrix on `base`'s dataset and size: the clean baseline (percent 0, no defence) per seed,
    every defence at percent 0 when 0 is among `percents`, every (label-flip attack, percent > 0, defence, seed),
    and every (human label set, defence, seed) (the set's own noise rate as its percent); "none" is added to
    `defences` when missing, since every cell's recovery is measured against its undefended run."""
    attacks, percents, seeds = list(attacks), list(percents), list(seeds)
    defences = list(dict.fromkeys(["none", *(defence.check_defence(name) for name in defences)]))
    attacks = [a for a in attacks if not is_backdoor(check_attack(a))]
    sets = {h.kind: h for h in human}
    specs = [replace(base, kind="random", percent=0.0, defence="none", seed=s) for s in seeds]
    if 0 in percents:
        specs += [replace(base, kind="random", percent=0.0, defence=f, seed=s) for f in defences if f != "none"
                  for s in seeds]
    for attack in attacks:
        if check_attack(attack).startswith("cifar10n:"):
            if attack not in sets:
                raise ValueError(f"attack {attack} needs its label set passed as `human`")
            rate = sets[attack].percent(base.dataset_size)
            specs += [replace(base, kind=attack, percent=rate, defence=f, seed=s) for f in defences for s in seeds]
            continue
        kind, select = FLIP_ATTACKS[attack]
        specs += [replace(base, kind=kind, select=select, percent=float(p), defence=f, seed=s)
                  for p in percents if p > 0 for f in defences for s in seeds]
    return list(dict.fromkeys(specs))


def plan_backdoors(base: RunSpec, attacks: Iterable[str], percents: Iterable[float], defences: Iterable[str],
                   seeds: Iterable[int], target: int) -> list[BackdoorSpec]:
    """Every backdoor run of the matrix on `base`'s dataset, size, model and training settings, steering to class
    `target`: per backdoor attack its clean run (percent 0, no defence) per seed, every defence at percent 0 when 0
    is among `percents`, and every (percent > 0, defence, seed); "none" is added to `defences` when missing."""
    percents, seeds = list(percents), list(seeds)
    defences = list(dict.fromkeys(["none", *(defence.check_defence(name, backdoor=True) for name in defences)]))
    specs = []
    for attack in (a for a in attacks if is_backdoor(check_attack(a))):
        one = BackdoorSpec(base.dataset, target, dataset_size=base.dataset_size, trigger=Trigger(BACKDOOR_ATTACKS[attack]),
                           model=base.model, val=base.val, val_fraction=base.val_fraction, train=base.train)
        specs += [replace(one, seed=s) for s in seeds]
        specs += [replace(one, percent=float(p), defence=f, seed=s) for p in percents
                  for f in defences if p > 0 or f != "none" for s in seeds]
    return list(dict.fromkeys(specs))


def _cost(record: dict) -> float:
    """Seconds a run's defence and training took: training, plus a cleaning defence's detection."""
    return record["timings"]["train_s"] + record.get("defence", {}).get("seconds", 0.0)


def summarise(specs: list[RunSpec | BackdoorSpec], records: list[dict]) -> list[dict]:
    """One row per (attack, percent, defence) of the matrix's runs (`records` in `specs` order): seeds, test
    accuracy mean and std (and the attack success rate for a backdoor), the share of the damage recovered (mean, std
    and per seed; None where the poison did not cost MIN_DAMAGE), and the defence's time relative to plain training
    (per epoch, and in all)."""
    runs = {(attack_of(s), s.percent, s.defence, s.seed): r for s, r in zip(specs, records)}
    rows: dict[tuple, dict] = {}
    for (attack, percent, name, seed), record in runs.items():
        row = rows.setdefault((attack, percent, name), {"attack": attack, "percent": percent, "defence": name,
                                                        "accuracies": [], "asrs": [], "recoveries": [],
                                                        "epoch_ratios": [], "cost_ratios": []})
        row["accuracies"].append(record["metrics"]["accuracy"])
        row["asrs"] += [record["metrics"]["attack_success_rate"]] if is_backdoor(attack) else []
        plain = runs.get((attack, percent, "none", seed))
        if plain is None:
            continue
        metric, sign = ("attack_success_rate", -1) if is_backdoor(attack) else ("accuracy", 1)
        clean = runs.get((attack if is_backdoor(attack) else CLEAN, 0.0, "none", seed))
        poisoned = plain["metrics"][metric]
        damage = sign * (clean["metrics"][metric] - poisoned) if clean is not None else 0.0
        if percent > 0 and damage >= MIN_DAMAGE:
            row["recoveries"].append((record["metrics"][metric] - poisoned) / (clean["metrics"][metric] - poisoned))
        per_epoch = [r["timings"]["train_s"] / max(1, r["training"].get("epochs_run") or 1) for r in (record, plain)]
        if per_epoch[1] > 0:
            row["epoch_ratios"].append(per_epoch[0] / per_epoch[1])
            row["cost_ratios"].append(_cost(record) / max(_cost(plain), 1e-9))
    return [_figures(row) for row in rows.values()]


def _figures(row: dict) -> dict:
    """A summary row's lists as its figures."""
    acc, rec, asr = np.array(row.pop("accuracies")), row.pop("recoveries"), row.pop("asrs")
    epoch, cost = row.pop("epoch_ratios"), row.pop("cost_ratios")
    mean = lambda values: round(float(np.mean(values)), 4) if len(values) else None  # noqa: E731
    return {**row, "seeds": len(acc), "accuracy": mean(acc), "accuracy_std": round(float(acc.std()), 4),
            "attack_success_rate": mean(asr),
            "recovered": mean(rec), "recovered_std": round(float(np.std(rec)), 4) if rec else None,
            "recovered_seeds": [round(v, 4) for v in rec], "epoch_time_ratio": mean(epoch),
            "time_ratio": mean(cost)}


def best(rows: list[dict], attack: str, percent: float) -> dict | None:
    """The defence of a cell (attack, percent) that recovers most on average, or None when none has a figure."""
    scored = [r for r in rows if r["attack"] == attack and math.isclose(r["percent"], percent)
              and r["defence"] != "none" and r["recovered"] is not None]
    return max(scored, key=lambda r: r["recovered"], default=None)


def study(base: RunSpec, attacks: list[str], percents: list[float], defences: list[str], seeds: list[int],
          out: Path, *, human: Iterable[HumanLabels] = (), target: int | str = 0, **execute) -> tuple[dict, list[dict]]:
    """Plan the matrix on `base` (dataset, size, model, training settings), train every run not yet under `out`
    (`execute`: the settings of `sweep.execute`: data_dir, download, console, jobs, stack, executor, loader, ...;
    backdoors, steering to class `target` (number or name), train through the backdoor study, locally), and
    summarise it; returns the matrix.json document (settings, runs trained, and its `cells`) and every run's
    run.json record."""
    human = list(human)
    flips = [a for a in attacks if not is_backdoor(check_attack(a))]
    stamps = [a for a in attacks if is_backdoor(a)]
    if stamps and execute.get("executor", "local") != "local":  # refused before any run trains
        raise PoisonlabError("backdoor attacks in the matrix train locally; leave out the ray executor or the "
                             "backdoor attacks")
    stamped, data = [], None
    if stamps:  # planned and checked before any run trains
        loader = execute.get("loader") or datasets.load
        data = loader(base.dataset, execute.get("data_dir"), base.dataset_size, execute.get("download", True))
        stamped = plan_backdoors(base, stamps, percents, defences, seeds, datasets.resolve_class(target, data.classes))
        for name in dict.fromkeys(s.defence for s in stamped):
            backdoor.check(data, replace(stamped[0], defence=name), sorted({s.percent for s in stamped}))
    specs, records, trained = [], [], 0
    if flips or not stamps:
        specs = plan(base, flips, percents, [f for f in defences if not defence.uses_trusted(f)], seeds, human)
        done = sweep.execute(specs, out, human=human, **execute)
        records, trained = done["records"], done["trained"]
    if stamped:
        done = backdoor.execute(stamped, data, out, overwrite=execute.get("overwrite", False),
                                console=execute.get("console"), model=execute.get("model"), jobs=execute.get("jobs", 1))
        specs, records, trained = specs + stamped, records + done["records"], trained + done["trained"]
    return {"dataset": base.dataset, "dataset_size": base.dataset_size, "model": base.model,
            "train": base.train.to_dict(), "attacks": attacks, "percents": percents, "defences": defences,
            "seeds": seeds, "runs": len(specs), "trained": trained,
            "recovery": "(defended - poisoned) / (clean - poisoned) per seed: test accuracy for label flips, attack "
                        "success rate for backdoors",
            "cells": summarise(specs, records)}, records
