"""Timeline PNG of the playlist evaluation: per playlist, what was playing above what was published."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
from matplotlib.patches import Patch

from edge.decide.states import NOT_MUSIC, SILENCE, UNCERTAIN

_FIXED = {NOT_MUSIC: "#555555", UNCERTAIN: "#cccccc", SILENCE: "#ffffff", "boundary": "#ffffff"}


def _colours(genres: Sequence[str]) -> dict[str, Any]:
    cmap = matplotlib.colormaps["tab10"]
    out: dict[str, Any] = {g: cmap(i % 10) for i, g in enumerate(genres)}
    out.update(_FIXED)
    return out


def _runs(times: Sequence[float], states: Sequence[str], hop_s: float) -> list[tuple[float, float, str]]:
    """Consecutive equal states as (start, width, state); a hop's state holds until the next hop."""
    out: list[tuple[float, float, str]] = []
    for i, (t, s) in enumerate(zip(times, states, strict=True)):
        end = times[i + 1] if i + 1 < len(times) else t + hop_s
        if out and out[-1][2] == s:
            start, _, _ = out[-1]
            out[-1] = (start, end - start, s)
        else:
            out.append((t, end - t, s))
    return out


def plot_timeline(path: Path, rows: Sequence[Mapping[str, Any]], genres: Sequence[str], title: str,
                  hop_s: float = 1.0) -> Path:
    """One row per playlist: truth (upper bar: segments) and the published state (lower bar: per hop).

    ``rows`` items hold ``playlist``, ``segments`` [(label, onset_s, offset_s)], ``times_s`` and ``states``.
    """
    matplotlib.use("Agg")
    colours = _colours(genres)
    n = max(len(rows), 1)
    longest = max((r["times_s"][-1] if r["times_s"] else 0.0 for r in rows), default=60.0) / 60 + 0.2
    fig, ax = plt.subplots(figsize=(min(5 + 0.9 * longest, 25), 1.4 + 0.6 * n))
    for i, row in enumerate(rows):
        y = n - 1 - i
        truth = [(a / 60, (b - a) / 60) for _, a, b in row["segments"]]
        ax.broken_barh(truth, (y + 0.42, 0.36), facecolors=[colours.get(lab, "#000000") for lab, _, _ in
                                                             row["segments"]], edgecolor="black", linewidth=0.3)
        pub = _runs(list(row["times_s"]), list(row["states"]), hop_s)
        ax.broken_barh([(a / 60, w / 60) for a, w, _ in pub], (y + 0.02, 0.36),
                       facecolors=[colours.get(s, "#000000") for _, _, s in pub], linewidth=0)
    ax.set_yticks([n - 1 - i + 0.4 for i in range(len(rows))])
    ax.set_yticklabels([f"{r['playlist']}\ntruth / published" for r in rows], fontsize=7)
    ax.set_xlabel("minutes")
    ax.set_ylim(0, n)
    ax.set_xlim(0, longest)
    ax.set_title(title, fontsize=9)
    present = {lab for r in rows for lab, _, _ in r["segments"]} | {s for r in rows for s in r["states"]}
    handles = [Patch(facecolor=colours[k], edgecolor="black", linewidth=0.3, label=k)
               for k in [*genres, NOT_MUSIC, UNCERTAIN, SILENCE] if k in present]
    ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), ncol=1 if n > 3 else 2, fontsize=7,
              frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
