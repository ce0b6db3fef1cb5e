"""Figures of a backdoor study (PNG, written atomically): ASR and clean accuracy vs percent, and triggered images."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from poisonlab.reporting.flipplots import save  # noqa: E402

GRID = 8
ASR_COLOUR, ACCURACY_COLOUR = "#c44e52", "#4c72b0"


def curves_figure(doc: dict) -> plt.Figure:
    """Attack success rate and clean test accuracy vs percent stamped (mean over seeds, band = min-max), on a symlog
    axis that starts at 0 % and is ticked at the measured percents."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    percents = [s["percent"] for s in doc["summary"]]
    for key, colour, label in (("attack_success_rate", ASR_COLOUR, "attack success rate"),
                               ("accuracy", ACCURACY_COLOUR, "clean test accuracy")):
        values = [s[key] for s in doc["summary"]]
        ax.plot(percents, [v["mean"] for v in values], "o-", color=colour, ms=4, label=label)
        ax.fill_between(percents, [v["min"] for v in values], [v["max"] for v in values], color=colour, alpha=0.15, lw=0)
    ax.axhline(doc["asr_goal"], color="gray", lw=0.8, ls=":", label=f"ASR {doc['asr_goal']:.0%}")
    if doc["smallest_percent_reaching_goal"] is not None:
        ax.axvline(doc["smallest_percent_reaching_goal"], color=ASR_COLOUR, lw=0.8, ls="--",
                   label=f"smallest percent with mean ASR ≥ {doc['asr_goal']:.0%}: {doc['smallest_percent_reaching_goal']:g}%")
    ax.set_xscale("symlog", linthresh=min([p for p in percents if p > 0], default=1.0))
    ax.set_xticks(percents, [f"{p:g}" for p in percents], fontsize=8)
    ax.minorticks_off()
    ax.set_xlim(0, max(percents) * 1.1 if max(percents) > 0 else 1.0)
    ax.set(xlabel="training items stamped (%)", ylabel="share of test images", ylim=(-0.02, 1.02))
    seeds = len(doc["seeds"])
    ax.set_title(f"{doc['dataset']} {doc['model']}: {doc['trigger']['kind']} trigger → {doc['target_name']}"
                 f"{' (clean-label)' if doc['clean_label'] else ''}, {doc['n_train']} train, {seeds} seed"
                 f"{'s' if seeds > 1 else ''}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center right")
    fig.tight_layout()
    return fig


def curves(doc: dict, path: Path) -> Path:
    """The ASR and clean accuracy figure (`curves_figure`) written to `path`."""
    return save(curves_figure(doc), path)


def grid(clean: np.ndarray, stamped: np.ndarray, path: Path) -> Path:
    """Training images (N, H, W, C) without (top row) and with (bottom row) the trigger."""
    n = len(clean)
    fig, axes = plt.subplots(2, max(n, 1), figsize=(1.2 * max(n, 1), 2.8), squeeze=False)
    for row, (images, title) in enumerate(((clean, "clean"), (stamped, "triggered"))):
        for ax, image in zip(axes[row], images):
            ax.imshow(image[:, :, 0] if image.shape[2] == 1 else image, cmap="gray", vmin=0, vmax=255)
        axes[row][0].set_ylabel(title, fontsize=8)
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return save(fig, path)


def strip_figure(doc: dict) -> plt.Figure:
    """STRIP's false-acceptance rate (triggered test inputs let through) against its false-rejection rate (clean
    ones turned away), one line per percent stamped (mean over seeds)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for s in doc["summary"]:
        if s["percent"] > 0 and "strip_curve" in s:
            ax.plot([100 * p["frr"] for p in s["strip_curve"]], [100 * p["far"] for p in s["strip_curve"]], "o-", ms=3,
                    label=f"{s['percent']:g}% stamped")
    ax.set(xscale="log", xlabel="clean inputs rejected (false rejection, %)",
           ylabel="triggered inputs accepted (false acceptance, %)", ylim=(-2, 102))
    ax.set_title(f"STRIP on {doc['dataset']} {doc['model']}: {doc['trigger']['kind']} trigger → {doc['target_name']}",
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def write_all(doc: dict, clean: np.ndarray, stamped: np.ndarray, folder: Path) -> list[Path]:
    """The figures into `folder`: asr_vs_percent.png, triggered.png and, for a STRIP study, strip.png."""
    paths = [curves(doc, folder / "asr_vs_percent.png"), grid(clean, stamped, folder / "triggered.png")]
    if any("strip_curve" in s for s in doc["summary"]):
        paths.append(save(strip_figure(doc), folder / "strip.png"))
    return paths
