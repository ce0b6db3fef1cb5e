"""The certify study: base models on content-hashed partitions of the (possibly poisoned) training set, their
rankings of the classes on the test set, and the certified radius of every prediction (see `defences.certify`).

With spread d = 1 the k models certify by DPA and by ROE (the same models); with d > 1 the k*d models certify by FA
and FA+ROE. Each model's test rankings are saved as soon as it is trained (`<out>/partitions/<i>.npy`), so an
interrupted study resumes where it stopped; a folder made with other settings or data is refused."""

from __future__ import annotations

import copy
import io
import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from poisonlab import store
from poisonlab.attacks import backdoor, flips, humanlabels, informed
from poisonlab.attacks.backdoor import Trigger
from poisonlab.attacks.humanlabels import HumanLabels
from poisonlab.checks import check_choice, check_int
from poisonlab.datasets import Dataset, dataset_record
from poisonlab.defences.certify import (ABSTAIN, METHODS, certified_accuracy, fa_certificates, model_items,
                                       partitions, roe_certificates, spread, vote_counts)
from poisonlab.errors import PoisonlabError, RunsFailed
from poisonlab.files import MAX_RECORD_BYTES, read_json
from poisonlab.reporting.certifyplots import certified_plot
from poisonlab.studies import surrogate
from poisonlab.studies.executors import stacks
from poisonlab.studies.rayexec import RayExecutor
from poisonlab.studies.sweep import EXECUTORS, check_local
from poisonlab.training import TORCH_MODELS, fitting
from poisonlab.training.loop import TrainConfig, pick_device, settings
from poisonlab.training.models import ModelSpec
from poisonlab.training.augment import AUGMENTS
from poisonlab.training.stacked import fit_on_own_items, rank_each, wide
from poisonlab.training.parallel import stream

RAY_GROUPS = 64  # groups of base models sent as Ray tasks
STACK = 64  # partitions trained at once as one wide model when stacked (by default on a GPU only: see stacks)
KINDS = ("none", "random", "biased", "backdoor")


@dataclass(frozen=True)
class CertifySpec:
    """What defines a certify study (besides the data): partitions, base model, poisoning and training."""

    partitions: int
    model: str = "logreg"
    method: str = "dpa"
    spread: int = 1
    augment: str = "none"
    select: str = "random"
    kind: str = "none"
    percent: float = 0.0
    trigger: str = "patch"
    target: int = 0
    seed: int = 0
    key: str = "poisonlab-dpa"
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_epochs=10))

    def to_dict(self) -> dict:
        doc = settings(self)
        for key, default in (("spread", 1), ("augment", "none"), ("select", "random"), ("trigger", "patch"),
                             ("target", 0)):
            if doc[key] == default:  # recorded as before these settings existed, so that earlier studies resume
                del doc[key]
        return doc

    @property
    def methods(self) -> tuple[str, str]:
        """The two certificates its base models give: DPA and ROE (spread 1), or FA and FA+ROE."""
        return ("dpa", "roe") if self.spread == 1 else ("fa", "fa+roe")


def poisoned(data: Dataset, spec: CertifySpec,
             human: HumanLabels | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The training items and labels the base models learn, and the mask of poisoned items: the clean ones, flipped
    labels (informed selections on the clean-label surrogate's out-of-fold probabilities), CIFAR-10N's `human`
    labels, or a backdoor: the trigger stamped on `percent` % of the items, relabelled as the target (BadNets)."""
    if spec.kind == "backdoor":
        x, labels, stamped = backdoor.backdoor(data.x_train, data.y_train, trigger=Trigger(spec.trigger),
                                               target=spec.target, percent=spec.percent, seed=spec.seed)
        mask = np.zeros(len(labels), bool)
        mask[stamped] = True
        return x, labels, mask
    if spec.kind == "none":
        return data.x_train, data.y_train.copy(), np.zeros(len(data.y_train), bool)
    if humanlabels.is_kind(spec.kind):
        if human is None or human.kind != spec.kind:
            raise PoisonlabError(f"poisoning {spec.kind!r} needs those human labels; pass the CIFAR-10N label file")
        return data.x_train, *human.apply(data.y_train)
    probs = surrogate.probabilities(data, spec.seed) if spec.select in informed.INFORMED else None
    return data.x_train, *flips.apply(spec.kind, data.y_train, data.num_classes, spec.percent, spec.seed,
                                      select=spec.select, pred_probs=probs)


def _with_triggered(data: Dataset, x_train: np.ndarray, spec: CertifySpec) -> Dataset:
    """The data the base models train on (`x_train`) and rank: the test items and, with a backdoor, after them the
    triggered copies of the test items of other classes than the target."""
    if spec.kind != "backdoor":
        return replace(data, x_train=x_train)
    x_trig, y_trig = backdoor.triggered(data.x_test, data.y_test, trigger=Trigger(spec.trigger), target=spec.target,
                                        seed=spec.seed)
    return replace(data, x_train=x_train, x_test=np.concatenate([data.x_test, x_trig]),
                   y_test=np.concatenate([data.y_test, y_trig]))


def _backdoor_summary(certified: dict, first: np.ndarray, labels: np.ndarray, spec: CertifySpec,
                      n_poisoned: int) -> dict:
    """certify.json's "backdoor": per certificate, the aggregate's attack success rate on the triggered test images
    and the share of them whose prediction is certified against every stamped item (radius >= 2 per stamped item:
    a stamped copy that replaced its clean item is one removal and one insertion), beside one base model's ASR."""
    needed = 2 * n_poisoned
    base = [backdoor.attack_success_rate(p[p != ABSTAIN], labels[p != ABSTAIN], spec.target) for p in first
            if (p != ABSTAIN).any()]
    return {"trigger": spec.trigger, "target": spec.target, "n_triggered": len(labels), "radius_needed": needed,
            "base_attack_success_rate_mean": float(np.mean(base)) if base else None,
            "methods": {name: {"attack_success_rate": backdoor.attack_success_rate(predicted, labels, spec.target),
                               "certified_unaffected": float((radius >= needed).mean())}
                        for name, (predicted, radius, _) in certified.items()}}


def _fixed_ranking(labels: np.ndarray, n_test: int, num_classes: int) -> np.ndarray | None:
    """The test rankings of a model with nothing to train: all ABSTAIN without items, its one class first (then the
    others in order) for one-class items; None when it has two classes or more."""
    seen = np.unique(labels)
    if len(seen) > 1:
        return None
    order = np.full(num_classes, ABSTAIN) if not len(seen) else np.r_[seen, np.delete(np.arange(num_classes), seen)]
    return np.broadcast_to(order.astype(_dtype(num_classes)), (n_test, num_classes)).copy()


def _dtype(num_classes: int):
    return np.int8 if num_classes <= 127 else np.int16


def _partition_rankings(context: tuple, item: tuple[int, np.ndarray]) -> np.ndarray:
    """One base model's test rankings (see `_fixed_ranking` for models that train none)."""
    x, labels, x_test, model, config, seed, num_classes = context
    index, members = item
    fixed = _fixed_ranking(labels[members], len(x_test), num_classes)
    if fixed is not None:
        return fixed
    fitted = fitting.build(model, x.shape[1:], num_classes, seed + index)
    fitting.fit(fitted, x[members], labels[members], config=config, seed=seed + index)
    return fitting.rankings(fitted, x_test, num_classes)


def stackable(model: ModelSpec, data: Dataset) -> bool:
    """Whether the base models train stacked (Sequential CNNs of common layers on images): one wide pass for many
    partitions, each on its own items (see `stacked.fit_on_own_items`)."""
    if data.x_train.ndim != 4 or (isinstance(model, str) and model not in TORCH_MODELS):
        return False
    built = fitting.build(model, data.x_train.shape[1:], data.num_classes, 0)
    return isinstance(built, nn.Module) and wide(copy.deepcopy(built).to("meta")) is not None


def _stacked_rankings(x: np.ndarray, labels: np.ndarray, x_test: np.ndarray, num_classes: int, model: ModelSpec,
                      spec: CertifySpec, todo: list[tuple[int, np.ndarray]], keep, stack: str = "auto") -> None:
    """Train the base models `todo` ((number, items of x) pairs) STACK at a time as one wide model when `stack` says
    so ("auto": on a GPU), else one at a time (the same procedure; model i seeded seed + i), and `keep(n, rankings)`
    the n-th one's test rankings as it finishes (see `_fixed_ranking`)."""
    device = pick_device()
    x_on, x_test_on = fitting.as_tensor(x, device), fitting.as_tensor(x_test, device)
    y = torch.from_numpy(labels).to(device)
    rest = []
    for n, item in enumerate(todo):
        fixed = _fixed_ranking(labels[item[1]], len(x_test), num_classes)
        if fixed is None:
            rest.append((n, item))
        else:
            keep(n, fixed)
    size = STACK if stacks(stack, model, gpu=device.type == "cuda") else 1
    for start in range(0, len(rest), size):
        group = rest[start : start + size]
        models = [fitting.build(model, x.shape[1:], num_classes, spec.seed + i).to(device) for _, (i, _) in group]
        fit_on_own_items(models, x_on, [m for _, (_, m) in group], y, spec.train,
                         [spec.seed + i for _, (i, _) in group], augment=spec.augment)
        for (n, _), ranking in zip(group, rank_each(models, x_test_on)):
            keep(n, ranking)


def _train_group(context: tuple, group: tuple, send) -> None:
    """Worker task: train one group's models (see `_groups`) and send (n, rankings) for the n-th as it finishes."""
    x_test, num_classes, model, spec, stacked, stack = context
    x, labels, todo = group
    if stacked:
        _stacked_rankings(x, labels, x_test, num_classes, model, spec, todo, lambda n, ranking: send((n, ranking)),
                          stack)
        return
    for n, item in enumerate(todo):
        send((n, _partition_rankings((x, labels, x_test, model, spec.train, spec.seed, num_classes), item)))


def _train_group_list(context: tuple, group: tuple) -> list[tuple[int, np.ndarray]]:
    """Ray task: `_train_group`'s (n, rankings) pairs, all at the end."""
    kept = []
    _train_group(context, group, kept.append)
    return kept


def _grouped_rankings(data: Dataset, labels: np.ndarray, model: ModelSpec, spec: CertifySpec,
                      todo: list[tuple[int, np.ndarray]], keep, *, stacked: bool, console: Console, jobs: int = 1,
                      ray: RayExecutor | None = None, stack: str = "auto") -> None:
    """Train groups of consecutive base models in `jobs` worker processes of `threads_per_job(jobs)` torch threads
    (one thread each on 2 cores is faster than one process of 2 threads for small CNNs), or as Ray tasks of `ray`,
    each group sent only its models' items, and `keep` every model's rankings as soon as it arrives (Ray: when its
    group finishes). A group whose worker failed is trained again once; groups that failed twice raise RunsFailed
    after the others are kept."""
    size = max(1, math.ceil(len(todo) / (RAY_GROUPS if ray is not None else 4 * jobs)))
    starts = list(range(0, len(todo), size))
    groups = []
    for start in starts:
        chunk = todo[start : start + size]
        used = np.unique(np.concatenate([m for _, m in chunk]).astype(np.int64))
        groups.append((data.x_train[used], labels[used],
                       [(i, np.searchsorted(used, m).astype(np.int64)) for i, m in chunk]))
    failed = []

    def on_event(kind: str, index: int, detail) -> None:
        named = f"models {todo[starts[index]][0]}-{todo[starts[index] + len(groups[index][2]) - 1][0]}"
        if kind == "message":  # one model of a worker process's group
            keep(starts[index] + detail[0], detail[1])
        elif kind == "done" and ray is not None:  # a Ray task's group
            for n, ranking in detail:
                keep(starts[index] + n, ranking)
        elif kind == "retry":
            console.print(f"{named}: failed ({detail}); training them again once")
        elif kind == "failed":
            failed.append(f"{named}: {detail}")

    context = (data.x_test, data.num_classes, model, spec, stacked, stack)
    if ray is None:
        stream(_train_group, groups, jobs, on_event=on_event, context=context)
    else:
        with ray.session() as (session, cpus, gpus):
            ray.gather(session, _train_group_list, groups, context, cpus, gpus, on_event)
    if failed:
        raise RunsFailed(f"{len(failed)} of {len(groups)} groups of base models failed twice ({'; '.join(failed)}); "
                         "the trained ones stay saved: run it again to train the rest")


def study(data: Dataset, spec: CertifySpec, out: Path, *, model: ModelSpec | None = None, jobs: int = 1,
          budgets: list[int] | None = None, overwrite: bool = False, console: Console | None = None,
          human: HumanLabels | None = None, ray: RayExecutor | None = None, stack: str = "auto") -> dict:
    """Train the base models (resuming), aggregate their votes and certify every test prediction by the spec's
    method, and by the other certificate the same models give (DPA and ROE, or FA and FA+ROE).

    `human`: the CIFAR-10N labels a "cifar10n:KEY" kind trains on; `ray`: train the base models in groups as tasks of
    this Ray executor (its output folder on a filesystem the caller reads: the caller saves the rankings); `stack`:
    "auto" trains CNN base models STACK at a time as one wide model on a GPU, "on" on a CPU too, "off" never. Returns
    {"doc": certify.json's content, "votes": (M, K), "predicted", "radius", "files": written paths}."""
    check_choice(spec.method, METHODS, "certification method")
    if not humanlabels.is_kind(spec.kind):
        check_choice(spec.kind, KINDS, "poisoning kind")
    check_choice(spec.select, informed.STRATEGIES, "item selection")
    check_choice(spec.augment, AUGMENTS, "augmentation")
    k = check_int(spec.partitions, "partitions", low=1, high=len(data.y_train))
    d = check_int(spec.spread, "spread", low=1, high=max(1, len(data.y_train) // k))
    if spec.augment != "none" and not stackable(model if model is not None else spec.model, data):
        raise PoisonlabError(f"augmentation {spec.augment!r} needs a CNN base model on images (smallcnn, simplecnn, "
                             "original); leave it out for this model")
    if spec.method not in spec.methods:
        raise PoisonlabError(f"method {spec.method!r} needs " + ("a spread above 1" if d == 1 else "spread 1")
                             + f", got spread {d}; " + ("pass a spread such as 16 for FA" if d == 1 else
                                                         "use fa or fa+roe with a spread"))
    console = console or Console(stderr=True)
    if spec.kind == "backdoor":
        check_int(spec.target, "target", low=0, high=data.num_classes - 1)
        if spec.select != "random":
            raise PoisonlabError(f"a backdoor stamps items of other classes than the target at random; item selection "
                                 f"{spec.select!r} chooses label flips: leave it at random")
    x_train, labels, mask = poisoned(data, spec, human)
    record, n_test = dataset_record(data), len(data.y_test)
    data = _with_triggered(data, x_train, spec)
    buckets, _, members = layout(data, spec)
    n_models = len(members)
    measured = humanlabels.is_kind(spec.kind)  # human labels: the noise rate is measured, not chosen
    provenance = {"labels": human.provenance(mask)} if measured else {}
    settings = json.loads(json.dumps({"spec": spec.to_dict(), "data": record, **provenance}))
    folder = out / "partitions"
    _claim_folder(out, settings, overwrite)
    shape = (len(data.y_test), data.num_classes)
    ranked = spec.method in ("roe", "fa+roe")  # studies before ROE saved each model's class alone: train again
    todo = [i for i in range(n_models) if overwrite or (r := _saved(folder / f"{i}.npy", *shape)) is None
            or (ranked and r.ndim == 1)]
    started = time.perf_counter()
    if len(todo) < n_models:
        console.print(f"resuming: {n_models - len(todo)} of {n_models} base models already trained in {out}")
    train_models(data, labels, spec, model, [(i, members[i]) for i in todo], folder, jobs=jobs, console=console,
                 ray=ray, stack=stack)
    saved = saved_rankings(folder, range(n_models), data)
    every, chosen = aggregate(saved, buckets, data.num_classes, spec.methods), classes(saved)
    first, y_test = chosen[:, :n_test], data.y_test[:n_test]  # the test images; a backdoor's triggered ones after
    certified = {name: tuple(a[:n_test] for a in arrays) for name, arrays in every.items()}
    top = max(int(radius.max(initial=0)) for _, radius, _ in certified.values())
    budgets = list(range(0, top + 2)) if budgets is None else budgets
    base = [(p[p != ABSTAIN] == y_test[p != ABSTAIN]).mean() for p in first if (p != ABSTAIN).any()]
    sizes = np.array([len(m) for m in members])
    summary = {name: _summary(predicted, radius, y_test, budgets) for name, (predicted, radius, _) in
               certified.items()}
    stamped = {}
    if spec.kind == "backdoor":
        triggered = {name: tuple(a[n_test:] for a in arrays) for name, arrays in every.items()}
        stamped["backdoor"] = _backdoor_summary(triggered, chosen[:, n_test:], data.y_test[n_test:], spec,
                                                int(mask.sum()))
    predicted, radius, votes = certified[spec.method]
    doc = {
        "dataset": data.name, "method": spec.method, "partitions": k, "spread": d, "base_models": n_models,
        "model": spec.model, "n_train": len(labels), "n_test": n_test,
        "poison": {"kind": spec.kind, "select": spec.select,
                   "percent": round(100 * float(mask.mean()), 4) if measured else spec.percent,
                   "rate": float(mask.mean()) if measured else spec.percent / 100, "n_poisoned": int(mask.sum())},
        **summary[spec.method], **stamped,
        "base_accuracy_mean": float(np.mean(base)) if base else None,
        "methods": summary,
        "partition_sizes": {"min": int(sizes.min()), "median": float(np.median(sizes)), "max": int(sizes.max()),
                            "empty": int((sizes == 0).sum())},
        "seconds": round(time.perf_counter() - started, 3), "status": "complete", "settings": settings,
    }
    files = [out / "certify.json", out / "certify.csv", out / "certified_accuracy.png"]
    store.write_json(files[0], doc)
    store.atomic_write(files[1], per_image_csv(votes, predicted, y_test, radius))
    certified_plot(doc, files[2])
    return {"doc": doc, "votes": votes, "predicted": predicted, "radius": radius, "labels": y_test,
            "files": files}


def placed(executor: str = "local", address: str | None = None, cpus_per_run: int | None = None) -> RayExecutor | None:
    """Where the base models train: None for "local" (this machine, see `study`'s jobs), or a Ray executor on the
    cluster at `address` whose tasks declare `cpus_per_run` CPUs, for "ray"."""
    check_choice(executor, EXECUTORS, "executor")
    if executor == "ray":
        return RayExecutor(address, cpus_per_run)
    check_local(address, cpus_per_run)
    return None


def layout(data: Dataset, spec: CertifySpec) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """The (k*d, d) buckets -> models map, every training item's bucket (N,) and every base model's items."""
    k, d = spec.partitions, spec.spread
    buckets = spread(k * d, d, key=spec.key.encode())
    parts = partitions(data.x_train, k * d, key=spec.key.encode())
    return buckets, parts, model_items(parts, buckets)


def train_models(data: Dataset, labels: np.ndarray, spec: CertifySpec, model: ModelSpec | None,
                 todo: list[tuple[int, np.ndarray]], folder: Path, *, jobs: int, console: Console,
                 what: str = "base models", ray: RayExecutor | None = None, stack: str = "auto") -> None:
    """Train the base models `todo` ((number, items) pairs) on `labels` and save each one's test rankings to
    `folder`/<number>.npy as soon as it is trained, with a progress bar: CNNs stacked on a GPU (`stack` "auto"; "on"
    stacks them on a CPU too, "off" nowhere), in groups in `jobs` worker processes (not for stacks on a GPU), or in
    groups as tasks of the Ray executor `ray`."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn())
    with Progress(*columns, console=console, disable=not console.is_terminal) as bar:
        task = bar.add_task(what, total=len(todo))

        def keep(index: int, ranking: np.ndarray) -> None:
            store.save_array(folder / f"{todo[index][0]}.npy", ranking)
            bar.update(task, advance=1)

        base = model if model is not None else spec.model
        stacked = stackable(base, data)
        if stack == "on" and not stacked:
            raise PoisonlabError(f"base model {spec.model!r} cannot train stacked (a Sequential CNN of common layers "
                                 "on images can); use stack off or auto")
        stacks(stack, base)  # a bad choice fails before any training
        if not todo:
            return
        if ray is not None or (jobs > 1 and len(todo) > 1 and not (stacked and pick_device().type == "cuda")):
            _grouped_rankings(data, labels, base, spec, todo, keep, stacked=stacked, console=console, jobs=jobs,
                              ray=ray, stack=stack)
        else:  # in this process: one group of every model
            _train_group((data.x_test, data.num_classes, base, spec, stacked, stack), (data.x_train, labels, todo),
                         lambda pair: keep(*pair))


def saved_rankings(folder: Path, numbers, data: Dataset) -> list[np.ndarray]:
    """The saved test rankings of models `numbers` (None where missing or malformed)."""
    return [_saved(folder / f"{i}.npy", len(data.y_test), data.num_classes) for i in numbers]


def classes(saved: list[np.ndarray]) -> np.ndarray:
    """Every model's class of every test item, (n_models, M), from saved rankings (or classes, before ROE)."""
    return np.stack([r if r.ndim == 1 else r[:, 0].astype(np.int64) for r in saved])


def aggregate(saved: list[np.ndarray], buckets: np.ndarray, num_classes: int, methods: tuple[str, str]) -> dict:
    """{method: (predicted, radius, votes)} for the plurality certificate over the models' classes and, when every
    model's full rankings are saved (studies before ROE saved only each model's class), the run-off one."""
    first = classes(saved)
    votes = vote_counts(first, num_classes)
    plurality, run_off = methods
    result = {plurality: (*fa_certificates(first, buckets, num_classes), votes)}
    if all(r.ndim == 2 for r in saved):
        predicted, radius, _ = roe_certificates(np.stack(saved), buckets, num_classes)
        result[run_off] = (predicted, radius, votes)
    return result


def _summary(predicted: np.ndarray, radius: np.ndarray, labels: np.ndarray, budgets: list[int]) -> dict:
    """certify.json's figures of one certificate: clean accuracy, median radius, certified accuracy per budget."""
    accuracy = certified_accuracy(predicted, radius, labels, np.array(budgets))
    return {"clean_accuracy": float((predicted == labels).mean()), "median_radius": float(np.median(radius)),
            "certified_accuracy": [{"budget": int(b), "accuracy": float(a)} for b, a in zip(budgets, accuracy)]}


def across_seeds(docs: dict[int, dict]) -> dict:
    """seeds.json: each certificate's clean accuracy, median radius and certified accuracy per budget (the budgets
    every seed reports) over the studies of several seeds, {seed: certify.json}, as mean, standard deviation and the
    values per seed."""
    def spread_of(values: list[float]) -> dict:
        return {"mean": float(np.mean(values)), "std": float(np.std(values)), "values": values}

    seeds = sorted(docs)
    names = [name for name in docs[seeds[0]]["methods"] if all(name in docs[s]["methods"] for s in seeds)]
    methods = {}
    for name in names:
        figures = [docs[s]["methods"][name] for s in seeds]
        rows = [{r["budget"]: r["accuracy"] for r in f["certified_accuracy"]} for f in figures]
        budgets = sorted(set.intersection(*(set(r) for r in rows)))
        methods[name] = {"clean_accuracy": spread_of([f["clean_accuracy"] for f in figures]),
                         "median_radius": spread_of([f["median_radius"] for f in figures]),
                         "certified_accuracy": [{"budget": b, **spread_of([r[b] for r in rows])} for b in budgets]}
    return {"seeds": seeds, "method": docs[seeds[0]]["method"], "methods": methods,
            "folders": {str(s): f"seed-{s}" for s in seeds}}


def per_image_csv(votes: np.ndarray, predicted: np.ndarray, labels: np.ndarray, radius: np.ndarray) -> str:
    """One line per test image: votes_0..votes_{K-1}, predicted, label, radius."""
    header = [f"votes_{c}" for c in range(votes.shape[1])] + ["predicted", "label", "radius"]
    table = np.column_stack([votes, predicted, labels, radius])
    buf = io.StringIO()
    np.savetxt(buf, table, fmt="%d", delimiter=",", header=",".join(header), comments="")
    return buf.getvalue()


def _claim_folder(out: Path, settings: dict, overwrite: bool) -> None:
    """Record the study's settings in `out` (certify.json), or refuse a folder holding another study's partitions."""
    path = out / "certify.json"
    saved = read_json(path, f"certify study {path}", MAX_RECORD_BYTES, "pass overwrite to start it again") \
        if path.exists() and not overwrite else None
    if not overwrite and (out / "partitions").is_dir() and not isinstance(saved, dict):
        raise PoisonlabError(f"{out} holds base-model predictions but no certify.json naming their settings; pass "
                             "overwrite or choose another output folder")
    if isinstance(saved, dict) and _trained(saved.get("settings")) != _trained(settings):
        raise PoisonlabError(f"{out} holds a certify study with other settings or data; pass overwrite or choose "
                             "another output folder")
    if saved is None:
        store.write_json(path, {"settings": settings, "status": "running"})


def _trained(settings) -> object:
    """A study's settings without the certification method: every method of its base models may use them."""
    if isinstance(settings, dict) and isinstance(settings.get("spec"), dict):
        return {**settings, "spec": {k: v for k, v in settings["spec"].items() if k != "method"}}
    return settings


def _saved(path: Path, n_test: int, num_classes: int) -> np.ndarray | None:
    """A model's saved test rankings (n_test, K) (or, from studies before ROE, classes (n_test,)), or None when
    missing or malformed."""
    try:
        saved = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    shapes = {(n_test, num_classes): _dtype(num_classes), (n_test,): np.int64}
    ok = shapes.get(saved.shape) == saved.dtype and saved.min(initial=0) >= ABSTAIN \
        and saved.max(initial=0) < num_classes
    return saved if ok else None


def frame(result: dict):
    """The per-image table as a pandas DataFrame (votes_0.., predicted, label, radius)."""
    import pandas as pd

    votes = result["votes"]
    table = pd.DataFrame(votes, columns=[f"votes_{c}" for c in range(votes.shape[1])])
    table["predicted"], table["label"], table["radius"] = result["predicted"], result["labels"], result["radius"]
    return table
