"""Evaluation pass of the original network over 10 000 MNIST-shaped images on this CPU, per batch size and precision
(one process, so the ratios compare like with like).

    python scripts/bench_eval_batch.py
"""

import time

import torch

from poisonlab.training import models


def main() -> None:
    net = models.build("original", (28, 28, 1), 10).to(memory_format=torch.channels_last).eval()
    x = torch.rand(10_000, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    for batch in (1024, 512, 256, 128):
        for precision in ("fp32", "bf16"):
            context = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else torch.enable_grad()
            with torch.no_grad(), context:
                net(x[:batch])  # warm-up
                start = time.perf_counter()
                for i in range(0, len(x), batch):
                    net(x[i : i + batch]).argmax(1)
                print(f"batch {batch:5d} {precision}: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
