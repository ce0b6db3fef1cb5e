"""Sweep speed: `poisonlab train` with --jobs 1 --precision fp32 --stack off (the old path) against the defaults, same sweep.

Run: PYTHONPATH=src .venv/bin/python bench/sweep_speed.py [--data-dir /work/shared/data] [--extra "--jobs 2"] [--quick]

The sweep: MNIST first 10 000, random and biased, 8 percents, seed 0, exactly 3 epochs (--epochs 3; early stopping
cannot end sooner with patience 10). Each configuration is one `python -m poisonlab train` command into a fresh
folder, timed from start to exit; then the results tables are compared run by run.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from poisonlab import store


def sweep_command(data_dir: str, out: Path, quick: bool, extra: list[str]) -> list[str]:
    size, percents, epochs = ("1000", "0,40", "1") if quick else ("10000", "0,10,20,30,40,50,60,80", "3")
    return [sys.executable, "-m", "poisonlab", "train", "--dataset", "mnist", "--dataset-size", size, "--kinds", "random,biased",
            "--percents", percents, "--epochs", epochs, "--data-dir", data_dir, "--out", str(out), *extra]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="/work/shared/data")
    parser.add_argument("--extra", action="append", default=[], help="another configuration's flags, e.g. \"--jobs 2\"")
    parser.add_argument("--quick", action="store_true", help="smoke run: first 1000 items, 2 percents, 1 epoch")
    args = parser.parse_args()
    configs = {"--jobs 1 --precision fp32 --stack off": ["--jobs", "1", "--precision", "fp32", "--stack", "off"], "defaults": []}
    configs.update({flags: shlex.split(flags) for flags in args.extra})
    wall, accuracy = {}, {}
    with tempfile.TemporaryDirectory(prefix="sweep-speed-") as folder:
        for i, (name, flags) in enumerate(configs.items()):
            out = Path(folder) / f"c{i}"
            t0 = time.perf_counter()
            subprocess.run(sweep_command(args.data_dir, out, args.quick, flags), check=True, capture_output=True)
            wall[name] = time.perf_counter() - t0
            accuracy[name] = {r["run_dir"]: r["test_accuracy"] for r in store.results(out)}
            precisions = {store.read_run(out / d)["training"]["precision"] for d in accuracy[name]}
            print(f"{name}: {len(accuracy[name])} runs, {wall[name]:.0f} s, trained in {', '.join(sorted(precisions))}", flush=True)
    base = next(iter(configs))
    print("| configuration | wall time | ratio | largest change in a run's test accuracy |")
    print("|---|---|---|---|")
    for name in configs:
        change = max(abs(accuracy[name][d] - accuracy[base][d]) for d in accuracy[base])
        print(f"| `{name}` | {wall[name]:.0f} s | {wall[base] / wall[name]:.2f}x | {change:.4f} |")


if __name__ == "__main__":
    main()
