"""`poisonlab certify`: certified predictions by partition aggregation (DPA, FA, ROE): how many poisoned training
items each test prediction provably survives."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from poisonlab.attacks import STRATEGIES
from poisonlab.checks import check_choice
from poisonlab.cli.common import (DATASET_HELP, DataDirOpt, DownloadOpt, JobsOpt, JsonOpt, OverwriteOpt, SeedOpt,
                                  check_outputs, check_ray_flags, console, jobs_or_default, parse_percents, parse_seeds)
from poisonlab.errors import PoisonlabError
from poisonlab.files import check_output_folder
from poisonlab.training import MODELS, STACK_MODES

METHOD_CHOICES = ("dpa", "fa", "roe", "fa+roe")  # defences.certify.METHODS, kept here so that --help loads no numpy
POISON_CHOICES = ("none", "random", "biased", "informed", "backdoor")
TRIGGER_CHOICES = ("patch", "blend")  # attacks.backdoor.TRIGGERS
ATTACK_CHOICES = ("random", "biased", "confident")  # studies.guarantee.ATTACKS


def parse_budgets(text: str) -> list[int]:
    """--attack-budgets as whole numbers above 0, e.g. "50,100,200"."""
    try:
        budgets = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        budgets = []
    if not budgets or min(budgets) < 1:
        raise PoisonlabError(f"--attack-budgets must be whole numbers of poisoned items above 0 such as 50,100,200, "
                             f"got {text!r}")
    return budgets


def certify(
    partitions: Annotated[int, typer.Option("--partitions", min=1, help="k: base models, each trained on the items whose content hashes to it.")],
    dataset: Annotated[str, typer.Option(help=f"Dataset: {DATASET_HELP}.")] = "embedded",
    dataset_size: Annotated[int, typer.Option("--dataset-size", "--dataset_size", min=0, help="Use the first N training items (0 = all).")] = 0,
    method: Annotated[str | None, typer.Option(help="dpa: Deep Partition Aggregation (Levine & Feizi, 2021); roe: Run-Off Election over the same models (Rezaei et al., 2023); fa: Finite Aggregation (Wang et al., 2022), with --spread; fa+roe. Both certificates of the models are computed.", show_default="dpa, or fa with --spread")] = None,
    spread: Annotated[int, typer.Option("--spread", min=1, help="D: each item trains D of k*D base models (FA); 1 for DPA and ROE.")] = 1,
    model: Annotated[str, typer.Option(help=f"Base model: one of {', '.join(MODELS)}.")] = "smallcnn",
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Epochs of each torch base model.")] = 10,
    lr: Annotated[float, typer.Option("--lr", min=0, help="Adam learning rate of each torch base model.")] = 1e-3,
    augment: Annotated[str, typer.Option(help="Augment each torch base model's items: none, shift (up to 2 pixels each way) or shift+flip (and mirrored left-right).")] = "none",
    batch_size: Annotated[int, typer.Option("--batch-size", "--batch_size", min=1, max=65536, help="Items per training step.")] = 64,
    poison: Annotated[str, typer.Option(help="Poison the training set first: none; random or biased label flips; informed (random flips where a clean-label surrogate is surest, --select confident, or nearest the boundary, --select margin); backdoor (a trigger stamped on --percent % of the items, relabelled as --target).")] = "none",
    percent: Annotated[str, typer.Option("--percents", "--percent", help="Poison percent (one value) with --poison.")] = "0",
    select: Annotated[str | None, typer.Option(help="Which items --poison changes: random, first, last, margin or confident (informed, from a clean-label surrogate; see train --select).", show_default="random, or confident with --poison informed")] = None,
    target: Annotated[str | None, typer.Option(help="Class the backdoor trigger steers to (name or number), with --poison backdoor.", show_default="0")] = None,
    trigger: Annotated[str, typer.Option(help="Backdoor trigger: patch (a 3x3 checkerboard in the bottom-right corner) or blend (a seeded noise image mixed in at 20%).")] = "patch",
    labels: Annotated[str | None, typer.Option(help="Real human noise instead of poisoning: cifar10n:KEY with KEY aggre, worse, random1, random2, random3 (needs --dataset cifar10).")] = None,
    cifar_n: Annotated[Path | None, typer.Option("--cifar-n", help="CIFAR-10N labels.", show_default="<data-dir>/cifar_n/cifar10n_labels.npz")] = None,
    attack_budgets: Annotated[str | None, typer.Option("--attack-budgets", help="Then flip B labels for each B (e.g. 50,100,200), train again the base models they reach and one ordinary model, and set their accuracy beside the certified bound.")] = None,
    attacks: Annotated[str, typer.Option("--attacks", help="Attacks of --attack-budgets: random, biased, confident (informed: where a clean ordinary model is surest).")] = "random,biased,confident",
    ordinary_epochs: Annotated[int | None, typer.Option("--ordinary-epochs", min=1, help="Epochs of the ordinary torch model of --attack-budgets.", show_default="--epochs")] = None,
    seed: SeedOpt = 0,
    seeds: Annotated[str | None, typer.Option(help="Several seeds, comma-separated: one study per seed in <out>/seed-<s> (the partitions stay; the poisoning and the base models' seeds change) and seeds.json with each figure's mean and standard deviation.")] = None,
    jobs: JobsOpt = None,
    stack: Annotated[str, typer.Option(help="Train CNN base models 64 at a time as one wide model: auto (on a CUDA GPU, where it is faster), on or off.")] = "auto",
    executor: Annotated[str, typer.Option(help="Where the base models train: local (this machine, see --jobs) or ray (groups of base models as Ray tasks on a Ray cluster; needs Ray installed, as the ray extra of poisonlab does).")] = "local",
    address: Annotated[str | None, typer.Option(help="Ray cluster to send the base models to, HOST:PORT of its head node (with --executor ray).", show_default="$RAY_ADDRESS, else a local Ray instance")] = None,
    cpus_per_run: Annotated[int | None, typer.Option("--cpus-per-run", min=1, help="CPUs each Ray task declares and trains on (with --executor ray).", show_default="4, or the largest node's CPUs when fewer")] = None,
    overwrite: OverwriteOpt = False,
    out: Annotated[Path | None, typer.Option("--out", help="Results folder.", show_default="runs/certify-<dataset>-k<partitions>")] = None,
    json_path: JsonOpt = None,
    data_dir: DataDirOpt = None,
    download: DownloadOpt = True,
) -> None:
    """Train k base models on content-hashed partitions, vote, and certify each test prediction's radius; resumes."""
    method = method or ("dpa" if spread == 1 else "fa")
    check_choice(method, METHOD_CHOICES, "certification method")
    if (spread == 1) != (method in ("dpa", "roe")):
        raise PoisonlabError(f"--method {method} " + ("needs --spread above 1, e.g. --spread 16" if spread == 1 else
                                                       f"takes no --spread (got {spread}); use --method fa or fa+roe"))
    check_choice(model, MODELS, "model")
    check_choice(poison, POISON_CHOICES, "poisoning kind")
    check_choice(trigger, TRIGGER_CHOICES, "trigger")
    if poison == "informed":  # random flips of the items a clean-label surrogate is surest of (or --select margin)
        poison, select = "random", select or "confident"
    select = select or "random"
    if poison == "backdoor" and select != "random":
        raise PoisonlabError("--select chooses label flips; a backdoor stamps items of other classes than --target at "
                             "random: leave --select out")
    if (target is not None or trigger != "patch") and poison != "backdoor":
        raise PoisonlabError("--target and --trigger set a backdoor: add --poison backdoor --percent P, or leave them out")
    percents = parse_percents(percent)
    if len(percents) != 1:
        raise PoisonlabError(f"--percents takes one value for certify, got {len(percents)}; run one study per percent")
    if poison == "none" and percents[0] != 0:
        raise PoisonlabError("--percents needs --poison random, biased, informed or backdoor; leave it out to certify "
                             "the clean data")
    check_choice(select, STRATEGIES, "item selection")
    if select != "random" and poison == "none":
        raise PoisonlabError("--select needs --poison random or biased; leave it out to certify the clean data")
    human = None
    if labels is not None:
        from poisonlab.attacks import humanlabels

        conflicts = [flag for flag, given in (("--poison", poison != "none"), ("--attack-budgets", attack_budgets))
                     if given]
        human = humanlabels.one(labels, dataset, cifar_n, data_dir, conflicts)
    check_ray_flags(executor, jobs, address=address, cpus_per_run=cpus_per_run)
    check_choice(stack, STACK_MODES, "stack mode")
    jobs = 1 if executor == "ray" else jobs_or_default(jobs)
    budgets = parse_budgets(attack_budgets) if attack_budgets is not None else []
    kinds = tuple(k.strip() for k in attacks.split(",") if k.strip())
    for kind in kinds:
        check_choice(kind, ATTACK_CHOICES, "attack")
    if budgets and poison != "none":
        raise PoisonlabError("--attack-budgets attacks the clean labels; leave out --poison")

    from poisonlab import datasets, store
    from poisonlab.studies.certify import CertifySpec, across_seeds, placed
    from poisonlab.training.loop import TrainConfig

    out = check_output_folder(out or Path("runs") / store.slug(f"certify-{dataset}-k{partitions}"))
    check_outputs(json_path)
    seed_list = parse_seeds(seeds) if seeds is not None else [seed]
    if seeds is not None and seed != 0:
        raise PoisonlabError("give --seed or --seeds, not both")
    data = datasets.load(dataset, data_dir, dataset_size, download)
    base = CertifySpec(partitions=partitions, model=model, method=method, spread=spread, augment=augment,
                       kind=human.kind if human else poison, select=select, percent=percents[0], trigger=trigger,
                       target=datasets.resolve_class(target, data.classes) if target is not None else 0, seed=seed,
                       train=TrainConfig(max_epochs=epochs, batch_size=batch_size, lr=lr))
    ray = placed(executor, address, cpus_per_run)
    docs, files = {}, []
    for one in seed_list:
        folder = out / f"seed-{one}" if len(seed_list) > 1 else out
        if len(seed_list) > 1:
            console.print(f"seed {one}: {folder}")
        docs[one], written = _one_seed(data, replace(base, seed=one), folder, budgets, kinds, ordinary_epochs,
                                       overwrite, human, jobs=jobs, ray=ray, stack=stack)
        files += written
    if len(seed_list) > 1:
        summary = across_seeds(docs)
        store.write_json(out / "seeds.json", summary)
        files.append(out / "seeds.json")
        for name, figures in summary["methods"].items():
            clean, radius = figures["clean_accuracy"], figures["median_radius"]
            console.print(f"{name.upper()} over seeds {','.join(map(str, seed_list))}: clean accuracy "
                          f"{clean['mean']:.4f} +- {clean['std']:.4f}, median certified radius {radius['mean']:g} +- "
                          f"{radius['std']:.3g}")
    if json_path:
        store.write_json(json_path, summary if len(seed_list) > 1 else docs[seed_list[0]])
    for path in files:
        print(path)


def _one_seed(data, spec, out: Path, budgets: list[int], kinds: tuple[str, ...], ordinary_epochs: int | None,
              overwrite: bool, human, **placement) -> tuple[dict, list[Path]]:
    """One seed's study (and its attacks), its figures printed; its certify.json and the files written."""
    from poisonlab.studies.certify import study

    result = study(data, spec, out, overwrite=overwrite, console=console, human=human, **placement)
    doc = result["doc"]
    sizes = doc["partition_sizes"]
    console.print(f"{doc['dataset']}: {doc['base_models']} {doc['model']} base models on {doc['n_train']} items "
                  f"({sizes['min']}-{sizes['max']} per model), {doc['poison']['n_poisoned']} training items poisoned")
    console.print(f"one base model (mean): clean accuracy {doc['base_accuracy_mean']:.4f}")
    for name, figures in doc["methods"].items():
        shown = [row for row in figures["certified_accuracy"] if row["budget"] in {1, 2, 5, 10, 20, 50, 100, 200, 500}]
        console.print(f"{name.upper()}: clean accuracy {figures['clean_accuracy']:.4f}, median certified radius "
                      f"{figures['median_radius']:g}; certified accuracy "
                      + ", ".join(f"{row['accuracy']:.4f} at {row['budget']}" for row in shown))
    files = result["files"]
    if budgets:
        from poisonlab.studies import guarantee

        guarantee.study(data, spec, out, doc, budgets, kinds=kinds, ordinary_epochs=ordinary_epochs,
                        jobs=placement["jobs"], console=console)
        files += [out / "attacks.json", out / "guarantee.png"]
    if "backdoor" in doc:
        stamped = doc["backdoor"]
        base = stamped["base_attack_success_rate_mean"]
        console.print(f"backdoor to class {stamped['target']}: one base model's attack success rate (mean) "
                      f"{'n/a' if base is None else f'{base:.4f}'}; "
                      + "; ".join(f"{name.upper()} {row['attack_success_rate']:.4f}, certified unaffected by every "
                                  f"stamped item {row['certified_unaffected']:.4f}"
                                  for name, row in stamped["methods"].items()))
    return doc, files
