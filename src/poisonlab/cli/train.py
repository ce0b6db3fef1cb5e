"""`poisonlab train`, `analyse` and `demo`: poisoning sweeps, their curves, and a short real sweep on embedded data."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from poisonlab.attacks import BIASED_RULES, KINDS, STRATEGIES
from poisonlab.cli.common import (DATASET_HELP, JOBS_DEFAULT_TEXT, DataDirOpt, DownloadOpt, OutOpt, OverwriteOpt,
                                  check_ray_flags, console, parse_counts, parse_defences, parse_names, parse_percents,
                                  parse_seeds)
from poisonlab.checks import check_choice
from poisonlab.errors import PoisonlabError
from poisonlab.studies import DEFAULT_PERCENTS, PRESET_NAMES, VAL_MODES
from poisonlab.training import MODELS, STACK_MODES

DEFAULT_PERCENTS_TEXT = ",".join(map(str, DEFAULT_PERCENTS))



def run_sweep(specs: list, out: Path, data_dir: Path | None, download: bool, overwrite: bool, human=(), jobs: int = 1,
              **placement) -> None:
    """Execute a sweep (human-label runs on `human`), `jobs` runs at a time or as `placement` says (stack,
    executor, address, cpus_per_run, gpus_per_run of sweep.execute), and print where its results are."""
    from poisonlab.studies import sweep

    started = time.perf_counter()
    counts = sweep.execute(specs, out, data_dir, download, overwrite, console, human=human, jobs=jobs, **placement)
    console.print(f"{counts['trained']} runs trained, {counts['skipped']} already done, in {time.perf_counter() - started:.0f}s; "
                  f"results: {out / 'results.csv'} and {out / 'results.sqlite'}, runs under {out / 'models'}")


def train(
    dataset: Annotated[str, typer.Option(help=f"Dataset(s), comma-separated: {DATASET_HELP}.")] = "embedded",
    percents: Annotated[str, typer.Option(help="Poison percents, comma-separated.")] = DEFAULT_PERCENTS_TEXT,
    biased: Annotated[bool, typer.Option("--biased", help="Biased poisoning (labels from the first two classes, see --biased-rule) instead of random.")] = False,
    kinds: Annotated[str | None, typer.Option(help="Poisoning kinds, comma-separated (random,biased); overrides --biased.")] = None,
    select: Annotated[str | None, typer.Option(help="Which items are poisoned, comma-separated (one curve each): random; first (lowest indices); last (highest indices, as the original experiment does); margin (nearest a clean-label surrogate's decision boundary, flipped to its runner-up class); confident (the surrogate's surest items, flipped to the class of highest loss).", show_default="random, or the preset's")] = None,
    biased_rule: Annotated[str | None, typer.Option("--biased-rule", help="What biased poisoning does: readme (class 0, or 1 for a true 0: the original README's words) or code (class 0 or 1 with equal odds, 0 and 1 swapped: what the original program does).", show_default="readme, or the preset's")] = None,
    preset: Annotated[str | None, typer.Option(help=f"Named settings that explicit flags override: {', '.join(PRESET_NAMES)} (the original Keras experiment: its network with inputs /255, the last items poisoned, biased by its code's rule, the test set as validation, 100 epochs, Keras' plateau rule and Adam epsilon).")] = None,
    dataset_size: Annotated[str, typer.Option("--dataset-size", "--dataset_size", help="Use the first N training items (0 = all); comma-separated for several.")] = "0",
    batch_size: Annotated[int | None, typer.Option("--batch-size", "--batch_size", min=1, max=65536, help="Items per training step.", show_default="256")] = None,
    model: Annotated[str | None, typer.Option(help=f"One of {', '.join(MODELS)}.", show_default="smallcnn, or the preset's")] = None,
    seeds: Annotated[str, typer.Option(help="Seeds, comma-separated.")] = "0",
    epochs: Annotated[int | None, typer.Option("--epochs", "--max-epochs", min=1, help="Most epochs (early stopping may end sooner).", show_default="50, or the preset's")] = None,
    val: Annotated[str | None, typer.Option(help="split: hold out 10% of the poisoned training data; test: validate on the clean test set (as the original experiment did).", show_default="split, or the preset's")] = None,
    labels: Annotated[str | None, typer.Option(help="Real human label noise instead of poisoning: cifar10n:KEY[,KEY] with KEY aggre, worse, random1, random2, random3 (needs --dataset cifar10).")] = None,
    cifar_n: Annotated[Path | None, typer.Option("--cifar-n", help="CIFAR-10N labels file for --labels.", show_default="<data-dir>/cifar_n/cifar10n_labels.npz")] = None,
    defence: Annotated[str, typer.Option("--defence", "--defences", help="What each run does against its poisoned labels, comma-separated (one curve each): none; a robust training remedy: gce (generalized cross-entropy), sce (symmetric cross-entropy), elr (early-learning regularisation), coteach[:P] (co-teaching, two networks exchanging their small-loss items, forgetting P % (default 20)), semi (after 5 epochs, items whose loss marks them as suspected keep their image but not their label: trained towards the model's own confident guess on a shifted copy), abl[:P] (anti-backdoor learning: after 3 epochs the P % (default 10) lowest-loss items are unlearned); or clean:METHOD / relabel:METHOD (drop, or relabel, the items detector METHOD flags, then train): METHOD one of cl, knn, knn-pixels, loss, ensemble, influence, grad, gradclust, spectral, ac, ac-exclusionary, correlation.")] = "none",
    precision: Annotated[str, typer.Option(help="Training arithmetic: auto (bfloat16 where the CPU or GPU supports it, else fp32), bf16 or fp32.")] = "auto",
    jobs: Annotated[int | None, typer.Option(min=1, help="Runs trained at once in worker processes, sharing the cores (local executor).", show_default=JOBS_DEFAULT_TEXT)] = None,
    executor: Annotated[str, typer.Option(help="Where runs train: local (this machine, see --jobs) or ray (one Ray task per run, or per stacked group, on a Ray cluster; needs Ray installed, as the ray extra of poisonlab does).")] = "local",
    address: Annotated[str | None, typer.Option(help="Ray cluster to send runs to, HOST:PORT of its head node (with --executor ray); --out must be on a filesystem every node shares.", show_default="$RAY_ADDRESS, else a local Ray instance")] = None,
    cpus_per_run: Annotated[int | None, typer.Option("--cpus-per-run", min=1, help="CPUs each Ray task declares and trains on (with --executor ray).", show_default="4, or the largest node's CPUs when fewer")] = None,
    gpus_per_run: Annotated[float | None, typer.Option("--gpus-per-run", min=0, help="GPUs each Ray task declares (with --executor ray); a fraction shares a GPU.", show_default="1 when the cluster has GPUs, else 0")] = None,
    stack: Annotated[str, typer.Option(help="Train the runs that differ only in their labels as one stacked model: auto (on a CUDA GPU, where it is faster; with --executor ray, when tasks declare GPUs), on or off.")] = "auto",
    tensorboard: Annotated[Path | None, typer.Option(help="Also write each trained run's per-epoch scalars and test metrics as TensorBoard logs under this folder (needs the tensorboard package: pip install 'poisonlab[tracking]').")] = None,
    mlflow: Annotated[str | None, typer.Option(help="Also log each trained run (config as params, history as metrics, run.json and its curve as artifacts) to this MLflow tracking URI, e.g. file:./mlruns (needs mlflow: pip install 'poisonlab[tracking]').")] = None,
    overwrite: OverwriteOpt = False,
    out: OutOpt = Path("runs"),
    data_dir: DataDirOpt = None,
    download: DownloadOpt = True,
) -> None:
    """Train one model per (dataset, size, kind, percent, seed) with poisoned (or CIFAR-10N human) labels; resumes where it stopped."""
    from poisonlab.attacks import humanlabels
    from poisonlab.reporting.tracking import Tracking
    from poisonlab.studies import presets, sweep
    from poisonlab.training.parallel import default_jobs

    kind_list = parse_names(kinds, "poisoning kinds") if kinds is not None else ["biased" if biased else "random"]
    for k in kind_list:
        check_choice(k, KINDS, "poisoning kind")
    select_list = parse_names(select, "item selections") if select is not None else None
    for c in select_list or []:
        check_choice(c, STRATEGIES, "item selection")
    for value, choices, what in ((model, MODELS, "model"), (val, VAL_MODES, "validation mode"),
                                 (biased_rule, BIASED_RULES, "biased rule"), (preset, PRESET_NAMES, "preset")):
        if value is not None:
            check_choice(value, choices, what)
    check_choice(stack, STACK_MODES, "stack mode")
    defence_list = parse_defences(defence)
    base, select_list = presets.resolve(preset, model=model, select=select_list, biased_rule=biased_rule, val=val,
                                        epochs=epochs, batch_size=batch_size, precision=precision)
    dataset_list, sizes = parse_names(dataset, "datasets"), parse_counts(dataset_size, "dataset size")
    seed_list = parse_seeds(seeds)
    if labels is None:
        if cifar_n is not None:
            raise PoisonlabError("--cifar-n is only read with --labels; add --labels cifar10n:KEY or leave out --cifar-n")
        sets, specs = [], sweep.plan(base, dataset_list, sizes, kind_list, parse_percents(percents), seed_list, select_list,
                                        defence_list)
    else:
        poisoning = [name for name, given in (("--kinds", kinds is not None), ("--biased", biased),
                                              ("--percents", percents != DEFAULT_PERCENTS_TEXT),
                                              ("--select", select is not None),
                                              ("--biased-rule", biased_rule is not None)) if given]
        sets = humanlabels.read(humanlabels.labels_file(cifar_n, data_dir), humanlabels.request(labels, dataset_list, poisoning))
        specs = sweep.plan_human(base, sizes, sets, seed_list, defence_list)
    check_ray_flags(executor, jobs, address=address, cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run)
    jobs = 1 if executor == "ray" else default_jobs() if jobs is None else jobs
    tracking = Tracking(tensorboard, mlflow)
    tracking.check()
    run_sweep(specs, out, data_dir, download, overwrite, sets, jobs, stack=stack, executor=executor, address=address,
              cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run, tracking=tracking)


def analyse(
    datasets: Annotated[str | None, typer.Option(help="Datasets to draw, comma-separated.", show_default="all in the store")] = None,
    biased: Annotated[bool, typer.Option("--biased", help="Draw biased runs only.")] = False,
    all_kinds: Annotated[bool, typer.Option("--all", help="Draw random and biased runs.")] = False,
    combined: Annotated[bool, typer.Option("--combined", help="Also draw the original experiment's figure: every dataset on one axes per training-set size (a colour per dataset, random solid, biased dashed).")] = False,
    out: OutOpt = Path("runs"),
) -> None:
    """Plot test accuracy vs percent poisoned, one panel per dataset (PNG, SVG and a CSV of the curves)."""
    from poisonlab.reporting import curves

    if biased and all_kinds:
        raise PoisonlabError("--biased and --all contradict each other; pass one of them")
    kinds = tuple(KINDS) if all_kinds else ("biased",) if biased else ("random",)
    wanted = parse_names(datasets, "datasets") if datasets is not None else None
    result = curves.analyse(out, wanted, kinds, combined)
    for name in result["missing"]:
        console.print(f"note: no {'/'.join(kinds)} runs for {name} in {out}; run `poisonlab train --dataset {name}` to add it")
    for path in result["paths"]:
        print(path)


def demo(
    out: OutOpt = Path("runs/demo"),
    percents: Annotated[str, typer.Option(help="Poison percents, comma-separated.")] = "0,20,40,60,80,100",
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Most epochs per run.")] = 6,
    overwrite: OverwriteOpt = False,
) -> None:
    """A short real sweep on the embedded Fashion-MNIST subset (no download), random and biased, then the plot and report."""
    from poisonlab.reporting import curves, html
    from poisonlab.studies import sweep
    from poisonlab.studies.run import RunSpec
    from poisonlab.training.loop import TrainConfig

    base = RunSpec(dataset="embedded", train=TrainConfig(max_epochs=epochs))
    specs = sweep.plan(base, ["embedded"], [0], list(KINDS), parse_percents(percents), [0])
    run_sweep(specs, out, None, False, overwrite)
    result = curves.analyse(out, ["embedded"], tuple(KINDS))
    page = html.build(out, out / "report.html")["path"]
    console.print("plot, tables and the report to open in a browser:")
    for path in [*result["paths"], page]:
        print(path)
