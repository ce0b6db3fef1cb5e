"""`poisonlab defend`: the attack x defence matrix, the share of the damage each defence recovers."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from poisonlab.cli.common import (DATASET_HELP, JOBS_DEFAULT_TEXT, DataDirOpt, DownloadOpt, OverwriteOpt,
                                  check_ray_flags, console, parse_counts, parse_defences, parse_names,
                                  parse_percents, parse_seeds)
from poisonlab.checks import check_choice
from poisonlab.errors import PoisonlabError
from poisonlab.training import MODELS, STACK_MODES

DEFAULT_ATTACKS = "random,biased,informed:margin,informed:confident"
DEFAULT_DEFENCES = "none,gce,sce,elr,coteach,semi,clean:cl,clean:loss"


def defend(
    dataset: Annotated[str, typer.Option(help=f"Dataset: {DATASET_HELP}.")] = "mnist",
    dataset_size: Annotated[str, typer.Option("--dataset-size", "--dataset_size", help="Use the first N training items (0 = all).")] = "0",
    attacks: Annotated[str, typer.Option(help="Attacks, comma-separated: random, biased, informed:margin, informed:confident (label flips at each --percents), cifar10n:KEY (CIFAR-10's human labels, KEY aggre, worse, random1..3, at their own noise rate), backdoor:patch, backdoor:blend (BadNets triggers steering to --target at each --percents; their damage is the attack success rate).")] = DEFAULT_ATTACKS,
    target: Annotated[str, typer.Option(help="Class the backdoor attacks steer to (name or number).")] = "0",
    percents: Annotated[str, typer.Option("--percents", "--percent", help="Poison percents, comma-separated; 0 trains every defence on clean labels (the clean run without defence, the baseline of the recovery, is always trained).")] = "0,10,20,40",
    defences: Annotated[str, typer.Option("--defences", "--defence", help="Defences, comma-separated: none, gce, sce, elr, coteach[:P], semi, abl[:P], clean:METHOD, relabel:METHOD (see train --defence); with backdoor attacks also finetune, fineprune, strip (see backdoor --defence; they skip the label-flip attacks); none (every cell's baseline) is always trained.")] = DEFAULT_DEFENCES,
    seeds: Annotated[str, typer.Option(help="Seeds, comma-separated.")] = "0",
    model: Annotated[str, typer.Option(help=f"One of {', '.join(MODELS)} (the training remedies need a torch model).")] = "smallcnn",
    epochs: Annotated[int | None, typer.Option("--epochs", "--max-epochs", min=1, help="Most epochs (early stopping may end sooner).", show_default="50")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", "--batch_size", min=1, max=65536, help="Items per training step.", show_default="256")] = None,
    cifar_n: Annotated[Path | None, typer.Option("--cifar-n", help="CIFAR-10N labels file for cifar10n attacks.", show_default="<data-dir>/cifar_n/cifar10n_labels.npz")] = None,
    jobs: Annotated[int | None, typer.Option(min=1, help="Runs trained at once in worker processes, sharing the cores (local executor).", show_default=JOBS_DEFAULT_TEXT)] = None,
    stack: Annotated[str, typer.Option(help="Train the runs that differ only in their labels as one stacked model: auto (on a CUDA GPU), on or off.")] = "auto",
    executor: Annotated[str, typer.Option(help="Where runs train: local or ray (see train --executor).")] = "local",
    address: Annotated[str | None, typer.Option(help="Ray cluster HOST:PORT (with --executor ray).")] = None,
    cpus_per_run: Annotated[int | None, typer.Option("--cpus-per-run", min=1, help="CPUs each Ray task declares (with --executor ray).")] = None,
    overwrite: OverwriteOpt = False,
    out: Annotated[Path | None, typer.Option("--out", help="Results folder: the runs, results.csv/sqlite (a defence column), matrix.csv, matrix.json, matrix.png.", show_default="runs/defend-<dataset>")] = None,
    data_dir: DataDirOpt = None,
    download: DownloadOpt = True,
) -> None:
    """Train every (attack, percent, defence, seed) and measure the share of the damage each defence recovers; resumes where it stopped."""
    from poisonlab import store
    from poisonlab.attacks import humanlabels
    from poisonlab.reporting.matrixplots import write_outputs
    from poisonlab.studies import matrix, presets
    from poisonlab.training.parallel import default_jobs

    attack_list = [matrix.check_attack(a) for a in parse_names(attacks, "attacks")]
    stamps = any(matrix.is_backdoor(a) for a in attack_list)
    defence_list = parse_defences(defences, backdoor=stamps)
    percent_list, seed_list = parse_percents(percents), parse_seeds(seeds)
    sizes = parse_counts(dataset_size, "dataset size")
    if len(sizes) != 1:
        raise PoisonlabError(f"defend takes one --dataset-size, got {dataset_size!r}; run one matrix per size")
    check_choice(model, MODELS, "model")
    check_choice(stack, STACK_MODES, "stack mode")
    check_ray_flags(executor, jobs, address=address, cpus_per_run=cpus_per_run)
    human_keys = [a.split(":", 1)[1] for a in attack_list if a.startswith("cifar10n:")]
    human = humanlabels.read(humanlabels.labels_file(cifar_n, data_dir), humanlabels.request(
        "cifar10n:" + ",".join(human_keys), [dataset], [])) if human_keys else []
    base, _ = presets.resolve(None, model=model, epochs=epochs, batch_size=batch_size)
    base = replace(base, dataset=dataset, dataset_size=sizes[0], kind="random")
    out = out or Path("runs") / store.slug(f"defend-{dataset}")
    started = time.perf_counter()
    doc, _ = matrix.study(base, attack_list, percent_list, defence_list, seed_list, out, human=human, data_dir=data_dir,
                       download=download, overwrite=overwrite, console=console,
                       jobs=1 if executor == "ray" else default_jobs() if jobs is None else jobs, stack=stack,
                       executor=executor, address=address, cpus_per_run=cpus_per_run, target=target)
    for attack, percent in dict.fromkeys((c["attack"], c["percent"]) for c in doc["cells"]
                                         if c["attack"] != "clean" and c["percent"] > 0):
        top = matrix.best(doc["cells"], attack, percent)
        plain = next(c for c in doc["cells"] if (c["attack"], c["percent"], c["defence"]) == (attack, percent, "none"))
        asr = lambda c: f" (ASR {c['attack_success_rate']:.3f})" if c["attack_success_rate"] is not None else ""  # noqa: E731
        line = f"{attack} {percent:g}%: no defence {plain['accuracy']:.4f}{asr(plain)}"
        if top is not None:
            line += (f"; best {top['defence']} {top['accuracy']:.4f}{asr(top)}, recovers {100 * top['recovered']:.0f}% "
                     "of the damage")
        console.print(line, highlight=False)
    console.print(f"{doc['runs']} runs ({doc['trained']} trained now) in {time.perf_counter() - started:.0f}s; "
                  f"the matrix and its heatmap:")
    for path in write_outputs(doc, out):
        print(path)
