"""Every backdoor defence against patch and blend backdoors of MNIST: ASR and clean accuracy with and without each
defence; resumable (the runs live under OUT). Each defence's cost is measured apart, on an idle machine, by
bench/backdoor_defence_cost.py.

    .venv/bin/python bench/backdoor_defences.py [N_ITEMS] [OUT] [DOCS] [SEEDS]

smallcnn on the first N_ITEMS (default 10 000) MNIST training items, all 10 000 test items, target class 0, 1, 10 and
20 % of the training items stamped (and the clean 0 %), SEEDS (default 0; comma-separated), 12 epochs at batch 64 with early stopping on the
held-out (poisoned) 10 %. Writes DOCS/table.csv and DOCS/table.md (default docs/backdoor_defences_mnist_{N_ITEMS})."""

import sys
from pathlib import Path

import pandas as pd

import poisonlab as pl
from poisonlab import store

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
TRIGGERS = ("patch", "blend")
DEFENCES = ("none", "abl", "finetune", "fineprune", "strip", "clean:correlation", "clean:ac-exclusionary")
RATES, SEEDS = (0.01, 0.1, 0.2), (0,)  # what a 2-core CPU finishes in a session; widen on a GPU


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "runs" / f"backdoor_defences_{n}"
    docs = Path(sys.argv[3]) if len(sys.argv) > 3 else ROOT / "docs" / f"backdoor_defences_mnist_{n}"
    seeds = [int(s) for s in sys.argv[4].split(",")] if len(sys.argv) > 4 else list(SEEDS)
    data = pl.load_dataset("mnist", size=n, data_dir=DATA)
    for trigger in TRIGGERS:
        for defence in DEFENCES:
            pl.backdoor(data, target=0, rates=RATES, trigger=trigger, seeds=seeds, epochs=12, batch_size=64,
                        defence=defence, out=out)
            write(out, docs)


def write(out: Path, docs: Path) -> None:
    """The table so far: one row per trigger, percent and defence, means over seeds."""
    rows = []
    for path in sorted(out.glob("models/*/*/seed*/run.json")):
        run = store.read_run(path.parent)
        guard = run.get("defence", {})
        rows.append({"trigger": run["poison"]["trigger"]["kind"], "percent": run["config"]["percent"],
                     "defence": run["config"].get("defence", "none"), "seed": run["config"]["seed"],
                     "accuracy": run["metrics"]["accuracy"], "asr": run["metrics"]["attack_success_rate"],
                     "accuracy_before": guard.get("before", {}).get("accuracy"),
                     "asr_before": guard.get("before", {}).get("attack_success_rate"),
                     "strip_far_at_1pct_frr": guard.get("strip", {}).get("far"),
                     "seconds": run["timings"]["total_s"]})
    if not rows:
        return
    runs = pd.DataFrame(rows)
    table = runs.groupby(["trigger", "percent", "defence"], sort=False).agg(
        seeds=("seed", "count"), accuracy=("accuracy", "mean"), accuracy_std=("accuracy", "std"), asr=("asr", "mean"),
        asr_std=("asr", "std"), strip_far=("strip_far_at_1pct_frr", "mean"), seconds=("seconds", "mean")).reset_index()
    plain = table[table.defence == "none"].set_index(["trigger", "percent"])
    key = list(zip(table.trigger, table.percent))
    table["accuracy_change"] = [a - plain.accuracy.get(k, float("nan")) for a, k in zip(table.accuracy, key)]
    table["worse_than_none"] = [d != "none" and (a > plain.asr.get(k, 1.0) + 0.01 or c < -0.01)  # ASR or error up > 1 pt
                                for d, a, c, k in zip(table.defence, table.asr, table.accuracy_change, key)]
    table = table.sort_values(["trigger", "percent", "defence"], key=lambda c: c.map(
        {d: i for i, d in enumerate(DEFENCES)}) if c.name == "defence" else c)
    docs.mkdir(parents=True, exist_ok=True)
    store.atomic_write(docs / "table.csv", table.to_csv(index=False, float_format="%.4f"))
    lines = ["| trigger | % | defence | seeds | clean accuracy | change | ASR | STRIP FAR @1 % FRR | worse than none |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        far = "" if pd.isna(r.strip_far) else f"{r.strip_far:.3f}"
        lines.append(f"| {r.trigger} | {r.percent:g} | {r.defence} | {r.seeds} | {r.accuracy:.4f} | "
                     f"{r.accuracy_change:+.4f} | {r.asr:.4f} | {far} | {'**yes**' if r.worse_than_none else ''} |")
    store.atomic_write(docs / "table.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
