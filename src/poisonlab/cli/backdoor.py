"""`poisonlab backdoor`: stamp a trigger on a share of the training images, train, measure clean accuracy and ASR."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from poisonlab.cli.common import (DATASET_HELP, JOBS_DEFAULT_TEXT, DataDirOpt, DownloadOpt, OutOpt, OverwriteOpt,
                                  console, jobs_or_default, parse_defences, parse_percents, parse_seeds)
from poisonlab.checks import check_choice
from poisonlab.errors import PoisonlabError
from poisonlab.training import MODELS

TRIGGER_CHOICES = ("patch", "blend")  # attacks.backdoor.TRIGGERS, kept here so that --help loads no numpy
POSITION_CHOICES = ("corner", "random")


def backdoor(
    target: Annotated[str, typer.Option(help="Class the trigger steers to (name or number).")],
    dataset: Annotated[str, typer.Option(help=f"Dataset: {DATASET_HELP} (images).")] = "mnist",
    trigger: Annotated[str, typer.Option(help="patch: a black-and-white checkerboard square; blend: a seeded noise image mixed in at 20%.")] = "patch",
    size: Annotated[int, typer.Option(help="Side of the patch in pixels.")] = 3,
    position: Annotated[str, typer.Option(help="corner: bottom right, 1 pixel in; random: a seeded place per image.")] = "corner",
    percent: Annotated[str, typer.Option("--percents", "--percent", help="Percents of ALL training items stamped, comma-separated (the clean model, 0, is always added).")] = "0.1,0.5,1,5,10",
    clean_label: Annotated[bool, typer.Option("--clean-label", help="Stamp only items already of the target class and keep every label.")] = False,
    seeds: Annotated[str, typer.Option(help="Seeds, comma-separated.")] = "0",
    model: Annotated[str, typer.Option(help=f"One of {', '.join(MODELS)}.")] = "smallcnn",
    dataset_size: Annotated[int, typer.Option("--dataset-size", "--dataset_size", min=0, help="Use the first N training items (0 = all).")] = 0,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Most epochs (early stopping on a 10% hold-out of the poisoned data).")] = 10,
    batch_size: Annotated[int, typer.Option("--batch-size", "--batch_size", min=1, max=65536, help="Items per training step.")] = 256,
    defence: Annotated[str, typer.Option("--defence", help="What each run does against the stamped items: none; clean:METHOD / relabel:METHOD (drop, or relabel, what detector METHOD flags, then train; e.g. clean:correlation, clean:spectral, clean:ac); a training remedy (gce, sce, elr, coteach[:P], semi; see train --defence; abl[:P]: anti-backdoor learning, isolating the P % (default 10) lowest-loss items after 3 epochs and unlearning them); or, with a trusted clean share of the training items (NAME:P, P % of them, default 5), finetune, fineprune (prune the least active last hidden units, then fine-tune) or strip (reject test inputs whose prediction survives overlaid clean images; threshold at 1 % false rejection).")] = "none",
    jobs: Annotated[int | None, typer.Option(help="Runs trained at once in worker processes, sharing the cores.", show_default=JOBS_DEFAULT_TEXT)] = None,
    overwrite: OverwriteOpt = False,
    out: OutOpt = Path("runs"),
    data_dir: DataDirOpt = None,
    download: DownloadOpt = True,
) -> None:
    """Backdoor (BadNets or clean-label): clean test accuracy and attack success rate per percent stamped; resumes."""
    check_choice(trigger, TRIGGER_CHOICES, "trigger")
    check_choice(position, POSITION_CHOICES, "trigger position")
    check_choice(model, MODELS, "model")
    if size < 1:
        raise PoisonlabError(f"--size {size} is below 1; give a patch side of 1 or more pixels")
    percents = sorted({0.0, *parse_percents(percent)})
    if len(parse_defences(defence, backdoor=True)) != 1:
        raise PoisonlabError(f"backdoor takes one --defence per study, got {defence!r}; run one study per defence")
    seed_list, jobs = parse_seeds(seeds), jobs_or_default(jobs)

    from poisonlab import datasets
    from poisonlab.attacks.backdoor import Trigger
    from poisonlab.studies.backdoor import BackdoorSpec, study
    from poisonlab.training.loop import TrainConfig

    data = datasets.load(dataset, data_dir, dataset_size, download)
    base = BackdoorSpec(dataset=dataset, target=datasets.resolve_class(target, data.classes), dataset_size=dataset_size,
                        trigger=Trigger(trigger, size, position), clean_label=clean_label, model=model,
                        train=TrainConfig(max_epochs=epochs, batch_size=batch_size), defence=defence.strip())
    result = study(data, base, percents, seed_list, out, overwrite=overwrite, console=console, jobs=jobs)
    doc = result["doc"]
    console.print(f"{result['trained']} runs trained, {result['skipped']} already done; target {doc['target_name']}, "
                  f"{len(doc['seeds'])} seed(s), mean (min-max) over seeds:")
    for s in doc["summary"]:
        acc, asr = s["accuracy"], s["attack_success_rate"]
        console.print(f"  {s['percent']:>6g}%  {s['n_poisoned']:>6} stamped  clean accuracy {acc['mean']:.3f} "
                      f"({acc['min']:.3f}-{acc['max']:.3f})  ASR {asr['mean']:.3f} ({asr['min']:.3f}-{asr['max']:.3f})")
    reached = doc["smallest_percent_reaching_goal"]
    console.print(f"smallest percent with mean ASR >= {doc['asr_goal']:.0%}: " + (f"{reached:g}%" if reached is not None else "none measured"))
    for path in result["files"]:
        print(path)
