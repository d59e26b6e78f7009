"""The hop/rule trade-off's report: folds averaged per hop and per value of the main constant, a table, a plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trainer.report.tradeoff_report import choose_hop, md_lines, plot_tradeoff, summarize_hops


def _fold(settled: float) -> list[dict[str, Any]]:
    def m(s: float, w: float) -> dict[str, dict[str, float]]:
        return {"typical": {"settled_accuracy": s, "within_song_changes_per_min": w}}

    return [{"every": k, "hop_s": 1.5 * k, "windows_per_min": 40.0 / k, "tuned": {"switch_per_hop": 0.01},
             "metrics": m(settled / k, 1.0 / k),
             "curve": [{"switch_per_hop": v, "tuned": {}, "metrics": m(settled - v, 10 * v)} for v in (0.01, 0.05)]}
            for k in (1, 2)]


def test_folds_are_averaged_per_hop_and_per_constant_value(tmp_path: Path) -> None:
    hops = summarize_hops([_fold(0.8), _fold(0.6)])
    assert [h["hop_s"] for h in hops] == [1.5, 3.0]
    assert hops[0]["metrics"]["typical"]["settled_accuracy"]["mean"] == pytest.approx(0.7)
    assert hops[1]["metrics"]["typical"]["within_song_changes_per_min"]["mean"] == pytest.approx(0.5)
    assert [p["switch_per_hop"] for p in hops[0]["curve"]] == [0.01, 0.05]
    assert hops[0]["curve"][1]["metrics"]["typical"]["settled_accuracy"]["mean"] == pytest.approx(0.65)
    assert len(hops[0]["tuned"]) == 2  # one tuned rule per fold
    lines = md_lines(hops, "t.png")
    assert any(line.startswith("| 3.00 | 20 | typical | 35.0 ± ") for line in lines), lines
    assert any(line.startswith("| 1.50 | 0.05 | 65.0 ± ") for line in lines), lines
    assert md_lines([], None) == []
    png = plot_tradeoff(tmp_path / "t.png", hops)
    assert png.stat().st_size > 1000


def _hop(hop_s: float, settled: float, flaps: float, latency: float, std: float = 0.01) -> dict[str, Any]:
    return {"every": round(hop_s / 1.5), "hop_s": hop_s, "windows_per_min": 60 / hop_s, "curve": [],
            "metrics": {"typical": {"settled_accuracy": {"mean": settled, "std": std},
                                    "within_song_changes_per_min": {"mean": flaps, "std": std},
                                    "switch_latency_s.median": {"mean": latency, "std": 0.0}}}}


def test_the_longest_hop_that_costs_the_stream_nothing_measurable_is_chosen() -> None:
    # 3 s: as right and as steady within the spread; 4.5 s: too slow to switch, and longer than the window.
    hops = [_hop(1.5, 0.60, 1.0, 6.0), _hop(3.0, 0.59, 1.05, 8.0), _hop(4.5, 0.61, 0.9, 12.0)]
    choice = choose_hop(hops, max_hop_s=3.024)
    assert choice["hop_s"] == 3.0
    assert [r["passes"]["switch_latency_s.median"] for r in choice["checks"]] == [True, True, False]
    # A hop longer than the window leaves audio unheard (the daemon refuses it): never chosen, however good.
    fine = [_hop(1.5, 0.60, 1.0, 6.0), _hop(4.5, 0.61, 0.9, 6.0)]
    assert choose_hop(fine, max_hop_s=3.024)["hop_s"] == 1.5 and choose_hop(fine, max_hop_s=5.0)["hop_s"] == 4.5
    # Flapping more than one fold's spread above the shipped grid rules a hop out: steady first.
    assert choose_hop([_hop(1.5, 0.60, 1.0, 6.0), _hop(3.0, 0.65, 1.5, 8.0)], 3.024)["hop_s"] == 1.5
    # Less right than one fold's spread (here 5 points) rules it out too.
    assert choose_hop([_hop(1.5, 0.60, 1.0, 6.0, std=0.05), _hop(3.0, 0.54, 1.0, 8.0)], 3.024)["hop_s"] == 1.5
    assert choose_hop([_hop(1.5, 0.60, 1.0, 6.0, std=0.05), _hop(3.0, 0.56, 1.0, 8.0)], 3.024)["hop_s"] == 3.0
    # Past the latency goal, a hop may be no slower than the shipped grid's latency plus one fold's spread.
    slow = [_hop(1.5, 0.60, 1.0, 15.0), _hop(3.0, 0.60, 1.0, 15.9)]
    assert choose_hop(slow, 3.024)["hop_s"] == 3.0
    assert choose_hop([slow[0], _hop(3.0, 0.60, 1.0, 21.0)], 3.024)["hop_s"] == 1.5
    assert choose_hop([], 3.024) == {}
    assert "Chosen hop: **3.00 s**" in "\n".join(md_lines(hops, None, choice))


def test_the_shipped_bundle_runs_at_the_hop_its_cv_trade_off_chose() -> None:
    """The committed bundle's hop, the recipe's and the report's choice agree (on the frame grid)."""
    import json

    from edge.bundle import default_bundle_dir, read_bundle_json
    from trainer.model.recipes import get_recipe

    bundle = default_bundle_dir()
    spec, _ = read_bundle_json(bundle)
    choice = json.loads((bundle / "report.json").read_text()).get("playlist_cv_hop_choice")
    if not choice:
        pytest.skip("the shipped report has no hop trade-off")
    assert spec.frames_for(choice["hop_s"]) == spec.hop_frames
    assert spec.hop_s == get_recipe(json.loads((bundle / "model.json").read_text())["model"]["recipe"]).hop_s
