"""The report's PNG figures: confusion matrix, training curves, robustness bars."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np


def plot_confusion(path: Path, cm: Sequence[Sequence[int]], labels: Sequence[str], title: str) -> None:
    matplotlib.use("Agg")
    m = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=80)
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            if m[i, j]:
                ax.text(j, i, str(m[i, j]), ha="center", va="center", color="white" if m[i, j] > m.max() / 2 else "k")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_curves(path: Path, history: dict[str, list[float]], title: str) -> None:
    matplotlib.use("Agg")
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.2), dpi=80)
    epochs = range(1, len(history["loss"]) + 1)
    a.plot(epochs, history["loss"], label="train loss (smoothed, mixed labels)")
    a.set_xlabel("epoch")
    a.legend(fontsize=7)
    b.plot(epochs, history["accuracy"], label="train window accuracy")
    if history.get("monitor_accuracy"):
        b.plot(epochs, history["monitor_accuracy"], label="held-out window accuracy (monitor only)")
    b.set_xlabel("epoch")
    b.set_ylim(0, 1)
    b.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_robustness(path: Path, rob: dict[str, Any], title: str) -> None:
    matplotlib.use("Agg")
    fig, ax = plt.subplots(figsize=(6, 3.4), dpi=80)
    conds = list(next(iter(rob.values())).keys())
    width = 0.8 / len(rob)
    for k, (name, stats) in enumerate(rob.items()):
        means = [100 * stats[c]["clip_macro_accuracy"]["mean"] for c in conds]
        stds = [100 * stats[c]["clip_macro_accuracy"]["std"] for c in conds]
        ax.bar(np.arange(len(conds)) + k * width, means, width, yerr=stds, label=name, capsize=3)
    ax.set_xticks(np.arange(len(conds)) + width * (len(rob) - 1) / 2, conds)
    ax.set_ylabel("clip macro accuracy %")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
