"""Section 2: inference per window for the shipped bundle and the lite bundle beside it, each runtime x num_threads
1/2, each combination in its own process; the graph's multiply-adds and the Raspberry Pi estimates built on them.

tensorflow imported before tflite_runtime breaks the latter, so every combination runs in a fresh
interpreter (``python -m bench.inference --worker ...``). Workers run in two passes, the second in reverse
order, and their samples are merged: slow drift of a shared machine then hits every row alike.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import REPO, Row, SectionResult, Table, music_like, section_main, time_calls, version_of
from bench.compute import effective_gmacs, graph_macs, pi_estimates
from bench.model import ModelChoice, lite_from_args, model_from_dir

RUNTIME_DISTS = {"ai_edge_litert": "ai-edge-litert", "tflite_runtime": "tflite-runtime", "tensorflow": "tensorflow-cpu"}
LABELS = {"ai_edge_litert": "ai_edge_litert", "tflite_runtime": "tflite_runtime", "tensorflow": "tf.lite"}


def worker(bundle: Path, runtime: str, threads: int, repeats: int) -> dict[str, Any]:
    """Load one bundle's model with one runtime and time what the classifier does per window on a real window:
    ``predict`` and, for a bundle with tag scores, reading that second output."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from edge.bundle import MODEL_FILE, read_bundle_json
    from edge.features import mfcc, normalize_window
    from edge.runtime import TfliteModel

    note = "via tf.lite.Interpreter" if runtime == "tensorflow" else ""
    spec, meta = read_bundle_json(bundle)
    frames = mfcc(music_like(spec.window_s + 1.0, spec.sample_rate), spec)[: spec.frames_per_window]
    window = normalize_window(frames, spec)
    t0 = time.perf_counter()
    model = TfliteModel(bundle / MODEL_FILE, num_threads=threads, runtime=runtime)
    load_ms = (time.perf_counter() - t0) * 1e3
    tags = meta.get("tags")
    tag_output = int(tags["output"]) if isinstance(tags, dict) and len(model.output_sizes) > 1 else 0

    def classify() -> None:
        model.predict(window)
        if tag_output:
            model.output(tag_output)

    samples = [s * 1e3 for s in time_calls(classify, repeats, warmup=min(20, repeats))]
    if tag_output:
        note = "; ".join(x for x in (note, f"+ {model.output_sizes[tag_output]} tag scores read") if x)
    return {"samples": samples, "load_ms": load_ms, "dtype": str(model.input_dtype), "note": note}


def run_worker(bundle: Path, runtime: str, threads: int, repeats: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.inference", "--worker", runtime, str(bundle), str(threads), str(repeats)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    try:
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    except subprocess.TimeoutExpired:
        return {"error": "timed out"}
    if proc.returncode != 0:
        last = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        return {"error": last[-1][:200] if last else f"exit {proc.returncode}"}
    doc: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return doc


def measure(choice: ModelChoice, threads: tuple[int, ...], repeats: int, passes: int) -> list[Row]:
    """One row per runtime x threads; unavailable combinations last, with the reason."""
    combos = [(rt, th) for rt in RUNTIME_DISTS for th in threads]
    results: dict[tuple[str, int], dict[str, Any]] = {}
    for p in range(passes):
        order = combos if p % 2 == 0 else list(reversed(combos))
        for rt, th in order:
            key = (rt, th)
            if "error" in results.get(key, {}):
                continue
            out = run_worker(choice.bundle, rt, th, max(1, repeats // passes))
            if "error" in out:
                results[key] = out
                continue
            prev = results.setdefault(key, {"samples": [], "load_ms": [], "note": out.get("note", "")})
            prev["samples"].extend(out["samples"])
            prev["load_ms"].append(out["load_ms"])
    rows = []
    for rt, th in combos:
        r = results[(rt, th)]
        name = f"{LABELS[rt]} {version_of(RUNTIME_DISTS[rt]) or ''}, {th} thread{'s' if th > 1 else ''}"
        if "error" in r:
            rows.append(Row(name, "ms", note=f"unavailable: {r['error']}"))
            continue
        note = "; ".join(x for x in (f"load {float(np.median(r['load_ms'])):.0f} ms", r.get("note", "")) if x)
        rows.append(Row(name, "ms", r["samples"], note=note))
    return [r for r in rows if r.samples] + [r for r in rows if not r.samples]


def run(args: argparse.Namespace) -> SectionResult:
    choice = model_from_dir(args.model_dir)
    lite = lite_from_args(args.lite_dir)
    res = SectionResult("inference", "2. Inference per window")
    res.notes.append(f"model: {choice.describe()}")
    res.notes.append(f"beside it: {lite.describe() if lite else 'no lite bundle installed'}")
    # The tagger takes ~45 ms a window, the lite model ~0.1 ms: equal sample counts would spend minutes on one.
    big_repeats, small_repeats, passes = (30, 150, 1) if args.quick else (200, 400, 2)
    bundles = [choice] + ([lite] if lite else [])
    facts: dict[str, Any] = {}
    mac_rows = []
    for b in bundles:
        count = graph_macs(b.model_file)
        heavy = count.macs > 100e6
        rows = measure(b, (1, 2), big_repeats if heavy else small_repeats, passes)
        res.tables.append(
            Table(
                f"{b.label}: TfliteModel.predict per window ({b.quantization})",
                rows,
                note="ms per window; ratio to the first row",
            )
        )
        measured = [r for r in rows if r.samples]
        first = measured[0].median if measured else float("nan")
        facts[b.kind] = {
            "macs": count.macs,
            "macs_by_op": count.by_op,
            "first_row": measured[0].name if measured else None,
            "ms": {r.name: r.median for r in measured},
            "gmacs_per_s_first_row": effective_gmacs(count.macs, first),
            "hop_s": b.hop_s,
        }
        note = (
            f"from the TFLite graph: sum over {', '.join(sorted(count.by_op))} of output elements x kernel size "
            f"({count.ops} ops in all)"
            if not count.error
            else f"could not read the graph: {count.error}"
        )
        mac_rows.append(
            Row(f"{b.label}", "M multiply-adds/window", [count.macs / 1e6] if count.macs else [], note=note)
        )
        if measured:
            facts[b.kind]["cpu_pct_at_hop"] = first / 10 / b.hop_s
            res.headline.append(
                f"Inference per window, {b.label} ({b.quantization}, {count.macs / 1e9:.3g} G multiply-adds): "
                f"{measured[0].name} {first:.3g} ms "
                f"({facts[b.kind]['gmacs_per_s_first_row']:.1f} G multiply-adds/s sustained), "
                f"{first / 10 / b.hop_s:.2f} % of one core at its hop of {b.hop_s:g} s before features and MQTT."
            )
    res.tables.append(Table("Multiply-adds per window", mac_rows, note="ratio to the first row"))
    if choice.kind == "shipped" and facts[choice.kind]["macs"]:
        table = pi_estimates(facts[choice.kind]["macs"], choice.hop_s)
        res.tables.append(table)
        facts["pi_estimates_ms"] = {r.name: r.median for r in table.rows}
        pi4 = [r.median for r in table.rows if r.name.startswith("Pi 4 B (")]
        pi5 = [r.median for r in table.rows if r.name.startswith("Pi 5")]
        res.headline.append(
            f"ESTIMATED (not measured) per window for {choice.label}: "
            f"Pi 4 {min(pi4) / 1e3:.2f}-{max(pi4) / 1e3:.2f} s, "
            f"Pi 5 {min(pi5) / 1e3:.2f}-{max(pi5) / 1e3:.2f} s on one core, i.e. {min(pi4) / 10 / choice.hop_s:.0f}-"
            f"{max(pi4) / 10 / choice.hop_s:.0f} % and {min(pi5) / 10 / choice.hop_s:.0f}-"
            f"{max(pi5) / 10 / choice.hop_s:.0f} % of one core at the shipped hop of {choice.hop_s:g} s."
        )
    res.notes.append(
        "The knob: CPU per audio second = per-window time / hop, so `--hop 3` (pipeline.hop_s) halves the tagger's "
        "cost and a genre change then shows up to one hop later; model.threads = 2 splits one window over two "
        "cores (compare the 1- and 2-thread rows: on a busy board the hand-off can cost more than it saves, and it "
        "never lowers the CPU spent). The lite bundle (model.path = .../edge/models/lite) costs a fraction of "
        "either, and is right less often (README, How well it works)."
    )
    res.facts = facts
    return res


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        runtime, bundle, threads, repeats = sys.argv[2:6]
        doc = worker(Path(bundle), runtime, int(threads), int(repeats))
        print(json.dumps(doc))
        return
    section_main("inference", run)


if __name__ == "__main__":
    main()
